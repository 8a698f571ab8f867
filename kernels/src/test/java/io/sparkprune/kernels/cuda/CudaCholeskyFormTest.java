package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.ByteView;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.MaskBits;
import io.sparkprune.kernels.ResidentSolver.BlockSelector;
import io.sparkprune.kernels.ResidentSolver.SolveJob;
import io.sparkprune.kernels.SparseGptBlock;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static io.sparkprune.kernels.cuda.CudaBackendParityTest.randomF;
import static io.sparkprune.kernels.cuda.CudaBackendParityTest.relErr;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The Cholesky form of the device solve ({@link CudaBackend#hessianFactorDevice},
 * {@link CudaBackend#solveOnDeviceCholesky}): R and U's band against the CPU's fp64 factor of the same
 * damped H, and whole solves against the CPU path's block-wise SparseGPT loop with the inverse factor U
 * (the reference implementation: block solve, then {@code W[:, i2:] −= Err·U[i1:i2, i2:]}). The two forms
 * are the same function in exact arithmetic and differ in rounding, so masks must agree on ≥ 99.9 % of
 * the entries and the weights to fp32 accuracy on the rows whose masks agree. Shapes cover an order that
 * is no multiple of 128 (U's tiles then straddle the band's 128-blocks), block widths that do not divide
 * 128 (100, 6, 127), a last block whose width is a multiple of 4 when the block's is not, several and odd
 * super-blocks, n below 128, one row, the in-solve unstructured selection, a host selector, N:M and
 * grouped int4, with the Hopper kernels (3xTF32 lazy updates) on and off.
 */
@Tag("gpu")
class CudaCholeskyFormTest extends CudaSuite {
    /** H = XᵀX/k (fp64, n × n, both triangles) of k random tokens. */
    private static double[] hessian(SplittableRandom r, int n, int k) {
        double[] h = CudaBackendParityTest.gram(r, n, k);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                h[i * n + j] = h[j * n + i];
            }
        }
        return h;
    }

    private static double lambda(double[] h, int n) {
        double mean = 0;
        for (int i = 0; i < n; i++) {
            mean += h[i * n + i] / n;
        }
        return 0.01 * mean;
    }

    /** U (fp32) of the CPU backend: the upper Cholesky factor of (H + λI)⁻¹, in fp64 then rounded. */
    private static float[] cpuU(double[] h, int n, double lambda) {
        return CudaBackendParityTest.inverseFactor(cpu, h, n, lambda);
    }

    /** R (n × n fp32) and U's band (n × U_BAND fp32) from the device. */
    private static float[][] deviceFactor(double[] h, int n, double lambda) {
        double[] diag = new double[n];
        for (int i = 0; i < n; i++) {
            diag[i] = h[i * n + i];
        }
        float[] r = new float[n * n];
        float[] band = new float[n * CudaBackend.U_BAND];
        try (DeviceBuffer dh = gpu.allocate(8L * n * n, "test H");
             DeviceBuffer dd = gpu.allocate(8L * n, "test diag");
             DeviceBuffer dr = gpu.allocate(4L * n * n, "test R");
             DeviceBuffer db = gpu.allocate(4L * band.length, "test band")) {
            dh.upload(h, 0, n * n, 0);
            dd.upload(diag, 0, n, 0);
            assertThat(gpu.hessianFactorDevice(n, dh.pointer(), dd.pointer(), lambda, dr.pointer(), db.pointer())).isTrue();
            dr.download(0, r, 0, n * n);
            db.download(0, band, 0, band.length);
        }
        return new float[][] {r, band};
    }

    @Test
    void factorIsTheCholeskyFactorOfHAndTheBandIsU() {
        device.require();
        SplittableRandom rnd = new SplittableRandom(SEED);
        for (int n : new int[] {1, 64, 100, 128, 200, 320, 520, 1100}) {
            double[] h = hessian(rnd, n, n + 40);
            double lambda = lambda(h, n);
            float[][] f = deviceFactor(h, n, lambda);
            float[] r = f[0];
            // R upper, R·Rᵀ = H + λI to fp32 rounding of R
            double num = 0;
            double den = 0;
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < i; j++) {
                    assertThat(r[i * n + j]).as("R below the diagonal, n %d", n).isZero();
                }
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int k = Math.max(i, j); k < n; k++) {
                        s += (double) r[i * n + k] * r[j * n + k];
                    }
                    double ref = h[i * n + j] + (i == j ? lambda : 0);
                    num += (s - ref) * (s - ref);
                    den += ref * ref;
                }
            }
            assertThat(Math.sqrt(num / den)).as("R·Rᵀ vs H + λI, n %d seed %d", n, SEED).isLessThanOrEqualTo(1e-6);
            // the band equals U's band of the CPU's fp64 factor (both rounded to fp32 from fp64)
            float[] u = cpuU(h, n, lambda);
            float[] got = new float[n * CudaBackend.U_BAND];
            float[] want = new float[n * CudaBackend.U_BAND];
            for (int i = 0; i < n; i++) {
                for (int t = 0; t < CudaBackend.U_BAND; t++) {
                    got[i * CudaBackend.U_BAND + t] = f[1][i * CudaBackend.U_BAND + t];
                    want[i * CudaBackend.U_BAND + t] = i + t < n ? u[i * n + i + t] : 0f;
                }
            }
            assertThat(relErr(got, want)).as("band of U, n %d seed %d", n, SEED).isLessThanOrEqualTo(1e-6);
            for (int i = 0; i < n; i++) {
                assertThat(f[1][i * CudaBackend.U_BAND]).as("U[%d,%d] n %d", i, i, n).isEqualTo(u[i * n + i]);
            }
        }
    }

    private record Case(String name, int rows, int n, int bs, int lazyBlocks, int nmKeep, int nmGroup, double unstructured,
                        boolean selector, int qbits, int qgroup) {
    }

    @Test
    void choleskyFormSolvesMatchTheCpuLoopWithTheInverseFactor() {
        device.require();
        List<Case> cases = List.of(
                new Case("2:4 n=320 (tiles straddle the band's blocks)", 150, 320, 128, 8, 2, 4, 0, false, 0, 0),
                new Case("unstructured 50% in the solve, n=1100, 2 blocks per super-block", 200, 1100, 128, 2, 0, 0, 0.5,
                        false, 0, 0),
                new Case("host selector, blocks of 100, n=520", 96, 520, 100, 4, 0, 0, 0, true, 0, 0),
                new Case("1:2, blocks of 6, n=258", 64, 258, 6, 8, 1, 2, 0, false, 0, 0),
                new Case("2:4 + int4 g32, n=384, one block per super-block", 120, 384, 128, 1, 2, 4, 0, false, 4, 32),
                // block and super-block widths no multiple of 4 with a last block that is (its C_b·U_bb runs on
                // 3xTF32: the split buffer must be there), an odd number of blocks per super-block
                new Case("1:2, blocks of 6, n=22 (last block 4 wide)", 40, 22, 6, 8, 1, 2, 0, false, 0, 0),
                new Case("1:2, blocks of 6, n=28, 3 blocks per super-block", 40, 28, 6, 3, 1, 2, 0, false, 0, 0),
                new Case("unstructured 50% in the solve, blocks of 127, n=302", 64, 302, 127, 8, 0, 0, 0.5, false, 0, 0),
                new Case("2:4, n=100 < 128, blocks of 32", 50, 100, 32, 2, 2, 4, 0, false, 0, 0),
                new Case("2:4, one row, n=520", 1, 520, 128, 8, 2, 4, 0, false, 0, 0));
        int lazyBefore = gpu.lazyUpdateBlocks();
        try {
            for (boolean hopper : new boolean[] {true, false}) {
                gpu.useHopperKernels(hopper);
                for (Case c : cases) {
                    gpu.lazyUpdateBlocks(c.lazyBlocks());
                    check(c, hopper);
                }
            }
        } finally {
            gpu.useHopperKernels(true);
            gpu.lazyUpdateBlocks(lazyBefore);
        }
    }

    private static void check(Case c, boolean hopper) {
        SplittableRandom rnd = new SplittableRandom(SEED ^ c.name().hashCode());
        int rows = c.rows();
        int n = c.n();
        int bs = c.bs();
        double[] h = hessian(rnd, n, n + 40);
        double lambda = lambda(h, n);
        float[] w0 = randomF(rnd, rows * n);
        float[] u = cpuU(h, n, lambda);
        BlockSelector sel = !c.selector() ? null : (i1, width, bw, bm) -> {
            // prune the 40 % smallest |w| of the block over all its rows (ties to the lower index)
            Integer[] idx = new Integer[rows * width];
            for (int i = 0; i < idx.length; i++) {
                idx[i] = i;
            }
            Arrays.sort(idx, (x, y) -> {
                int k = Float.compare(Math.abs(bw[x]), Math.abs(bw[y]));
                return k != 0 ? k : Integer.compare(x, y);
            });
            for (int i = 0; i < idx.length * 2 / 5; i++) {
                bm[idx[i]] = 1;
            }
        };
        int groups = c.qbits() == 0 ? 1 : n / c.qgroup();
        // the device: the Cholesky form
        float[] wg = w0.clone();
        long[] bits = new long[SolveJob.maskWords(rows, n)];
        double[] lg = new double[rows];
        float[] sg = new float[rows * groups];
        float[] zg = new float[rows * groups];
        byte[] cg = new byte[rows * n];
        SolveJob.Quant qg = c.qbits() == 0 ? null : new SolveJob.Quant(c.qbits(), false, c.qgroup(), sg, zg, cg);
        SolveJob job = new SolveJob(rows, n, bs, wg, null, c.nmKeep(), c.nmGroup(), sel, qg, bits, lg, c.unstructured());
        float[][] f = deviceFactor(h, n, lambda);
        try (DeviceBuffer dw = gpu.allocate(4L * rows * n, "test W");
             DeviceBuffer dr = gpu.allocate(4L * n * n, "test R");
             DeviceBuffer db = gpu.allocate(4L * n * CudaBackend.U_BAND, "test band")) {
            dw.upload(wg, 0, rows * n, 0);
            dr.upload(f[0], 0, n * n, 0);
            db.upload(f[1], 0, n * CudaBackend.U_BAND, 0);
            gpu.solveOnDeviceCholesky(job, dw.pointer(), dr.pointer(), db.pointer());
            dw.download(0, wg, 0, rows * n);
        }
        byte[] mg = MaskBits.unpack(bits, rows, n);
        // the CPU: the block-wise loop with U
        float[] wc = w0.clone();
        byte[] mc = new byte[rows * n];
        double[] lc = new double[rows];
        float[] sc = new float[rows * groups];
        float[] zc = new float[rows * groups];
        byte[] cc = new byte[rows * n];
        float[] err = new float[rows * bs];
        float[] bw = new float[rows * bs];
        byte[] bm = new byte[rows * bs];
        for (int i1 = 0; i1 < n; i1 += bs) {
            int width = Math.min(bs, n - i1);
            int i2 = i1 + width;
            Arrays.fill(bm, (byte) 0);
            if (sel != null) {
                for (int row = 0; row < rows; row++) {
                    System.arraycopy(wc, row * n + i1, bw, row * width, width);
                }
                sel.select(i1, width, bw, bm);
            } else if (c.unstructured() > 0) {
                CudaMaskBitsTest.selectSmallest(rows, n, i1, width, wc, u,
                        SolveJob.prunedPerBlock(c.unstructured(), rows * width), bm, 0, width);
            }
            SparseGptBlock.Quant q = c.qbits() == 0 ? null : new SparseGptBlock.Quant(c.qbits(), false, c.qgroup(),
                    new FloatView(sc, i1 / c.qgroup(), groups), new FloatView(zc, i1 / c.qgroup(), groups),
                    new ByteView(cc, i1, n));
            cpu.sparseGptBlock(new SparseGptBlock(rows, width, new FloatView(wc, i1, n), new FloatView(u, i1 * n + i1, n),
                    new FloatView(err, 0, width), new ByteView(bm, 0, width), c.nmKeep(), c.nmGroup(), q, lc, 0));
            for (int row = 0; row < rows; row++) {
                System.arraycopy(bm, row * width, mc, row * n + i1, width);
            }
            if (i2 < n) {
                cpu.sgemm(false, false, rows, n - i2, width, -1f, err, 0, width, u, i1 * n + i2, n, 1f, wc, i2, n);
            }
        }
        int same = 0;
        for (int i = 0; i < mg.length; i++) {
            same += mg[i] == mc[i] ? 1 : 0;
        }
        List<Integer> sameRows = new ArrayList<>();
        int codes = 0; // on the rows whose masks agree (a row with a flipped mask follows another path)
        for (int row = 0; row < rows; row++) {
            if (Arrays.equals(mg, row * n, (row + 1) * n, mc, row * n, (row + 1) * n)) {
                sameRows.add(row);
                for (int i = row * n; i < (row + 1) * n; i++) {
                    codes += cg[i] == cc[i] ? 1 : 0;
                }
            }
        }
        float[][] kept = {new float[sameRows.size() * n], new float[sameRows.size() * n]};
        double[][] losses = {new double[sameRows.size()], new double[sameRows.size()]};
        for (int k = 0; k < sameRows.size(); k++) {
            int row = sameRows.get(k);
            System.arraycopy(wg, row * n, kept[0], k * n, n);
            System.arraycopy(wc, row * n, kept[1], k * n, n);
            losses[0][k] = lg[row];
            losses[1][k] = lc[row];
        }
        double wErr = relErr(kept[0], kept[1]);
        double lossErr = CudaBackendParityTest.relErr(losses[0], losses[1]);
        String tag = String.format("%s, hopper %s: mask %.6f, %d of %d rows with equal masks, w rel %.2e, loss rel %.2e,"
                + " codes %.6f, seed %d", c.name(), hopper, (double) same / mg.length, sameRows.size(), rows, wErr, lossErr,
                (double) codes / Math.max(1, sameRows.size() * n), SEED);
        System.out.println("Cholesky form: " + tag);
        assertThat((double) same / mg.length).as(tag).isGreaterThanOrEqualTo(0.999);
        assertThat(sameRows.size()).as(tag).isGreaterThanOrEqualTo(rows * 97 / 100);
        assertThat(wErr).as(tag).isLessThanOrEqualTo(1e-5);
        assertThat(lossErr).as(tag).isLessThanOrEqualTo(1e-4);
        assertThat((double) codes / Math.max(1, sameRows.size() * n)).as(tag).isGreaterThanOrEqualTo(0.999);
        for (int i = 0; i < mg.length; i++) {
            if (mg[i] != 0) {
                assertThat(wg[i]).as("pruned weight %d: %s", i, tag).isZero();
            }
        }
    }
}
