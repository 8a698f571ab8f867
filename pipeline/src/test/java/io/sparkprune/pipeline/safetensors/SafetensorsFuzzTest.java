package io.sparkprune.pipeline.safetensors;

import static io.sparkprune.pipeline.safetensors.Fixtures.fromLe;
import static io.sparkprune.pipeline.safetensors.Fixtures.le;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.util.RawValue;
import io.sparkprune.kernels.HostTensor;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fuzzes the reader with corrupted safetensors files: the only exception allowed out of opening a
 * file and reading every tensor (whole, by rows, by bytes) is {@link SafetensorsFormatException},
 * and no buffer larger than the file is ever allocated.
 *
 * <p>The seed is random per run and printed; reproduce a failure with
 * {@code -Dsparkprune.fuzz.seed=<seed>} (and {@code -Dsparkprune.fuzz.cases=<n>}, default 10000).
 * Most cases run on in-memory bytes; every 20th goes through a memory-mapped file with tiny
 * windows (64 B to 4 KiB) and every 50th through Hadoop's RawLocalFileSystem, so all three back ends are fuzzed.
 */
class SafetensorsFuzzTest {
    @TempDir
    Path tmp;

    enum Kind {
        HEADER_BYTES, PREFIX, TRUNCATE, APPEND, JSON_STRUCTURE, JSON_SPLICE, DATA_BYTES, COMBINED
    }

    private static final ObjectMapper MAPPER = new ObjectMapper();

    private static final String[] NUMBERS = {"0", "1", "-1", "2", "3", "8", "4294967296", "4294967297",
        "3037000500", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "18446744073709551615", "18446744073709551616", "1e3", "1.5", "-0", "0.0", "1" + "0".repeat(400),
        "9".repeat(1200), "null", "\"3\"", "[]", "{}", "true", "[1]", "-1e-9"};

    private static final String[] DTYPES = {"\"F32\"", "\"BF16\"", "\"F16\"", "\"F64\"", "\"I64\"", "\"U8\"", "\"BOOL\"",
        "\"F8_E4M3\"", "\"\"", "\"f32\"", "\"C64\"", "\"U64\"", "0", "null", "[\"F32\"]", "{}"};

    private static final String[] SPLICES = {"{", "}", "[", "]", ",", ":", "\"", "\\", "\"__metadata__\"", "null",
        "-1", "18446744073709551616", "9223372036854775808", "1e308", "-0.0", "\u0000", "\"dtype\":\"F32\"",
        "[[[[[[[[", "]]]]]]]]", "\"shape\":[]", "\"data_offsets\":[0,0]", "{".repeat(2000), "[".repeat(100_000),
        "\"a\":{},", "\"__metadata__\":{\"k\":1},", "NaN", "Infinity", "'x'", "/*c*/", "\uFEFF", "é", "\t\n  "};

    private static final byte[][] BAD_UTF8 = {{(byte) 0xC3, 0x28}, {(byte) 0xFF}, {(byte) 0xED, (byte) 0xA0, (byte) 0x80},
        {(byte) 0xF8, (byte) 0x88, (byte) 0x80, (byte) 0x80, (byte) 0x80}, {(byte) 0xC0, (byte) 0xAF}, {(byte) 0x80}};

