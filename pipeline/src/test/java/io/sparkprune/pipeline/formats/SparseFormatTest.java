package io.sparkprune.pipeline.formats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.recipe.TensorSelector;
import io.sparkprune.pipeline.safetensors.SafetensorsFile;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** hf → sparse → hf round trips, the bit order pinned by hand-computed bytes, savings, refusals, corrupt input. */
class SparseFormatTest {

    @TempDir
    Path tmp;

    static final String CONFIG = "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 16\n}\n";
    static final String Q = "model.layers.0.self_attn.q_proj.weight";

    /** A {@code rows × cols} matrix satisfying the pattern, as float bit patterns, with -0.0 and a NaN payload kept. */
    static HostTensor pruned(DType dtype, int rows, int cols, SparseEncoding enc, long seed) {
        Random rnd = new Random(seed);
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian() + 0.01f;
        }
        if (enc instanceof SparseEncoding.NofM nm) {
            for (int r = 0; r < rows; r++) {
                for (int g = 0; g < cols / nm.m(); g++) {
                    // zero m - n random positions (or more, in some groups)
                    int zeros = nm.m() - nm.n() + (rnd.nextInt(5) == 0 ? 1 : 0);
                    int z = 0;
                    while (z < zeros) {
                        int j = rnd.nextInt(nm.m());
                        if (v[r * cols + g * nm.m() + j] != 0f) {
                            v[r * cols + g * nm.m() + j] = 0f;
                            z++;
                        }
                    }
                }
            }
        } else if (enc instanceof SparseEncoding.Bsr b) {
            for (int tr = 0; tr < rows / b.rows(); tr++) {
                for (int tc = 0; tc < cols / b.cols(); tc++) {
                    if (rnd.nextBoolean()) {
                        for (int i = 0; i < b.rows(); i++) {
                            for (int j = 0; j < b.cols(); j++) {
                                v[(tr * b.rows() + i) * cols + tc * b.cols() + j] = 0f;
                            }
                        }
                    }
                }
            }
        } else {
            for (int i = 0; i < v.length; i++) {
                if (rnd.nextDouble() < 0.6) {
                    v[i] = 0f;
                }
            }
        }
        HostTensor t = HostTensor.fromFloats(dtype, new long[] {rows, cols}, v);
        // a -0.0 and a NaN with a payload in stored positions: the round trip must keep every bit
        int first = firstNonZero(v);
        int second = firstNonZeroAfter(v, first);
        ByteBuffer b = t.data();
        if (dtype == DType.F32) {
            b.putInt(4 * first, 0x80000000);
            b.putInt(4 * second, 0x7fc01234);
        } else {
            b.putShort(2 * first, (short) 0x8000);
            b.putShort(2 * second, (short) 0x7e01);
        }
        return t;
    }

    private static int firstNonZero(float[] v) {
        return firstNonZeroAfter(v, -1);
    }

    private static int firstNonZeroAfter(float[] v, int after) {
        for (int i = after + 1; i < v.length; i++) {
            if (v[i] != 0f) {
                return i;
            }
        }
        throw new IllegalStateException();
    }

    private Path hfCheckpoint(String name, DType dtype, HostTensor target, long maxShard) {
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        Random rnd = new Random(7);
        float[] emb = new float[10 * 16];
        for (int i = 0; i < emb.length; i++) {
            emb[i] = i % 3 == 0 ? 0f : (float) rnd.nextGaussian();
        }
        t.put("model.embed_tokens.weight", HostTensor.fromFloats(dtype, new long[] {10, 16}, emb));
        t.put(Q, target);
        t.put("model.layers.0.input_layernorm.weight", HostTensor.fromFloats(dtype, new long[] {16},
                new float[] {1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0}));
        Path dir = tmp.resolve(name);
        HfDirectoryWriter.write(dir, CONFIG, Map.of("tokenizer.json", "{\"x\":1}".getBytes(StandardCharsets.UTF_8)), t,
                Map.of("format", "pt"), maxShard);
        return dir;
    }

    static Stream<Arguments> cases() {
        List<SparseEncoding> encs = List.of(new SparseEncoding.NofM(2, 4), new SparseEncoding.NofM(4, 8),
                new SparseEncoding.Bsr(4, 8), new SparseEncoding.Bitmask());
        return Stream.of(DType.F32, DType.BF16, DType.F16).flatMap(d -> encs.stream().map(e -> Arguments.of(d, e)));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void hfToSparseToHfIsBitExact(DType dtype, SparseEncoding enc) throws IOException {
        HostTensor q = pruned(dtype, 16, 32, enc, 42);
        Path hf = hfCheckpoint("hf", dtype, q, 1000); // small shards: the sparse output is sharded too
        Path sparse = tmp.resolve("sparse");
        try (ShardedCheckpoint in = ShardedCheckpoint.open(hf)) {
            List<SparseWriter.TensorReport> rep = SparseWriter.write(DenseTensors.of(in), SideFiles.read(hf),
                    Map.of("format", "pt"), new SparseWriter.Options(TensorSelector.defaults(), Optional.of(enc), 1000),
                    sparse);
            assertThat(rep).filteredOn(r -> r.name().equals(Q)).singleElement()
                    .satisfies(r -> assertThat(r.encoding()).isEqualTo(enc));
            assertThat(rep).filteredOn(r -> !r.name().equals(Q))
                    .allSatisfy(r -> assertThat(r.encoding()).isInstanceOf(SparseEncoding.Dense.class));
        }
        assertThat(CheckpointFormat.detect(sparse)).isEqualTo(CheckpointFormat.SPARSE);
        Path back = tmp.resolve("back");
        assertThat(Decompressor.toHf(sparse, back, 1000)).isEqualTo(CheckpointFormat.SPARSE);
        assertSameCheckpoint(hf, back);
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void detectionFindsThePatternAndRoundTrips(DType dtype, SparseEncoding enc) throws IOException {
        // 64 x 64 so that BSR 4x8 data is found as some BSR tiling, N:M as N:M, 60% random as bitmask
        HostTensor q = pruned(dtype, 64, 64, enc, 3);
        Path hf = hfCheckpoint("hf", dtype, q, 1L << 30);
        Path sparse = tmp.resolve("sparse");
        try (ShardedCheckpoint in = ShardedCheckpoint.open(hf)) {
            SparseWriter.write(DenseTensors.of(in), SideFiles.read(hf), Map.of("format", "pt"),
                    SparseWriter.Options.defaults(), sparse);
        }
        try (SparseCheckpoint s = SparseCheckpoint.open(sparse)) {
            SparseEncoding found = s.encoding(Q);
            if (enc instanceof SparseEncoding.Bsr) {
                assertThat(found).isInstanceOf(SparseEncoding.Bsr.class);
            } else if (enc instanceof SparseEncoding.NofM nm && nm.m() == 8) {
                assertThat(found).isIn(enc, new SparseEncoding.NofM(2, 4)); // random 4:8 data may also be 2:4: never here
            } else {
                assertThat(found).isEqualTo(enc);
            }
            assertThat(s.storedBytes(Q)).isLessThan(s.denseBytes(Q));
            assertThat(s.encoding("model.embed_tokens.weight")).isInstanceOf(SparseEncoding.Dense.class);
        }
        Path back = tmp.resolve("back");
        Decompressor.toHf(sparse, back, 1L << 30);
        assertSameCheckpoint(hf, back);
    }

    static void assertSameCheckpoint(Path a, Path b) throws IOException {
        assertThat(Files.readAllBytes(b.resolve("config.json"))).isEqualTo(Files.readAllBytes(a.resolve("config.json")));
        assertThat(Files.readAllBytes(b.resolve("tokenizer.json"))).isEqualTo(Files.readAllBytes(a.resolve("tokenizer.json")));
        try (ShardedCheckpoint x = ShardedCheckpoint.open(a); ShardedCheckpoint y = ShardedCheckpoint.open(b)) {
            assertThat(y.tensorNames()).containsExactlyElementsOf(x.tensorNames());
            for (String n : x.tensorNames()) {
                HostTensor tx = x.read(n);
                HostTensor ty = y.read(n);
                assertThat(ty.dtype()).as(n).isEqualTo(tx.dtype());
                assertThat(ty.shape()).as(n).isEqualTo(tx.shape());
                assertThat(bytes(ty)).as(n).isEqualTo(bytes(tx));
            }
            assertThat(y.shard(y.files().get(0)).metadata()).isEqualTo(x.shard(x.files().get(0)).metadata());
        }
    }

    static byte[] bytes(HostTensor t) {
        byte[] b = new byte[(int) t.byteLength()];
        t.data().duplicate().get(b);
        return b;
    }

    private static HostTensor bf16Row(float... v) {
        return HostTensor.fromFloats(DType.BF16, new long[] {1, v.length}, v);
    }

    private int written;

    private Map<String, HostTensor> writeOne(HostTensor t, SparseEncoding enc) {
        int k = ++written;
        Path hf = hfCheckpoint("hf-one-" + k, DType.BF16, t, 1L << 30);
        Path sparse = tmp.resolve("sparse-one-" + k);
        try (ShardedCheckpoint in = ShardedCheckpoint.open(hf)) {
            SparseWriter.write(DenseTensors.of(in), Map.of(), Map.of(), new SparseWriter.Options(
                    TensorSelector.defaults(), Optional.of(enc), 1L << 30), sparse);
        }
        Map<String, HostTensor> out = new LinkedHashMap<>();
        try (ShardedCheckpoint s = ShardedCheckpoint.open(sparse)) {
            for (String n : s.tensorNames()) {
                if (n.startsWith(Q)) {
                    out.put(n.substring(Q.length()), s.read(n));
                }
            }
        }
        return out;
    }

    @Test
    void twoOfFourBitOrderMatchesAHandComputedExample() {
        // groups [0, 1, 0, 2] and [3, 0, 0, 4]: kept indices 1, 3 | 0, 3, 2 bits each, LSB first:
        // bits 0-1 = 01 (1), bits 2-3 = 11 (3), bits 4-5 = 00 (0), bits 6-7 = 11 (3) -> 0b11_00_11_01 = 0xCD
        Map<String, HostTensor> c = writeOne(bf16Row(0, 1, 0, 2, 3, 0, 0, 4), new SparseEncoding.NofM(2, 4));
        assertThat(c.keySet()).containsExactly(".values", ".indices");
        assertThat(c.get(".indices").dtype()).isEqualTo(DType.U8);
        assertThat(c.get(".indices").shape()).containsExactly(1, 1);
        assertThat(bytes(c.get(".indices"))).containsExactly(0xCD);
        assertThat(c.get(".values").toFloatArray()).containsExactly(1, 2, 3, 4);
        // a group with one non-zero is padded with +0 at the lowest free position: [0, 0, 0, 5] -> slots 0, 3
        // bits 0-1 = 00, 2-3 = 11 -> 0x0C; second group [0, 6, 7, 0] -> 1, 2: bits 4-5 = 01, 6-7 = 10 -> 0x90
        Map<String, HostTensor> p = writeOne(bf16Row(0, 0, 0, 5, 0, 6, 7, 0), new SparseEncoding.NofM(2, 4));
        assertThat(bytes(p.get(".indices"))).containsExactly(0x0C | 0x90);
        assertThat(bytes(p.get(".values"))).containsExactly(0, 0, 0xA0, 0x40, 0xC0, 0x40, 0xE0, 0x40); // +0, 5, 6, 7 in bf16
    }

    @Test
    void fourOfEightUsesThreeBitIndicesAcrossByteBoundaries() {
        // kept 1, 2, 5, 7 -> 001 010 101 111, LSB first: bits 0-2 = 1,0,0; 3-5 = 0,1,0; 6-8 = 1,0,1; 9-11 = 1,1,1
        // byte 0 = bits 7..0 = 0,1,0,1,0,0,0,1 = 0x51; byte 1 = bits 11..8 = 1,1,1,1 = 0x0F
        Map<String, HostTensor> c = writeOne(bf16Row(0, 1, 2, 0, 0, 3, 0, 4), new SparseEncoding.NofM(4, 8));
        assertThat(c.get(".indices").shape()).containsExactly(1, 2);
        assertThat(bytes(c.get(".indices"))).containsExactly(0x51, 0x0F);
    }

    @Test
    void bitmaskAndBsrLayoutsMatchHandComputedExamples() {
        // stored at columns 0, 3 and 9 of 10: mask bytes 0b0000_1001, 0b0000_0010
        Map<String, HostTensor> m = writeOne(bf16Row(1, 0, 0, 2, 0, 0, 0, 0, 0, 3), new SparseEncoding.Bitmask());
        assertThat(m.keySet()).containsExactly(".mask", ".values", ".row_ptr");
        assertThat(bytes(m.get(".mask"))).containsExactly(0x09, 0x02);
        assertThat(m.get(".values").toFloatArray()).containsExactly(1, 2, 3);
        assertThat(m.get(".row_ptr").data().order(ByteOrder.LITTLE_ENDIAN).getLong(8)).isEqualTo(3);
        // 1 x 8 in 1x2 tiles: tiles 1 and 3 hold values -> col_indices [1, 3], row_ptr [0, 2]
        Map<String, HostTensor> b = writeOne(bf16Row(0, 0, 1, 2, 0, 0, 0, 3), new SparseEncoding.Bsr(1, 2));
        assertThat(b.keySet()).containsExactly(".values", ".col_indices", ".row_ptr");
        assertThat(b.get(".values").shape()).containsExactly(2, 1, 2);
        assertThat(b.get(".values").toFloatArray()).containsExactly(1, 2, 0, 3);
        ByteBuffer ci = b.get(".col_indices").data().order(ByteOrder.LITTLE_ENDIAN);
        assertThat(new int[] {ci.getInt(0), ci.getInt(4)}).containsExactly(1, 3);
        ByteBuffer rp = b.get(".row_ptr").data().order(ByteOrder.LITTLE_ENDIAN);
        assertThat(new long[] {rp.getLong(0), rp.getLong(8)}).containsExactly(0, 2);
    }

    @Test
    void twoOfFourBf16IsAtMost0_5625OfDense() {
        HostTensor q = pruned(DType.BF16, 64, 128, new SparseEncoding.NofM(2, 4), 11);
        Path hf = hfCheckpoint("hf", DType.BF16, q, 1L << 30);
        Path sparse = tmp.resolve("sparse");
        try (ShardedCheckpoint in = ShardedCheckpoint.open(hf)) {
            SparseWriter.write(DenseTensors.of(in), SideFiles.read(hf), Map.of(), SparseWriter.Options.defaults(), sparse);
        }
        try (SparseCheckpoint s = SparseCheckpoint.open(sparse)) {
            assertThat(s.encoding(Q)).isEqualTo(new SparseEncoding.NofM(2, 4));
            // values 64 x 64 bf16 = 8192 bytes, indices 64 x 16 bytes = 1024; dense 16384
            assertThat(s.storedBytes(Q)).isEqualTo(8192 + 1024);
            assertThat((double) s.storedBytes(Q) / s.denseBytes(Q)).isLessThanOrEqualTo(0.5625);
        }
    }

    @Test
    void aTensorThatIsNotTwoOfFourIsRefusedNamingTheGroupAndNothingIsWritten() {
        float[] v = new float[4 * 16];
        for (int i = 0; i < v.length; i++) {
            v[i] = i % 4 < 2 ? 1f + i : 0f;
        }
        v[16 + 2 * 4 + 2] = 9f; // row 1, group 2 now has three non-zeros
        Path hf = hfCheckpoint("hf", DType.BF16, HostTensor.fromFloats(DType.BF16, new long[] {4, 16}, v), 1L << 30);
        Path sparse = tmp.resolve("sparse");
        try (ShardedCheckpoint in = ShardedCheckpoint.open(hf)) {
            assertThatThrownBy(() -> SparseWriter.write(DenseTensors.of(in), SideFiles.read(hf), Map.of(),
                    new SparseWriter.Options(TensorSelector.defaults(), Optional.of(new SparseEncoding.NofM(2, 4)), 1L << 30),
                    sparse))
                    .isInstanceOfSatisfying(PatternViolationException.class, e -> {
                        assertThat(e.tensor()).isEqualTo(Q);
                        assertThat(e.row()).isEqualTo(1);
                        assertThat(e.group()).isEqualTo(2);
                    })
                    .hasMessageContaining(Q).hasMessageContaining("row 1, group 2").hasMessageContaining("3 non-zero");
        }
        assertThat(sparse).doesNotExist();
        assertThat(tmp.toFile().list()).containsExactly("hf");
    }

    private Path sparseFixture() {
        HostTensor q = pruned(DType.BF16, 8, 16, new SparseEncoding.NofM(2, 4), 5);
        Path hf = hfCheckpoint("hf", DType.BF16, q, 1L << 30);
        Path sparse = tmp.resolve("sparse");
        try (ShardedCheckpoint in = ShardedCheckpoint.open(hf)) {
            SparseWriter.write(DenseTensors.of(in), SideFiles.read(hf), Map.of(), new SparseWriter.Options(
                    TensorSelector.defaults(), Optional.of(new SparseEncoding.NofM(2, 4)), 1L << 30), sparse);
        }
        return sparse;
    }

    @Test
    void truncatedSparseInputIsATypedErrorAndLeavesNoOutput() throws IOException {
        Path sparse = sparseFixture();
        Path file = sparse.resolve("model.safetensors");
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(f.length() - 7);
        }
        Path out = tmp.resolve("out");
        assertThatThrownBy(() -> Decompressor.toHf(sparse, out, 1L << 30)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("model.safetensors");
        assertThat(out).doesNotExist();
        assertThat(tmp.toFile().list()).containsExactlyInAnyOrder("hf", "sparse");
    }

    @Test
    void corruptIndicesAreATypedErrorNamingTheTensor() throws IOException {
        Path sparse = sparseFixture();
        Path file = sparse.resolve("model.safetensors");
        long offset;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            offset = f.info(Q + ".indices").fileOffset(f.header().dataSectionOffset());
        }
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.seek(offset);
            f.write(0x0F); // slots 3 then 3: not increasing
        }
        Path out = tmp.resolve("out");
        assertThatThrownBy(() -> Decompressor.toHf(sparse, out, 1L << 30)).isInstanceOf(FormatException.class)
                .hasMessageContaining(Q).hasMessageContaining("strictly increasing");
        assertThat(out).doesNotExist();
    }

    @Test
    void aStoredTensorMissingFromTheManifestIsRefused() throws IOException {
        Path sparse = sparseFixture();
        Path out = tmp.resolve("out");
        // rewrite the file without one component: the manifest no longer matches
        Path file = sparse.resolve("model.safetensors");
        LinkedHashMap<String, HostTensor> kept = new LinkedHashMap<>();
        Map<String, String> md;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            md = f.metadata();
            for (var t : f.tensors()) {
                if (!t.name().equals(Q + ".indices")) {
                    HostTensor r = f.read(t.name());
                    kept.put(t.name(), new HostTensor(r.dtype(), r.shape(), ByteBuffer.wrap(bytes(r))));
                }
            }
        }
        io.sparkprune.pipeline.safetensors.SafetensorsWriter.write(file, md, kept);
        assertThatThrownBy(() -> Decompressor.toHf(sparse, out, 1L << 30)).isInstanceOf(FormatException.class)
                .hasMessageContaining(Q + ".indices").hasMessageContaining("missing");
        assertThat(out).doesNotExist();
    }

    @Test
    void encodingsParseFromCliText() {
        assertThat(SparseEncoding.parse("2:4")).isEqualTo(new SparseEncoding.NofM(2, 4));
        assertThat(SparseEncoding.parse(" Block:16x8:0.5 ")).isEqualTo(new SparseEncoding.Bsr(16, 8));
        assertThat(SparseEncoding.parse("unstructured:0.5")).isEqualTo(new SparseEncoding.Bitmask());
        assertThat(new SparseEncoding.NofM(2, 4).indexBits()).isEqualTo(2);
        assertThat(new SparseEncoding.NofM(4, 8).indexBits()).isEqualTo(3);
        assertThatThrownBy(() -> SparseEncoding.parse("2-4")).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("accepted forms");
    }
}
