package io.sparkprune.pipeline.safetensors;

import static io.sparkprune.pipeline.safetensors.Fixtures.assemble;
import static io.sparkprune.pipeline.safetensors.Fixtures.bytes;
import static io.sparkprune.pipeline.safetensors.Fixtures.fromLe;
import static io.sparkprune.pipeline.safetensors.Fixtures.le;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Bit-exact write/read round trips, checked against hand-made bytes and an independent parser. */
class SafetensorsRoundTripTest {
    @TempDir
    Path tmp;

    /** Raw element bit patterns per dtype, special values included; little-endian by {@link Fixtures#le}. */
    static long[] specialBits(DType dt) {
        return switch (dt) {
            case F64 -> new long[] {0x7ff0000000000001L /* sNaN payload 1 */, 0xfff8000000000123L /* -qNaN payload */,
                0x8000000000000000L /* -0 */, 0x7ff0000000000000L /* +inf */, 0xfff0000000000000L /* -inf */,
                0x0000000000000001L /* min subnormal */, 0x000fffffffffffffL /* max subnormal */,
                Double.doubleToRawLongBits(Math.PI), Double.doubleToRawLongBits(Double.MAX_VALUE)};
            case F32 -> new long[] {0x7f800001L, 0xffc00123L, 0x80000000L, 0x7f800000L, 0xff800000L, 0x00000001L,
                0x007fffffL, Float.floatToRawIntBits(1.5f), 0x7f7fffffL};
            case F16 -> new long[] {0x7c01, 0xfe00, 0x8000, 0x7c00, 0xfc00, 0x0001, 0x03ff, 0x3c00, 0x7bff};
            case BF16 -> new long[] {0x7f81, 0xffc1, 0x8000, 0x7f80, 0xff80, 0x0001, 0x007f, 0x3f80, 0x7f7f};
            case I64 -> new long[] {Long.MIN_VALUE, Long.MAX_VALUE, -1, 0, 1, 0x0123456789abcdefL};
            case I32 -> new long[] {Integer.MIN_VALUE, Integer.MAX_VALUE, -1, 0, 1, 0x12345678};
            case I16 -> new long[] {Short.MIN_VALUE, Short.MAX_VALUE, -1, 0, 1, 0x1234};
            case I8 -> new long[] {-128, 127, -1, 0, 1, 0x5a};
            case U8 -> new long[] {0, 1, 127, 128, 255, 0xa5};
            case BOOL -> new long[] {0, 1, 1, 0, 0, 1};
        };
    }

