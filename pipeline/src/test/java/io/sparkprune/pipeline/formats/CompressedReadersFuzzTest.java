package io.sparkprune.pipeline.formats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.compressed.CompressedTensorsCheckpoint;
import io.sparkprune.pipeline.formats.compressed.CompressedTensorsWriter;
import io.sparkprune.pipeline.formats.sparse.PayloadCodec;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.recipe.TensorSelector;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fuzzes the readers of the compressed formats with corrupted checkpoints: {@link SparseCheckpoint}
 * (every encoding: 2:4, 4:8, BSR, bitmask, dense pass-through; single file and sharded) and
 * {@link CompressedTensorsCheckpoint} (4-bit asymmetric grouped, 8-bit symmetric per channel).
 * Opening a mutated checkpoint and reading every tensor may only throw an
 * {@link InvalidInputException} (never an IndexOutOfBounds, NullPointer, NegativeArraySize,
 * Arithmetic exception or OutOfMemoryError), and the thread may allocate at most 64 bytes per input
 * byte plus 32 MiB of fixed overhead while doing so (a reader trusting a corrupt shape would try
 * to allocate gigabytes).
 *
 * <p>Mutations: bytes of the safetensors header (length prefix and JSON), truncation, bytes of the
 * payloads (index, mask, row-pointer, column-index, weight_shape, packed-code arrays), the manifest
 * JSON inside {@code __metadata__} (shapes, n/m, block, encoding, dtype, names, entries removed or
 * repeated, version), the header's tensor entries (shape, dtype, data_offsets), and for
 * compressed-tensors the {@code quantization_config} of config.json (values replaced by garbage,
 * bytes flipped, truncated). The seed is fixed (override with {@code -Dsparkprune.fuzz.seed}), the
 * case count {@code -Dsparkprune.fuzz.cases} (default 400 per reader).
 */
class CompressedReadersFuzzTest {

    @TempDir
    Path tmp;

    private static final ObjectMapper JSON = new ObjectMapper();

    enum Kind {
        HEADER_BYTES, TRUNCATE, PAYLOAD_BYTES, MANIFEST, TENSOR_INFO, WEIGHT_SHAPE, CONFIG_VALUES, CONFIG_BYTES
    }

    private static final long[] NUMBERS = {0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 64, 65536, -1, -2,
        Integer.MAX_VALUE, 1L << 31, 1L << 32, 3037000500L, 1L << 40, 1L << 62, Long.MAX_VALUE, Long.MIN_VALUE};

