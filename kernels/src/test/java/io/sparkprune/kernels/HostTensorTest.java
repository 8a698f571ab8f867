package io.sparkprune.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class HostTensorTest {

    @Test
    void fromFloatsWritesLittleEndianValuesThatReadBack() {
        float[] v = {1.5f, -2f, 0f, 3.25f, 1e-3f, -0f};
        for (DType d : new DType[] {DType.F32, DType.F16, DType.BF16, DType.F64}) {
            HostTensor t = HostTensor.fromFloats(d, new long[] {2, 3}, v);
            assertThat(t.byteLength()).isEqualTo(6L * d.byteSize());
            float[] back = t.toFloatArray();
            for (int i = 0; i < v.length; i++) {
                float expected = switch (d) {
                    case F16 -> HalfFloats.f16ToFloat(HalfFloats.floatToF16(v[i]));
                    case BF16 -> HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(v[i]));
                    default -> v[i];
                };
                assertThat(Float.floatToRawIntBits(back[i])).isEqualTo(Float.floatToRawIntBits(expected));
            }
        }
        // byte layout, independently: 1.5f = 0x3fc00000 little-endian
        HostTensor t = HostTensor.fromFloats(DType.F32, new long[] {1}, new float[] {1.5f});
        assertThat(t.data().get(0)).isEqualTo((byte) 0x00);
        assertThat(t.data().get(3)).isEqualTo((byte) 0x3f);
        assertThat(t.data().get(2)).isEqualTo((byte) 0xc0);
    }

    @Test
    void halfPrecisionTensorsLongerThanOneReadChunkWidenEveryBitPattern() {
        // 70,003 values cross the bulk reader's 32,768-value chunks; every 16-bit pattern occurs; the
        // 9,000,011 values cross its 4M-value parallel slices
        for (int n : new int[] {70_003, 9_000_011}) {
            widensEveryElement(n);
        }
    }

    private static void widensEveryElement(int n) {
        ByteBuffer raw = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
            raw.putShort(2 * i, (short) (i * 40_503));
        }
        for (DType d : new DType[] {DType.F16, DType.BF16}) {
            float[] back = new HostTensor(d, new long[] {n}, raw.duplicate()).toFloatArray();
            for (int i = 0; i < n; i++) {
                short bits = raw.getShort(2 * i);
                float expected = d == DType.BF16 ? HalfFloats.bf16ToFloat(bits) : HalfFloats.f16ToFloat(bits);
                assertThat(Float.floatToRawIntBits(back[i])).as("%s element %d", d, i)
                        .isEqualTo(Float.floatToRawIntBits(expected));
            }
        }
    }

    @Test
    void largeHalfPrecisionTensorsRoundEveryElementAcrossParallelSlices() {
        int n = 5_000_003; // several 1M-value slices of the parallel rounding
        java.util.SplittableRandom r = new java.util.SplittableRandom(4);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (r.nextGaussian() * Math.pow(2, r.nextInt(-20, 20)));
        }
        for (DType d : new DType[] {DType.F16, DType.BF16}) {
            HostTensor t = HostTensor.fromFloats(d, new long[] {n}, v);
            for (int i = 0; i < n; i += 1 + (i % 7)) {
                short want = d == DType.BF16 ? HalfFloats.floatToBf16(v[i]) : HalfFloats.floatToF16(v[i]);
                assertThat(t.data().getShort(2 * i)).as("%s element %d", d, i).isEqualTo(want);
            }
        }
    }

    @Test
    void rejectsLengthMismatchAndBadShapes() {
        assertThatThrownBy(() -> new HostTensor(DType.F32, new long[] {2, 2}, ByteBuffer.allocate(15)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("needs 16 bytes");
        assertThatThrownBy(() -> HostTensor.numel(new long[] {-1, 2})).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> HostTensor.numel(new long[] {Long.MAX_VALUE, 3})).isInstanceOf(ArithmeticException.class);
        assertThat(HostTensor.numel(new long[] {})).isEqualTo(1);
        assertThatThrownBy(() -> new HostTensor(DType.I32, new long[] {1}, ByteBuffer.allocate(4)).toFloatArray())
                .isInstanceOf(IllegalStateException.class);
    }

    @Test
    void equalityIsByValueAndShapeIsCopied() {
        ByteBuffer a = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 42);
        long[] shape = {1};
        HostTensor t1 = new HostTensor(DType.I64, shape, a);
        shape[0] = 7;
        assertThat(t1.shape()).containsExactly(1);
        HostTensor t2 = new HostTensor(DType.I64, new long[] {1}, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 42));
        assertThat(t1).isEqualTo(t2).hasSameHashCodeAs(t2);
        assertThat(DType.fromSafetensorsName("BF16")).contains(DType.BF16);
        assertThat(DType.fromSafetensorsName("bf16")).isEmpty();
    }
}