    static byte[] encode(DType dt, long[] bits) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (long b : bits) {
            out.writeBytes(le(b, dt.byteSize()));
        }
        return out.toByteArray();
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void everyDtypeRoundTripsBitExactly(DType dt) throws Exception {
        long[] bits = specialBits(dt);
        byte[] expected = encode(dt, bits);
        int n = bits.length;
        LinkedHashMap<String, HostTensor> tensors = new LinkedHashMap<>();
        tensors.put("special", new HostTensor(dt, new long[] {n}, ByteBuffer.wrap(expected.clone())));
        // an odd-sized neighbour, so the special tensor's data does not start 8-aligned by accident
        tensors.put("odd", new HostTensor(DType.U8, new long[] {3}, ByteBuffer.wrap(new byte[] {7, 8, 9})));
        tensors.put("matrix", new HostTensor(dt, new long[] {3, n / 3},
                ByteBuffer.wrap(encode(dt, java.util.Arrays.copyOf(bits, 3 * (n / 3))))));
        Map<String, String> meta = Map.of("format", "pt", "note", "ünïcødé ✓");
        Path p = Fixtures.writeFile(tmp, dt + ".safetensors", meta, tensors);

        byte[] file = Files.readAllBytes(p);
        long headerLen = fromLe(file, 0, 8);
        assertThat((8 + headerLen) % 8).as("data section 8-byte aligned").isZero();

        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.metadata()).isEqualTo(meta);
            HostTensor back = f.read("special");
            assertThat(back.dtype()).isEqualTo(dt);
            assertThat(back.shape()).containsExactly(n);
            byte[] got = bytes(back);
            assertThat(got).isEqualTo(expected);
            for (int i = 0; i < n; i++) { // element by element, decoded by hand
                long mask = dt.byteSize() == 8 ? -1L : (1L << (8 * dt.byteSize())) - 1;
                assertThat(fromLe(got, i * dt.byteSize(), dt.byteSize())).as("element %d", i).isEqualTo(bits[i] & mask);
            }
            assertThat(bytes(f.read("odd"))).containsExactly(7, 8, 9);
            assertThat(f.read("matrix")).isEqualTo(tensors.get("matrix"));
            assertThat(bytes(f.readRows("matrix", 1, 2))).isEqualTo(
                    java.util.Arrays.copyOfRange(encode(dt, bits), (n / 3) * dt.byteSize(), 3 * (n / 3) * dt.byteSize()));
        }
        // and bit-exact at the file level: the data lies where an independent parser says
        Map<String, byte[]> independent = IndependentParser.parse(file);
        assertThat(independent.get("special")).isEqualTo(expected);
    }

    @Test
    void readsAHandAssembledFile() throws Exception {
        // Header typed by hand, tensors listed out of offset order, no padding (N = odd length).
        String header = "{\"b\":{\"dtype\":\"I16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                + "\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                + "\"e\":{\"dtype\":\"BF16\",\"shape\":[0,5],\"data_offsets\":[22,22]},"
                + "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[22,30]}}";
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        float[] a = {1f, -0f, Float.NaN, 3.25e-40f};
        for (float v : a) {
            data.writeBytes(le(Float.floatToRawIntBits(v), 4));
        }
        short[] b = {-2, 300, Short.MIN_VALUE};
        for (short v : b) {
            data.writeBytes(le(v, 2));
        }
        data.writeBytes(le(Double.doubleToRawLongBits(-2.5), 8));
        byte[] file = assemble(header, data.toByteArray());
        assertThat(header.getBytes(StandardCharsets.UTF_8).length % 8).isNotZero();
        Path p = Fixtures.writeBytes(tmp, "hand.safetensors", file);

        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.tensors()).extracting(TensorInfo::name).containsExactly("a", "b", "e", "s");
            assertThat(f.metadata()).containsExactly(Map.entry("format", "pt"), Map.entry("k", "v"));
            assertThat(f.header().headerLength()).isEqualTo(header.length());
            assertThat(f.header().dataSectionOffset()).isEqualTo(8 + header.length());
            TensorInfo ia = f.info("a");
            assertThat(ia.dtype()).isEqualTo(DType.F32);
            assertThat(ia.shape()).containsExactly(2, 2);
            assertThat(ia.rows()).isEqualTo(2);
            assertThat(ia.cols()).isEqualTo(2);
            assertThat(ia.fileOffset(f.header().dataSectionOffset())).isEqualTo(8 + header.length());
            float[] got = f.read("a").toFloatArray();
            for (int i = 0; i < a.length; i++) {
                assertThat(Float.floatToRawIntBits(got[i])).isEqualTo(Float.floatToRawIntBits(a[i]));
            }
            ByteBuffer bb = f.read("b").data();
            assertThat(bb.getShort(0)).isEqualTo((short) -2);
            assertThat(bb.getShort(2)).isEqualTo((short) 300);
            assertThat(bb.getShort(4)).isEqualTo(Short.MIN_VALUE);
            assertThat(f.read("e").shape()).containsExactly(0, 5);
            assertThat(f.read("e").data().remaining()).isZero();
            assertThat(f.read("s").data().getDouble(0)).isEqualTo(-2.5);
            assertThat(f.readRows("a", 1, 1).data().getFloat(0)).isNaN();
            assertThat(f.readBytes("b", 2, 2).getShort(0)).isEqualTo((short) 300);
        }
    }

    @Test
    void writerOutputParsesWithAnIndependentParser() throws Exception {
        Random r = new Random(42);
        LinkedHashMap<String, HostTensor> tensors = Fixtures.randomTensors(r, 12, 300);
        Path p = Fixtures.writeFile(tmp, "w.safetensors", Map.of("format", "pt"), tensors);
        byte[] file = Files.readAllBytes(p);

        long n = fromLe(file, 0, 8);
        assertThat(n % 8).isZero();
        String json = new String(file, 8, (int) n, StandardCharsets.UTF_8);
        assertThat(json).startsWith("{");
        assertThat(json.stripTrailing()).endsWith("}");
        assertThat(json.substring(json.stripTrailing().length())).matches(" *");

        JsonNode root = new ObjectMapper().readTree(json);
        assertThat(root.get("__metadata__").get("format").asText()).isEqualTo("pt");
        Map<String, byte[]> parsed = IndependentParser.parse(file);
        assertThat(parsed.keySet()).containsExactlyElementsOf(tensors.keySet());
        for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
            JsonNode t = root.get(e.getKey());
            assertThat(t.get("dtype").asText()).isEqualTo(e.getValue().dtype().safetensorsName());
            List<Long> shape = new ArrayList<>();
            t.get("shape").forEach(d -> shape.add(d.asLong()));
            assertThat(shape).containsExactly(java.util.Arrays.stream(e.getValue().shape()).boxed().toArray(Long[]::new));
            assertThat(parsed.get(e.getKey())).as(e.getKey()).isEqualTo(bytes(e.getValue()));
        }
        // and our reader agrees with the original tensors
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
                assertThat(f.read(e.getKey())).isEqualTo(e.getValue());
            }
        }
    }

    @Test
    void emptyFileHasAlignedHeaderAndNoTensors() throws Exception {
        Path p = tmp.resolve("empty.safetensors");
        SafetensorsWriter.write(p, Map.of(), new LinkedHashMap<>());
        byte[] file = Files.readAllBytes(p);
        assertThat(file).hasSize(16);
        assertThat(new String(file, 8, 8, StandardCharsets.UTF_8)).isEqualTo("{}      ");
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.tensors()).isEmpty();
            assertThat(f.metadata()).isEmpty();
        }
    }

    /**
     * A minimal safetensors parser written from the format description only: 8-byte LE length,
     * Jackson tree, offsets. Checks contiguity itself. Returns tensor bytes in header order.
     */
    static final class IndependentParser {
        static Map<String, byte[]> parse(byte[] file) throws Exception {
            long n = fromLe(file, 0, 8);
            JsonNode root = new ObjectMapper().readTree(new String(file, 8, (int) n, StandardCharsets.UTF_8));
            int base = 8 + (int) n;
            Map<String, byte[]> out = new LinkedHashMap<>();
            List<long[]> ranges = new ArrayList<>();
            for (Map.Entry<String, JsonNode> e : root.properties()) {
                if (e.getKey().equals("__metadata__")) {
                    continue;
                }
                long begin = e.getValue().get("data_offsets").get(0).asLong();
                long end = e.getValue().get("data_offsets").get(1).asLong();
                ranges.add(new long[] {begin, end});
                out.put(e.getKey(), java.util.Arrays.copyOfRange(file, base + (int) begin, base + (int) end));
            }
            ranges.sort((x, y) -> x[0] != y[0] ? Long.compare(x[0], y[0]) : Long.compare(x[1], y[1]));
            long expect = 0;
            for (long[] rg : ranges) {
                assertThat(rg[0]).isEqualTo(expect);
                expect = rg[1];
            }
            assertThat(base + expect).isEqualTo(file.length);
            return out;
        }
    }
}