    @Test
    void corruptedFilesOnlyEverThrowTheTypedException() throws Exception {
        long seed = Long.getLong("sparkprune.fuzz.seed", new Random().nextLong());
        int cases = Integer.getInteger("sparkprune.fuzz.cases", 10_000);
        System.out.println("SafetensorsFuzzTest: seed " + seed + ", " + cases
                + " cases (reproduce with -Dsparkprune.fuzz.seed=" + seed + ")");
        Random r = new Random(seed);
        List<byte[]> bases = baseFiles(r);

        Map<Kind, int[]> tally = new EnumMap<>(Kind.class); // [accepted, rejected]
        for (Kind k : Kind.values()) {
            tally.put(k, new int[2]);
        }
        long allocationsBefore = ReadBuffers.ALLOCATIONS.sum();
        RawLocalFileSystem raw = new RawLocalFileSystem();
        raw.initialize(java.net.URI.create("file:///"), new Configuration(false));
        try (raw) {
            for (int c = 0; c < cases; c++) {
                byte[] base = bases.get(r.nextInt(bases.size()));
                Kind kind = Kind.values()[r.nextInt(Kind.values().length)];
                StringBuilder desc = new StringBuilder(kind.name());
                byte[] file;
                try {
                    file = mutate(kind, base, r, desc);
                } catch (RuntimeException e) {
                    throw new AssertionError("seed " + seed + " case " + c + ": test generator failed", e);
                }
                int via = c % 50 == 49 ? 2 : c % 20 == 19 ? 1 : 0;
                if (c % 2000 == 1999) {
                    // Mappings of closed files are released only when their buffers are collected; with
                    // tiny windows and a quiet heap they could pile up to the kernel's map-count limit.
                    System.gc();
                }
                ReadBuffers.LARGEST.set(0);
                boolean accepted = false;
                try {
                    accepted = openAndReadAll(file, via, c, raw, r);
                } catch (SafetensorsFormatException e) {
                    assertThat(e.getMessage()).isNotBlank();
                    assertThat(e.file()).isNotBlank();
                } catch (Throwable t) {
                    fail("seed " + seed + " case " + c + " (" + desc + ", via " + via + ", " + file.length
                            + " bytes): unexpected " + t, t);
                }
                if (ReadBuffers.LARGEST.get() > file.length) {
                    fail("seed " + seed + " case " + c + " (" + desc + "): allocated " + ReadBuffers.LARGEST.get()
                            + " bytes for a " + file.length + "-byte file");
                }
                int[] t = tally.get(kind);
                t[accepted ? 0 : 1]++;
                if (!accepted && kind == Kind.DATA_BYTES) {
                    fail("seed " + seed + " case " + c + ": a data-only change was rejected");
                }
                if (accepted && (kind == Kind.TRUNCATE || kind == Kind.APPEND)) {
                    fail("seed " + seed + " case " + c + " (" + desc + "): a truncated or extended file was accepted");
                }
            }
        }
        StringBuilder summary = new StringBuilder("SafetensorsFuzzTest accepted/rejected:");
        tally.forEach((k, v) -> summary.append(' ').append(k).append('=').append(v[0]).append('/').append(v[1]));
        System.out.println(summary);
        assertThat(ReadBuffers.ALLOCATIONS.sum() - allocationsBefore).as("reads go through the guard")
                .isGreaterThan(cases / 4);
        if (cases >= 1000) { // every kind of corruption happened and most were caught
            for (Kind k : new Kind[] {Kind.HEADER_BYTES, Kind.PREFIX, Kind.JSON_STRUCTURE, Kind.JSON_SPLICE}) {
                assertThat(tally.get(k)[1]).as(k + " rejected").isGreaterThan(tally.get(k)[0] / 4);
            }
            assertThat(tally.get(Kind.DATA_BYTES)[0]).isPositive();
        }
    }

