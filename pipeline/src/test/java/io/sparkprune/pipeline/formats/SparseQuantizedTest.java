package io.sparkprune.pipeline.formats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HalfFloats;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparseManifest;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.recipe.TensorSelector;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * The quantized N:M variant of the sparse format: 2:4 codes generated here (the reference) are
 * written, read back integer for integer, decompress to {@code bf16(scale · (c − z))} bit for bit,
 * and take the bytes docs/formats.md gives; plus the byte ratio of unquantized 2:4 bf16.
 */
class SparseQuantizedTest {
    private static final String W = "model.layers.0.mlp.up_proj.weight";

    @TempDir
    Path tmp;

    /** Random 2:4 codes: in each group of 4 two random positions get a random code, the others the zero point. */
    static QuantizedWeights random24(QuantizationSpec spec, int rows, int cols, long seed) {
        Random rnd = new Random(seed);
        int g = spec.groups(cols);
        float[] scales = new float[rows * g];
        int[] zp = new int[rows * g];
        for (int i = 0; i < scales.length; i++) {
            // bf16-representable scales so the stored grid is exact
            scales[i] = HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(0.001f + rnd.nextFloat() * 0.05f));
            zp[i] = spec.symmetric() ? 0 : spec.minCode() + rnd.nextInt(spec.maxq() + 1);
        }
        byte[] codes = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c0 = 0; c0 < cols; c0 += 4) {
                int a = rnd.nextInt(4);
                int b = (a + 1 + rnd.nextInt(3)) % 4;
                for (int j = 0; j < 4; j++) {
                    int z = zp[r * g + (spec.groupSize() == 0 ? 0 : (c0 + j) / spec.groupSize())];
                    codes[r * cols + c0 + j] = (byte) (j == a || j == b
                            ? spec.minCode() + rnd.nextInt(spec.maxq() + 1) : z);
                }
            }
        }
        return new QuantizedWeights(spec, rows, cols, codes, scales, zp);
    }

    private Path write(QuantizedWeights q, HostTensor dense, String dir) {
        Map<String, HostTensor> in = new LinkedHashMap<>();
        in.put(W, dense);
        Path out = tmp.resolve(dir);
        SparseWriter.write(DenseTensors.of(in, "mem"), Map.of(), Map.of(), new SparseWriter.Options(
                        TensorSelector.defaults(), Optional.of(new SparseEncoding.NofM(2, 4)), 1L << 30),
                n -> q == null ? Optional.empty() : Optional.of(q), out);
        return out;
    }

    @ParameterizedTest
    @CsvSource({"4,false,128", "4,true,128", "8,false,0", "8,true,64"})
    void codesRoundTripExactlyAndDecompressBitForBit(int bits, boolean sym, int group) {
        QuantizationSpec spec = new QuantizationSpec(bits, sym, group);
        int rows = 12;
        int cols = 256;
        QuantizedWeights q = random24(spec, rows, cols, 7 + bits);
        HostTensor dense = HostTensor.fromFloats(DType.BF16, new long[] {rows, cols}, q.dequantize());
        Path out = write(q, dense, "s" + bits + sym + group);
        try (SparseCheckpoint s = SparseCheckpoint.open(out)) {
            QuantizedWeights got = s.quantized(W).orElseThrow();
            assertThat(got.codes()).isEqualTo(q.codes());
            assertThat(got.scales()).isEqualTo(q.scales());
            assertThat(got.zeroPoints()).isEqualTo(q.zeroPoints());
            assertThat(SparseWriterBytes.of(s.read(W))).isEqualTo(SparseWriterBytes.of(dense));
            assertThat(s.manifest().tensors().get(0).quantization()).contains(spec);
            assertThat(s.storage(W)).isEqualTo("2:4 " + spec.describe());
            int g = spec.groups(cols);
            long expected = rows * (cols / 2L * bits / 8) + rows * (cols / 2L * 2 / 8) + rows * g * 2L
                    + (sym ? 0 : rows * (long) g);
            assertThat(s.storedBytes(W)).isEqualTo(expected);
        }
    }

    @Test
    void inspectReportsTheByteRatiosOf24Bf16AndOf24Int4() {
        int rows = 64;
        int cols = 1024;
        QuantizationSpec spec = new QuantizationSpec(4, false, 128);
        QuantizedWeights q = random24(spec, rows, cols, 3);
        HostTensor dense = HostTensor.fromFloats(DType.BF16, new long[] {rows, cols}, q.dequantize());
        StorageInspector.Storage values = StorageInspector.inspect(write(null, dense, "values")).orElseThrow();
        StorageInspector.Storage codes = StorageInspector.inspect(write(q, dense, "codes")).orElseThrow();
        long denseBytes = 2L * rows * cols;
        assertThat(values.tensors().get(0).denseBytes()).isEqualTo(denseBytes);
        // values rows x cols/2 bf16 plus 2-bit indices: exactly 0.5 + 0.0625
        assertThat(values.ratio()).isLessThanOrEqualTo(0.5625).isEqualTo(0.5625);
        long grids = rows * (cols / 128L) * (2 + 1); // bf16 scales + int8 zero points
        // int4 codes (2 bits per weight) + 2-bit indices of the kept half (1 bit per weight): 3/16 of bf16
        assertThat(codes.storedBytes()).isEqualTo(denseBytes * 3 / 16 + grids);
        assertThat((double) (codes.storedBytes() - grids) / denseBytes).isEqualTo(0.1875);
    }

    @Test
    void codesThatAreNot24AreRefusedAndNothingIsLeft() {
        QuantizationSpec spec = new QuantizationSpec(4, true, 0);
        QuantizedWeights q = random24(spec, 4, 16, 1);
        q.codes()[5] = 3;
        q.codes()[6] = 3;
        q.codes()[7] = 3;
        q.codes()[4] = 3;
        HostTensor dense = HostTensor.fromFloats(DType.BF16, new long[] {4, 16}, q.dequantize());
        assertThatThrownBy(() -> write(q, dense, "bad")).isInstanceOf(PatternViolationException.class)
                .hasMessageContaining(W).hasMessageContaining("row 0, group 1");
        assertThat(tmp.resolve("bad")).doesNotExist();
    }

    @Test
    void version1ManifestsAreStillReadAndQuantizationNeedsVersion2() {
        String v1 = "{\"format\":\"sparkprune-sparse\",\"version\":1,\"metadata\":{},\"tensors\":[{\"name\":\"a\","
                + "\"encoding\":\"nm\",\"dtype\":\"BF16\",\"shape\":[2,8],\"n\":2,\"m\":4}]}";
        assertThat(SparseManifest.parse(v1, "x").tensors().get(0).quantization()).isEmpty();
        String bad = v1.replace("\"m\":4}", "\"m\":4,\"quantization\":{\"bits\":4,\"symmetric\":true,\"group_size\":null}}");
        assertThatThrownBy(() -> SparseManifest.parse(bad, "x")).isInstanceOf(FormatException.class)
                .hasMessageContaining("version 2");
        assertThat(SparseManifest.parse(bad.replace("\"version\":1", "\"version\":2"), "x").tensors().get(0)
                .quantization()).contains(QuantizationSpec.perChannel(4, true));
    }

    /** Raw bytes of a tensor. */
    static final class SparseWriterBytes {
        static byte[] of(HostTensor t) {
            byte[] b = new byte[(int) t.byteLength()];
            t.data().duplicate().get(b);
            return b;
        }
    }
}
