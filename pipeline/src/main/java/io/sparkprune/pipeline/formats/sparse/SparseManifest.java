package io.sparkprune.pipeline.formats.sparse;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.kernels.DType;
import io.sparkprune.pipeline.formats.FormatException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The manifest of a {@code sparse} checkpoint, stored as a JSON string under the
 * {@code __metadata__} key {@value #METADATA_KEY} of every safetensors file of the checkpoint:
 * <pre>
 * {"format": "sparkprune-sparse", "version": 2,
 *  "metadata": {original __metadata__ entries},
 *  "tensors": [{"name": "...", "encoding": "dense"|"nm"|"bsr"|"bitmask", "dtype": "BF16",
 *               "shape": [rows, cols], "n": 2, "m": 4 (nm only), "block": [br, bc] (bsr only),
 *               "quantization": {"bits": 4, "symmetric": false, "group_size": 128 | null} (quantized nm only),
 *               "codec": "deflate", "deflated": [{"payload": "codes", "dtype": "U8", "shape": [rows, rowBytes],
 *                   "chunk_rows": 170, "chunks": 3, "bytes": 12345}, ...] (deflate codec only)},
 *              ...]}
 * </pre>
 * Tensors are listed in the original order. Version 2 added {@code quantization} (the quantized
 * N:M variant, {@link QuantizedNm}); version 3 added the {@code deflate} payload codec
 * ({@link DeflatedPayload}): {@code codec} and {@code deflated}. A checkpoint without deflated
 * payloads is written as version 2, byte for byte as before; versions 1 and 2 are still read.
 *
 * @param metadata the original checkpoint's {@code __metadata__}, restored on decompression
 * @param tensors every original tensor, in order
 */
public record SparseManifest(Map<String, String> metadata, List<Entry> tensors) {

    /** {@code __metadata__} key holding the manifest JSON. */
    public static final String METADATA_KEY = "sparkprune.sparse";
    /** Value of the manifest's {@code format} and of the {@code __metadata__} key {@code format}. */
    public static final String FORMAT = "sparkprune-sparse";
    /** The newest version this code writes and reads (for checkpoints with deflated payloads). */
    public static final int VERSION = 3;
    /** The version written for checkpoints without deflated payloads. */
    public static final int RAW_VERSION = 2;
    /** Payload suffixes the {@code deflate} codec applies to: U8 payloads of one row per tensor row. */
    public static final List<String> DEFLATABLE = List.of("codes", "indices", "mask");
    /** The oldest version this code reads. */
    public static final int MIN_VERSION = 1;

    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * One original tensor.
     *
     * @param name original name
     * @param encoding how it is stored
     * @param dtype original (and value) dtype
     * @param shape original shape
     * @param quantization for the quantized N:M variant, its grid (4 or 8 bits); empty otherwise
     * @param deflated the payloads stored with the {@code deflate} codec, in payload order; empty
     *     when every payload is raw (codec {@code none})
     */
    public record Entry(String name, SparseEncoding encoding, DType dtype, long[] shape,
                        Optional<QuantizationSpec> quantization, List<Deflated> deflated) {
        /**
         * @throws FormatException when quantization is given for an encoding other than N:M or bits
         *     other than 4, 8, or a deflated payload is not a deflatable payload of this entry
         */
        public Entry {
            java.util.Objects.requireNonNull(quantization, "quantization");
            deflated = List.copyOf(deflated);
            if (quantization.isPresent() && (!(encoding instanceof SparseEncoding.NofM)
                    || (quantization.get().bits() != 4 && quantization.get().bits() != 8))) {
                throw new FormatException(name, "quantized sparse storage is N:M with 4- or 8-bit codes, got "
                        + encoding.spec() + " with " + quantization.get().describe() + "; store the tensor's values "
                        + "(unquantized encoding) instead");
            }
            List<String> allowed = new ArrayList<>();
            for (Component c : payloads(encoding, name, dtype, shape, quantization, 0)) {
                String suffix = suffix(name, c);
                if (DEFLATABLE.contains(suffix)) {
                    allowed.add(suffix);
                }
            }
            List<String> got = deflated.stream().map(Deflated::payload).toList();
            if (!got.isEmpty() && !got.equals(allowed)) {
                throw new FormatException(name, "deflated payloads " + got + " do not match the deflatable payloads "
                        + allowed + " of " + encoding.spec() + "; the file is corrupt: re-create it");
            }
        }

        /**
         * An entry with raw payloads.
         *
         * @param name original name
         * @param encoding how it is stored
         * @param dtype original (and value) dtype
         * @param shape original shape
         * @param quantization for the quantized N:M variant, its grid; empty otherwise
         */
        public Entry(String name, SparseEncoding encoding, DType dtype, long[] shape,
                     Optional<QuantizationSpec> quantization) {
            this(name, encoding, dtype, shape, quantization, List.of());
        }

        /** @return the codec of its payloads: {@code deflate} when any is deflated */
        public PayloadCodec codec() {
            return deflated.isEmpty() ? PayloadCodec.NONE : PayloadCodec.DEFLATE;
        }

        /**
         * @param payload a payload suffix, e.g. {@code codes}
         * @return how it is deflated, or empty when it is stored raw
         */
        public Optional<Deflated> deflated(String payload) {
            return deflated.stream().filter(d -> d.payload().equals(payload)).findFirst();
        }

        /**
         * An unquantized entry.
         *
         * @param name original name
         * @param encoding how it is stored
         * @param dtype original (and value) dtype
         * @param shape original shape
         */
        public Entry(String name, SparseEncoding encoding, DType dtype, long[] shape) {
            this(name, encoding, dtype, shape, Optional.empty());
        }

        /** @return rows (shape[0]) of a 2-D tensor */
        public int rows() {
            return (int) shape[0];
        }

        /** @return cols (shape[1]) of a 2-D tensor */
        public int cols() {
            return (int) shape[1];
        }

        /**
         * @return dense bytes
         * @throws ArithmeticException when they overflow a long ({@link #parse} refuses such entries)
         */
        public long denseBytes() {
            long n = dtype.byteSize();
            for (long s : shape) {
                n = Math.multiplyExact(n, s);
            }
            return n;
        }
    }

    /**
     * A payload stored with the {@code deflate} codec ({@link DeflatedPayload}): as
     * {@code <name>.<payload>.deflate} (U8 {@code [bytes]}) and {@code <name>.<payload>.chunks}
     * (I64 {@code [ceil(rows / chunkRows) + 1]}).
     *
     * @param payload the payload suffix: {@code codes}, {@code indices} or {@code mask}
     * @param chunkRows payload rows per chunk, ≥ 1 (the last chunk may hold fewer)
     * @param bytes length of the concatenated DEFLATE streams, ≥ 0
     */
    public record Deflated(String payload, int chunkRows, long bytes) {
        /** @throws FormatException for an unknown payload, chunk rows below 1 or negative bytes */
        public Deflated {
            if (!DEFLATABLE.contains(payload) || chunkRows < 1 || bytes < 0) {
                throw new FormatException(payload, "bad deflated payload (payload " + DEFLATABLE + ", chunk_rows >= 1, "
                        + "bytes >= 0 needed, got chunk_rows " + chunkRows + ", bytes " + bytes
                        + "); the file is corrupt: re-create it");
            }
        }
    }

    /**
     * A stored safetensors tensor belonging to an entry.
     *
     * @param name stored name, e.g. {@code w.values}
     * @param dtype stored dtype
     * @param shape stored shape
     */
    public record Component(String name, DType dtype, long[] shape) {
        /** @return bytes */
        public long bytes() {
            long n = dtype.byteSize();
            for (long s : shape) {
                n *= s;
            }
            return n;
        }
    }

    /**
     * The stored tensors of an entry (names, dtypes, shapes as docs/formats.md specifies): its
     * {@link #payloads}, each deflated one replaced by its {@code .deflate} and {@code .chunks} tensors.
     *
     * @param e the entry
     * @param count stored tiles (bsr) or stored entries (bitmask); ignored otherwise
     * @return the components in storage order
     */
    public static List<Component> components(Entry e, long count) {
        List<Component> out = new ArrayList<>();
        for (Component c : payloads(e, count)) {
            Optional<Deflated> d = e.deflated(suffix(e.name(), c));
            if (d.isPresent()) {
                out.add(new Component(c.name() + ".deflate", DType.U8, new long[] {d.get().bytes()}));
                out.add(new Component(c.name() + ".chunks", DType.I64,
                        new long[] {DeflatedPayload.chunks(c.shape()[0], d.get().chunkRows()) + 1}));
            } else {
                out.add(c);
            }
        }
        return List.copyOf(out);
    }

    /**
     * @param entryName the entry's name
     * @param c one of its payloads
     * @return the payload's suffix ({@code codes}, {@code indices}, ...), or {@code ""} for a dense
     *     tensor stored under its own name
     */
    static String suffix(String entryName, Component c) {
        return c.name().length() == entryName.length() ? "" : c.name().substring(entryName.length() + 1);
    }

    /**
     * The payload tensors of an entry as codec {@code none} stores them (names, dtypes, shapes as
     * docs/formats.md specifies); also the decoded form of deflated payloads.
     *
     * @param e the entry
     * @param count stored tiles (bsr) or stored entries (bitmask); ignored otherwise
     * @return the payloads in storage order
     */
    public static List<Component> payloads(Entry e, long count) {
        return payloads(e.encoding(), e.name(), e.dtype(), e.shape(), e.quantization(), count);
    }

    private static List<Component> payloads(SparseEncoding enc, String n, DType dtype, long[] shape,
                                            Optional<QuantizationSpec> quantization, long count) {
        if (enc instanceof SparseEncoding.NofM nm && quantization.isPresent()) {
            QuantizationSpec q = quantization.get();
            long rows = shape[0];
            long cols = shape[1];
            long g = q.groupSize() == 0 ? 1 : cols / q.groupSize();
            List<Component> cs = new ArrayList<>(List.of(
                    new Component(n + ".codes", DType.U8, new long[] {rows, QuantizedNm.codeRowBytes(cols, nm, q.bits())}),
                    new Component(n + ".indices", DType.U8, new long[] {rows, SparseCodecs.nmIndexRowBytes(cols, nm)}),
                    new Component(n + ".scales", dtype, new long[] {rows, g})));
            if (!q.symmetric()) {
                cs.add(new Component(n + ".zero_points", DType.I8, new long[] {rows, g}));
            }
            return List.copyOf(cs);
        }
        if (enc instanceof SparseEncoding.NofM nm) {
            long rows = shape[0];
            long cols = shape[1];
            return List.of(new Component(n + ".values", dtype, new long[] {rows, cols / nm.m() * nm.n()}),
                    new Component(n + ".indices", DType.U8, new long[] {rows, SparseCodecs.nmIndexRowBytes(cols, nm)}));
        }
        if (enc instanceof SparseEncoding.Bsr b) {
            return List.of(new Component(n + ".values", dtype, new long[] {count, b.rows(), b.cols()}),
                    new Component(n + ".col_indices", DType.I32, new long[] {count}),
                    new Component(n + ".row_ptr", DType.I64, new long[] {shape[0] / b.rows() + 1}));
        }
        if (enc instanceof SparseEncoding.Bitmask) {
            return List.of(new Component(n + ".mask", DType.U8,
                            new long[] {shape[0], SparseCodecs.maskRowBytes(shape[1])}),
                    new Component(n + ".values", dtype, new long[] {count}),
                    new Component(n + ".row_ptr", DType.I64, new long[] {shape[0] + 1}));
        }
        return List.of(new Component(n, dtype, shape));
    }

    /** @return the manifest JSON */
    public String toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("version", tensors.stream().anyMatch(e -> !e.deflated().isEmpty()) ? VERSION : RAW_VERSION);
        ObjectNode md = root.putObject("metadata");
        metadata.forEach(md::put);
        ArrayNode ts = root.putArray("tensors");
        for (Entry e : tensors) {
            ObjectNode t = ts.addObject();
            t.put("name", e.name());
            t.put("encoding", e.encoding().kind());
            t.put("dtype", e.dtype().safetensorsName());
            ArrayNode s = t.putArray("shape");
            for (long d : e.shape()) {
                s.add(d);
            }
            if (e.encoding() instanceof SparseEncoding.NofM nm) {
                t.put("n", nm.n());
                t.put("m", nm.m());
                e.quantization().ifPresent(q -> {
                    ObjectNode qn = t.putObject("quantization");
                    qn.put("bits", q.bits());
                    qn.put("symmetric", q.symmetric());
                    if (q.groupSize() == 0) {
                        qn.putNull("group_size");
                    } else {
                        qn.put("group_size", q.groupSize());
                    }
                });
            } else if (e.encoding() instanceof SparseEncoding.Bsr b) {
                t.putArray("block").add(b.rows()).add(b.cols());
            }
            if (!e.deflated().isEmpty()) {
                t.put("codec", PayloadCodec.DEFLATE.id());
                ArrayNode ds = t.putArray("deflated");
                for (Component c : payloads(e, 0)) {
                    String suffix = suffix(e.name(), c);
                    e.deflated(suffix).ifPresent(d -> {
                        ObjectNode dn = ds.addObject();
                        dn.put("payload", suffix);
                        dn.put("dtype", c.dtype().safetensorsName());
                        dn.putArray("shape").add(c.shape()[0]).add(c.shape()[1]);
                        dn.put("chunk_rows", d.chunkRows());
                        dn.put("chunks", DeflatedPayload.chunks(c.shape()[0], d.chunkRows()));
                        dn.put("bytes", d.bytes());
                    });
                }
            }
        }
        return root.toString();
    }

    /**
     * @param json the manifest text
     * @param where file label for messages
     * @return the manifest
     * @throws FormatException for malformed JSON, another format or version, or a bad entry
     */
    public static SparseManifest parse(String json, String where) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (IOException e) {
            throw new FormatException(where, "__metadata__ '" + METADATA_KEY + "' is not valid JSON ("
                    + e.getMessage() + "); the file is corrupt: re-create it with sparkprune convert --to sparse", e);
        }
        if (root == null || !root.isObject() || !FORMAT.equals(root.path("format").asText())) {
            throw new FormatException(where, "__metadata__ '" + METADATA_KEY + "' is not a " + FORMAT + " manifest");
        }
        int version = root.path("version").asInt(-1);
        if (version < MIN_VERSION || version > VERSION) {
            throw new FormatException(where, "sparse format version " + root.path("version")
                    + " is not supported (this build reads versions " + MIN_VERSION + " to " + VERSION
                    + "); use a matching sparkprune");
        }
        Map<String, String> md = new LinkedHashMap<>();
        root.path("metadata").fields().forEachRemaining(f -> md.put(f.getKey(), f.getValue().asText()));
        JsonNode ts = root.path("tensors");
        if (!ts.isArray()) {
            throw new FormatException(where, "manifest has no 'tensors' array; the file is corrupt: re-create it");
        }
        List<Entry> out = new ArrayList<>();
        for (int i = 0; i < ts.size(); i++) {
            Entry e = entry(ts.get(i), where + ": manifest tensors[" + i + "]");
            if (version < 2 && e.quantization().isPresent()) {
                throw new FormatException(where + ": manifest tensors[" + i + "]", "'quantization' needs manifest "
                        + "version 2, the file says " + version + "; the file is corrupt: re-create it");
            }
            if (version < 3 && !e.deflated().isEmpty()) {
                throw new FormatException(where + ": manifest tensors[" + i + "]", "codec 'deflate' needs manifest "
                        + "version 3, the file says " + version + "; the file is corrupt: re-create it");
            }
            out.add(e);
        }
        return new SparseManifest(md, out);
    }

    private static Entry entry(JsonNode t, String at) {
        Entry e = entryWithoutCodec(t, at);
        String where = at + " ('" + e.name() + "')";
        JsonNode codec = t.get("codec");
        if (codec == null || codec.isNull()) {
            if (t.has("deflated")) {
                throw new FormatException(where, "'deflated' without 'codec'; the file is corrupt: re-create it");
            }
            return e;
        }
        PayloadCodec pc;
        try {
            pc = PayloadCodec.parse(codec.asText());
        } catch (io.sparkprune.kernels.InvalidInputException x) {
            throw new FormatException(where, x.getMessage() + "; this file needs a newer sparkprune or is corrupt", x);
        }
        JsonNode ds = t.path("deflated");
        if (pc == PayloadCodec.NONE) {
            if (ds.isArray() && ds.size() > 0) {
                throw new FormatException(where, "codec 'none' with deflated payloads; the file is corrupt: re-create it");
            }
            return e;
        }
        if (!ds.isArray() || ds.size() == 0) {
            throw new FormatException(where, "codec 'deflate' needs a non-empty 'deflated' array; the file is corrupt: "
                    + "re-create it");
        }
        Map<String, Component> raw = new LinkedHashMap<>();
        for (Component c : payloads(e, 0)) {
            raw.put(suffix(e.name(), c), c);
        }
        List<Deflated> out = new ArrayList<>();
        for (JsonNode d : ds) {
            String payload = d.path("payload").asText("");
            Component c = raw.get(payload);
            if (c == null || !d.path("chunk_rows").canConvertToInt() || !d.path("bytes").canConvertToLong()
                    || !d.path("dtype").asText("").equals(c.dtype().safetensorsName())
                    || !d.path("shape").isArray() || d.path("shape").size() != 2
                    || d.path("shape").path(0).asLong(-1) != c.shape()[0]
                    || d.path("shape").path(1).asLong(-1) != c.shape()[1]) {
                throw new FormatException(where, "bad 'deflated' entry " + d + " (expected payload, dtype and shape of "
                        + "one of " + raw.keySet() + ", chunk_rows, bytes); the file is corrupt: re-create it");
            }
            try {
                out.add(new Deflated(payload, d.path("chunk_rows").asInt(), d.path("bytes").asLong()));
            } catch (FormatException x) {
                throw new FormatException(where, x.getMessage(), x);
            }
        }
        try {
            return new Entry(e.name(), e.encoding(), e.dtype(), e.shape(), e.quantization(), out);
        } catch (FormatException x) {
            throw new FormatException(where, x.getMessage(), x);
        }
    }

    private static Entry entryWithoutCodec(JsonNode t, String at) {
        String name = t.path("name").asText("");
        if (name.isEmpty()) {
            throw new FormatException(at, "missing 'name'; the file is corrupt: re-create it");
        }
        String where = at + " ('" + name + "')";
        DType dtype = DType.fromSafetensorsName(t.path("dtype").asText(""))
                .orElseThrow(() -> new FormatException(where, "unknown dtype '" + t.path("dtype").asText("")
                        + "'; expected one of " + DType.supportedNames()));
        JsonNode s = t.path("shape");
        if (!s.isArray()) {
            throw new FormatException(where, "missing 'shape'; the file is corrupt: re-create it");
        }
        long[] shape = new long[s.size()];
        for (int k = 0; k < shape.length; k++) {
            if (!s.get(k).canConvertToLong() || s.get(k).asLong() < 0) {
                throw new FormatException(where, "bad shape " + s + "; the file is corrupt: re-create it");
            }
            shape[k] = s.get(k).asLong();
        }
        try {
            long bytes = dtype.byteSize();
            for (long d : shape) {
                bytes = Math.multiplyExact(bytes, d);
            }
        } catch (ArithmeticException e) {
            throw new FormatException(where, "shape " + Arrays.toString(shape) + " of " + dtype + " has more bytes than a "
                    + "64-bit count holds; the file is corrupt: re-create it", e);
        }
        String kind = t.path("encoding").asText("");
        SparseEncoding enc;
        try {
            enc = switch (kind) {
                case "dense" -> new SparseEncoding.Dense();
                case "nm" -> new SparseEncoding.NofM(t.path("n").asInt(), t.path("m").asInt());
                case "bsr" -> new SparseEncoding.Bsr(t.path("block").path(0).asInt(), t.path("block").path(1).asInt());
                case "bitmask" -> new SparseEncoding.Bitmask();
                default -> throw new FormatException(where, "unknown encoding '" + kind
                        + "'; expected dense, nm, bsr or bitmask");
            };
        } catch (FormatException e) {
            throw e;
        } catch (io.sparkprune.kernels.InvalidInputException e) {
            throw new FormatException(where, e.getMessage(), e);
        }
        if (!(enc instanceof SparseEncoding.Dense)) {
            if (shape.length != 2 || !dtype.isFloatingPoint() || shape[0] > Integer.MAX_VALUE
                    || shape[1] > Integer.MAX_VALUE) {
                throw new FormatException(where, enc.kind() + " needs a 2-D floating-point tensor, got " + dtype + " "
                        + Arrays.toString(shape) + "; the file is corrupt: re-create it");
            }
            if (enc instanceof SparseEncoding.NofM nm && shape[1] % nm.m() != 0
                    || enc instanceof SparseEncoding.Bsr b && (shape[0] % b.rows() != 0 || shape[1] % b.cols() != 0)) {
                throw new FormatException(where, enc.spec() + " does not tile shape " + Arrays.toString(shape)
                        + "; the file is corrupt: re-create it");
            }
        }
        Optional<QuantizationSpec> quant = Optional.empty();
        JsonNode qn = t.get("quantization");
        if (qn != null && !qn.isNull()) {
            if (!qn.isObject() || !qn.path("bits").canConvertToInt() || !qn.path("symmetric").isBoolean()
                    || !(qn.path("group_size").isNull() || qn.path("group_size").canConvertToInt())) {
                throw new FormatException(where, "bad 'quantization' " + qn + " (expected {bits, symmetric, group_size}); "
                        + "the file is corrupt: re-create it");
            }
            try {
                int g = qn.path("group_size").isNull() ? 0 : qn.path("group_size").asInt();
                quant = Optional.of(new QuantizationSpec(qn.path("bits").asInt(), qn.path("symmetric").asBoolean(), g));
                if (g > 0 && shape.length == 2 && shape[1] % g != 0) {
                    throw new FormatException(where, "quantization group size " + g + " does not divide "
                            + shape[1] + " columns; the file is corrupt: re-create it");
                }
                return new Entry(name, enc, dtype, shape, quant);
            } catch (FormatException e) {
                throw e;
            } catch (io.sparkprune.kernels.InvalidInputException e) {
                throw new FormatException(where, e.getMessage() + "; the file is corrupt: re-create it", e);
            }
        }
        return new Entry(name, enc, dtype, shape, quant);
    }
}
