package io.sparkprune.kernels;

import io.sparkprune.kernels.ForwardWorkspace.Matrix;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link HostWorkspace} and the argument rules of {@link AbstractForwardWorkspace}: linear layers against
 * an fp64 reference (fp32 operands, and TF32-rounded operands for {@link ForwardPrecision#TF32}), the
 * non-finite scan, and the typed refusals (shapes, read-only weights, foreign or released matrices, a
 * closed workspace). {@link ForwardWorkspace#open} on a backend without {@link ResidentForward} gives a
 * host workspace.
 */
class HostWorkspaceTest {
    private static final long SEED = new SplittableRandom().nextLong();
    private static CpuBackend cpu;

    @BeforeAll
    static void open() {
        cpu = CpuBackend.create(2);
    }

    @AfterAll
    static void close() {
        cpu.close();
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return x;
    }

    /** {@code y = x·wᵀ + b} in fp64 over the given (already rounded, when wanted) operands. */
    private static double[] reference(float[] x, float[] w, float[] b, int rows, int in, int out, boolean tf32) {
        double[] y = new double[rows * out];
        for (int i = 0; i < rows; i++) {
            for (int o = 0; o < out; o++) {
                double s = 0;
                for (int k = 0; k < in; k++) {
                    float a = x[i * in + k];
                    float c = w[o * in + k];
                    if (tf32) {
                        a = Tf32.round(a);
                        c = Tf32.round(c);
                    }
                    s += (double) a * c;
                }
                y[i * out + o] = s + (b == null ? 0 : b[o]);
            }
        }
        return y;
    }

    private static double maxAbsDiff(float[] got, double[] ref) {
        double m = 0;
        for (int i = 0; i < ref.length; i++) {
            m = Math.max(m, Math.abs(got[i] - ref[i]));
        }
        return m;
    }

    @Test
    void linearMatchesAnFp64ReferenceInBothPrecisions() {
        SplittableRandom r = new SplittableRandom(SEED);
        int rows = 37;
        int in = 150;
        int out = 29;
        float[] x = random(r, rows * in);
        float[] w = random(r, out * in);
        float[] b = random(r, out);
        float[] x0 = x.clone();
        float[] w0 = w.clone();
        for (ForwardPrecision p : ForwardPrecision.values()) {
            try (ForwardWorkspace ws = ForwardWorkspace.open(cpu, p, "test")) {
                assertThat(ws).isInstanceOf(HostWorkspace.class);
                assertThat(ws.isResident()).isFalse();
                Matrix y = ws.allocate(rows, out);
                ws.linear(ws.upload(x, rows, in), ws.weight(w, out, in), ws.weight(b, 1, out), y);
                float[] got = ws.download(y);
                boolean tf32 = p == ForwardPrecision.TF32;
                // fp32 sums of 150 products of magnitude < 1: error well under 1e-4
                assertThat(maxAbsDiff(got, reference(x, w, b, rows, in, out, tf32))).as(p + " seed=" + SEED)
                        .isLessThan(1e-4);
                // the other precision's reference is off by the TF32 rounding (order 1e-3 here)
                assertThat(maxAbsDiff(got, reference(x, w, b, rows, in, out, !tf32))).as(p + " seed=" + SEED)
                        .isGreaterThan(1e-4);
            }
        }
        assertThat(x).as("input untouched").isEqualTo(x0);
        assertThat(w).as("weight untouched").isEqualTo(w0);
    }

    @Test
    void tf32KeepsTheCallersWeightArrayUnrounded() {
        float[] w = {1.0001f, 0.3333333f};
        float[] copy = w.clone();
        try (HostWorkspace ws = new HostWorkspace(cpu, ForwardPrecision.TF32)) {
            Matrix y = ws.allocate(1, 1);
            ws.linear(ws.upload(new float[] {1f, 1f}, 1, 2), ws.weight(w, 1, 2), null, y);
            assertThat(ws.download(y)[0]).isEqualTo(Tf32.round(1.0001f) + Tf32.round(0.3333333f));
        }
        assertThat(w).isEqualTo(copy);
    }

    @Test
    void firstNonFiniteFindsTheFirstIndex() {
        try (HostWorkspace ws = new HostWorkspace(cpu, ForwardPrecision.FP32)) {
            float[] a = new float[60];
            assertThat(ws.firstNonFinite(ws.wrap(a, 6, 10))).isEqualTo(-1);
            a[41] = Float.NEGATIVE_INFINITY;
            a[17] = Float.NaN;
            assertThat(ws.firstNonFinite(ws.wrap(a, 6, 10))).isEqualTo(17);
            assertThat(ws.firstNonFinite(ws.allocate(0, 5))).isEqualTo(-1);
        }
    }

    @Test
    void refusesBadArguments() {
        try (HostWorkspace ws = new HostWorkspace(cpu, ForwardPrecision.FP32);
             HostWorkspace other = new HostWorkspace(cpu, ForwardPrecision.FP32)) {
            Matrix x = ws.allocate(4, 3);
            Matrix w = ws.weight(new float[6], 2, 3);
            assertThatThrownBy(() -> ws.linear(x, w, null, ws.allocate(4, 3))).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("linear y is 4 x 3, expected 4 x 2");
            assertThatThrownBy(() -> ws.linear(x, ws.allocate(3, 3), null, x))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("must not be x");
            assertThatThrownBy(() -> ws.add(ws.allocate(2, 3), w)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("read-only");
            assertThatThrownBy(() -> ws.add(other.allocate(4, 3), x)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("another workspace");
            assertThatThrownBy(() -> ws.weight(new float[5], 2, 3)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> ws.upload(new float[5], 2, 3)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> ws.rope(x, 2, 3, new int[4], new float[8], new float[8], 8))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("headDim");
            Matrix released = ws.allocate(2, 2);
            ws.release(released);
            ws.release(released); // idempotent
            assertThatThrownBy(() -> ws.download(released)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("released");
            ws.release(w); // weights are not released
            assertThat(ws.download(w)).hasSize(6);
        }
        HostWorkspace closed = new HostWorkspace(cpu, ForwardPrecision.FP32);
        Matrix m = closed.allocate(1, 1);
        closed.close();
        assertThatThrownBy(() -> closed.download(m)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> closed.allocate(1, 1)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void opsAreTheBackendsHostOps() {
        SplittableRandom r = new SplittableRandom(SEED + 1);
        int rows = 9;
        int cols = 12;
        float[] x = random(r, rows * cols);
        float[] g = random(r, cols);
        float[] b = random(r, cols);
        float[] ref = new float[rows * cols];
        cpu.layerNorm(rows, cols, 1e-5f, x, 0, cols, g, 0, b, 0, ref, 0, cols);
        cpu.gelu(rows, cols, ref, 0, cols);
        try (HostWorkspace ws = new HostWorkspace(cpu, ForwardPrecision.FP32)) {
            Matrix y = ws.allocate(rows, cols);
            ws.layerNorm(ws.upload(x, rows, cols), ws.weight(g, 1, cols), ws.weight(b, 1, cols), 1e-5f, y);
            ws.gelu(y);
            assertThat(ws.download(y)).isEqualTo(ref);
        }
    }

    @Test
    void downloadAndReleaseReturnsTheValuesAndReleasesTheMatrixInEitherHandoff() {
        SplittableRandom r = new SplittableRandom(SEED + 7);
        float[] x = random(r, 6 * 5);
        for (ForwardWorkspace.Handoff handoff : ForwardWorkspace.Handoff.values()) {
            try (ForwardWorkspace ws = ForwardWorkspace.open(cpu, ForwardPrecision.FP32, "t", handoff)) {
                assertThat(ws).isInstanceOf(HostWorkspace.class);
                Matrix m = ws.upload(x, 6, 5);
                ws.add(m, m); // 2x, exact in fp32
                float[] out = ws.downloadAndRelease(m);
                assertThat(out).hasSize(30);
                for (int i = 0; i < 30; i++) {
                    assertThat(out[i]).isEqualTo(2 * x[i]);
                }
                assertThatThrownBy(() -> ws.download(m)).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("released");
                assertThatThrownBy(() -> ws.downloadAndRelease(m)).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("released");
                Matrix w = ws.weight(x, 6, 5);
                assertThatThrownBy(() -> ws.downloadAndRelease(w)).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("read-only weight");
            }
        }
    }

    @Test
    void tensorWeightsAreTheirWidenedValuesOncePerWorkspace() {
        SplittableRandom r = new SplittableRandom(SEED + 8);
        int rows = 7;
        int in = 9;
        int out = 5;
        float[] x = random(r, rows * in);
        float[] wf = random(r, out * in);
        for (DType dtype : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            HostTensor t = HostTensor.fromFloats(dtype, new long[] {out, in}, wf);
            HostTensor b = HostTensor.fromFloats(dtype, new long[] {out}, random(r, out));
            float[] widened = t.toFloatArray();
            try (HostWorkspace ws = new HostWorkspace(cpu, ForwardPrecision.FP32)) {
                Matrix wm = ws.weight(t, out, in);
                assertThat(wm.isWeight()).isTrue();
                assertThat(wm.rows()).isEqualTo(out);
                assertThat(wm.cols()).isEqualTo(in);
                float[] got = ws.download(wm);
                assertThat(got).as(dtype.toString()).containsExactly(widened);
                assertThat(ws.download(ws.weight(t, out, in))).as("widened once per workspace").isSameAs(got);
                // the same linear as over the host-widened array, bit for bit
                Matrix y1 = ws.allocate(rows, out);
                ws.linear(ws.upload(x, rows, in), wm, ws.weight(b, 1, out), y1);
                Matrix y2 = ws.allocate(rows, out);
                ws.linear(ws.upload(x, rows, in), ws.weight(widened, out, in), ws.weight(b.toFloatArray(), 1, out), y2);
                assertThat(ws.download(y1)).containsExactly(ws.download(y2));
                assertThatThrownBy(() -> ws.add(ws.allocate(out, in), wm)).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("read-only");
            }
        }
    }

    @Test
    void tensorWeightsOfAnotherDtypeOrSizeAreRefused() {
        try (HostWorkspace ws = new HostWorkspace(cpu, ForwardPrecision.FP32)) {
            HostTensor ints = new HostTensor(DType.I32, new long[] {2, 3}, java.nio.ByteBuffer.allocate(24));
            assertThatThrownBy(() -> ws.weight(ints, 2, 3)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("F32, F16 or BF16");
            HostTensor h = HostTensor.fromFloats(DType.BF16, new long[] {2, 3}, new float[6]);
            assertThatThrownBy(() -> ws.weight(h, 3, 3)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("6 elements");
            assertThat(ws.weight(h, 3, 2).rows()).as("any rows x cols view of the flat values").isEqualTo(3);
        }
        HostWorkspace closed = new HostWorkspace(cpu, ForwardPrecision.FP32);
        closed.close();
        assertThatThrownBy(() -> closed.weight(HostTensor.fromFloats(DType.BF16, new long[] {1}, new float[1]), 1, 1))
                .isInstanceOf(IllegalStateException.class);
    }
}
