package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.cuda.CudaBackend.DgemmKernel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static io.sparkprune.kernels.cuda.CudaBackendParityTest.relErr;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@code dgemm_dmma_sm90} (hopper.cu: the inverse factor's fp64 product on {@code mma.sync} m16n8k8
 * f64, the default DG9_KS) against an fp64 host reference computed here (plain triple loops) and against {@code dgemm_f64}
 * (fp64 FMAs) on the same device, on fresh random inputs (seeded by the clock; the seed is in every
 * message), for every flag of the contract: {@code transB}, {@code lowerC}, {@code aLower},
 * {@code bLower}, alpha/beta, batches over the triangular inverse's layout, the panel's in-place product,
 * sizes that are not multiples of the 128 × 128 tile and row strides or bases that are not 16-byte
 * aligned. Error bound: 1e-12 of the scale of the sums ({@code |alpha|·|A|·|op(B)| + |beta|·|C|});
 * elements that must not be written (C's upper triangle with {@code lowerC}, the padding around C)
 * must keep their bits, C is poisoned with NaN where beta is 0, and {@code bLower} must give the
 * bits of {@code bLower = false}. Skipped, with the reason, without a CUDA device or on a device
 * without the Hopper kernels.
 */
@Tag("gpu")
class CudaDgemmSm90Test {
    private static final long SEED = System.nanoTime();
    private static CudaBackend gpu;
    private static CudaTestDevice device;

    @BeforeAll
    static void open() {
        device = CudaTestDevice.open("dgemm_dmma_sm90 tests", SEED, () -> CudaBackend.create(0, 2));
        gpu = device.backend(0);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    private static void requireHopper() {
        device.require();
        assumeTrue(gpu.hopperKernels(), () -> "the Hopper kernels are not in use on " + gpu.name()
                + " (compute capability " + gpu.computeCapability() + ")");
    }

    /** One product: shapes, flags, strides (padding beyond the used columns) and a base offset in elements. */
    private record Problem(int m, int n, int k, boolean transB, boolean lowerC, boolean aLower, boolean bLower,
                           double alpha, double beta, int ldPad, int off) {
        String tag() {
            return m + "x" + n + "x" + k + " transB=" + transB + " lowerC=" + lowerC + " aLower=" + aLower + " bLower="
                    + bLower + " alpha=" + alpha + " beta=" + beta + " ldPad=" + ldPad + " off=" + off + " seed=" + SEED;
        }
    }

    @Test
    void everyFlagCombinationMatchesHostReferenceAndDgemmF64() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        Problem[] ps = {
            new Problem(300, 200, 300, false, false, false, false, 1.0, 0.0, 0, 0),
            new Problem(256, 256, 512, true, false, false, false, 1.0, 0.0, 0, 0),
            new Problem(130, 257, 300, false, false, false, false, -1.0, 0.5, 0, 0),
            new Problem(77, 190, 190, true, false, false, false, 1.0, 0.0, 0, 0),
            new Problem(200, 130, 13, true, false, false, false, 1.0, 1.0, 0, 0),
            new Problem(333, 333, 512, true, true, false, false, -1.0, 1.0, 0, 0),
            new Problem(300, 180, 64, true, true, false, false, -1.0, 1.0, 0, 0),
            new Problem(300, 260, 300, false, false, true, false, -1.0, 0.0, 0, 0),
            new Problem(300, 200, 200, false, false, false, true, 1.0, 0.0, 0, 0),
            new Problem(130, 257, 300, false, false, false, true, 1.0, 0.5, 0, 0),
            new Problem(77, 190, 190, true, false, false, true, -1.0, 0.0, 0, 0),
            new Problem(150, 140, 90, false, false, false, false, 1.0, 2.0, 1, 0),
            new Problem(150, 140, 90, true, true, false, true, 1.0, 0.0, 1, 0),
            new Problem(260, 270, 280, true, false, false, true, 1.0, 0.0, 0, 1),
            new Problem(260, 270, 280, false, false, true, false, 1.0, -0.5, 0, 1),
        };
        for (Problem p : ps) {
            check(r, p);
        }
    }

    private static void check(SplittableRandom r, Problem p) {
        int m = p.m();
        int n = p.n();
        int k = p.k();
        double[] a = new double[m * k];
        for (int i = 0; i < m; i++) {
            for (int l = 0; l < k; l++) {
                a[i * k + l] = p.aLower() && l > i ? 0.0 : r.nextDouble(-1, 1);
            }
        }
        double[] ob = new double[k * n]; // op(B), k × n
        for (int l = 0; l < k; l++) {
            for (int j = 0; j < n; j++) {
                ob[l * n + j] = p.bLower() && l < j ? 0.0 : r.nextDouble(-1, 1);
            }
        }
        double[] bStored = p.transB() ? transpose(ob, k, n) : ob;
        int bCols = p.transB() ? k : n;
        double[] c0 = new double[m * n];
        for (int i = 0; i < c0.length; i++) {
            c0[i] = p.beta() == 0.0 && i % 3 == 0 ? Double.NaN : r.nextDouble(-1, 1);
        }
        int lda = k + p.ldPad();
        int ldb = bCols + p.ldPad();
        int ldc = n + p.ldPad();
        double[] aBuf = padded(a, m, k, lda, p.off());
        double[] bBuf = padded(bStored, bStored.length / bCols, bCols, ldb, p.off());
        double[] cBuf = padded(c0, m, n, ldc, p.off());

        double[] sm90 = runOnDevice(DgemmKernel.DMMA_SM90, p, aBuf, lda, bBuf, ldb, cBuf, ldc);
        double[] f64 = runOnDevice(DgemmKernel.F64, p, aBuf, lda, bBuf, ldb, cBuf, ldc);

        double scale = 0;
        double errRef = 0;
        double errF64 = 0;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                int at = p.off() + i * ldc + j;
                if (p.lowerC() && j > i) {
                    assertThat(Double.doubleToRawLongBits(sm90[at])).as("upper C (%d,%d) untouched %s", i, j, p.tag())
                            .isEqualTo(Double.doubleToRawLongBits(cBuf[at]));
                    continue;
                }
                double sum = 0;
                double mag = 0;
                for (int l = 0; l < k; l++) {
                    sum += a[i * k + l] * ob[l * n + j];
                    mag += Math.abs(a[i * k + l] * ob[l * n + j]);
                }
                double c = Double.isNaN(c0[i * n + j]) ? 0.0 : c0[i * n + j];
                double ref = p.alpha() * sum + (p.beta() == 0.0 ? 0.0 : p.beta() * c);
                scale = Math.max(scale, Math.abs(p.alpha()) * mag + Math.abs(p.beta()) * Math.abs(c));
                errRef = Math.max(errRef, Math.abs(sm90[at] - ref));
                errF64 = Math.max(errF64, Math.abs(sm90[at] - f64[at]));
            }
        }
        for (int e = 0; e < cBuf.length; e++) {
            int rel = e - p.off();
            boolean inside = rel >= 0 && rel < m * ldc && rel % ldc < n;
            if (!inside) {
                assertThat(sm90[e]).as("padding element %d untouched %s", e, p.tag()).isEqualTo(cBuf[e]);
            }
        }
        System.out.printf("dgemm_dmma_sm90 %s: err vs host %.2e, vs dgemm_f64 %.2e (scale %.2e)%n", p.tag(),
                errRef / scale, errF64 / scale, scale);
        assertThat(errRef / scale).as("vs host fp64 %s", p.tag()).isLessThanOrEqualTo(1e-12);
        assertThat(errF64 / scale).as("vs dgemm_f64 %s", p.tag()).isLessThanOrEqualTo(1e-12);
        if (p.bLower()) {
            Problem full = new Problem(m, n, k, p.transB(), p.lowerC(), p.aLower(), false, p.alpha(), p.beta(), p.ldPad(),
                    p.off());
            double[] noFlag = runOnDevice(DgemmKernel.DMMA_SM90, full, aBuf, lda, bBuf, ldb, cBuf, ldc);
            assertThat(bits(sm90)).as("bLower bitwise equal to bLower=false %s", p.tag()).isEqualTo(bits(noFlag));
        }
    }

    /** The triangular inverse's two batched products (trtriLevel's layout), as CudaBackend runs them. */
    @Test
    void batchedTriangularInverseLevelMatchesHostReferenceAndIsBitwiseUnderBLower() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        for (int[] sc : new int[][] {{128, 3, 38}, {200, 2, 37}}) {
            int s = sc[0];
            int count = sc[1];
            int nn = 2 * s * count + sc[2];
            double[] l = new double[nn * nn];
            double[] x = new double[nn * nn];
            for (int i = 0; i < nn; i++) {
                for (int j = 0; j <= i; j++) {
                    l[i * nn + j] = r.nextDouble(-1, 1);
                }
            }
            for (int q = 0; q < count; q++) {
                for (int d = 0; d < 2; d++) {
                    int o = 2 * s * q + d * s;
                    for (int i = 0; i < s; i++) {
                        for (int j = 0; j <= i; j++) {
                            x[(o + i) * nn + o + j] = r.nextDouble(-1, 1);
                        }
                    }
                }
            }
            long step = 2L * s * (nn + 1);
            String tag = "s=" + s + " count=" + count + " nn=" + nn + " seed=" + SEED;
            gpu.makeCurrent();
            try (DeviceBuffer dl = gpu.allocate(8L * l.length, "L");
                 DeviceBuffer dx = gpu.allocate(8L * x.length, "X");
                 DeviceBuffer t1 = gpu.allocate(8L * count * s * s, "T");
                 DeviceBuffer t0 = gpu.allocate(8L * count * s * s, "T bLower=0")) {
                gpu.makeCurrent();
                dl.upload(l, 0, l.length, 0);
                dx.upload(x, 0, x.length, 0);
                for (boolean bl : new boolean[] {true, false}) {
                    gpu.dgemmWith(DgemmKernel.DMMA_SM90, count, step, step, (long) s * s, false, false, false, bl, s, s, s,
                            1.0, dl.at(8L * s * nn), nn, dx.pointer(), nn, 0.0, (bl ? t1 : t0).pointer(), s);
                }
                double[] tg = new double[count * s * s];
                double[] tz = new double[count * s * s];
                gpu.makeCurrent();
                t1.download(0, tg, 0, tg.length);
                t0.download(0, tz, 0, tz.length);
                assertThat(bits(tg)).as("bLower bitwise %s", tag).isEqualTo(bits(tz));
                gpu.dgemmWith(DgemmKernel.DMMA_SM90, count, step, (long) s * s, step, false, false, true, false, s, s, s,
                        -1.0, dx.at(8L * ((long) s * nn + s)), nn, t1.pointer(), s, 0.0, dx.at(8L * s * nn), nn);
                double[] xg = new double[x.length];
                gpu.makeCurrent();
                dx.download(0, xg, 0, xg.length);
                double[] refT = new double[count * s * s];
                double[] refX = x.clone();
                for (int q = 0; q < count; q++) {
                    int o = 2 * s * q;
                    for (int i = 0; i < s; i++) {
                        for (int j = 0; j < s; j++) {
                            double v = 0;
                            for (int p = 0; p < s; p++) {
                                v += l[(o + s + i) * nn + o + p] * x[(o + p) * nn + o + j];
                            }
                            refT[q * s * s + i * s + j] = v;
                        }
                    }
                    for (int i = 0; i < s; i++) {
                        for (int j = 0; j < s; j++) {
                            double v = 0;
                            for (int p = 0; p < s; p++) {
                                v += x[(o + s + i) * nn + o + s + p] * tg[q * s * s + p * s + j];
                            }
                            refX[(o + s + i) * nn + o + j] = -v;
                        }
                    }
                }
                double eT = relErr(tg, refT);
                double eX = relErr(xg, refX);
                System.out.printf("dgemm_dmma_sm90 trtri level %s: T rel %.2e, X rel %.2e%n", tag, eT, eX);
                assertThat(eT).as("T = L21·A^-1 %s", tag).isLessThanOrEqualTo(1e-13);
                assertThat(eX).as("X21 = -C^-1·T (and the rest of X untouched) %s", tag).isLessThanOrEqualTo(1e-13);
            }
        }
    }

    /** The panel product A21 ← A21·Xdᵀ in place (C = A, n = k = 64), on the new kernel and on dgemm_f64. */
    @Test
    void inPlacePanelProductMatchesHostReference() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        int m = 1000;
        int ld = 264;
        double[] full = new double[(m + 64) * ld];
        for (int i = 0; i < full.length; i++) {
            full[i] = r.nextDouble(-1, 1);
        }
        for (int i = 0; i < 64; i++) {
            for (int j = i + 1; j < 64; j++) {
                full[i * ld + j] = 0.0;
            }
        }
        double[] ref = full.clone();
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < 64; j++) {
                double v = 0;
                for (int l = 0; l < 64; l++) {
                    v += full[(64 + i) * ld + l] * full[j * ld + l];
                }
                ref[(64 + i) * ld + j] = v;
            }
        }
        for (DgemmKernel kern : new DgemmKernel[] {DgemmKernel.DMMA_SM90, DgemmKernel.F64}) {
            gpu.makeCurrent();
            try (DeviceBuffer d = gpu.allocate(8L * full.length, "panel")) {
                gpu.makeCurrent();
                d.upload(full, 0, full.length, 0);
                gpu.dgemmWith(kern, 1, 0, 0, 0, true, false, false, false, m, 64, 64, 1.0, d.at(8L * 64 * ld), ld,
                        d.pointer(), ld, 0.0, d.at(8L * 64 * ld), ld);
                double[] got = new double[full.length];
                gpu.makeCurrent();
                d.download(0, got, 0, got.length);
                double e = relErr(got, ref);
                System.out.printf("%s in-place panel %dx64x64: rel %.2e seed=%d%n", kern, m, e, SEED);
                assertThat(e).as("%s in place seed=%d", kern, SEED).isLessThanOrEqualTo(1e-13);
            }
        }
    }

    /** The whole device factor with the Hopper product and with dgemm_dmma: the same function. */
    @Test
    void inverseFactorIsTheSameWithTheOldKernel() {
        requireHopper();
        SplittableRandom r = new SplittableRandom(SEED + 4);
        int n = 1601; // three panels of 512: trailing updates and trtri levels of 512 and 1024 on the tensor cores
        double[] a = CudaBackendParityTest.spd(r, n, n + 8, 0.01);
        double[] hopper = a.clone();
        double[] old = a.clone();
        assertThat(gpu.inverseCholeskyUpper(n, hopper, 0, n)).isTrue();
        gpu.useHopperKernels(false);
        try {
            assertThat(gpu.inverseCholeskyUpper(n, old, 0, n)).isTrue();
        } finally {
            gpu.useHopperKernels(true);
        }
        double e = relErr(hopper, old);
        System.out.printf("inverseCholeskyUpper n=%d dgemm_dmma_sm90 vs dgemm_dmma: rel %.2e seed=%d%n", n, e, SEED);
        assertThat(e).as("seed=%d", SEED).isLessThanOrEqualTo(1e-10);
    }

    private static double[] runOnDevice(DgemmKernel kern, Problem p, double[] aBuf, int lda, double[] bBuf, int ldb,
                                        double[] cBuf, int ldc) {
        gpu.makeCurrent();
        try (DeviceBuffer da = gpu.allocate(8L * aBuf.length, "A");
             DeviceBuffer db = gpu.allocate(8L * bBuf.length, "B");
             DeviceBuffer dc = gpu.allocate(8L * cBuf.length, "C")) {
            gpu.makeCurrent();
            da.upload(aBuf, 0, aBuf.length, 0);
            db.upload(bBuf, 0, bBuf.length, 0);
            dc.upload(cBuf, 0, cBuf.length, 0);
            long off = 8L * p.off();
            gpu.dgemmWith(kern, 1, 0, 0, 0, p.transB(), p.lowerC(), p.aLower(), p.bLower(), p.m(), p.n(), p.k(), p.alpha(),
                    da.at(off), lda, db.at(off), ldb, p.beta(), dc.at(off), ldc);
            double[] got = new double[cBuf.length];
            gpu.makeCurrent();
            dc.download(0, got, 0, got.length);
            return got;
        }
    }

    private static double[] transpose(double[] x, int rows, int cols) {
        double[] t = new double[x.length];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                t[j * rows + i] = x[i * cols + j];
            }
        }
        return t;
    }

    /** rows × cols into a buffer with row stride ld, starting at element off, 7.0 in the padding. */
    private static double[] padded(double[] x, int rows, int cols, int ld, int off) {
        double[] buf = new double[off + rows * ld + 8];
        Arrays.fill(buf, 7.0);
        for (int i = 0; i < rows; i++) {
            System.arraycopy(x, i * cols, buf, off + i * ld, cols);
        }
        return buf;
    }

    private static long[] bits(double[] x) {
        long[] b = new long[x.length];
        for (int i = 0; i < x.length; i++) {
            b[i] = Double.doubleToRawLongBits(x[i]);
        }
        return b;
    }
}