    private static final String[] DTYPES = {"F32", "BF16", "F16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "X", ""};

    private static final String[] JUNK = {"null", "0", "-1", "3", "4", "8", "16", "32", "1e309", "2147483648", "\"int\"",
        "\"float\"", "\"\"", "[]", "{}", "true", "false", "\"channel\"", "\"group\"", "\"tensor\"", "\"pack-quantized\"",
        "\"compressed-tensors\"", "[4]", "{\"weights\":{}}", "\"4\"", "4.5"};

    private static final String[] MANIFEST_FIELDS = {"shape", "shape.0", "shape.1", "n", "m", "block", "block.0", "block.1",
        "encoding", "dtype", "name", "remove", "duplicate", "version", "format", "tensors", "codec", "deflated",
        "deflated.chunk_rows", "deflated.bytes", "deflated.payload", "deflated.shape"};

    private static final String[] CONFIG_PATHS = {"quantization_config", "quantization_config.format",
        "quantization_config.quant_method", "quantization_config.config_groups", "quantization_config.config_groups.group_0",
        "quantization_config.config_groups.group_0.weights", "quantization_config.config_groups.group_0.weights.num_bits",
        "quantization_config.config_groups.group_0.weights.type", "quantization_config.config_groups.group_0.weights.strategy",
        "quantization_config.config_groups.group_0.weights.symmetric",
        "quantization_config.config_groups.group_0.weights.group_size", "quantization_config.ignore"};

    @Test
    void corruptSparseCheckpointsOnlyThrowTypedExceptions() throws Exception {
        List<Path> bases = new ArrayList<>();
        List<SparseEncoding> encs = List.of(new SparseEncoding.NofM(2, 4), new SparseEncoding.NofM(4, 8),
                new SparseEncoding.Bsr(4, 8), new SparseEncoding.Bitmask());
        for (int i = 0; i < encs.size(); i++) {
            DType dtype = i % 2 == 0 ? DType.BF16 : DType.F32;
            bases.add(sparseBase("s" + i, dtype, encs.get(i), 1L << 30));
        }
        bases.add(sparseBase("sharded", DType.F16, new SparseEncoding.NofM(2, 4), 1500));
        // deflated payloads (codec deflate): N:M indices and a bitmask, one of them sharded
        bases.add(sparseBase("deflate-nm", DType.BF16, new SparseEncoding.NofM(2, 4), 1L << 30, PayloadCodec.DEFLATE));
        bases.add(sparseBase("deflate-mask", DType.F16, new SparseEncoding.Bitmask(), 1500, PayloadCodec.DEFLATE));
        fuzz("sparse", bases, List.of(Kind.HEADER_BYTES, Kind.TRUNCATE, Kind.PAYLOAD_BYTES, Kind.MANIFEST, Kind.TENSOR_INFO),
                CompressedReadersFuzzTest::readSparse);
    }

    @Test
    void corruptCompressedTensorsCheckpointsOnlyThrowTypedExceptions() throws Exception {
        List<Path> bases = List.of(
                compressedBase("c4", new QuantizationSpec(4, false, 8), DType.BF16),
                compressedBase("c8", new QuantizationSpec(8, true, 0), DType.F16));
        fuzz("compressed-tensors", bases, List.of(Kind.HEADER_BYTES, Kind.TRUNCATE, Kind.PAYLOAD_BYTES, Kind.TENSOR_INFO,
                Kind.WEIGHT_SHAPE, Kind.CONFIG_VALUES, Kind.CONFIG_BYTES), CompressedReadersFuzzTest::readCompressed);
    }

    /**
     * Crafted, not random: a BSR entry whose shape and block are consistent with its (empty)
     * components (no tiles stored; a values tensor [0, br, bc] the safetensors header accepts), but
     * whose dense size (2^31 - 1) x (2^31 - 2) x 4 bytes overflows a long to a negative value.
     */
    @Test
    void aBsrEntryWhoseDenseSizeOverflowsIsATypedError() throws Exception {
        long n = Integer.MAX_VALUE;
        long bc = (n - 1) / 2;
        String manifest = "{\"format\":\"sparkprune-sparse\",\"version\":1,\"metadata\":{},\"tensors\":[{\"name\":\"w\","
                + "\"encoding\":\"bsr\",\"dtype\":\"F32\",\"shape\":[" + n + "," + (n - 1) + "],\"block\":[" + n + "," + bc
                + "]}]}";
        ObjectNode h = JSON.createObjectNode();
        h.putObject("__metadata__").put("sparkprune.sparse", manifest);
        h.putObject("w.values").put("dtype", "F32").set("shape", JSON.createArrayNode().add(0).add(n).add(bc));
        ((ObjectNode) h.get("w.values")).putArray("data_offsets").add(0).add(0);
        h.putObject("w.col_indices").put("dtype", "I32").putArray("shape").add(0);
        ((ObjectNode) h.get("w.col_indices")).putArray("data_offsets").add(0).add(0);
        h.putObject("w.row_ptr").put("dtype", "I64").putArray("shape").add(2);
        ((ObjectNode) h.get("w.row_ptr")).putArray("data_offsets").add(0).add(16);
        Path dir = tmp.resolve("overflow");
        Files.createDirectories(dir);
        Files.write(dir.resolve("model.safetensors"), join(h, new byte[16]));
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> readSparse(dir)).isInstanceOf(FormatException.class)
                .hasMessageContaining("'w'");
    }

    private static boolean readSparse(Path dir) {
        try (SparseCheckpoint s = SparseCheckpoint.open(dir)) {
            for (String n : s.names()) {
                s.dtype(n);
                s.shape(n);
                s.storedBytes(n);
                s.denseBytes(n);
                s.encoding(n);
                HostTensor t = s.read(n);
                assertThat(t.dtype()).isEqualTo(s.dtype(n));
                assertThat(t.shape()).isEqualTo(s.shape(n));
            }
            s.originalMetadata();
        }
        return true;
    }

