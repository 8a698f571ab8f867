package io.sparkprune.pipeline.formats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HalfFloats;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.sparse.DeflatedPayload;
import io.sparkprune.pipeline.formats.sparse.PayloadCodec;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparseManifest;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.recipe.TensorSelector;
import io.sparkprune.pipeline.safetensors.SafetensorsFile;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.zip.Inflater;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The {@code deflate} payload codec of the sparse format: round trips bit for bit for every
 * pattern and quantized variant, row ranges decode from their own chunks, corrupt payloads are
 * typed errors with nothing left behind, and 2:4 + symmetric int4 g128 codes and indices take at
 * most 0.16 of bf16 dense (measured on the written file).
 */
class SparseDeflateTest {
    private static final String W = "model.layers.0.mlp.up_proj.weight";

    @TempDir
    Path tmp;

    private Path write(Map<String, HostTensor> in, SparseEncoding enc, PayloadCodec codec, long shard,
                       QuantizedWeights q, String dir) {
        Path out = tmp.resolve(dir);
        SparseWriter.write(DenseTensors.of(in, "mem"), Map.of(), Map.of("format", "pt"), new SparseWriter.Options(
                TensorSelector.defaults(), Optional.of(enc), shard, codec), n -> Optional.ofNullable(q), out);
        return out;
    }

