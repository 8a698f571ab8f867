package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.ByteView;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.SparseGptBlock;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Every GPU kernel of {@link CudaBackend} against {@link CpuBackend} on fresh random inputs (the seed
 * is in every message): fp32 results within 1e-5 relative (Frobenius) error, fp64 Hessian sums within
 * 1e-12, SparseGPT masks at least 99.9% equal. Skipped, with the reason, when no CUDA device is usable.
 */
@Tag("gpu")
class CudaBackendParityTest extends CudaSuite {
    private static void requireDevice() {
        device.require();
    }

    /** n uniform values in [-1, 1), shared by the GPU tests of this package. */
    static float[] randomF(SplittableRandom r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return x;
    }

    static double relErr(float[] got, float[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            if (Float.isNaN(got[i]) != Float.isNaN(ref[i])) {
                return Double.POSITIVE_INFINITY;
            }
            if (Float.isNaN(ref[i])) {
                continue;
            }
            double d = (double) got[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    static double relErr(double[] got, double[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = got[i] - ref[i];
            num += d * d;
            den += ref[i] * ref[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    static int equalBits(float[] a, float[] b) {
        int n = 0;
        for (int i = 0; i < a.length; i++) {
            if (Float.floatToIntBits(a[i]) == Float.floatToIntBits(b[i])) {
                n++;
            }
        }
        return n;
    }

    @Test
    void sgemmMatchesCpuForAllTransposesStridesAndBetas() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED);
        for (int trial = 0; trial < 14; trial++) {
            boolean ta = (trial & 1) != 0;
            boolean tb = (trial & 2) != 0;
            boolean big = trial >= 12;
            int m = big ? 1000 + r.nextInt(100) : 1 + r.nextInt(300);
            int n = big ? 1000 + r.nextInt(100) : 1 + r.nextInt(300);
            int k = big ? 1000 + r.nextInt(100) : 1 + r.nextInt(600);
            float alpha = trial % 3 == 0 ? -1f : (float) r.nextDouble(-2, 2);
            float beta = trial % 4 == 0 ? 0f : (trial % 4 == 1 ? 1f : 0.5f);
            int lda = (ta ? m : k) + r.nextInt(3);
            int ldb = (tb ? k : n) + r.nextInt(3);
            int ldc = n + r.nextInt(3);
            int aOff = r.nextInt(4);
            int cOff = r.nextInt(4);
            float[] a = randomF(r, aOff + (ta ? k : m) * lda + 5);
            float[] b = randomF(r, (tb ? n : k) * ldb + 5);
            float[] c = randomF(r, cOff + m * ldc + 3);
            if (beta == 0f) {
                Arrays.fill(c, Float.NaN); // poison: every element of the window must be written
                for (int i = 0; i < c.length; i++) {
                    int rel = i - cOff;
                    if (rel < 0 || rel / ldc >= m || rel % ldc >= n) {
                        c[i] = 7f;
                    }
                }
            }
            float[] cg = c.clone();
            float[] cc = c.clone();
            gpu.sgemm(ta, tb, m, n, k, alpha, a, aOff, lda, b, 0, ldb, beta, cg, cOff, ldc);
            cpu.sgemm(ta, tb, m, n, k, alpha, a, aOff, lda, b, 0, ldb, beta, cc, cOff, ldc);
            double err = relErr(cg, cc);
            String tag = "sgemm ta=" + ta + " tb=" + tb + " " + m + "x" + n + "x" + k + " beta=" + beta + " seed=" + SEED;
            System.out.printf("%s rel err %.3e%n", tag, err);
            assertThat(err).as(tag).isLessThanOrEqualTo(1e-5);
        }
    }

    @Test
    void syrkPackedUpperMatchesCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        int[][] shapes = {{1, 1}, {5, 17}, {64, 64}, {65, 300}, {200 + r.nextInt(100), 1 + r.nextInt(900)}, {517, 2048}};
        for (int[] s : shapes) {
            int n = s[0];
            int k = s[1];
            int ldx = n + r.nextInt(3);
            float[] x = randomF(r, 2 + k * ldx);
            double[] c0 = new double[n * (n + 1) / 2];
            for (int i = 0; i < c0.length; i++) {
                c0[i] = r.nextDouble() * 4 - 2;
            }
            double[] cg = c0.clone();
            double[] cc = c0.clone();
            gpu.syrkPackedUpper(n, k, x, 2, ldx, cg);
            cpu.syrkPackedUpper(n, k, x, 2, ldx, cc);
            double err = relErr(cg, cc);
            String tag = "syrk n=" + n + " k=" + k + " seed=" + SEED;
            System.out.printf("%s rel err %.3e%n", tag, err);
            assertThat(err).as(tag).isLessThanOrEqualTo(1e-12);
        }
    }

    /** An upper factor U with Uᵀ·U = (XᵀX/k + 0.01·I)⁻¹, fp32 (the solver's U). */
    static float[] inverseFactor(SplittableRandom r, int n) {
        try (CpuBackend be = CpuBackend.create(2)) {
            return inverseFactor(be, gram(r, n, 2 * n + 8), n, 0.01);
        }
    }

    /** The upper triangle of XᵀX/k (fp64, n × n, zeros below) for k random tokens of n uniform features. */
    static double[] gram(SplittableRandom r, int n, int k) {
        float[] x = randomF(r, k * n);
        double[] h = new double[n * n];
        for (int t = 0; t < k; t++) {
            for (int i = 0; i < n; i++) {
                double xi = x[t * n + i];
                for (int j = i; j < n; j++) {
                    h[i * n + j] += xi * x[t * n + j] / k;
                }
            }
        }
        return h;
    }

    /**
     * U (fp32) of the CPU backend: the upper Cholesky factor of {@code (H + λI)⁻¹}, in fp64 then rounded.
     *
     * @param h H, n × n fp64; its upper triangle is read, it is not modified
     */
    static float[] inverseFactor(CpuBackend be, double[] h, int n, double lambda) {
        double[] a = h.clone();
        for (int i = 0; i < n; i++) {
            a[i * n + i] += lambda;
        }
        assertThat(be.inverseCholeskyUpper(n, a, 0, n)).isTrue();
        float[] u = new float[n * n];
        for (int i = 0; i < u.length; i++) {
            u[i] = (float) a[i];
        }
        return u;
    }

    private record BlockCase(int rows, int width, int nmKeep, int nmGroup, boolean preMask, int qbits, boolean sym,
                             int qgroup) {
    }

    @Test
    void sparseGptBlockMatchesCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        BlockCase[] cases = {
            new BlockCase(1 + r.nextInt(300), 128, 2, 4, false, 0, false, 0),
            new BlockCase(1 + r.nextInt(300), 128, 4, 8, false, 0, false, 0),
            new BlockCase(1 + r.nextInt(300), 64, 16, 64, false, 0, false, 0),
            new BlockCase(1 + r.nextInt(300), 96, 0, 0, true, 0, false, 0),
            new BlockCase(1 + r.nextInt(300), 128, 2, 4, false, 4, false, 0),
            new BlockCase(1 + r.nextInt(300), 128, 0, 0, true, 4, false, 0),
            new BlockCase(1 + r.nextInt(300), 128, 2, 4, false, 3, true, 32),
            new BlockCase(1 + r.nextInt(300), 128, 0, 0, false, 8, false, 64),
            new BlockCase(1000, 128, 2, 4, false, 0, false, 0),
            // from CudaBackend.BLOCK_ROWS_MIN rows the thread-per-row kernel runs: the same bits
            new BlockCase(CudaBackend.BLOCK_ROWS_MIN + r.nextInt(300), 128, 2, 4, false, 0, false, 0),
            new BlockCase(CudaBackend.BLOCK_ROWS_MIN + r.nextInt(300), 96, 0, 0, true, 4, false, 0),
            new BlockCase(CudaBackend.BLOCK_ROWS_MIN + r.nextInt(300), 128, 2, 4, false, 3, true, 32),
        };
        for (BlockCase bc : cases) {
            int rows = bc.rows();
            int width = bc.width();
            // a window of a wider weight, as the solver passes it
            BlockInput in = blockInput(r, bc, width + 3 + r.nextInt(200));
            Run g = in.run(gpu, bc);
            Run c = in.run(cpu, bc);
            int same = 0;
            for (int i = 0; i < g.mask.length; i++) {
                if (g.mask[i] == c.mask[i]) {
                    same++;
                }
            }
            double maskAgree = (double) same / g.mask.length;
            double wErr = relErr(g.w, c.w);
            double eErr = relErr(g.err, c.err);
            double lErr = relErr(g.loss, c.loss);
            String tag = "block " + bc + " seed=" + SEED;
            System.out.printf("%s mask %.6f  w rel %.2e (bitwise equal %d/%d)  err rel %.2e  loss rel %.2e%n",
                    tag, maskAgree, wErr, equalBits(g.w, c.w), g.w.length, eErr, lErr);
            assertThat(maskAgree).as(tag + " mask agreement").isGreaterThanOrEqualTo(0.999);
            assertThat(wErr).as(tag + " w").isLessThanOrEqualTo(1e-5);
            assertThat(eErr).as(tag + " err").isLessThanOrEqualTo(1e-5);
            assertThat(lErr).as(tag + " loss").isLessThanOrEqualTo(1e-5);
            if (bc.nmGroup() > 0) {
                for (int row = 0; row < rows; row++) {
                    for (int i = 0; i < width; i += bc.nmGroup()) {
                        int pruned = 0;
                        for (int j = 0; j < bc.nmGroup(); j++) {
                            pruned += g.mask[row * width + i + j];
                        }
                        assertThat(pruned).as(tag + " pruned per group").isEqualTo(bc.nmGroup() - bc.nmKeep());
                    }
                }
            }
            if (bc.qbits() > 0) {
                int codesSame = 0;
                for (int i = 0; i < g.codes.length; i++) {
                    if (g.codes[i] == c.codes[i]) {
                        codesSame++;
                    }
                }
                assertThat((double) codesSame / g.codes.length).as(tag + " codes").isGreaterThanOrEqualTo(0.999);
                assertThat(relErr(g.scale, c.scale)).as(tag + " scales").isLessThanOrEqualTo(1e-5);
                assertThat(relErr(g.zero, c.zero)).as(tag + " zeros").isLessThanOrEqualTo(1e-5);
            }
        }
    }

    /**
     * Every fused block kernel (forced through {@link CudaBackend#blockKernel(CudaBackend.BlockKernel)}:
     * the lane kernels of sparsegpt_lanes.cuh, the warp- and thread-per-row kernels) against the CPU
     * backend, BITWISE: W, Err, mask, codes, grid scales and zeros, per-row losses. Cases: 2:4 and 4:8
     * (a lane kernel whose lanes the group does not divide falls back to sparsegpt_block), pre-selected
     * masks, 4- and 8-bit grids per row and per group (32, 64, and 25 on a 100-column block), row counts
     * that are no multiple of the thread-block rows, blocks of 128, 104 and 100 columns inside wider rows.
     */
    @Test
    void everyBlockKernelMatchesCpuBitwise() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 7);
        BlockCase[] cases = {
            new BlockCase(1 + r.nextInt(700), 128, 2, 4, false, 0, false, 0),
            new BlockCase(1 + r.nextInt(700), 104, 4, 8, false, 0, false, 0),
            new BlockCase(1 + r.nextInt(700), 100, 0, 0, true, 0, false, 0),
            new BlockCase(1 + r.nextInt(700), 128, 2, 4, false, 4, false, 0),
            new BlockCase(1 + r.nextInt(700), 128, 4, 8, false, 4, false, 32),
            new BlockCase(1 + r.nextInt(700), 128, 0, 0, true, 8, true, 64),
            new BlockCase(1 + r.nextInt(700), 100, 2, 4, false, 4, false, 25),
            new BlockCase(1 + r.nextInt(700), 100, 0, 0, true, 8, true, 0),
            new BlockCase(4_096 + 1 + r.nextInt(300), 128, 2, 4, false, 0, false, 0),
        };
        CudaBackend.BlockKernel before = gpu.blockKernel();
        try {
            for (CudaBackend.BlockKernel k : CudaBackend.BlockKernel.values()) {
                gpu.blockKernel(k);
                for (BlockCase bc : cases) {
                    int rows = bc.rows();
                    int width = bc.width();
                    BlockInput in = blockInput(r, bc, width + 1 + r.nextInt(60));
                    Run g = in.run(gpu, bc);
                    Run c = in.run(cpu, bc);
                    String tag = k + " " + bc + " ld=" + in.ld() + " seed=" + SEED;
                    assertThat(equalBits(g.w, c.w)).as(tag + " W bitwise").isEqualTo(c.w.length);
                    assertThat(equalBits(g.err, c.err)).as(tag + " Err bitwise").isEqualTo(c.err.length);
                    assertThat(g.mask).as(tag + " mask").isEqualTo(c.mask);
                    assertThat(g.loss).as(tag + " loss bitwise").isEqualTo(c.loss);
                    assertThat(g.codes).as(tag + " codes").isEqualTo(c.codes);
                    assertThat(equalBits(g.scale, c.scale)).as(tag + " scales bitwise").isEqualTo(c.scale.length);
                    assertThat(equalBits(g.zero, c.zero)).as(tag + " zeros bitwise").isEqualTo(c.zero.length);
                }
            }
        } finally {
            gpu.blockKernel(before);
        }
    }