    private static boolean readCompressed(Path dir) {
        try (CompressedTensorsCheckpoint c = CompressedTensorsCheckpoint.open(dir)) {
            for (String w : c.quantizedNames()) {
                c.quantized(w);
                c.storedBytes(w);
            }
            for (String n : c.names()) {
                HostTensor t = c.read(n);
                assertThat(t.dtype()).isEqualTo(c.dtype(n));
                assertThat(t.shape()).isEqualTo(c.shape(n));
            }
        }
        return true;
    }

    private interface Reader {
        boolean readAll(Path dir);
    }

    private void fuzz(String label, List<Path> bases, List<Kind> kinds, Reader reader) throws IOException {
        long seed = Long.getLong("sparkprune.fuzz.seed", 20240611L);
        int cases = Integer.getInteger("sparkprune.fuzz.cases", 400);
        Random r = new Random(seed ^ label.hashCode());
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        Map<Kind, int[]> tally = new EnumMap<>(Kind.class);
        for (Path base : bases) {
            assertThat(reader.readAll(base)).isTrue(); // the unmutated bases read
        }
        for (int c = 0; c < cases; c++) {
            Path base = bases.get(r.nextInt(bases.size()));
            Kind kind = kinds.get(r.nextInt(kinds.size()));
            Path dir = tmp.resolve(label + "-" + c);
            StringBuilder desc = new StringBuilder(kind + " of " + base.getFileName());
            long inputBytes = copyAndMutate(base, dir, kind, r, desc);
            long before = mx.getCurrentThreadAllocatedBytes();
            boolean accepted = false;
            try {
                accepted = reader.readAll(dir);
            } catch (InvalidInputException e) {
                assertThat(e.getMessage()).as(desc.toString()).isNotBlank();
            } catch (Throwable t) {
                fail(label + " fuzz seed " + seed + " case " + c + " (" + desc + "): unexpected " + t, t);
            }
            long allocated = mx.getCurrentThreadAllocatedBytes() - before;
            if (allocated > 64 * inputBytes + (32L << 20)) {
                fail(label + " fuzz seed " + seed + " case " + c + " (" + desc + "): allocated " + allocated + " bytes for "
                        + inputBytes + " input bytes");
            }
            tally.computeIfAbsent(kind, k -> new int[2])[accepted ? 0 : 1]++;
            AtomicDirectory.deleteTree(dir);
        }
        StringBuilder sb = new StringBuilder(label + " fuzz (seed " + seed + ", " + cases + " cases), accepted/rejected:");
        tally.forEach((k, v) -> sb.append(' ').append(k).append(' ').append(v[0]).append('/').append(v[1]));
        System.out.println(sb);
        // every kind ran, and corruption was detected
        assertThat(tally.keySet()).containsExactlyInAnyOrderElementsOf(kinds);
        assertThat(tally.values().stream().mapToInt(v -> v[1]).sum()).isGreaterThan(cases / 3);
    }

    // ------------------------------------------------------------------ bases

    private Path sparseBase(String name, DType dtype, SparseEncoding enc, long maxShard) {
        return sparseBase(name, dtype, enc, maxShard, PayloadCodec.NONE);
    }

    private Path sparseBase(String name, DType dtype, SparseEncoding enc, long maxShard, PayloadCodec codec) {
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", SparseFormatTest.pruned(dtype, 4, 16, new SparseEncoding.Bitmask(), 3));
        t.put(SparseFormatTest.Q, SparseFormatTest.pruned(dtype, 16, 32, enc, 5));
        t.put("model.layers.0.mlp.up_proj.weight", SparseFormatTest.pruned(dtype, 8, 16, new SparseEncoding.NofM(2, 4), 9));
        t.put("model.layers.0.input_layernorm.weight", HostTensor.fromFloats(dtype, new long[] {16}, new float[16]));
        Path dir = tmp.resolve("base-" + name);
        Map<String, byte[]> side = Map.of("config.json", SparseFormatTest.CONFIG.getBytes(StandardCharsets.UTF_8));
        TensorSelector sel = TensorSelector.of(List.of(SparseFormatTest.Q), List.of(), "test", "");
        SparseWriter.write(DenseTensors.of(t, "mem"), side, Map.of("format", "pt"),
                new SparseWriter.Options(sel, Optional.of(enc), maxShard, codec), dir);
        return dir;
    }

