package io.sparkprune.pipeline.formats.parquet;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.kernels.DType;
import io.sparkprune.pipeline.formats.FormatException;
import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * {@value #FILE_NAME}, the manifest of a Parquet shards directory (docs/formats.md, "Parquet
 * shards"):
 * <pre>
 * {"format": "sparkprune-parquet", "version": 1,
 *  "metadata": {original safetensors __metadata__},
 *  "tensors": [{"name": "...", "dtype": "BF16", "shape": [rows, cols]}, ...],
 *  "parts": [{"file": "parts/part-00000.parquet", "bytes": 123, "records": 4, "row_groups": 1,
 *             "items": [{"tensor": "...", "row_start": 0, "row_end": 64}, ...]}, ...]}
 * </pre>
 * Tensors are in the original order; every tensor's items, over all parts, cover its rows
 * {@code [0, rows)} exactly once.
 *
 * @param metadata the source's safetensors {@code __metadata__}, restored when converting back to hf
 * @param tensors every tensor, in the original order
 * @param parts the part files
 */
public record ParquetShardManifest(Map<String, String> metadata, List<Tensor> tensors, List<Part> parts) {

    /** The manifest's file name in the directory. */
    public static final String FILE_NAME = "sparkprune-parquet.json";
    /** Value of {@code format}. */
    public static final String FORMAT = "sparkprune-parquet";
    /** The version this code writes and reads. */
    public static final int VERSION = 1;
    /** Largest manifest accepted: 256 MiB. */
    public static final long MAX_BYTES = 256L << 20;

    private static final ObjectMapper JSON = new ObjectMapper();

    /** @throws NullPointerException for a null argument */
    public ParquetShardManifest {
        metadata = Map.copyOf(Objects.requireNonNull(metadata, "metadata"));
        tensors = List.copyOf(tensors);
        parts = List.copyOf(parts);
    }

    /**
     * One original tensor. Its "rows" are the outermost dimension ({@code shape[0]}; 1 for a
     * scalar) and a row holds the product of the other dimensions as its columns.
     *
     * @param name tensor name
     * @param dtype element type
     * @param shape original shape, outermost first
     */
    public record Tensor(String name, DType dtype, long[] shape) implements Serializable {
        private static final long serialVersionUID = 1L;

        /** @return rows: {@code shape[0]}, or 1 for a scalar */
        public long rows() {
            return shape.length == 0 ? 1 : shape[0];
        }

        /** @return elements per row: the product of {@code shape[1..]} (1 for rank ≤ 1; 0 when a later dimension is 0) */
        public long cols() {
            long n = 1;
            for (int i = 1; i < shape.length; i++) {
                n *= shape[i];
            }
            return n;
        }

        /** @return bytes per row */
        public long rowBytes() {
            return cols() * dtype.byteSize();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Tensor t && t.name.equals(name) && t.dtype == dtype && Arrays.equals(t.shape, shape);
        }

        @Override
        public int hashCode() {
            return Objects.hash(name, dtype, Arrays.hashCode(shape));
        }

        @Override
        public String toString() {
            return name + " " + dtype + " " + Arrays.toString(shape);
        }
    }

    /**
     * One part file as written.
     *
     * @param file path relative to the directory, e.g. {@code parts/part-00000.parquet}
     * @param bytes file length
     * @param records rows of the Parquet table (one per item)
     * @param rowGroups Parquet row groups
     * @param items the (tensor, row range) records it holds, in file order
     */
    public record Part(String file, long bytes, long records, int rowGroups, List<WorkItem> items) implements Serializable {
        private static final long serialVersionUID = 1L;

        /** @throws NullPointerException for a null argument */
        public Part {
            Objects.requireNonNull(file, "file");
            items = List.copyOf(items);
        }
    }

    /** @return the manifest as JSON bytes (UTF-8, indented) */
    public byte[] toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("version", VERSION);
        ObjectNode md = root.putObject("metadata");
        new java.util.TreeMap<>(metadata).forEach(md::put);
        ArrayNode ts = root.putArray("tensors");
        for (Tensor t : tensors) {
            ObjectNode o = ts.addObject();
            o.put("name", t.name());
            o.put("dtype", t.dtype().name());
            ArrayNode s = o.putArray("shape");
            for (long d : t.shape) {
                s.add(d);
            }
        }
        ArrayNode ps = root.putArray("parts");
        for (Part p : parts) {
            ObjectNode o = ps.addObject();
            o.put("file", p.file());
            o.put("bytes", p.bytes());
            o.put("records", p.records());
            o.put("row_groups", p.rowGroups());
            ArrayNode is = o.putArray("items");
            for (WorkItem w : p.items()) {
                ObjectNode i = is.addObject();
                i.put("tensor", w.tensor());
                i.put("row_start", w.rowStart());
                i.put("row_end", w.rowEnd());
            }
        }
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Parses and checks a manifest: format and version, every field present with its type, known
     * dtypes, non-negative shapes, distinct tensor names, plain relative part paths, items naming
     * listed tensors with {@code 0 ≤ row_start ≤ row_end ≤ rows}, and every tensor's rows covered
     * exactly once by the items of all parts.
     *
     * @param json the file's bytes
     * @param where the file, for messages
     * @return the manifest
     * @throws FormatException naming the file and the offending key
     */
    public static ParquetShardManifest parse(byte[] json, String where) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (IOException e) {
            throw new FormatException(where, "not valid JSON (" + e.getMessage() + "). The manifest is corrupt: "
                    + "re-create the directory with sparkprune convert --to parquet", e);
        }
        if (root == null || !root.isObject()) {
            throw new FormatException(where, "the manifest must be a JSON object. Re-create the directory");
        }
        if (!FORMAT.equals(root.path("format").asText(null))) {
            throw new FormatException(where + ": 'format'", "is '" + root.path("format").asText() + "', expected '"
                    + FORMAT + "'; this is not a SparkPrune Parquet shards directory");
        }
        if (!root.path("version").isInt() || root.get("version").intValue() != VERSION) {
            throw new FormatException(where + ": 'version'", "is " + root.path("version") + "; this build reads version "
                    + VERSION + " only: convert it with the SparkPrune version that wrote it");
        }
        Map<String, String> md = new LinkedHashMap<>();
        JsonNode mdNode = root.path("metadata");
        if (!mdNode.isObject()) {
            throw new FormatException(where + ": 'metadata'", "must be an object of strings. Re-create the directory");
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = mdNode.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) {
                throw new FormatException(where + ": 'metadata." + e.getKey() + "'", "must be a string. Re-create the directory");
            }
            md.put(e.getKey(), e.getValue().textValue());
        }
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        JsonNode ts = array(root, "tensors", where);
        for (int i = 0; i < ts.size(); i++) {
            JsonNode t = ts.get(i);
            String key = "tensors[" + i + "]";
            String name = text(t, "name", where, key);
            String dt = text(t, "dtype", where, key);
            DType dtype;
            try {
                dtype = DType.valueOf(dt);
            } catch (IllegalArgumentException e) {
                throw new FormatException(where + ": '" + key + ".dtype'", "unknown dtype '" + dt + "'; expected one of "
                        + Arrays.toString(DType.values()));
            }
            JsonNode s = array(t, "shape", where + ": '" + key + "'");
            long[] shape = new long[s.size()];
            for (int k = 0; k < shape.length; k++) {
                if (!s.get(k).canConvertToLong() || !s.get(k).isIntegralNumber() || s.get(k).longValue() < 0) {
                    throw new FormatException(where + ": '" + key + ".shape'", "must hold non-negative integers, got "
                            + s + ". Re-create the directory");
                }
                shape[k] = s.get(k).longValue();
            }
            if (tensors.put(name, new Tensor(name, dtype, shape)) != null) {
                throw new FormatException(where + ": '" + key + "'", "tensor '" + name + "' is listed twice. "
                        + "Re-create the directory");
            }
        }
        List<Part> parts = new ArrayList<>();
        Map<String, List<long[]>> ranges = new LinkedHashMap<>();
        JsonNode ps = array(root, "parts", where);
        java.util.Set<String> files = new java.util.HashSet<>();
        for (int i = 0; i < ps.size(); i++) {
            JsonNode p = ps.get(i);
            String key = "parts[" + i + "]";
            String file = text(p, "file", where, key);
            if (!file.matches("parts/[A-Za-z0-9._-]+\\.parquet") || file.contains("..") || !files.add(file)) {
                throw new FormatException(where + ": '" + key + ".file'", "'" + file + "' is not a distinct "
                        + "parts/<name>.parquet path. Re-create the directory");
            }
            long bytes = number(p, "bytes", where, key);
            long records = number(p, "records", where, key);
            long rowGroups = number(p, "row_groups", where, key);
            JsonNode is = array(p, "items", where + ": '" + key + "'");
            List<WorkItem> items = new ArrayList<>();
            for (int k = 0; k < is.size(); k++) {
                String ik = key + ".items[" + k + "]";
                String tensor = text(is.get(k), "tensor", where, ik);
                long a = number(is.get(k), "row_start", where, ik);
                long z = number(is.get(k), "row_end", where, ik);
                Tensor t = tensors.get(tensor);
                if (t == null) {
                    throw new FormatException(where + ": '" + ik + "'", "names tensor '" + tensor + "', which 'tensors' "
                            + "does not list. Re-create the directory");
                }
                if (a > z || z > t.rows()) {
                    throw new FormatException(where + ": '" + ik + "'", "row range [" + a + ", " + z + ") of '" + tensor
                            + "' is not within its " + t.rows() + " rows. Re-create the directory");
                }
                items.add(new WorkItem(tensor, a, z, null));
                ranges.computeIfAbsent(tensor, x -> new ArrayList<>()).add(new long[] {a, z});
            }
            if (records != items.size()) {
                throw new FormatException(where + ": '" + key + ".records'", "is " + records + " but the part lists "
                        + items.size() + " items. Re-create the directory");
            }
            if (rowGroups > Integer.MAX_VALUE) {
                throw new FormatException(where + ": '" + key + ".row_groups'", "is too large. Re-create the directory");
            }
            parts.add(new Part(file, bytes, records, (int) rowGroups, items));
        }
        for (Tensor t : tensors.values()) {
            List<long[]> rs = ranges.getOrDefault(t.name(), List.of());
            rs.sort((x, y) -> x[0] != y[0] ? Long.compare(x[0], y[0]) : Long.compare(x[1], y[1]));
            long next = 0;
            boolean ok = !rs.isEmpty();
            for (long[] r : rs) {
                ok &= r[0] == next;
                next = r[1];
            }
            ok &= next == t.rows();
            if (!ok) {
                throw new FormatException(where + ": tensor '" + t.name() + "'", "its row ranges "
                        + rs.stream().map(r -> "[" + r[0] + ", " + r[1] + ")").toList() + " do not cover rows [0, "
                        + t.rows() + ") exactly once; the directory is incomplete or corrupt: re-create it");
            }
        }
        return new ParquetShardManifest(md, List.copyOf(tensors.values()), parts);
    }

    private static JsonNode array(JsonNode n, String field, String where) {
        JsonNode a = n.path(field);
        if (!a.isArray()) {
            throw new FormatException(where + ": '" + field + "'", "missing or not an array. Re-create the directory");
        }
        return a;
    }

    private static String text(JsonNode n, String field, String where, String key) {
        JsonNode v = n.path(field);
        if (!v.isTextual()) {
            throw new FormatException(where + ": '" + key + "." + field + "'", "missing or not a string. Re-create the directory");
        }
        return v.textValue();
    }

    private static long number(JsonNode n, String field, String where, String key) {
        JsonNode v = n.path(field);
        if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0) {
            throw new FormatException(where + ": '" + key + "." + field + "'", "missing or not a non-negative integer. "
                    + "Re-create the directory");
        }
        return v.longValue();
    }
}