    private static final class Run {
        float[] w;
        float[] err;
        byte[] mask;
        double[] loss;
        byte[] codes;
        float[] scale;
        float[] zero;
    }

    /**
     * Random inputs of one block case: a {@code rows × width} window at offset {@code off} (0..2) of a
     * weight with row stride {@code ld}, an inverse factor, a pre-selected mask when the case has one,
     * and the per-row grids when it quantizes per row (per-group grids are fitted by the kernels).
     */
    private record BlockInput(float[] wAll, int off, int ld, float[] u, byte[] mask, float[] scale, float[] zero,
                              int gcols) {
        /** Runs the case on {@code be} on copies of the inputs. */
        Run run(io.sparkprune.kernels.Backend be, BlockCase bc) {
            return runBlock(be, bc, wAll.clone(), off, ld, u, mask.clone(), scale.clone(), zero.clone(), gcols);
        }
    }

    private static BlockInput blockInput(SplittableRandom r, BlockCase bc, int ld) {
        int rows = bc.rows();
        int width = bc.width();
        int off = r.nextInt(3);
        float[] wAll = randomF(r, off + rows * ld);
        float[] u = inverseFactor(r, width);
        byte[] mask = new byte[rows * width];
        if (bc.preMask()) {
            for (int i = 0; i < mask.length; i++) {
                mask[i] = (byte) (r.nextDouble() < 0.5 ? 1 : 0);
            }
        }
        int gcols = bc.qbits() == 0 ? 0 : (bc.qgroup() == 0 ? 1 : width / bc.qgroup());
        float[] scale = new float[Math.max(1, rows * gcols)];
        float[] zero = new float[Math.max(1, rows * gcols)];
        if (bc.qbits() > 0 && bc.qgroup() == 0) {
            float[] g = new float[2];
            for (int row = 0; row < rows; row++) {
                io.sparkprune.kernels.GridMath.fit(wAll, off + row * ld, width, 1, bc.qbits(), bc.sym(), g, 0);
                scale[row] = g[0];
                zero[row] = g[1];
            }
        }
        return new BlockInput(wAll, off, ld, u, mask, scale, zero, gcols);
    }