    private static Map<String, HostTensor> one(HostTensor t) {
        Map<String, HostTensor> in = new LinkedHashMap<>();
        in.put("model.embed_tokens.weight", HostTensor.fromFloats(DType.BF16, new long[] {4, 8}, new float[32]));
        in.put(W, t);
        return in;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("io.sparkprune.pipeline.formats.SparseFormatTest#cases")
    void deflatedCheckpointsDecompressBitForBitLikeRawOnes(DType dtype, SparseEncoding enc) throws IOException {
        // 600 rows of 4:8 / 2:4 / bitmask payloads: several 64 KiB chunks only for wide rows, so also 1-chunk cases
        HostTensor t = SparseFormatTest.pruned(dtype, 96, 2048, enc, 11);
        Path raw = write(one(t), enc, PayloadCodec.NONE, 1L << 20, null, "raw");
        Path def = write(one(t), enc, PayloadCodec.DEFLATE, 1L << 20, null, "def");
        try (SparseCheckpoint s = SparseCheckpoint.open(def)) {
            SparseManifest.Entry e = s.manifest().tensors().get(1);
            boolean deflatable = !(enc instanceof SparseEncoding.Bsr); // BSR has no row-shaped integer payload
            assertThat(e.codec()).isEqualTo(deflatable ? PayloadCodec.DEFLATE : PayloadCodec.NONE);
            assertThat(s.manifest().tensors().get(0).codec()).isEqualTo(PayloadCodec.NONE);
            assertThat(SparseFormatTest.bytes(s.read(W))).isEqualTo(SparseFormatTest.bytes(t));
        }
        Path back = tmp.resolve("back");
        Path backRaw = tmp.resolve("backRaw");
        Decompressor.toHf(def, back, 1L << 30);
        Decompressor.toHf(raw, backRaw, 1L << 30);
        try (ShardedCheckpoint x = ShardedCheckpoint.open(backRaw); ShardedCheckpoint y = ShardedCheckpoint.open(back)) {
            assertThat(y.tensorNames()).containsExactlyElementsOf(x.tensorNames());
            for (String n : x.tensorNames()) {
                assertThat(SparseFormatTest.bytes(y.read(n))).as(n).isEqualTo(SparseFormatTest.bytes(x.read(n)));
            }
            assertThat(SparseFormatTest.bytes(y.read(W))).isEqualTo(SparseFormatTest.bytes(t));
        }
        assertThat(Files.readAllBytes(back.resolve("model.safetensors")))
                .isEqualTo(Files.readAllBytes(backRaw.resolve("model.safetensors")));
    }

    @Test
    void aCodecNoneCheckpointIsStillVersion2AndUnchanged() {
        HostTensor t = SparseFormatTest.pruned(DType.BF16, 8, 32, new SparseEncoding.NofM(2, 4), 5);
        Path raw = write(one(t), new SparseEncoding.NofM(2, 4), PayloadCodec.NONE, 1L << 20, null, "raw");
        Path def = write(one(t), new SparseEncoding.NofM(2, 4), PayloadCodec.DEFLATE, 1L << 20, null, "def");
        try (SafetensorsFile a = SafetensorsFile.open(raw.resolve("model.safetensors"));
             SafetensorsFile b = SafetensorsFile.open(def.resolve("model.safetensors"))) {
            assertThat(a.metadata().get(SparseManifest.METADATA_KEY)).contains("\"version\":2").doesNotContain("codec");
            assertThat(a.find(W + ".indices")).isPresent();
            assertThat(b.metadata().get(SparseManifest.METADATA_KEY)).contains("\"version\":3")
                    .contains("\"codec\":\"deflate\"").contains("\"chunk_rows\":16384");
            assertThat(b.find(W + ".indices")).isEmpty();
            assertThat(b.info(W + ".indices.deflate").dtype()).isEqualTo(DType.U8);
            assertThat(b.info(W + ".indices.chunks").dtype()).isEqualTo(DType.I64);
            assertThat(b.info(W + ".indices.chunks").shape()).containsExactly(2);
        }
        // a version 2 manifest may not use the codec
        String v2 = "{\"format\":\"sparkprune-sparse\",\"version\":2,\"metadata\":{},\"tensors\":[{\"name\":\"a\","
                + "\"encoding\":\"nm\",\"dtype\":\"BF16\",\"shape\":[2,8],\"n\":2,\"m\":4,\"codec\":\"deflate\","
                + "\"deflated\":[{\"payload\":\"indices\",\"dtype\":\"U8\",\"shape\":[2,1],\"chunk_rows\":1,"
                + "\"chunks\":2,\"bytes\":9}]}]}";
        assertThatThrownBy(() -> SparseManifest.parse(v2, "x")).isInstanceOf(FormatException.class)
                .hasMessageContaining("version 3");
        SparseManifest.Entry e = SparseManifest.parse(v2.replace("\"version\":2", "\"version\":3"), "x").tensors().get(0);
        assertThat(e.deflated()).containsExactly(new SparseManifest.Deflated("indices", 1, 9));
        assertThatThrownBy(() -> SparseManifest.parse(v2.replace("\"version\":2", "\"version\":3")
                .replace("\"shape\":[2,1]", "\"shape\":[2,2]"), "x")).isInstanceOf(FormatException.class)
                .hasMessageContaining("bad 'deflated' entry");
    }

    @ParameterizedTest
    @CsvSource({"4,false,128", "4,true,128", "8,false,0", "8,true,64"})
    void quantizedCodesRoundTripExactlyWithDeflate(int bits, boolean sym, int group) throws IOException {
        QuantizationSpec spec = new QuantizationSpec(bits, sym, group);
        int rows = 300;
        int cols = 512; // codes rows of 128 (int4) or 256 bytes: 512 or 256 rows per chunk
        QuantizedWeights q = SparseQuantizedTest.random24(spec, rows, cols, 17 + bits);
        HostTensor dense = HostTensor.fromFloats(DType.BF16, new long[] {rows, cols}, q.dequantize());
        Path out = write(one(dense), new SparseEncoding.NofM(2, 4), PayloadCodec.DEFLATE, 1L << 30, q, "q");
        try (SparseCheckpoint s = SparseCheckpoint.open(out)) {
            assertThat(s.manifest().tensors().get(1).deflated()).extracting(SparseManifest.Deflated::payload)
                    .containsExactly("codes", "indices");
            QuantizedWeights got = s.quantized(W).orElseThrow();
            assertThat(got.codes()).isEqualTo(q.codes());
            assertThat(got.scales()).isEqualTo(q.scales());
            assertThat(got.zeroPoints()).isEqualTo(q.zeroPoints());
            assertThat(SparseFormatTest.bytes(s.read(W))).isEqualTo(SparseFormatTest.bytes(dense));
        }
        Path back = tmp.resolve("back");
        Decompressor.toHf(out, back, 1L << 30);
        try (ShardedCheckpoint y = ShardedCheckpoint.open(back)) {
            assertThat(SparseFormatTest.bytes(y.read(W))).isEqualTo(SparseFormatTest.bytes(dense));
        }
    }

    /** Gaussian weights pruned 2:4 by magnitude, then symmetric int4 per group of 128 (absmax grid, bf16 scales). */
    static QuantizedWeights gaussian24Int4(int rows, int cols, long seed) {
        QuantizationSpec spec = new QuantizationSpec(4, true, 128);
        Random rnd = new Random(seed);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.05);
        }
        for (int i = 0; i < w.length; i += 4) {
            Integer[] idx = {0, 1, 2, 3};
            int base = i;
            Arrays.sort(idx, (a, b) -> Float.compare(Math.abs(w[base + a]), Math.abs(w[base + b])));
            w[i + idx[0]] = 0f;
            w[i + idx[1]] = 0f;
        }
        int g = cols / 128;
        float[] scales = new float[rows * g];
        byte[] codes = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int k = 0; k < g; k++) {
                float max = 0;
                for (int c = k * 128; c < (k + 1) * 128; c++) {
                    max = Math.max(max, Math.abs(w[r * cols + c]));
                }
                float s = HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(max / 7.5f));
                scales[r * g + k] = s;
                for (int c = k * 128; c < (k + 1) * 128; c++) {
                    codes[r * cols + c] = (byte) Math.max(-8, Math.min(7, Math.round(w[r * cols + c] / s)));
                }
            }
        }
        // a kept weight that rounds to code 0 is still stored: N:M stores exactly 2 per group
        return new QuantizedWeights(spec, rows, cols, codes, scales, new int[rows * g]);
    }

    @Test
    void twoOfFourSymmetricInt4CodesAndIndicesTakeAtMost0_16OfBf16Dense() throws IOException {
        int rows = 384;
        int cols = 1536; // MiniLM's FFN input width
        QuantizedWeights q = gaussian24Int4(rows, cols, 2026);
        HostTensor dense = HostTensor.fromFloats(DType.BF16, new long[] {rows, cols}, q.dequantize());
        Path out = write(one(dense), new SparseEncoding.NofM(2, 4), PayloadCodec.DEFLATE, 1L << 30, q, "size");
        Path file = out.resolve("model.safetensors");
        long payload = 0;
        long all = 0;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (TensorInfo i : f.tensors()) {
                all += i.byteLength();
                if (i.name().startsWith(W + ".codes.") || i.name().startsWith(W + ".indices.")) {
                    payload += i.byteLength();
                }
            }
            // the tensors' byte lengths are the file's real bytes: header + data section, nothing else
            assertThat(f.header().dataSectionOffset() + all).isEqualTo(Files.size(file));
            assertThat(f.info(W + ".codes.chunks").shape()).containsExactly(4); // 384 / 170 rows -> 3 chunks
            assertThat(f.info(W + ".indices.chunks").shape()).containsExactly(3); // 384 / 341 rows -> 2 chunks
        }
        long bf16 = 2L * rows * cols;
        double ratio = (double) payload / bf16;
        assertThat(ratio).isLessThanOrEqualTo(0.16).isGreaterThan(0.10);
        long grids = rows * (cols / 128L) * 2;
        try (SparseCheckpoint s = SparseCheckpoint.open(out)) {
            assertThat(s.storedBytes(W)).isEqualTo(payload + grids); // what inspect reports
            assertThat(s.storage(W)).isEqualTo("2:4 int4 symmetric group 128 deflate");
            assertThat(s.quantized(W).orElseThrow().codes()).isEqualTo(q.codes());
        }
        long stored = payload + grids;
        StorageInspector.Storage st = StorageInspector.inspect(out).orElseThrow();
        assertThat(st.tensors()).filteredOn(t -> t.name().equals(W)).singleElement()
                .satisfies(t -> assertThat(t.storedBytes()).isEqualTo(stored));
        System.out.printf("2:4 + int4 sym g128, 384 x 1536 Gaussian: codes+indices %d bytes = %.4f of bf16 dense%n",
                payload, ratio);
    }

    @Test
    void aRowRangeDecodesFromItsOwnChunksToTheRowsOfTheRawPayload() {
        QuantizedWeights q = gaussian24Int4(384, 1536, 9);
        HostTensor dense = HostTensor.fromFloats(DType.BF16, new long[] {384, 1536}, q.dequantize());
        Path raw = write(one(dense), new SparseEncoding.NofM(2, 4), PayloadCodec.NONE, 1L << 30, q, "raw");
        Path def = write(one(dense), new SparseEncoding.NofM(2, 4), PayloadCodec.DEFLATE, 1L << 30, q, "def");
        try (SafetensorsFile r = SafetensorsFile.open(raw.resolve("model.safetensors"));
             SparseCheckpoint s = SparseCheckpoint.open(def)) {
            for (String p : List.of("codes", "indices")) {
                byte[] full = SparseFormatTest.bytes(r.read(W + "." + p)); // the codec-none layout: the reference
                int rowBytes = full.length / 384;
                assertThat(s.payloadRows(W, p, 0, 384)).as(p).isEqualTo(full);
                for (int[] range : new int[][] {{0, 1}, {169, 171}, {170, 340}, {200, 384}, {383, 384}, {5, 5}}) {
                    assertThat(s.payloadRows(W, p, range[0], range[1])).as(p + " " + Arrays.toString(range))
                            .isEqualTo(Arrays.copyOfRange(full, range[0] * rowBytes, range[1] * rowBytes));
                }
            }
        }
    }

    // ---- corrupt payloads -------------------------------------------------------------------

    private Path deflatedFixture() {
        HostTensor t = SparseFormatTest.pruned(DType.BF16, 64, 256, new SparseEncoding.NofM(2, 4), 3);
        return write(one(t), new SparseEncoding.NofM(2, 4), PayloadCodec.DEFLATE, 1L << 30, null, "sparse");
    }

    private static void poke(Path file, String tensor, long at, byte[] bytes) throws IOException {
        long offset;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            offset = f.info(tensor).fileOffset(f.header().dataSectionOffset());
        }
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.seek(offset + at);
            f.write(bytes);
        }
    }

    private void assertDecompressFails(Path sparse, String... fragments) {
        Path out = tmp.resolve("out");
        var a = assertThatThrownBy(() -> Decompressor.toHf(sparse, out, 1L << 30)).isInstanceOf(FormatException.class)
                .hasMessageContaining("model.safetensors").hasMessageContaining(W + ".indices.deflate");
        for (String f : fragments) {
            a.hasMessageContaining(f);
        }
        assertThat(out).doesNotExist();
        assertThat(tmp.toFile().list()).containsExactly("sparse");
    }

    @Test
    void aCorruptDeflateStreamIsATypedErrorAndLeavesNoOutput() throws IOException {
        Path sparse = deflatedFixture();
        // first block header: BFINAL 1, BTYPE 11 (reserved): no valid raw DEFLATE stream starts so
        poke(sparse.resolve("model.safetensors"), W + ".indices.deflate", 0, new byte[] {(byte) 0xFF});
        assertDecompressFails(sparse, "chunk 0", "not a valid raw DEFLATE stream");
    }

    @Test
    void offsetsThatDoNotEndAtTheDataAreATypedError() throws IOException {
        Path sparse = deflatedFixture();
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 3);
        poke(sparse.resolve("model.safetensors"), W + ".indices.chunks", 8, b.array());
        assertDecompressFails(sparse, "chunk offsets run from 0 to 3");
    }

    @Test
    void aStartOffsetOtherThanZeroIsATypedError() throws IOException {
        Path sparse = deflatedFixture();
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -5);
        poke(sparse.resolve("model.safetensors"), W + ".indices.chunks", 0, b.array());
        assertDecompressFails(sparse, "chunk offsets run from -5");
    }

    // ---- the codec itself: sizes, trailing bytes, truncation, bombs ---------------------------

    private static byte[] offsets(long... o) {
        ByteBuffer b = ByteBuffer.allocate(8 * o.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long x : o) {
            b.putLong(x);
        }
        return b.array();
    }

    private static byte[] payload(int n, long seed) {
        byte[] p = new byte[n];
        Random rnd = new Random(seed);
        for (int i = 0; i < n; i++) {
            p[i] = (byte) (rnd.nextInt(6) * 17);
        }
        return p;
    }

    @Test
    void chunksAreStandardRawDeflateStreamsOfWholeRows() throws Exception {
        byte[] p = payload(10 * 7, 1);
        DeflatedPayload.Stored st = DeflatedPayload.deflate(p, 10, 7, 4);
        assertThat(st.offsets()).hasSize(4).startsWith(0L).endsWith((long) st.data().length);
        // an independent decoder (java.util.zip.Inflater, raw mode = zlib wbits -15) per chunk: rows 0-3, 4-7, 8-9
        for (int c = 0; c < 3; c++) {
            Inflater inf = new Inflater(true);
            inf.setInput(st.data(), (int) st.offsets()[c], (int) (st.offsets()[c + 1] - st.offsets()[c]));
            byte[] out = new byte[100];
            int n = inf.inflate(out);
            assertThat(inf.finished()).isTrue();
            inf.end();
            int r0 = 4 * c;
            int r1 = Math.min(10, r0 + 4);
            assertThat(Arrays.copyOf(out, n)).isEqualTo(Arrays.copyOfRange(p, r0 * 7, r1 * 7));
        }
        assertThat(DeflatedPayload.inflate("t", st.data(), st.offsetBytes(), 10, 7, 4)).isEqualTo(p);
    }

    @Test
    void aChunkOfAnotherSizeTrailingBytesOrATruncatedStreamAreTypedErrors() {
        byte[] p = payload(8 * 16, 2);
        DeflatedPayload.Stored st = DeflatedPayload.deflate(p, 8, 16, 8); // one chunk
        byte[] d = st.data();
        // the stream holds 128 bytes: claiming 8 x 15 must not inflate past 120
        assertThatThrownBy(() -> DeflatedPayload.inflate("f: 't'", d, offsets(0, d.length), 8, 15, 8))
                .isInstanceOf(FormatException.class).hasMessageContaining("f: 't'")
                .hasMessageContaining("more than the expected 120 bytes");
        assertThatThrownBy(() -> DeflatedPayload.inflate("f: 't'", d, offsets(0, d.length), 8, 17, 8))
                .isInstanceOf(FormatException.class).hasMessageContaining("inflates to 128 bytes, expected 136");
        byte[] trailing = Arrays.copyOf(d, d.length + 2);
        assertThatThrownBy(() -> DeflatedPayload.inflate("f: 't'", trailing, offsets(0, trailing.length), 8, 16, 8))
                .isInstanceOf(FormatException.class).hasMessageContaining("2 bytes after its DEFLATE stream's end");
        byte[] cut = Arrays.copyOf(d, d.length - 3);
        assertThatThrownBy(() -> DeflatedPayload.inflate("f: 't'", cut, offsets(0, cut.length), 8, 16, 8))
                .isInstanceOf(FormatException.class).hasMessageContaining("f: 't'");
        assertThatThrownBy(() -> DeflatedPayload.inflate("f: 't'", d, offsets(0, d.length), 8, 16, 4))
                .isInstanceOf(FormatException.class).hasMessageContaining("chunk offsets have 16 bytes, expected 24");
        DeflatedPayload.Stored two = DeflatedPayload.deflate(p, 8, 16, 4);
        long[] o = two.offsets();
        assertThatThrownBy(() -> DeflatedPayload.inflate("f: 't'", two.data(), offsets(0, o[2] + 1, o[2]), 8, 16, 4))
                .isInstanceOf(FormatException.class).hasMessageContaining("decrease at chunk 1");
    }

    @Test
    void aDecompressionBombIsRefusedAfterTheExpectedBytes() {
        byte[] zeros = new byte[16 << 20]; // 16 MiB of zeros deflate to a few KiB
        DeflatedPayload.Stored st = DeflatedPayload.deflate(zeros, 1, zeros.length, 1);
        assertThat(st.data().length).isLessThan(zeros.length / 4);
        assertThatThrownBy(() -> DeflatedPayload.inflate("f: 't'", st.data(), st.offsetBytes(), 1, 64, 1))
                .isInstanceOf(FormatException.class).hasMessageContaining("more than the expected 64 bytes");
    }
}
