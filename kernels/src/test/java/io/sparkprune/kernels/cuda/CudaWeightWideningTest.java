package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ForwardWorkspace.Matrix;
import io.sparkprune.kernels.HostTensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

import static io.sparkprune.kernels.cuda.CudaBackendParityTest.randomF;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Weights given to the CUDA workspace as host tensors ({@link ForwardWorkspace#weight(HostTensor, int, int)}):
 * BF16 and F16 values uploaded as their 2 bytes and widened on the device ({@code bf16_to_f32},
 * {@code f16_to_f32}) equal {@link HostTensor#toFloatArray()} bit for bit: all 65,536 patterns of each
 * format (signed zeros, subnormals, infinities, quiet and signalling NaNs with their payloads), and random
 * patterns of odd lengths from heap, direct and offset buffers, up to a copy larger than one pinned
 * staging chunk. The device holds fp32 (the weight cache counts 4 bytes per value) and uploads a tensor
 * once; a chain of a block's weight-reading ops (RMSNorm, linear with bias, GELU, LayerNorm, linear,
 * residual add) with tensor weights equals the same chain with the host-widened fp32 arrays bit for bit,
 * in fp32 and TF32 workspaces.
 */
@Tag("gpu")
class CudaWeightWideningTest extends CudaSuite {

    /** A tensor of the given 16-bit patterns, little-endian, in a buffer of the given kind. */
    private static HostTensor halves(DType dtype, short[] bits, String kind) {
        int bytes = 2 * bits.length;
        ByteBuffer b = switch (kind) {
            case "heap" -> ByteBuffer.allocate(bytes);
            case "direct" -> ByteBuffer.allocateDirect(bytes);
            case "offset" -> ByteBuffer.allocate(bytes + 5).position(3).limit(3 + bytes).slice(); // odd offset in its array
            default -> throw new IllegalArgumentException(kind);
        };
        b.order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < bits.length; i++) {
            b.putShort(2 * i, bits[i]);
        }
        return new HostTensor(dtype, new long[] {bits.length}, b);
    }

    /**
     * Asserts two float arrays hold the same bits (NaN payloads included), reporting the first difference
     * (AssertJ's containsExactly diffs in quadratic time, too slow for arrays of millions).
     */
    static void assertSameBits(float[] got, float[] ref, String what) {
        assertThat(got.length).as(what + ": length").isEqualTo(ref.length);
        for (int i = 0; i < got.length; i++) {
            int g = Float.floatToRawIntBits(got[i]);
            int r = Float.floatToRawIntBits(ref[i]);
            if (g != r) {
                throw new AssertionError(what + ": element " + i + " is 0x" + Integer.toHexString(g) + " (" + got[i]
                        + "), expected 0x" + Integer.toHexString(r) + " (" + ref[i] + ")");
            }
        }
    }

    /** The device's fp32 copy of a tensor weight, downloaded. */
    private static float[] widenedOnDevice(HostTensor t) {
        int n = Math.toIntExact(t.numel());
        try (ForwardWorkspace ws = gpu.openWorkspace(ForwardPrecision.FP32, "widening test")) {
            Matrix m = ws.weight(t, 1, n);
            assertThat(m.isWeight()).isTrue();
            return ws.download(m);
        }
    }

    @Test
    void everySixteenBitPatternWidensToTheHostBits() {
        device.require();
        short[] all = new short[65537]; // every pattern, and one more: an odd count
        for (int i = 0; i < all.length; i++) {
            all[i] = (short) (i * 40503); // a permutation of 0..65535 (40503 is odd), then pattern 0 again
        }
        for (DType dtype : new DType[] {DType.BF16, DType.F16}) {
            HostTensor t = halves(dtype, all, "heap");
            assertSameBits(widenedOnDevice(t), t.toFloatArray(), dtype + ", seed=" + SEED);
        }
    }

    @Test
    void randomPatternsOfOddLengthsFromAnyBufferWidenToTheHostBits() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED);
        // 1 MiB + 2 bytes: the first staged size; 20,000,001 halves: 40 MB, more than one 32 MiB staging chunk
        int[] lengths = {1, 3, 257, 100_003, (1 << 19) + 1, 20_000_001};
        for (DType dtype : new DType[] {DType.BF16, DType.F16}) {
            for (int n : lengths) {
                short[] bits = new short[n];
                for (int i = 0; i < n; i++) {
                    bits[i] = (short) r.nextInt(1 << 16);
                }
                for (String kind : n > 1_000_000 ? new String[] {"direct"} : new String[] {"heap", "direct", "offset"}) {
                    HostTensor t = halves(dtype, bits, kind);
                    assertSameBits(widenedOnDevice(t), t.toFloatArray(), dtype + " n=" + n + " " + kind + ", seed=" + SEED);
                }
            }
        }
        // F32 tensors go up as their bytes
        float[] v = randomF(r, 300_001);
        v[7] = Float.intBitsToFloat(0x7fa00001); // a signalling NaN with a payload
        v[8] = Float.MIN_VALUE;
        HostTensor f32 = HostTensor.fromFloats(DType.F32, new long[] {v.length}, v);
        assertSameBits(widenedOnDevice(f32), f32.toFloatArray(), "F32");
    }

    @Test
    void theDeviceHoldsFp32AndUploadsATensorOnce() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        float[] w = randomF(r, 513 * 257);
        HostTensor t = HostTensor.fromFloats(DType.BF16, new long[] {513, 257}, w);
        HostTensor equal = HostTensor.fromFloats(DType.BF16, new long[] {513, 257}, w);
        DeviceArrayCache.Entry<DeviceBuffer> e = gpu.acquireWeight(t, "t");
        try {
            assertThat(e.floats()).isEqualTo(513L * 257);
            assertThat(e.bytes()).as("fp32 on the device, counted as such").isEqualTo(4L * 513 * 257);
            assertThat(e.pins()).isEqualTo(1);
            try (ForwardWorkspace a = gpu.openWorkspace(ForwardPrecision.FP32, "a")) {
                CudaWorkspace cw = (CudaWorkspace) a;
                assertThat(cw.bufferOf(a.weight(t, 513, 257))).as("the cached copy, not a new upload").isSameAs(e.buffer());
                assertThat(cw.bufferOf(a.weight(t, 257, 513))).isSameAs(e.buffer());
                assertThat(e.pins()).as("pinned once more by the open workspace").isEqualTo(2);
                assertThat(cw.bufferOf(a.weight(equal, 513, 257))).as("an equal tensor is another key")
                        .isNotSameAs(e.buffer());
            }
            assertThat(e.pins()).isEqualTo(1);
            assertThat(gpu.acquireWeight(t, "t again")).isSameAs(e);
            gpu.unpinWeight(e);
        } finally {
            gpu.unpinWeight(e);
        }
    }

    /** The weights of the chain, as tensors or as their host-widened arrays. */
    private record ChainWeights(Object norm, Object w1, Object b1, Object gamma, Object beta, Object w2) {
        static ChainWeights widened(ChainWeights t) {
            return new ChainWeights(w(t.norm), w(t.w1), w(t.b1), w(t.gamma), w(t.beta), w(t.w2));
        }

        private static float[] w(Object o) {
            return ((HostTensor) o).toFloatArray();
        }
    }

    private static Matrix weight(ForwardWorkspace ws, Object w, int rows, int cols) {
        return w instanceof HostTensor t ? ws.weight(t, rows, cols) : ws.weight((float[]) w, rows, cols);
    }

    /** rmsNorm → linear + bias → GELU → LayerNorm → linear → residual add; the output downloaded. */
    private static float[] chain(ForwardPrecision precision, ChainWeights cw, float[] in, int tokens, int hidden, int inter) {
        try (ForwardWorkspace ws = gpu.openWorkspace(precision, "chain " + precision)) {
            Matrix x = ws.upload(in, tokens, hidden);
            Matrix n = ws.allocate(tokens, hidden);
            ws.rmsNorm(x, weight(ws, cw.norm, 1, hidden), 1e-6f, n);
            Matrix h = ws.allocate(tokens, inter);
            ws.linear(n, weight(ws, cw.w1, inter, hidden), weight(ws, cw.b1, 1, inter), h);
            ws.gelu(h);
            ws.layerNorm(h, weight(ws, cw.gamma, 1, inter), weight(ws, cw.beta, 1, inter), 1e-5f, h);
            Matrix y = ws.allocate(tokens, hidden);
            ws.linear(h, weight(ws, cw.w2, hidden, inter), null, y);
            ws.add(x, y);
            return ws.downloadAndRelease(y);
        }
    }

    @Test
    void aChainOfBlockOpsWithTensorWeightsEqualsTheHostWidenedArraysBitForBit() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        int tokens = 133;
        int hidden = 96;
        int inter = 200;
        float[] in = randomF(r, tokens * hidden);
        for (DType dtype : new DType[] {DType.BF16, DType.F16, DType.F32}) {
            ChainWeights tensors = new ChainWeights(
                    HostTensor.fromFloats(dtype, new long[] {hidden}, randomF(r, hidden)),
                    HostTensor.fromFloats(dtype, new long[] {inter, hidden}, randomF(r, inter * hidden)),
                    HostTensor.fromFloats(dtype, new long[] {inter}, randomF(r, inter)),
                    HostTensor.fromFloats(dtype, new long[] {inter}, randomF(r, inter)),
                    HostTensor.fromFloats(dtype, new long[] {inter}, randomF(r, inter)),
                    HostTensor.fromFloats(dtype, new long[] {hidden, inter}, randomF(r, hidden * inter)));
            ChainWeights arrays = ChainWeights.widened(tensors);
            for (ForwardPrecision p : ForwardPrecision.values()) {
                float[] viaTensors = chain(p, tensors, in, tokens, hidden, inter);
                float[] viaArrays = chain(p, arrays, in, tokens, hidden, inter);
                assertSameBits(viaTensors, viaArrays, dtype + " " + p + ", seed=" + SEED);
                for (float f : viaTensors) {
                    assertThat(Float.isFinite(f)).as("finite output, " + dtype + " " + p).isTrue();
                }
            }
        }
    }
}