    private static Run runBlock(io.sparkprune.kernels.Backend be, BlockCase bc, float[] wAll, int off, int ld, float[] u,
                                byte[] mask, float[] scale, float[] zero, int gcols) {
        int rows = bc.rows();
        int width = bc.width();
        float[] err = new float[rows * width];
        Arrays.fill(err, Float.NaN);
        double[] loss = new double[rows + 2];
        Arrays.fill(loss, 0.25);
        byte[] codes = new byte[rows * width];
        SparseGptBlock.Quant q = bc.qbits() == 0 ? null : new SparseGptBlock.Quant(bc.qbits(), bc.sym(), bc.qgroup(),
                new FloatView(scale, 0, gcols), new FloatView(zero, 0, gcols), new ByteView(codes, 0, width));
        be.sparseGptBlock(new SparseGptBlock(rows, width, new FloatView(wAll, off, ld), new FloatView(u, 0, width),
                new FloatView(err, 0, width), new ByteView(mask, 0, width), bc.nmKeep(), bc.nmGroup(), q, loss, 1));
        Run run = new Run();
        run.w = new float[rows * width];
        for (int row = 0; row < rows; row++) {
            System.arraycopy(wAll, off + row * ld, run.w, row * width, width);
        }
        run.err = err;
        run.mask = mask;
        run.loss = loss;
        run.codes = codes;
        run.scale = scale;
        run.zero = zero;
        return run;
    }

