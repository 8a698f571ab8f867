package io.sparkprune.pipeline.safetensors;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.sparkprune.kernels.DType;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.CharacterCodingException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A parsed and validated safetensors header.
 *
 * <p>File layout (<a href="https://github.com/huggingface/safetensors">safetensors</a> format):
 * <pre>
 *   bytes [0, 8)          N, unsigned 64-bit little-endian: the header length
 *   bytes [8, 8+N)        UTF-8 JSON object, possibly padded with trailing spaces:
 *                         {"__metadata__": {str: str}, "name": {"dtype": "F32", "shape": [..],
 *                          "data_offsets": [begin, end]}, ...}
 *   bytes [8+N, length)   data section; offsets are relative to its start
 * </pre>
 *
 * <p>Validation follows the Hugging Face reference implementation ({@code safetensors} Rust crate,
 * {@code SafeTensors::read_metadata} and {@code Metadata::validate}): N ≤ 100,000,000 and within the
 * file; the header is strict UTF-8 JSON whose first byte is an opening brace; every tensor has a supported
 * dtype, a shape of non-negative integers and {@code data_offsets} whose length equals dtype size ×
 * element count; the byte ranges, sorted by offset, tile the data section exactly (first begins at
 * 0, no gap, no overlap, last ends at the end of the file). Beyond the reference: duplicate keys
 * are rejected (a JSON parser would silently keep one of them) and {@code __metadata__} values must
 * be strings. Every violation throws {@link SafetensorsFormatException} naming the file and tensor.
 *
 * <p>Nothing is allocated from a size the file claims before that size has been checked against
 * the real file length.
 */
public final class SafetensorsHeader {
    /** Length of the little-endian u64 header-length prefix. */
    public static final int PREFIX_BYTES = 8;
    /** Largest accepted header, as in the reference implementation ({@code MAX_HEADER_SIZE}). */
    public static final long MAX_HEADER_BYTES = 100_000_000L;
    /** Key of the optional string-to-string metadata object in the header. */
    public static final String METADATA_KEY = "__metadata__";

    private final String source;
    private final long headerLength;
    private final long fileLength;
    private final List<TensorInfo> tensors;
    private final Map<String, TensorInfo> byName;
    private final Map<String, String> metadata;

    private SafetensorsHeader(String source, long headerLength, long fileLength, List<TensorInfo> tensors,
            Map<String, String> metadata) {
        this.source = source;
        this.headerLength = headerLength;
        this.fileLength = fileLength;
        this.tensors = Collections.unmodifiableList(tensors);
        Map<String, TensorInfo> m = new LinkedHashMap<>();
        for (TensorInfo t : tensors) {
            m.put(t.name(), t);
        }
        this.byName = Collections.unmodifiableMap(m);
        this.metadata = Collections.unmodifiableMap(metadata);
    }

    /**
     * Validates the value of the 8-byte prefix against the file.
     *
     * @param prefix the prefix read as a little-endian u64 stored in a {@code long} (a negative
     *     value stands for a u64 ≥ 2^63)
     * @param fileLength total file length in bytes
     * @param source file label for messages
     * @return the header length N, with {@code 2 ≤ N ≤ MAX_HEADER_BYTES} and
     *     {@code 8 + N ≤ fileLength}
     * @throws SafetensorsFormatException when N is out of those bounds or the file is shorter than
     *     the prefix
     */
    public static long validateHeaderLength(long prefix, long fileLength, String source) {
        if (fileLength < PREFIX_BYTES) {
            throw new SafetensorsFormatException(source, null, "file is " + fileLength
                    + " bytes, shorter than the 8-byte header length prefix; it is truncated or not a safetensors file");
        }
        String n = Long.toUnsignedString(prefix);
        if (Long.compareUnsigned(prefix, MAX_HEADER_BYTES) > 0) {
            throw new SafetensorsFormatException(source, null, "header length " + n
                    + " (the first 8 bytes, little-endian) exceeds the " + MAX_HEADER_BYTES
                    + "-byte limit of the safetensors format; the file is corrupt or not a safetensors file");
        }
        if (prefix < 2) {
            throw new SafetensorsFormatException(source, null, "header length " + n
                    + " is too small to hold a JSON object (at least \"{}\", 2 bytes); the file is corrupt");
        }
        if (prefix > fileLength - PREFIX_BYTES) {
            throw new SafetensorsFormatException(source, null, "header length " + n
                    + " runs past the end of the file (" + fileLength + " bytes, so at most "
                    + (fileLength - PREFIX_BYTES) + " header bytes); the file is truncated: download or copy it again");
        }
        return prefix;
    }