    private Path compressedBase(String name, QuantizationSpec spec, DType dtype) {
        String w = "model.layers.0.mlp.down_proj.weight";
        QuantizedWeights q = CompressedTensorsTest.random(spec, 11, 48, 17);
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", HostTensor.fromFloats(dtype, new long[] {4, 16}, new float[64]));
        t.put(w, HostTensor.fromFloats(dtype, new long[] {q.rows(), q.cols()}, q.dequantize()));
        Path dir = tmp.resolve("base-" + name);
        CompressedTensorsWriter.write(DenseTensors.of(t, "mem"), Map.of("config.json",
                "{\"model_type\": \"llama\"}".getBytes(StandardCharsets.UTF_8)), Map.of(w, q), Optional.empty(), 1L << 30, dir);
        return dir;
    }

    // ------------------------------------------------------------------ mutation

    /** Copies the base checkpoint and mutates one file; returns the total bytes of the copy. */
    private static long copyAndMutate(Path base, Path dir, Kind kind, Random r, StringBuilder desc) throws IOException {
        Files.createDirectories(dir);
        List<Path> shards = new ArrayList<>();
        try (Stream<Path> s = Files.list(base)) {
            for (Path p : s.sorted().toList()) {
                Files.copy(p, dir.resolve(p.getFileName()));
                if (p.getFileName().toString().endsWith(".safetensors")) {
                    shards.add(dir.resolve(p.getFileName()));
                }
            }
        }
        Path file = kind == Kind.CONFIG_BYTES || kind == Kind.CONFIG_VALUES ? dir.resolve("config.json")
                : shards.get(r.nextInt(shards.size()));
        byte[] b = Files.readAllBytes(file);
        desc.append('/').append(file.getFileName());
        byte[] out = switch (kind) {
            case HEADER_BYTES -> flip(b, 0, (int) Math.min(b.length, 8 + ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN)
                    .getLong(0)), r, desc);
            case TRUNCATE, CONFIG_BYTES -> r.nextBoolean() ? truncate(b, r, desc) : flip(b, 0, b.length, r, desc);
            case PAYLOAD_BYTES -> payload(b, r, desc);
            case MANIFEST -> manifest(b, r, desc);
            case TENSOR_INFO -> tensorInfo(b, r, desc);
            case WEIGHT_SHAPE -> weightShape(b, r, desc);
            case CONFIG_VALUES -> configValues(b, r, desc);
        };
        Files.write(file, out);
        long total = 0;
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                total += Files.size(p);
            }
        }
        return total;
    }

    private static byte[] flip(byte[] b, int from, int to, Random r, StringBuilder desc) {
        byte[] o = b.clone();
        int n = 1 + r.nextInt(3);
        for (int i = 0; i < n && to > from; i++) {
            int at = from + r.nextInt(to - from);
            o[at] = (byte) r.nextInt(256);
            desc.append(" byte ").append(at);
        }
        return o;
    }

    private static byte[] truncate(byte[] b, Random r, StringBuilder desc) {
        int len = r.nextInt(b.length);
        desc.append(" to ").append(len);
        return Arrays.copyOf(b, len);
    }

    private record Split(ObjectNode header, byte[] data) {
    }

    private static Split split(byte[] b) throws IOException {
        int n = (int) ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        ObjectNode h = (ObjectNode) JSON.readTree(new String(b, 8, n, StandardCharsets.UTF_8));
        return new Split(h, Arrays.copyOfRange(b, 8 + n, b.length));
    }

    private static byte[] join(ObjectNode header, byte[] data) {
        byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer o = ByteBuffer.allocate(8 + padded + data.length).order(ByteOrder.LITTLE_ENDIAN);
        o.putLong(padded).put(json);
        for (int i = json.length; i < padded; i++) {
            o.put((byte) ' ');
        }
        return o.put(data).array();
    }

    private static List<String> tensorNames(ObjectNode h) {
        List<String> names = new ArrayList<>();
        h.fieldNames().forEachRemaining(n -> {
            if (!n.equals("__metadata__")) {
                names.add(n);
            }
        });
        return names;
    }

    /** Overwrites bytes inside one stored tensor, preferring the structural arrays. */
    private static byte[] payload(byte[] b, Random r, StringBuilder desc) throws IOException {
        Split s = split(b);
        List<String> names = tensorNames(s.header());
        List<String> structural = names.stream().filter(n -> n.endsWith(".indices") || n.endsWith(".mask")
                || n.endsWith(".row_ptr") || n.endsWith(".col_indices") || n.endsWith("weight_shape")
                || n.endsWith("weight_packed") || n.endsWith("weight_zero_point")).toList();
        List<String> pool = !structural.isEmpty() && r.nextInt(4) != 0 ? structural : names;
        String t = pool.get(r.nextInt(pool.size()));
        JsonNode off = s.header().get(t).get("data_offsets");
        int from = off.get(0).asInt();
        int to = off.get(1).asInt();
        desc.append(" in '").append(t).append('\'');
        int headerEnd = b.length - s.data().length;
        return flip(b, headerEnd + from, headerEnd + to, r, desc);
    }

    private static JsonNode number(Random r) {
        return JSON.getNodeFactory().numberNode(NUMBERS[r.nextInt(NUMBERS.length)]);
    }

    private static byte[] manifest(byte[] b, Random r, StringBuilder desc) throws IOException {
        Split s = split(b);
        ObjectNode md = (ObjectNode) s.header().get("__metadata__");
        ObjectNode m = (ObjectNode) JSON.readTree(md.get("sparkprune.sparse").asText());
        ArrayNode ts = (ArrayNode) m.get("tensors");
        int i = r.nextInt(ts.size());
        ObjectNode e = (ObjectNode) ts.get(i);
        String field = MANIFEST_FIELDS[r.nextInt(MANIFEST_FIELDS.length)];
        desc.append(" tensors[").append(i).append("] (").append(e.path("name").asText()).append(", ")
                .append(e.path("encoding").asText()).append(") ").append(field);
        switch (field) {
            case "shape" -> {
                ArrayNode a = e.putArray("shape");
                int rank = r.nextInt(4);
                for (int k = 0; k < rank; k++) {
                    a.add(number(r));
                }
            }
            case "shape.0", "shape.1" -> {
                ArrayNode a = (ArrayNode) e.get("shape");
                int k = field.charAt(6) - '0';
                if (k < a.size()) {
                    a.set(k, number(r));
                } else {
                    a.add(number(r));
                }
            }
            case "n", "m" -> e.set(field, number(r));
            case "block" -> e.putArray("block").add(number(r)).add(number(r));
            case "block.0", "block.1" -> {
                ArrayNode a = e.has("block") && e.get("block").isArray() ? (ArrayNode) e.get("block")
                        : e.putArray("block").add(4).add(8);
                a.set(field.charAt(6) - '0', number(r));
            }
            case "encoding" -> e.put("encoding", new String[] {"dense", "nm", "bsr", "bitmask", "x"}[r.nextInt(5)]);
            case "dtype" -> e.put("dtype", DTYPES[r.nextInt(DTYPES.length)]);
            case "name" -> e.put("name", ts.get(r.nextInt(ts.size())).path("name").asText() + (r.nextBoolean() ? "" : "x"));
            case "remove" -> ts.remove(i);
            case "duplicate" -> ts.add(e.deepCopy());
            case "version" -> m.set("version", number(r));
            case "format" -> m.put("format", "sparkprune-dense");
            case "tensors" -> m.set("tensors", JSON.readTree(JUNK[r.nextInt(JUNK.length)]));
            case "codec" -> e.set("codec", JSON.readTree(new String[] {"\"deflate\"", "\"none\"", "\"zstd\"", "null", "4"}
                    [r.nextInt(5)]));
            case "deflated" -> e.set("deflated", JSON.readTree(JUNK[r.nextInt(JUNK.length)]));
            case "deflated.chunk_rows", "deflated.bytes", "deflated.payload", "deflated.shape" -> {
                ObjectNode d = e.path("deflated").isArray() && e.path("deflated").size() > 0
                        ? (ObjectNode) e.path("deflated").get(r.nextInt(e.path("deflated").size()))
                        : e.putArray("deflated").addObject().put("payload", "indices").put("dtype", "U8");
                String k = field.substring("deflated.".length());
                switch (k) {
                    case "payload" -> d.put(k, new String[] {"indices", "codes", "mask", "values", ""}[r.nextInt(5)]);
                    case "shape" -> d.putArray(k).add(number(r)).add(number(r));
                    default -> d.set(k, number(r));
                }
            }
            default -> throw new IllegalStateException(field);
        }
        md.put("sparkprune.sparse", m.toString());
        return join(s.header(), s.data());
    }

    private static byte[] tensorInfo(byte[] b, Random r, StringBuilder desc) throws IOException {
        Split s = split(b);
        List<String> names = tensorNames(s.header());
        String t = names.get(r.nextInt(names.size()));
        ObjectNode info = (ObjectNode) s.header().get(t);
        int what = r.nextInt(4);
        desc.append(" '").append(t).append("' ").append(new String[] {"dim", "rank", "dtype", "offsets"}[what]);
        switch (what) {
            case 0 -> {
                ArrayNode a = (ArrayNode) info.get("shape");
                if (a.isEmpty()) {
                    a.add(number(r));
                } else {
                    a.set(r.nextInt(a.size()), number(r));
                }
            }
            case 1 -> {
                ArrayNode a = info.putArray("shape");
                long bytes = info.get("data_offsets").get(1).asLong() - info.get("data_offsets").get(0).asLong();
                // a shape of the same byte size but another rank: scalar, flat, or with a unit dim
                int el = DType.fromSafetensorsName(info.get("dtype").asText()).orElseThrow().byteSize();
                switch (r.nextInt(3)) {
                    case 0 -> {
                        if (bytes != el) {
                            a.add(bytes / el);
                        }
                    }
                    case 1 -> a.add(bytes / el);
                    default -> a.add(1).add(bytes / el).add(1);
                }
            }
            case 2 -> info.put("dtype", DTYPES[r.nextInt(DTYPES.length - 2)]);
            default -> ((ArrayNode) info.get("data_offsets")).set(r.nextInt(2), number(r));
        }
        return join(s.header(), s.data());
    }

    /** Writes interesting values into a weight_shape tensor (I64 [2]). */
    private static byte[] weightShape(byte[] b, Random r, StringBuilder desc) throws IOException {
        Split s = split(b);
        Optional<String> t = tensorNames(s.header()).stream().filter(n -> n.endsWith("weight_shape")).findFirst();
        if (t.isEmpty()) {
            desc.append(" (no weight_shape here: header flip)");
            return flip(b, 0, b.length - s.data().length, r, desc);
        }
        int from = s.header().get(t.get()).get("data_offsets").get(0).asInt();
        ByteBuffer d = ByteBuffer.wrap(s.data()).order(ByteOrder.LITTLE_ENDIAN);
        int k = r.nextInt(2);
        long v = NUMBERS[r.nextInt(NUMBERS.length)];
        d.putLong(from + 8 * k, v);
        desc.append(" [").append(k).append("] = ").append(v);
        return join(s.header(), s.data());
    }

    private static byte[] configValues(byte[] b, Random r, StringBuilder desc) throws IOException {
        ObjectNode root = (ObjectNode) JSON.readTree(b);
        String path = CONFIG_PATHS[r.nextInt(CONFIG_PATHS.length)];
        String junk = JUNK[r.nextInt(JUNK.length)];
        desc.append(' ').append(path).append(" = ").append(junk);
        String[] parts = path.split("\\.");
        JsonNode parent = root;
        for (int i = 0; i < parts.length - 1; i++) {
            parent = parent.path(parts[i]);
        }
        if (parent instanceof ObjectNode o) {
            o.set(parts[parts.length - 1], JSON.readTree(junk));
        }
        if (r.nextInt(4) == 0 && root.path("quantization_config").path("config_groups") instanceof ObjectNode groups
                && groups.path("group_0").isObject()) {
            // a second group that disagrees on bits or symmetry
            ObjectNode g1 = groups.get("group_0").deepCopy();
            if (g1.path("weights") instanceof ObjectNode w) {
                w.set(r.nextBoolean() ? "num_bits" : "symmetric", JSON.readTree(JUNK[r.nextInt(JUNK.length)]));
            }
            groups.set("group_1", g1);
            desc.append(" + group_1 ").append(g1);
        }
        return JSON.writeValueAsBytes(root);
    }
}