    @Test
    void wholeWeightSolveOnTheDeviceMatchesTheBlockwiseCpuSolve() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        int rows = 1200 + r.nextInt(200); // one row whose 2:4 choices cascade after a near-tie flip stays under 0.1 %
        int cols = 900; // 7 blocks, the last 4 columns wide; super-blocks of 2 blocks, the last one partial
        int bs = 128;
        float[] w0 = randomF(r, rows * cols);
        float[] u = inverseFactor(r, cols);
        float[] wg = w0.clone();
        long[] mgBits = new long[io.sparkprune.kernels.ResidentSolver.SolveJob.maskWords(rows, cols)];
        double[] lg = new double[rows];
        int lazyBlocks = gpu.lazyUpdateBlocks();
        gpu.lazyUpdateBlocks(2);
        try {
            gpu.sparseGptSolve(new io.sparkprune.kernels.ResidentSolver.SolveJob(rows, cols, bs, wg, u, 2, 4, null, null,
                    mgBits, lg));
        } finally {
            gpu.lazyUpdateBlocks(lazyBlocks);
        }
        byte[] mg = io.sparkprune.kernels.MaskBits.unpack(mgBits, rows, cols); // also: no bit beyond cols
        // the reference's one-level loop on the CPU backend: block solve, then the lazy update of all
        // columns right of the block
        float[] wc = w0.clone();
        byte[] mc = new byte[rows * cols];
        double[] lc = new double[rows];
        float[] err = new float[rows * bs];
        for (int i1 = 0; i1 < cols; i1 += bs) {
            int width = Math.min(bs, cols - i1);
            int i2 = i1 + width;
            cpu.sparseGptBlock(new SparseGptBlock(rows, width, new FloatView(wc, i1, cols), new FloatView(u, i1 * cols + i1, cols),
                    new FloatView(err, 0, width), new ByteView(mc, i1, cols), 2, 4, null, lc, 0));
            if (i2 < cols) {
                cpu.sgemm(false, false, rows, cols - i2, width, -1f, err, 0, width, u, i1 * cols + i2, cols, 1f, wc, i2, cols);
            }
        }
        int same = 0;
        for (int i = 0; i < mg.length; i++) {
            if (mg[i] == mc[i]) {
                same++;
            }
        }
        double agree = (double) same / mg.length;
        // the device's lazy update (3xTF32 on Hopper) rounds differently from the CPU's fp32 sgemm, so a
        // near-tie of the 2:4 ranking may flip (the ≥ 99.9 % mask criterion allows it); such a row's
        // weights and loss then differ by the flipped entries, not by rounding: compare the values on
        // the rows whose masks agree (one failure in three runs on an H200 came from one such row)
        java.util.List<Integer> sameRows = new java.util.ArrayList<>();
        for (int row = 0; row < rows; row++) {
            if (java.util.Arrays.equals(mg, row * cols, (row + 1) * cols, mc, row * cols, (row + 1) * cols)) {
                sameRows.add(row);
            }
        }
        float[] wgs = new float[sameRows.size() * cols];
        float[] wcs = new float[sameRows.size() * cols];
        double[] lgs = new double[sameRows.size()];
        double[] lcs = new double[sameRows.size()];
        for (int k = 0; k < sameRows.size(); k++) {
            int row = sameRows.get(k);
            System.arraycopy(wg, row * cols, wgs, k * cols, cols);
            System.arraycopy(wc, row * cols, wcs, k * cols, cols);
            lgs[k] = lg[row];
            lcs[k] = lc[row];
        }
        double wErr = relErr(wgs, wcs);
        System.out.printf("device-resident 2:4 solve %dx%d: mask %.6f, %d of %d rows with equal masks: w rel %.2e"
                + "  loss rel %.2e seed=%d%n", rows, cols, agree, sameRows.size(), rows, wErr, relErr(lgs, lcs), SEED);
        assertThat(agree).isGreaterThanOrEqualTo(0.999);
        assertThat(sameRows.size()).isGreaterThanOrEqualTo(rows * 98 / 100);
        assertThat(wErr).isLessThanOrEqualTo(1e-5);
        assertThat(relErr(lgs, lcs)).isLessThanOrEqualTo(1e-5);
    }

    /** @return the diagonal of the n × n matrix a */
    static double[] diagonal(double[] a, int n) {
        double[] diag = new double[n];
        for (int i = 0; i < n; i++) {
            diag[i] = a[i * n + i];
        }
        return diag;
    }

    /** @return the mean of the diagonal, summed in order as diag[i] / n */
    static double mean(double[] diag) {
        double mean = 0;
        for (double d : diag) {
            mean += d / diag.length;
        }
        return mean;
    }

    /** Dampenings to try in order on a semi-definite H: a negative one (must fail), then 0.1 % and 1 % of the mean diagonal. */
    static double[] dampeningLadder(double mean) {
        return new double[] {-1e-3 * mean, 1e-3 * mean, 0.01 * mean};
    }

    /** A random symmetric positive definite matrix B·Bᵀ/k + shift·I, n × n fp64. */
    static double[] spd(SplittableRandom r, int n, int k, double shift) {
        double[] b = new double[n * k];
        for (int i = 0; i < b.length; i++) {
            b[i] = r.nextDouble() * 2 - 1;
        }
        double[] a = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = i; j < n; j++) {
                double s = 0;
                for (int l = 0; l < k; l++) {
                    s += b[i * k + l] * b[j * k + l];
                }
                a[i * n + j] = s / k;
                a[j * n + i] = s / k;
            }
            a[i * n + i] += shift;
        }
        return a;
    }

    @Test
    void inverseCholeskyUpperOnTheDeviceMatchesCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 11);
        for (int n : new int[] {1, 2, 63, 64, 65, 130, 257, 511, 512, 513, 1000, 1601}) { // 1, 2, 4 panels of 512
            double[] a = spd(r, n, n + 8, 0.01);
            double[] g = a.clone();
            // poison the strict lower triangle: the contract reads only the upper triangle and the diagonal
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < i; j++) {
                    g[i * n + j] = Double.NaN;
                }
            }
            double[] c = a.clone();
            assertThat(gpu.inverseCholeskyUpper(n, g, 0, n)).isTrue();
            assertThat(cpu.inverseCholeskyUpper(n, c, 0, n)).isTrue();
            double e = relErr(g, c);
            System.out.printf("inverseCholeskyUpper n=%d: rel %.2e seed=%d%n", n, e, SEED);
            assertThat(e).as("n=%d seed=%d", n, SEED).isLessThanOrEqualTo(1e-10);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < i; j++) {
                    assertThat(g[i * n + j]).isZero();
                }
            }
        }
        // not positive definite: refused
        double[] bad = spd(r, 70, 70, 0.0);
        bad[5 * 70 + 5] = -1.0;
        assertThat(gpu.inverseCholeskyUpper(70, bad, 0, 70)).isFalse();
        // a pivot that fails in the second panel of 512 columns (after a trailing update on the tensor cores)
        double[] late = spd(r, 1100, 1100, 0.0);
        late[300 * 1100 + 300] = -1.0; // reversed order: pivot 799
        assertThat(gpu.inverseCholeskyUpper(1100, late, 0, 1100)).isFalse();
    }

    @Test
    void dampedRetryOnTheDeviceMatchesTheHostRetry() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 12);
        int n = 300;
        double[] a = spd(r, n, 40, 0.0); // rank 40: semi-definite, not factorable without dampening
        double[] diag = diagonal(a, n);
        double mean = mean(diag);
        double[] lambdas = dampeningLadder(mean);
        float[] ug = new float[n * n];
        int k = gpu.dampedInverseCholeskyUpper(n, a, diag, lambdas, ug);
        int kc = -1;
        double[] ref = null;
        for (int t = 0; t < lambdas.length && kc < 0; t++) {
            double[] w = a.clone();
            for (int i = 0; i < n; i++) {
                w[i * n + i] = diag[i] + lambdas[t];
            }
            if (cpu.inverseCholeskyUpper(n, w, 0, n)) {
                kc = t;
                ref = w;
            }
        }
        assertThat(k).as("attempt that worked, seed %d", SEED).isEqualTo(kc).isEqualTo(1);
        float[] uc = new float[n * n];
        for (int i = 0; i < uc.length; i++) {
            uc[i] = (float) ref[i];
        }
        assertThat(relErr(ug, uc)).as("seed %d", SEED).isLessThanOrEqualTo(1e-5);
        assertThat(gpu.dampedInverseCholeskyUpper(n, a, diag, new double[] {-mean}, ug)).isEqualTo(-1);
    }

    @Test
    void residentSolveWithHostSelectorAndGroupedGridsMatchesTheBlockwiseCpuSolve() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 13);
        int rows = 150 + r.nextInt(60);
        int cols = 384;
        int bs = 128;
        int group = 32;
        int groups = cols / group;
        float[] w0 = randomF(r, rows * cols);
        float[] u = inverseFactor(r, cols);
        // selector: prune the 40% smallest |w| of each block among all its rows (a deterministic rule)
        io.sparkprune.kernels.ResidentSolver.BlockSelector sel = (i1, width, bw, bm) -> {
            Integer[] idx = new Integer[rows * width];
            for (int i = 0; i < idx.length; i++) {
                idx[i] = i;
            }
            java.util.Arrays.sort(idx, (x, y) -> {
                int c = Float.compare(Math.abs(bw[x]), Math.abs(bw[y]));
                return c != 0 ? c : Integer.compare(x, y);
            });
            for (int i = 0; i < idx.length * 2 / 5; i++) {
                bm[idx[i]] = 1;
            }
        };
        float[] wg = w0.clone();
        long[] mgBits = new long[io.sparkprune.kernels.ResidentSolver.SolveJob.maskWords(rows, cols)];
        double[] lg = new double[rows];
        float[] sg = new float[rows * groups];
        float[] zg = new float[rows * groups];
        byte[] cg = new byte[rows * cols];
        gpu.sparseGptSolve(new io.sparkprune.kernels.ResidentSolver.SolveJob(rows, cols, bs, wg, u, 0, 0, sel,
                new io.sparkprune.kernels.ResidentSolver.SolveJob.Quant(4, false, group, sg, zg, cg), mgBits, lg));
        byte[] mg = io.sparkprune.kernels.MaskBits.unpack(mgBits, rows, cols);
        float[] wc = w0.clone();
        byte[] mc = new byte[rows * cols];
        double[] lc = new double[rows];
        float[] sc = new float[rows * groups];
        float[] zc = new float[rows * groups];
        byte[] cc = new byte[rows * cols];
        float[] err = new float[rows * bs];
        float[] bw = new float[rows * bs];
        byte[] bm = new byte[rows * bs];
        for (int i1 = 0; i1 < cols; i1 += bs) {
            int i2 = i1 + bs;
            for (int row = 0; row < rows; row++) {
                System.arraycopy(wc, row * cols + i1, bw, row * bs, bs);
            }
            java.util.Arrays.fill(bm, (byte) 0);
            sel.select(i1, bs, bw, bm);
            for (int row = 0; row < rows; row++) {
                System.arraycopy(bm, row * bs, mc, row * cols + i1, bs);
            }
            cpu.sparseGptBlock(new SparseGptBlock(rows, bs, new FloatView(wc, i1, cols), new FloatView(u, i1 * cols + i1, cols),
                    new FloatView(err, 0, bs), new ByteView(bm, 0, bs), 0, 0,
                    new SparseGptBlock.Quant(4, false, group, new FloatView(sc, i1 / group, groups),
                            new FloatView(zc, i1 / group, groups), new ByteView(cc, i1, cols)), lc, 0));
            if (i2 < cols) {
                cpu.sgemm(false, false, rows, cols - i2, bs, -1f, err, 0, bs, u, i1 * cols + i2, cols, 1f, wc, i2, cols);
            }
        }
        int same = 0;
        int codes = 0;
        for (int i = 0; i < mg.length; i++) {
            same += mg[i] == mc[i] ? 1 : 0;
            codes += cg[i] == cc[i] ? 1 : 0;
        }
        // the device's lazy updates round differently from the CPU's, so the host selector may see a near-tie
        // of |w| flip (one seed in about ten did, an H200 run of 2026-11-21: 2 entries of 58,000); that row's
        // weights, codes and grids then follow another path: compare values on the rows whose masks agree
        java.util.List<Integer> sameRows = new java.util.ArrayList<>();
        for (int row = 0; row < rows; row++) {
            if (java.util.Arrays.equals(mg, row * cols, (row + 1) * cols, mc, row * cols, (row + 1) * cols)) {
                sameRows.add(row);
            }
        }
        float[][] kept = {new float[sameRows.size() * cols], new float[sameRows.size() * cols],
            new float[sameRows.size() * groups], new float[sameRows.size() * groups]};
        for (int k = 0; k < sameRows.size(); k++) {
            int row = sameRows.get(k);
            System.arraycopy(wg, row * cols, kept[0], k * cols, cols);
            System.arraycopy(wc, row * cols, kept[1], k * cols, cols);
            System.arraycopy(sg, row * groups, kept[2], k * groups, groups);
            System.arraycopy(sc, row * groups, kept[3], k * groups, groups);
        }
        System.out.printf("resident solve, host selector + int4 g32 %dx%d: mask %.6f codes %.6f, %d of %d rows with equal"
                + " masks: w rel %.2e seed=%d%n", rows, cols, (double) same / mg.length, (double) codes / cg.length,
                sameRows.size(), rows, relErr(kept[0], kept[1]), SEED);
        assertThat((double) same / mg.length).isGreaterThanOrEqualTo(0.999);
        assertThat((double) codes / cg.length).isGreaterThanOrEqualTo(0.999);
        assertThat(sameRows.size()).isGreaterThanOrEqualTo(rows * 98 / 100);
        assertThat(relErr(kept[0], kept[1])).isLessThanOrEqualTo(1e-5);
        assertThat(relErr(kept[2], kept[3])).isLessThanOrEqualTo(1e-4);
    }

    @Test
    void deviceBufferRoundTripsAndRefusesUseAfterClose() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 4);
        float[] x = randomF(r, 1000);
        DeviceBuffer b = gpu.allocate(4000, "test buffer");
        float[] y = new float[1000];
        b.upload(x, 0, 1000, 0);
        b.download(0, y, 0, 1000);
        assertThat(y).isEqualTo(x);
        assertThatThrownBy(() -> b.upload(x, 0, 1000, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("test buffer");
        b.close();
        b.close();
        assertThat(b.isClosed()).isTrue();
        assertThatThrownBy(b::pointer).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
    }
}