    /**
     * Parses and validates a header.
     *
     * @param headerJson the N header bytes (file bytes {@code [8, 8+N)}), N = {@code headerJson.length}
     * @param fileLength total file length in bytes (prefix + header + data section)
     * @param source file label for messages (path or URI)
     * @return the header, tensors in data-offset order
     * @throws SafetensorsFormatException on any violation of the format (see the class comment)
     */
    public static SafetensorsHeader parse(byte[] headerJson, long fileLength, String source) {
        long n = validateHeaderLength(headerJson.length, fileLength, source);
        long dataLength = fileLength - PREFIX_BYTES - n;
        if (headerJson[0] != '{') {
            throw new SafetensorsFormatException(source, null, "header does not start with '{' (byte 0x"
                    + Integer.toHexString(headerJson[0] & 0xff) + " at offset 8); this is not a safetensors file");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        List<TensorInfo> tensors = new ArrayList<>();
        try (JsonParser p = Json.streamingParser(headerJson, 0, headerJson.length)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new SafetensorsFormatException(source, null, "header JSON is not an object; the file is corrupt");
            }
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String key = p.currentName();
                p.nextToken();
                if (METADATA_KEY.equals(key)) {
                    parseMetadata(p, metadata, source);
                } else {
                    tensors.add(parseTensor(key, p, dataLength, source));
                }
            }
            if (t != JsonToken.END_OBJECT) { // the parser reports malformed input itself; this is a guard
                throw new SafetensorsFormatException(source, null, "header JSON object is not closed; the file is corrupt");
            }
            if (p.nextToken() != null) {
                throw new SafetensorsFormatException(source, null, "header has content after its JSON object ("
                        + abbreviate(p.getText()) + "); only space padding may follow: the file is corrupt");
            }
        } catch (CharacterCodingException e) {
            throw new SafetensorsFormatException(source, null,
                    "header is not valid UTF-8; the file is corrupt: re-export or re-download it", e);
        } catch (JsonProcessingException e) {
            String duplicate = Json.duplicateKey(e);
            if (duplicate != null) {
                throw new SafetensorsFormatException(source, duplicate, "appears more than once in the header; a "
                        + "tensor or metadata key may appear only once: re-export the checkpoint", e);
            }
            throw new SafetensorsFormatException(source, null, "header is not valid JSON (" + e.getOriginalMessage()
                    + "); the file is corrupt: re-export or re-download it", e);
        } catch (IOException e) {
            throw new SafetensorsFormatException(source, null, "header could not be decoded (" + e.getMessage()
                    + "); the file is corrupt: re-export or re-download it", e);
        }
        tensors.sort(Comparator.comparingLong(TensorInfo::dataBegin).thenComparingLong(TensorInfo::dataEnd));
        checkContiguous(tensors, dataLength, source);
        return new SafetensorsHeader(source, n, fileLength, tensors, metadata);
    }

    /** At the value of {@code __metadata__}: null, or an object of string values. */
    private static void parseMetadata(JsonParser p, Map<String, String> out, String source) throws IOException {
        JsonToken t = p.currentToken();
        if (t == JsonToken.VALUE_NULL) {
            return;
        }
        if (t != JsonToken.START_OBJECT) {
            throw new SafetensorsFormatException(source, METADATA_KEY, "must be an object of string values, got "
                    + kind(t) + "; fix the writer that produced the file");
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String key = p.currentName();
            JsonToken v = p.nextToken();
            if (v != JsonToken.VALUE_STRING) {
                throw new SafetensorsFormatException(source, METADATA_KEY + "." + key,
                        "metadata values must be strings, got " + kind(v) + "; store it as a string"
                                + (v.isScalarValue() ? " (e.g. \"" + abbreviate(p.getText()) + "\")" : ""));
            }
            out.put(key, p.getText());
        }
    }

    /** At the value of a tensor entry: {"dtype": str, "shape": [int...], "data_offsets": [int, int], ...}. */
    private static TensorInfo parseTensor(String name, JsonParser p, long dataLength, String source)
            throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw new SafetensorsFormatException(source, name, "tensor entry must be an object with dtype, shape and "
                    + "data_offsets, got " + kind(p.currentToken()) + "; the file is corrupt");
        }
        String dtypeName = null;
        long[] shape = null;
        long[] offsets = null;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken v = p.nextToken();
            switch (field) {
                case "dtype" -> {
                    if (v != JsonToken.VALUE_STRING) {
                        throw new SafetensorsFormatException(source, name, "\"dtype\" must be a string, got " + kind(v)
                                + "; the file is corrupt");
                    }
                    dtypeName = p.getText();
                }
                case "shape" -> shape = longArray(p, "shape", -1, name, source);
                case "data_offsets" -> offsets = longArray(p, "data_offsets", 2, name, source);
                default -> p.skipChildren(); // unknown fields are ignored, as by the reference implementation
            }
        }
        if (dtypeName == null) {
            throw new SafetensorsFormatException(source, name, "\"dtype\" must be a string, got nothing; the file is "
                    + "corrupt");
        }
        String dn = dtypeName;
        DType dtype = DType.fromSafetensorsName(dn).orElseThrow(() ->
                new SafetensorsFormatException(source, name, "unsupported dtype \"" + abbreviate(dn)
                        + "\"; supported: " + DType.supportedNames()
                        + "; convert the checkpoint to one of these (e.g. save it in bfloat16 or float32)"));
        if (shape == null) {
            throw new SafetensorsFormatException(source, name, "\"shape\" must be an array of non-negative integers, "
                    + "got nothing; the file is corrupt");
        }
        if (offsets == null) {
            throw new SafetensorsFormatException(source, name, "\"data_offsets\" must be an array of non-negative "
                    + "integers, got nothing; the file is corrupt");
        }
        long begin = offsets[0];
        long end = offsets[1];
        if (begin > end) {
            throw new SafetensorsFormatException(source, name, "data_offsets [" + begin + ", " + end
                    + "] end before they begin; the file is corrupt");
        }
        if (end > dataLength) {
            throw new SafetensorsFormatException(source, name, "data_offsets [" + begin + ", " + end
                    + "] run past the end of the data section (" + dataLength
                    + " bytes); the file is truncated: download or copy it again");
        }
        long bytes;
        try {
            bytes = TensorInfo.byteLengthOf(dtype, shape);
        } catch (IllegalArgumentException e) {
            throw new SafetensorsFormatException(source, name, "shape " + Arrays.toString(shape) + " of " + dtype
                    + " is too large (" + e.getMessage() + "); the header is corrupt");
        }
        if (bytes != end - begin) {
            throw new SafetensorsFormatException(source, name, "data_offsets [" + begin + ", " + end + "] hold "
                    + (end - begin) + " bytes but " + dtype + " " + Arrays.toString(shape) + " needs " + bytes
                    + " bytes; the header does not match the data: re-export the checkpoint");
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    /**
     * At a value that must be an array of non-negative integers below 2^63; {@code expectedLength
     * < 0}: any length. Memory grows with the entries actually present, never with a claimed size.
     */
    private static long[] longArray(JsonParser p, String field, int expectedLength, String name, String source)
            throws IOException {
        if (p.currentToken() != JsonToken.START_ARRAY) {
            throw new SafetensorsFormatException(source, name, "\"" + field + "\" must be an array of non-negative "
                    + "integers, got " + kind(p.currentToken()) + "; the file is corrupt");
        }
        long[] out = new long[expectedLength >= 0 ? expectedLength : 4];
        int n = 0;
        JsonToken t;
        while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
            if (expectedLength >= 0 && n == expectedLength) {
                throw new SafetensorsFormatException(source, name, "\"" + field + "\" must have " + expectedLength
                        + " entries [begin, end], got more; the file is corrupt");
            }
            if (t != JsonToken.VALUE_NUMBER_INT) {
                throw new SafetensorsFormatException(source, name, "\"" + field + "\"[" + n
                        + "] must be a non-negative integer, got " + kind(t)
                        + (t.isScalarValue() ? " " + abbreviate(p.getText()) : "") + "; the file is corrupt");
            }
            boolean big = p.getNumberType() == JsonParser.NumberType.BIG_INTEGER;
            if (big || p.getLongValue() < 0) {
                boolean negative = big ? p.getBigIntegerValue().signum() < 0 : true;
                throw new SafetensorsFormatException(source, name, "\"" + field + "\"[" + n + "] = "
                        + abbreviate(p.getText()) + " is " + (negative ? "negative" : "too large")
                        + "; it must be an integer in [0, 2^63); the file is corrupt");
            }
            if (n == out.length) {
                out = Arrays.copyOf(out, 2 * n);
            }
            out[n++] = p.getLongValue();
        }
        if (expectedLength >= 0 && n != expectedLength) {
            throw new SafetensorsFormatException(source, name, "\"" + field + "\" must have " + expectedLength
                    + " entries [begin, end], got " + n + "; the file is corrupt");
        }
        return n == out.length ? out : Arrays.copyOf(out, n);
    }

    private static void checkContiguous(List<TensorInfo> sorted, long dataLength, String source) {
        long expected = 0;
        String previous = null;
        for (TensorInfo t : sorted) {
            if (t.dataBegin() < expected) {
                throw new SafetensorsFormatException(source, t.name(), "data_offsets [" + t.dataBegin() + ", "
                        + t.dataEnd() + "] overlap tensor '" + previous + "', which ends at " + expected
                        + "; tensors must not share bytes: the file is corrupt");
            }
            if (t.dataBegin() > expected) {
                throw new SafetensorsFormatException(source, t.name(), "data_offsets [" + t.dataBegin() + ", "
                        + t.dataEnd() + "] leave a gap of " + (t.dataBegin() - expected) + " bytes after "
                        + (previous == null ? "the start of the data section" : "tensor '" + previous + "'")
                        + "; safetensors requires contiguous data: re-save the file with a conforming writer");
            }
            expected = t.dataEnd();
            previous = t.name();
        }
        if (expected != dataLength) {
            throw new SafetensorsFormatException(source, null, "the tensors cover " + expected
                    + " bytes but the data section has " + dataLength + " bytes (" + (dataLength - expected)
                    + " trailing bytes no tensor owns); the file is corrupt or was appended to");
        }
    }

    private static String kind(JsonToken t) {
        if (t == null) {
            return "nothing";
        }
        return switch (t) {
            case START_OBJECT -> "object";
            case START_ARRAY -> "array";
            case VALUE_STRING -> "string";
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "number";
            case VALUE_TRUE, VALUE_FALSE -> "boolean";
            case VALUE_NULL -> "null";
            default -> t.name().toLowerCase(java.util.Locale.ROOT);
        };
    }

    private static String abbreviate(String s) {
        return s.length() <= 64 ? s : s.substring(0, 61) + "...";
    }

    /**
     * Encodes a header as written by {@link SafetensorsWriter}: {@code __metadata__} first (omitted
     * when empty), then tensors in the given order, padded with spaces so that the data section
     * starts at a multiple of 8 bytes ({@code N % 8 == 0}), as the reference writer does.
     *
     * @param metadata string metadata, may be empty
     * @param tensors tensors with their final offsets
     * @return the N header bytes (without the 8-byte prefix)
     */
    static byte[] encode(Map<String, String> metadata, List<TensorInfo> tensors) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (JsonGenerator g = Json.MAPPER.getFactory().createGenerator(out)) {
            g.writeStartObject();
            if (!metadata.isEmpty()) {
                g.writeObjectFieldStart(METADATA_KEY);
                for (Map.Entry<String, String> e : metadata.entrySet()) {
                    g.writeStringField(e.getKey(), e.getValue());
                }
                g.writeEndObject();
            }
            for (TensorInfo t : tensors) {
                g.writeObjectFieldStart(t.name());
                g.writeStringField("dtype", t.dtype().safetensorsName());
                g.writeArrayFieldStart("shape");
                for (long d : t.shape()) {
                    g.writeNumber(d);
                }
                g.writeEndArray();
                g.writeArrayFieldStart("data_offsets");
                g.writeNumber(t.dataBegin());
                g.writeNumber(t.dataEnd());
                g.writeEndArray();
                g.writeEndObject();
            }
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e); // in-memory stream: does not happen
        }
        int pad = (8 - out.size() % 8) % 8;
        for (int i = 0; i < pad; i++) {
            out.write(' ');
        }
        return out.toByteArray();
    }

    /** @return the file label (path or URI) used in messages */
    public String source() {
        return source;
    }

    /** @return N, the header length in bytes (the value of the 8-byte prefix) */
    public long headerLength() {
        return headerLength;
    }

    /** @return absolute offset of the data section in the file, {@code 8 + N} */
    public long dataSectionOffset() {
        return PREFIX_BYTES + headerLength;
    }

    /** @return data section length in bytes, {@code fileLength - 8 - N} */
    public long dataSectionLength() {
        return fileLength - dataSectionOffset();
    }

    /** @return total file length in bytes */
    public long fileLength() {
        return fileLength;
    }

    /** @return all tensors in data-offset order (unmodifiable) */
    public List<TensorInfo> tensors() {
        return tensors;
    }

    /**
     * @param name tensor name
     * @return the tensor, or empty when the header has no such name
     */
    public Optional<TensorInfo> find(String name) {
        return Optional.ofNullable(byName.get(name));
    }

    /** @return the {@code __metadata__} entries in header order (unmodifiable; empty when absent) */
    public Map<String, String> metadata() {
        return metadata;
    }
}