    /**
     * The same property for a sharded checkpoint's index: mutated {@code model.safetensors.index.json}
     * files (over valid shards) only ever give {@link SafetensorsFormatException}, whether the
     * damage shows at open, on first access to a shard, or in {@code validate()}.
     */
    @Test
    void corruptedIndexesOnlyEverThrowTheTypedException() throws Exception {
        long seed = Long.getLong("sparkprune.fuzz.seed", new Random().nextLong());
        int cases = Integer.getInteger("sparkprune.fuzz.cases", 10_000) / 10;
        System.out.println("SafetensorsFuzzTest (index): seed " + seed + ", " + cases + " cases");
        Random r = new Random(seed);
        Path dir = tmp.resolve("ckpt");
        LinkedHashMap<String, HostTensor> tensors = new LinkedHashMap<>();
        for (int i = 0; i < 6; i++) {
            tensors.put("layer." + i, Fixtures.randomTensor(r, io.sparkprune.kernels.DType.BF16, new long[] {5, 10}));
        }
        ShardedCheckpointWriter.write(dir, 250, Map.of(), tensors); // 100 bytes each: 3 shards
        Path indexPath = dir.resolve(ShardedCheckpoint.INDEX_FILE);
        byte[] index = Files.readAllBytes(indexPath);
        List<String> shardNames;
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            shardNames = c.files();
        }
        assertThat(shardNames).hasSizeGreaterThan(2);
        String[] fragments = {"\"" + shardNames.get(0) + "\"", "\"" + shardNames.get(1) + "\"", "\"missing.safetensors\"",
            "\"../x\"", "\"weight_map\"", "\"metadata\"", "\"total_size\"", "\"ghost\": \"" + shardNames.get(0) + "\",",
            "1e999", "-1", "null", "{", "}", "[", "]", ",", ":", "\"", "[".repeat(3000)};
        int rejected = 0;
        for (int c = 0; c < cases; c++) {
            byte[] mutated;
            StringBuilder desc = new StringBuilder();
            if (r.nextInt(4) == 0) {
                mutated = index.clone();
                mutated[r.nextInt(mutated.length)] = (byte) r.nextInt(256);
                desc.append("byte");
            } else {
                byte[] frag = fragments[r.nextInt(fragments.length)].getBytes(StandardCharsets.UTF_8);
                int at = r.nextInt(index.length + 1);
                int remove = r.nextBoolean() ? 0 : r.nextInt(Math.min(40, index.length - at) + 1);
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                out.write(index, 0, at);
                out.writeBytes(frag);
                out.write(index, at + remove, index.length - at - remove);
                mutated = out.toByteArray();
                desc.append("splice at ").append(at).append(" -").append(remove).append(" +").append(new String(frag,
                        StandardCharsets.UTF_8), 0, Math.min(frag.length, 30));
            }
            Files.write(indexPath, mutated);
            try (ShardedCheckpoint ck = ShardedCheckpoint.open(dir)) {
                ck.validate();
                for (String name : ck.tensorNames()) {
                    ck.read(name);
                }
            } catch (SafetensorsFormatException e) {
                rejected++;
            } catch (Throwable t) {
                fail("seed " + seed + " index case " + c + " (" + desc + "): unexpected " + t, t);
            }
        }
        assertThat(rejected).isGreaterThan(cases / 4);
    }

    /** @return true when the file opened and every read succeeded */
    private boolean openAndReadAll(byte[] file, int via, int c, RawLocalFileSystem raw, Random r) throws Exception {
        Path p = null;
        try {
            SafetensorsFile f;
            if (via == 0) {
                f = SafetensorsFile.fromBytes(file, "case-" + c);
            } else {
                p = Fixtures.writeBytes(tmp, "case-" + c + ".safetensors", file);
                f = via == 1 ? SafetensorsFile.open(p, new int[] {64, 256, 4096}[r.nextInt(3)])
                        : SafetensorsFile.open(raw, new org.apache.hadoop.fs.Path(p.toUri()));
            }
            try (f) {
                for (TensorInfo t : f.tensors()) {
                    if (t.byteLength() <= SafetensorsFile.MAX_READ_BYTES) {
                        HostTensor h = f.read(t.name());
                        touch(h.data());
                    }
                    if (t.rank() > 0 && t.rows() <= Integer.MAX_VALUE) {
                        long start = r.nextInt((int) t.rows() + 1);
                        long count = r.nextInt((int) (t.rows() - start) + 1);
                        if (count * t.rowBytes() <= SafetensorsFile.MAX_READ_BYTES) {
                            HostTensor h = f.readRows(t.name(), start, count);
                            assertThat(h.shape()[0]).isEqualTo(count);
                            touch(h.data());
                        }
                    }
                    int len = (int) Math.min(t.byteLength(), 64);
                    long off = t.byteLength() - len == 0 ? 0 : r.nextInt((int) Math.min(Integer.MAX_VALUE, t.byteLength() - len));
                    touch(f.readBytes(t.name(), off, len));
                }
                f.metadata().forEach((k, v) -> assertThat(k).isNotNull());
            }
            return true;
        } finally {
            if (p != null) {
                Files.deleteIfExists(p);
            }
        }
    }

    private static long touch(ByteBuffer b) {
        long s = 0;
        for (int i = b.position(); i < b.limit(); i++) {
            s += b.get(i);
        }
        return s;
    }

    /** Valid files to corrupt: our writer's output (padded) and hand-assembled unpadded ones. */
    private List<byte[]> baseFiles(Random r) throws Exception {
        List<byte[]> out = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            LinkedHashMap<String, HostTensor> t = Fixtures.randomTensors(r, r.nextInt(7), 64);
            Map<String, String> meta = r.nextBoolean() ? Map.of("format", "pt") : Map.of();
            Path p = Fixtures.writeFile(tmp, "base" + i + ".safetensors", meta, t);
            out.add(Files.readAllBytes(p));
            Files.delete(p);
        }
        out.add(Fixtures.assemble("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[16,19]}}", new byte[19]));
        out.add(Fixtures.assemble("{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
                + "\"__metadata__\":{\"x\":\"y\"}}", new byte[8]));
        out.add(Fixtures.assemble("{}", new byte[0]));
        return out;
    }

    private static byte[] mutate(Kind kind, byte[] base, Random r, StringBuilder desc) throws Exception {
        int n = (int) fromLe(base, 0, 8);
        byte[] header = Arrays.copyOfRange(base, 8, 8 + n);
        byte[] data = Arrays.copyOfRange(base, 8 + n, base.length);
        switch (kind) {
            case HEADER_BYTES -> {
                byte[] f = base.clone();
                int k = 1 + r.nextInt(4);
                for (int i = 0; i < k; i++) {
                    int at = 8 + r.nextInt(n);
                    f[at] = (byte) r.nextInt(256);
                    desc.append(" @").append(at);
                }
                return f;
            }
            case PREFIX -> {
                long[] pool = {r.nextLong(), Long.MIN_VALUE, -1, 0, 1, 2, n - 1, n + 1, n + 8, base.length - 8,
                    base.length - 7, base.length, 100_000_000L, 100_000_001L, Long.MAX_VALUE,
                    (long) r.nextInt(base.length + 1), 1L << 32};
                long v = pool[r.nextInt(pool.length)];
                desc.append(' ').append(Long.toUnsignedString(v));
                byte[] f = base.clone();
                System.arraycopy(le(v, 8), 0, f, 0, 8);
                return f;
            }
            case TRUNCATE -> {
                int len = r.nextInt(base.length);
                desc.append(" to ").append(len);
                return Arrays.copyOf(base, len);
            }
            case APPEND -> {
                byte[] extra = new byte[1 + r.nextInt(16)];
                r.nextBytes(extra);
                desc.append(' ').append(extra.length);
                byte[] f = Arrays.copyOf(base, base.length + extra.length);
                System.arraycopy(extra, 0, f, base.length, extra.length);
                return f;
            }
            case JSON_STRUCTURE -> {
                return rebuild(structural(header, r, desc), data, r);
            }
            case JSON_SPLICE -> {
                return rebuild(splice(header, r, desc), data, r);
            }
            case DATA_BYTES -> {
                byte[] f = base.clone();
                if (data.length > 0) {
                    for (int i = 0; i < 1 + r.nextInt(8); i++) {
                        f[8 + n + r.nextInt(data.length)] ^= (byte) (1 + r.nextInt(255));
                    }
                }
                return f;
            }
            case COMBINED -> {
                byte[] f = base;
                Kind[] some = {Kind.HEADER_BYTES, Kind.JSON_STRUCTURE, Kind.JSON_SPLICE, Kind.DATA_BYTES, Kind.PREFIX};
                for (int i = 0; i < 2 + r.nextInt(2); i++) {
                    Kind k = some[r.nextInt(some.length)];
                    desc.append(" +").append(k);
                    if (fromLe(f, 0, 8) < 2 || fromLe(f, 0, 8) > f.length - 8) {
                        break; // the prefix no longer frames a header; further JSON edits are moot
                    }
                    if (k == Kind.JSON_STRUCTURE) {
                        int hn = (int) fromLe(f, 0, 8);
                        byte[] h = Arrays.copyOfRange(f, 8, 8 + hn);
                        byte[] structured;
                        try {
                            structured = structural(h, r, desc);
                        } catch (Exception e) {
                            // an earlier edit broke the JSON the tree edit needs: splice instead
                            desc.append("(splice)");
                            structured = splice(h, r, desc);
                        }
                        f = rebuild(structured, Arrays.copyOfRange(f, 8 + hn, f.length), r);
                    } else {
                        f = mutate(k, f, r, desc);
                    }
                }
                return f;
            }
            default -> throw new IllegalStateException(kind.name());
        }
    }

    /** prefix with the true length of the (possibly space-padded) header, then the original data. */
    private static byte[] rebuild(byte[] header, byte[] data, Random r) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int pad = r.nextBoolean() ? (8 - (8 + header.length) % 8) % 8 : 0;
        out.writeBytes(le(header.length + pad, 8));
        out.writeBytes(header);
        out.writeBytes(" ".repeat(pad).getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(data);
        return out.toByteArray();
    }

    private static RawValue raw(String s) {
        return new RawValue(s);
    }

    private static String pick(String[] pool, Random r) {
        return pool[r.nextInt(pool.length)];
    }

    /** Edits the header as a JSON tree (values written raw, so anything can be injected). */
    private static byte[] structural(byte[] header, Random r, StringBuilder desc) throws Exception {
        JsonNode parsed = MAPPER.readTree(new String(header, StandardCharsets.UTF_8));
        ObjectNode root = (ObjectNode) parsed;
        List<String> names = new ArrayList<>();
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!k.equals("__metadata__")) {
                names.add(k);
            }
        }
        int op = r.nextInt(names.isEmpty() ? 3 : 14);
        desc.append(" op").append(op);
        String name = names.isEmpty() ? null : names.get(r.nextInt(names.size()));
        ObjectNode entry = name == null ? null : (ObjectNode) root.get(name);
        switch (op) {
            case 0 -> { // metadata damage
                String[] md = {"[\"x\"]", "\"s\"", "5", "null", "{\"k\":5}", "{\"k\":null}", "{\"k\":{}}", "{\"k\":[\"v\"]}",
                    "{\"k\":\"v\"}", "{}"};
                root.putRawValue("__metadata__", raw(pick(md, r)));
            }
            case 1 -> { // a new entry of junk or a plausible-but-wrong tensor
                String[] e = {"5", "\"x\"", "[]", "{}", "null",
                    "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}",
                    "{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                    "{\"dtype\":" + pick(DTYPES, r) + ",\"shape\":[" + pick(NUMBERS, r) + "],\"data_offsets\":["
                            + pick(NUMBERS, r) + "," + pick(NUMBERS, r) + "]}"};
                root.putRawValue("fuzz" + r.nextInt(3), raw(pick(e, r)));
            }
            case 2 -> { // deep nesting somewhere
                int depth = 1 + r.nextInt(3000);
                root.putRawValue("deep", raw("[".repeat(depth) + "]".repeat(depth)));
            }
            case 3 -> { // a shape dimension
                ArrayNode shape = MAPPER.createArrayNode();
                JsonNode old = entry.get("shape");
                int len = old != null && old.isArray() ? old.size() : 1;
                int at = r.nextInt(Math.max(1, len));
                for (int i = 0; i < Math.max(1, len); i++) {
                    if (i == at) {
                        shape.addRawValue(raw(pick(NUMBERS, r)));
                    } else {
                        shape.add(old != null && old.isArray() && i < old.size() ? old.get(i) : MAPPER.getNodeFactory().numberNode(1));
                    }
                }
                entry.set("shape", shape);
            }
            case 4 -> { // an offset
                ArrayNode off = MAPPER.createArrayNode();
                JsonNode old = entry.get("data_offsets");
                int at = r.nextInt(2);
                for (int i = 0; i < 2; i++) {
                    if (i == at) {
                        off.addRawValue(raw(pick(NUMBERS, r)));
                    } else {
                        off.add(old.get(i));
                    }
                }
                entry.set("data_offsets", off);
            }
            case 5 -> { // shift a tensor's range
                long d = r.nextInt(17) - 8;
                JsonNode old = entry.get("data_offsets");
                entry.putArray("data_offsets").add(old.get(0).asLong() + d).add(old.get(1).asLong() + d);
            }
            case 6 -> { // swap two tensors' ranges
                ObjectNode other = (ObjectNode) root.get(names.get(r.nextInt(names.size())));
                JsonNode a = entry.get("data_offsets");
                entry.set("data_offsets", other.get("data_offsets"));
                other.set("data_offsets", a);
            }
            case 7 -> entry.putRawValue("dtype", raw(pick(DTYPES, r)));
            case 8 -> entry.remove(List.of("dtype", "shape", "data_offsets").get(r.nextInt(3)));
            case 9 -> root.putRawValue(name, raw(pick(new String[] {"5", "\"x\"", "[1,2]", "null", "{}", "true"}, r)));
            case 10 -> { // overflowing or huge shapes
                String[] s = {"[4294967296,4294967296]", "[4611686018427387904,4]", "[3037000500,3037000500]",
                    "[4294967296,4294967296,0]", "[0,4294967296,4294967296]", "[9223372036854775807]",
                    "[2147483648]", "[1" + ",1".repeat(2000) + "]", "[]", "[0]"};
                entry.putRawValue("shape", raw(pick(s, r)));
            }
            case 11 -> { // equal-numel reshape (valid) or rank change
                JsonNode old = entry.get("shape");
                long numel = 1;
                for (JsonNode d : old) {
                    numel *= d.asLong();
                }
                entry.putArray("shape").add(1).add(numel);
            }
            case 12 -> { // offsets as huge values
                entry.putRawValue("data_offsets", raw("[" + pick(NUMBERS, r) + "," + pick(NUMBERS, r) + "]"));
            }
            default -> { // duplicate key, spliced textually (a tree cannot hold duplicates)
                String json = MAPPER.writeValueAsString(root);
                String dup = "\"" + name + "\":" + MAPPER.writeValueAsString(entry) + ",";
                return ("{" + dup + json.substring(1)).getBytes(StandardCharsets.UTF_8);
            }
        }
        return MAPPER.writeValueAsBytes(root);
    }

    /** Inserts or overwrites a random fragment (text or invalid UTF-8) at a random byte of the header. */
    private static byte[] splice(byte[] header, Random r, StringBuilder desc) {
        byte[] frag = r.nextInt(5) == 0 ? BAD_UTF8[r.nextInt(BAD_UTF8.length)]
                : pick(SPLICES, r).getBytes(StandardCharsets.UTF_8);
        int at = r.nextInt(header.length + 1);
        int remove = r.nextBoolean() ? 0 : r.nextInt(Math.min(8, header.length - at) + 1);
        desc.append(" at ").append(at).append(" -").append(remove).append(" +").append(frag.length);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(header, 0, at);
        out.writeBytes(frag);
        out.write(header, at + remove, header.length - at - remove);
        return out.toByteArray();
    }

}
