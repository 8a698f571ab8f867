package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.HalfFloats;
import io.sparkprune.kernels.ResidentHessian;
import io.sparkprune.kernels.Tf32;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static io.sparkprune.kernels.cuda.CudaBackendParityTest.relErr;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The Hopper kernels of {@code hopper.cu} ({@code wg_gemm_tf32_nt256}, {@code wg_gemm_bf16_nt},
 * {@code wg_syrk_tf32}), reached through {@link CudaBackend}'s public products on a device where
 * {@link CudaBackend#hopperKernels()} holds, against two independent references on fresh random inputs
 * (seeded by the clock; the seed is in every message): the CPU twins (TF32: both operands rounded by
 * {@link Tf32#round}, then {@link CpuBackend#sgemm}, as {@code HostWorkspace} does; bf16: the fp32
 * product of the same bf16 values; the TF32 Hessian: {@link CpuBackend#syrkPackedUpperTf32}) and the
 * {@code mma.sync} kernels on the same device (switched to with {@code useHopperKernels(false)}), which
 * compute the same rounded products in another summation order. GEMM outputs are poisoned (NaN) before
 * the call when beta is 0, and elements outside the C window must keep their values. Skipped, with
 * the reason, without a CUDA device or on a device that is not compute capability 9.0.
 */
@Tag("gpu")
class CudaHopperKernelTest {
    private static final long SEED = System.nanoTime();
    private static CudaBackend gpu;
    private static CpuBackend cpu;
    private static CudaTestDevice device;

    @BeforeAll
    static void open() {
        cpu = CpuBackend.create(Math.max(1, Runtime.getRuntime().availableProcessors()));
        device = CudaTestDevice.open("CUDA Hopper kernel tests", SEED, () -> CudaBackend.create(0, 4));
        gpu = device.backend(0);
        if (gpu != null) {
            System.out.println("compute capability " + gpu.computeCapability() + ", hopperKernels=" + gpu.hopperKernels());
        }
    }

    @AfterAll
    static void close() {
        device.close();
        cpu.close();
    }

    private static void requireHopper() {
        device.require();
        assumeTrue(gpu.hopperKernels(), () -> "the Hopper wgmma kernels are not in use on " + gpu.name()
                + " (compute capability " + gpu.computeCapability() + ", -D" + CudaBackend.WGMMA_PROPERTY + "="
                + System.getProperty(CudaBackend.WGMMA_PROPERTY) + ")");
    }

    @Test
    void hopperKernelsAreInUseOnComputeCapability90() {
        device.require();
        assumeTrue(gpu.computeCapability() == 90, () -> gpu.name() + " has compute capability "
                + gpu.computeCapability() + ", not 9.0");
        assumeTrue(!"false".equalsIgnoreCase(String.valueOf(System.getProperty(CudaBackend.WGMMA_PROPERTY)).trim()),
                "switched off by -D" + CudaBackend.WGMMA_PROPERTY + "=false");
        assertThat(gpu.hopperKernels()).as("sparkprune_sm90a.fatbin loaded on " + gpu.name()).isTrue();
        gpu.useHopperKernels(false);
        try {
            assertThat(gpu.hopperKernels()).isFalse();
        } finally {
            gpu.useHopperKernels(true);
        }
        assertThat(gpu.hopperKernels()).isTrue();
    }

    // ------------------------------------------------------------------ TF32 NT GEMM

    @Test
    void tf32NtGemmMatchesCpuTwinAndMmaSync() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        int[][] shapes = {{1000, 770, 264}, {333, 1030, 136}, {2048, 4096, 4096}};
        for (int s = 0; s < shapes.length; s++) {
            checkTf32Nt(r, shapes[s][0], shapes[s][1], shapes[s][2], s == 1 ? -0.75f : 1f, s == 1 ? 0.5f : 0f,
                    "tf32 NT");
        }
    }

    @Test
    void tf32NtGemmInScratchPiecesMatchesCpuTwinAndMmaSync() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        // 256 KiB pieces: 256 rows of A and of B per piece at k = 264, so 4 × 4 piece launches, B rounded per piece
        gpu.wgScratchBytes(256L << 10);
        try {
            checkTf32Nt(r, 1000, 770, 264, 1.25f, 0.5f, "tf32 NT in pieces");
            checkTf32Nt(r, 300, 1030, 136, 1f, 0f, "tf32 NT in pieces");
        } finally {
            gpu.wgScratchBytes(CudaBackend.WG_SCRATCH_BYTES);
        }
    }

    /** k not a multiple of 4: the mma.sync kernel runs, and the answer is still the twin's. */
    @Test
    void tf32NtGemmThatMustFallBackIsRight() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        checkTf32Nt(r, 300, 500, 262, 1f, 0f, "tf32 NT fallback k=262");
    }

    private static void checkTf32Nt(SplittableRandom r, int m, int n, int k, float alpha, float beta, String what) {
        int aOff = 1;
        int bOff = 3;
        int cOff = 2;
        int lda = k + 4;
        int ldb = k;
        int ldc = n + 1;
        String tag = what + " " + m + "x" + n + "x" + k + " alpha=" + alpha + " beta=" + beta + " seed=" + SEED;
        float[] a = randomF(r, aOff + m * lda, 1);
        float[] b = randomF(r, bOff + n * ldb, 1);
        float[] c = randomF(r, cOff + m * ldc, 1);
        float[] ar = new float[a.length];
        float[] br = new float[b.length];
        for (int i = 0; i < a.length; i++) {
            ar[i] = Tf32.round(a[i]);
        }
        for (int i = 0; i < b.length; i++) {
            br[i] = Tf32.round(b[i]);
        }
        float[] ref = c.clone();
        cpu.sgemm(false, true, m, n, k, alpha, ar, aOff, lda, br, bOff, ldb, beta, ref, cOff, ldc);
        float[] got = beta == 0f ? poison(c, cOff, ldc, m, n) : c.clone();
        gpu.sgemmTf32(false, true, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, got, cOff, ldc);
        float[] old = beta == 0f ? poison(c, cOff, ldc, m, n) : c.clone();
        gpu.useHopperKernels(false);
        try {
            gpu.sgemmTf32(false, true, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, old, cOff, ldc);
        } finally {
            gpu.useHopperKernels(true);
        }
        assertOutsideKept(got, c, cOff, ldc, m, n, tag);
        float[] g = window(got, cOff, ldc, m, n);
        assertThat(relErr(g, window(ref, cOff, ldc, m, n))).as(tag + " vs CPU twin").isLessThanOrEqualTo(5e-4);
        assertThat(relErr(g, window(old, cOff, ldc, m, n))).as(tag + " vs mma.sync sgemm_tf32_nt")
                .isLessThanOrEqualTo(1e-5);
    }

    // ------------------------------------------------------------------ bf16 NT GEMM

    @Test
    void bf16NtGemmMatchesCpuAndMmaSync() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 4);
        int[][] shapes = {{1000, 770, 264}, {333, 1030, 136}, {2048, 4096, 4096}};
        for (int s = 0; s < shapes.length; s++) {
            checkBf16Nt(r, shapes[s][0], shapes[s][1], shapes[s][2], s == 1 ? 0.5f : 0f, "bf16 NT");
        }
    }

    /** k = 262 is not a multiple of 8: gemm_bf16_nt runs, and the answer is still right. */
    @Test
    void bf16NtGemmThatMustFallBackIsRight() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 5);
        checkBf16Nt(r, 300, 500, 262, 0f, "bf16 NT fallback k=262");
        checkBf16Nt(r, 129, 257, 262, 0.5f, "bf16 NT fallback k=262");
    }

    private static void checkBf16Nt(SplittableRandom r, int m, int n, int k, float beta, String what) {
        String tag = what + " " + m + "x" + n + "x" + k + " beta=" + beta + " seed=" + SEED;
        float[] af = randomF(r, m * k, 1);
        float[] bf = randomF(r, n * k, 1);
        short[] a = new short[af.length];
        short[] b = new short[bf.length];
        for (int i = 0; i < af.length; i++) {
            a[i] = HalfFloats.floatToBf16(af[i]);
            af[i] = HalfFloats.bf16ToFloat(a[i]);
        }
        for (int i = 0; i < bf.length; i++) {
            b[i] = HalfFloats.floatToBf16(bf[i]);
            bf[i] = HalfFloats.bf16ToFloat(b[i]);
        }
        float[] c = randomF(r, m * n, 1);
        float[] ref = c.clone();
        cpu.sgemm(false, true, m, n, k, 1.5f, af, 0, k, bf, 0, k, beta, ref, 0, n);
        float[] got = beta == 0f ? poison(c, 0, n, m, n) : c.clone();
        gpu.gemmBf16(false, true, m, n, k, 1.5f, a, 0, k, b, 0, k, beta, got, 0, n);
        float[] old = beta == 0f ? poison(c, 0, n, m, n) : c.clone();
        gpu.useHopperKernels(false);
        try {
            gpu.gemmBf16(false, true, m, n, k, 1.5f, a, 0, k, b, 0, k, beta, old, 0, n);
        } finally {
            gpu.useHopperKernels(true);
        }
        assertThat(relErr(got, ref)).as(tag + " vs CPU").isLessThanOrEqualTo(1e-2);
        assertThat(relErr(got, old)).as(tag + " vs mma.sync gemm_bf16_nt").isLessThanOrEqualTo(1e-5);
    }

    // ------------------------------------------------------------------ TF32 Hessian

    /**
     * {@code syrkPackedUpperTf32} (transpose_round_tf32 + wg_syrk_tf32) against its CPU twin, onto a
     * non-zero packed sum, as {@code CudaForwardParityTest.tf32HessianMatchesItsCpuTwin} bounds it:
     * per element {@code 4 · kc · 2^-24 · Σ|products|} per 256-token chunk. Token counts are not
     * multiples of 256 (a partial last chunk) and partly not of 4 (zeroed padding of Xᵀ); on a
     * 132-SM H100/H200 n = 130 and 1000 split the tokens over blocks (fp64 atomics), n = 4096 and
     * k ≤ 256 do not.
     */
    @Test
    void tf32HessianMatchesItsCpuTwin() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 6);
        for (int[] shape : new int[][] {{130, 1001}, {130, 200}, {1000, 777}, {1000, 250}, {4096, 600}}) {
            checkSyrkTf32(r, shape[0], shape[1], "syrkTf32");
        }
    }

    @Test
    void tf32HessianInScratchPiecesMatchesItsCpuTwin() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 7);
        // 256 KiB pieces: 256 tokens per piece at n = 130 and 1000 (4 pieces; the last, of 233 and 9 tokens, with zeroed padding in Xᵀ)
        gpu.wgScratchBytes(256L << 10);
        try {
            checkSyrkTf32(r, 130, 1001, "syrkTf32 in pieces");
            checkSyrkTf32(r, 1000, 777, "syrkTf32 in pieces");
        } finally {
            gpu.wgScratchBytes(CudaBackend.WG_SCRATCH_BYTES);
        }
    }

    /** The resident TF32 Hessian ({@code addTf32} of two batches) against the twin called per batch. */
    @Test
    void residentTf32HessianMatchesItsCpuTwin() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 8);
        int n = 1000;
        int packed = n * (n + 1) / 2;
        int[] ks = {300, 513};
        double[] start = new double[packed];
        for (int i = 0; i < packed; i++) {
            start[i] = r.nextDouble();
        }
        double[] twin = start.clone();
        double[] got = start.clone();
        double[] bound = new double[packed];
        try (ResidentHessian.Accumulator h = gpu.openHessian(n, "hopper test")) {
            for (int k : ks) {
                int ldx = n + 3;
                float[] x = randomF(r, 1 + k * ldx, 1);
                cpu.syrkPackedUpperTf32(n, k, x, 1, ldx, twin);
                h.addTf32(k, x, 1, ldx);
                double[] b = chunkBound(n, k, x, 1, ldx);
                for (int i = 0; i < packed; i++) {
                    bound[i] += b[i];
                }
            }
            h.addTo(got);
        }
        assertWithinBound(got, twin, bound, "resident addTf32 n=" + n + " k=300+513 seed=" + SEED);
    }

    private static void checkSyrkTf32(SplittableRandom r, int n, int k, String what) {
        String tag = what + " n=" + n + " k=" + k + " seed=" + SEED;
        int ldx = n + (n % 2);
        float[] x = randomF(r, 2 + k * ldx, 1);
        int packed = n * (n + 1) / 2;
        double[] start = new double[packed];
        for (int i = 0; i < packed; i++) {
            start[i] = r.nextDouble() * 4 - 2;
        }
        double[] twin = start.clone();
        double[] got = start.clone();
        cpu.syrkPackedUpperTf32(n, k, x, 2, ldx, twin);
        gpu.syrkPackedUpperTf32(n, k, x, 2, ldx, got);
        assertWithinBound(got, twin, chunkBound(n, k, x, 2, ldx), tag);
    }

    private static void assertWithinBound(double[] got, double[] twin, double[] bound, String tag) {
        int bad = -1;
        for (int p = 0; p < twin.length; p++) {
            double allowed = 1.001 * bound[p] + 1e-12 * (1 + Math.abs(twin[p]));
            if (!(Math.abs(got[p] - twin[p]) <= allowed)) {
                bad = p;
                break;
            }
        }
        if (bad >= 0) {
            assertThat(got[bad]).as(tag + ": packed element " + bad + " (bound " + bound[bad] + ")")
                    .isCloseTo(twin[bad], org.assertj.core.data.Offset.offset(1.001 * bound[bad]));
        }
        assertThat(bad).as(tag + ": first packed element outside the bound").isEqualTo(-1);
    }

    /**
     * Per packed element, {@code Σ over chunks of 4 · kc · 2^-24 · Σ_t |x̃_ti · x̃_tj|} with x̃ the
     * TF32-rounded X: each row of |x̃| scaled by the square root of its chunk's factor, then the exact
     * {@link CpuBackend#syrkPackedUpper} (fp64 sums).
     */
    private static double[] chunkBound(int n, int k, float[] x, int off, int ldx) {
        float[] y = new float[k * n];
        for (int t = 0; t < k; t++) {
            int c0 = t / 256 * 256;
            int kc = Math.min(256, k - c0);
            float s = (float) Math.sqrt(4.0 * kc * 0x1p-24);
            for (int i = 0; i < n; i++) {
                y[t * n + i] = Math.abs(Tf32.round(x[off + t * ldx + i])) * s;
            }
        }
        double[] b = new double[n * (n + 1) / 2];
        cpu.syrkPackedUpper(n, k, y, 0, n, b);
        return b;
    }

    // ------------------------------------------------------------------ helpers

    private static float[] randomF(SplittableRandom r, int n, double scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
        return x;
    }

    /** A copy with the window's elements NaN (the GPU must overwrite every one). */
    private static float[] poison(float[] c, int off, int ld, int rows, int cols) {
        float[] p = c.clone();
        for (int i = 0; i < rows; i++) {
            Arrays.fill(p, off + i * ld, off + i * ld + cols, Float.NaN);
        }
        return p;
    }

    /** The window as a dense {@code rows × cols} array. */
    private static float[] window(float[] a, int off, int ld, int rows, int cols) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < rows; i++) {
            System.arraycopy(a, off + i * ld, w, i * cols, cols);
        }
        return w;
    }

    private static void assertOutsideKept(float[] got, float[] before, int off, int ld, int rows, int cols, String tag) {
        for (int i = 0; i < got.length; i++) {
            int rel = i - off;
            boolean inside = rel >= 0 && rel / ld < rows && rel % ld < cols;
            if (!inside && Float.floatToIntBits(got[i]) != Float.floatToIntBits(before[i])) {
                assertThat(got[i]).as(tag + ": element " + i + " outside the C window changed").isEqualTo(before[i]);
            }
        }
    }

    /**
     * The solve's lazy updates on the 3xTF32 kernel against the same solve with sgemm_f32 (Hopper
     * kernels switched off) and against the block-wise CPU loop: 2:4, a tall and a wide shape, block widths
     * of 128 (3xTF32) and a width of 36 columns in the last block; and 1:2 with blocks of 6 columns (their
     * own updates on sgemm_f32, the super-blocks' on 3xTF32).
     */
    @Test
    void solveWith3xTf32LazyUpdatesMatchesSgemmAndCpu() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 40);
        int[][] shapes = {{1500 + r.nextInt(100), 548, 128, 2, 4}, {300 + r.nextInt(50), 1060, 128, 2, 4},
            {400 + r.nextInt(50), 300, 6, 1, 2}};
        for (int[] shape : shapes) {
            int rows = shape[0];
            int cols = shape[1];
            int bs = shape[2];
            int keep = shape[3];
            int group = shape[4];
            float[] w0 = CudaBackendParityTest.randomF(r, rows * cols);
            float[] u = CudaBackendParityTest.inverseFactor(r, cols);
            float[][] w = new float[2][];
            byte[][] m = new byte[2][];
            double[][] l = new double[2][];
            for (int path = 0; path < 2; path++) {
                gpu.useHopperKernels(path == 0);
                try {
                    w[path] = w0.clone();
                    long[] bits = new long[io.sparkprune.kernels.ResidentSolver.SolveJob.maskWords(rows, cols)];
                    l[path] = new double[rows];
                    gpu.sparseGptSolve(new io.sparkprune.kernels.ResidentSolver.SolveJob(rows, cols, bs, w[path], u, keep,
                            group, null, null, bits, l[path]));
                    m[path] = io.sparkprune.kernels.MaskBits.unpack(bits, rows, cols);
                } finally {
                    gpu.useHopperKernels(true);
                }
            }
            float[] wc = w0.clone();
            byte[] mc = new byte[rows * cols];
            double[] lc = new double[rows];
            float[] err = new float[rows * bs];
            for (int i1 = 0; i1 < cols; i1 += bs) {
                int width = Math.min(bs, cols - i1);
                int i2 = i1 + width;
                cpu.sparseGptBlock(new io.sparkprune.kernels.SparseGptBlock(rows, width,
                        new io.sparkprune.kernels.FloatView(wc, i1, cols), new io.sparkprune.kernels.FloatView(u, i1 * cols + i1, cols),
                        new io.sparkprune.kernels.FloatView(err, 0, width), new io.sparkprune.kernels.ByteView(mc, i1, cols), keep,
                        group, null, lc, 0));
                if (i2 < cols) {
                    cpu.sgemm(false, false, rows, cols - i2, width, -1f, err, 0, width, u, i1 * cols + i2, cols, 1f, wc, i2, cols);
                }
            }
            String tag = "3xTF32 solve " + rows + "x" + cols + " " + keep + ":" + group + " blocks of " + bs + " seed=" + SEED;
            double agreeSgemm = agreement(m[0], m[1]);
            double agreeCpu = agreement(m[0], mc);
            System.out.printf("%s: mask vs sgemm_f32 solve %.6f, vs CPU %.6f; w rel %.2e / %.2e%n", tag, agreeSgemm, agreeCpu,
                    relErr(w[0], w[1]), relErr(w[0], wc));
            assertThat(agreeSgemm).as(tag + " mask vs sgemm_f32 path").isGreaterThanOrEqualTo(0.999);
            assertThat(agreeCpu).as(tag + " mask vs CPU").isGreaterThanOrEqualTo(0.999);
            // a near-tie that rounds the other way flips a few mask entries (allowed above), and the OBS updates
            // of that row then differ by far more than rounding: weights and losses are compared on the rows whose
            // masks are equal (on most seeds, all of them)
            boolean[] same = sameMaskRows(m[0], m[1], mc, rows, cols);
            long sameRows = IntStream.range(0, rows).filter(i -> same[i]).count();
            assertThat(sameRows).as(tag + " rows with equal masks").isGreaterThanOrEqualTo((long) (0.99 * rows));
            assertThat(relErr(rowsOf(w[0], same, cols), rowsOf(w[1], same, cols))).as(tag + " w vs sgemm_f32 path")
                    .isLessThanOrEqualTo(1e-5);
            assertThat(relErr(rowsOf(w[0], same, cols), rowsOf(wc, same, cols))).as(tag + " w vs CPU")
                    .isLessThanOrEqualTo(1e-5);
            assertThat(relErr(rowsOf(l[0], same), rowsOf(lc, same))).as(tag + " loss vs CPU").isLessThanOrEqualTo(1e-5);
        }
    }

    /** Rows whose mask is the same in all three. */
    private static boolean[] sameMaskRows(byte[] a, byte[] b, byte[] c, int rows, int cols) {
        boolean[] same = new boolean[rows];
        for (int r = 0; r < rows; r++) {
            same[r] = java.util.Arrays.equals(a, r * cols, (r + 1) * cols, b, r * cols, (r + 1) * cols)
                    && java.util.Arrays.equals(a, r * cols, (r + 1) * cols, c, r * cols, (r + 1) * cols);
        }
        return same;
    }

    /** The kept rows of a rows × cols matrix, concatenated. */
    private static float[] rowsOf(float[] w, boolean[] keep, int cols) {
        float[] out = new float[w.length];
        int n = 0;
        for (int r = 0; r < keep.length; r++) {
            if (keep[r]) {
                System.arraycopy(w, r * cols, out, n, cols);
                n += cols;
            }
        }
        return java.util.Arrays.copyOf(out, n);
    }

    /** The kept entries of a per-row vector. */
    private static double[] rowsOf(double[] v, boolean[] keep) {
        double[] out = new double[v.length];
        int n = 0;
        for (int r = 0; r < keep.length; r++) {
            if (keep[r]) {
                out[n++] = v[r];
            }
        }
        return java.util.Arrays.copyOf(out, n);
    }

    private static double agreement(byte[] a, byte[] b) {
        int same = 0;
        for (int i = 0; i < a.length; i++) {
            if (a[i] == b[i]) {
                same++;
            }
        }
        return (double) same / a.length;
    }
}
