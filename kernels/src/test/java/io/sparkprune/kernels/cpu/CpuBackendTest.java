package io.sparkprune.kernels.cpu;

import io.sparkprune.kernels.ByteView;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.GridMath;
import io.sparkprune.kernels.SparseGptBlock;
import io.sparkprune.kernels.Tf32;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;

/**
 * Every CPU kernel against a naive, independently written implementation, on fresh random inputs
 * (the seed is in every assertion message), for the plain-Java and the Vector API microkernels.
 */
class CpuBackendTest {
    private static final List<CpuBackend> BACKENDS = new ArrayList<>();
    private static final long SEED = new Random().nextLong();

    @BeforeAll
    static void setUp() {
        BACKENDS.add(CpuBackend.create(2, false));
        BACKENDS.add(CpuBackend.create(1, false));
        if (CpuBackend.simdAvailable()) {
            BACKENDS.add(CpuBackend.create(2, true));
        }
    }

    @AfterAll
    static void tearDown() {
        BACKENDS.forEach(CpuBackend::close);
    }

    private static String tag(CpuBackend b) {
        return b.name() + " seed=" + SEED;
    }

    private static float[] randomF(SplittableRandom r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return x;
    }

    @Test
    void sgemmMatchesNaiveProductForAllTransposes() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (CpuBackend be : BACKENDS) {
            for (int trial = 0; trial < 12; trial++) {
                boolean ta = (trial & 1) != 0;
                boolean tb = (trial & 2) != 0;
                int m = 1 + r.nextInt(300);
                int n = 1 + r.nextInt(300);
                int k = trial == 11 ? 0 : 1 + r.nextInt(600);
                float alpha = trial % 3 == 0 ? -1f : (float) r.nextDouble(-2, 2);
                float beta = trial % 4 == 0 ? 0f : (trial % 4 == 1 ? 1f : 0.5f);
                int lda = (ta ? m : k) + r.nextInt(3);
                int ldb = (tb ? k : n) + r.nextInt(3);
                int ldc = n + r.nextInt(3);
                float[] a = randomF(r, (ta ? k : m) * Math.max(lda, 1) + 5);
                float[] b = randomF(r, (tb ? n : k) * Math.max(ldb, 1) + 5);
                float[] c = randomF(r, m * ldc + 3);
                if (beta == 0f) {
                    c[1] = Float.NaN; // must not propagate
                }
                double[] ref = new double[m * n];
                double norm = 0;
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double s = 0;
                        for (int l = 0; l < k; l++) {
                            double av = ta ? a[2 + l * lda + i] : a[2 + i * lda + l];
                            double bv = tb ? b[1 + j * ldb + l] : b[1 + l * ldb + j];
                            s += av * bv;
                        }
                        double old = beta == 0f ? 0 : c[3 + i * ldc + j];
                        ref[i * n + j] = alpha * s + beta * old;
                        norm += ref[i * n + j] * ref[i * n + j];
                    }
                }
                float[] before = c.clone();
                be.sgemm(ta, tb, m, n, k, alpha, a, 2, lda, b, 1, ldb, beta, c, 3, ldc);
                double diff = 0;
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double d = c[3 + i * ldc + j] - ref[i * n + j];
                        diff += d * d;
                    }
                    // padding between rows is untouched
                    for (int j = n; j < ldc && 3 + i * ldc + j < c.length; j++) {
                        assertThat(c[3 + i * ldc + j]).isEqualTo(before[3 + i * ldc + j]);
                    }
                }
                assertThat(Math.sqrt(diff)).as("%s trial %d %dx%dx%d ta=%b tb=%b", tag(be), trial, m, n, k, ta, tb)
                        .isLessThanOrEqualTo(1e-5 * Math.sqrt(norm) + 1e-6);
                assertThat(c[0]).isEqualTo(before[0]);
            }
        }
    }

    @Test
    void simdAndScalarMicrokernelsAreBitIdentical() {
        assumeThat(CpuBackend.simdAvailable()).as("JVM started without --add-modules jdk.incubator.vector").isTrue();
        SplittableRandom r = new SplittableRandom(SEED);
        try (CpuBackend s = CpuBackend.create(2, false); CpuBackend v = CpuBackend.create(2, true)) {
            for (int trial = 0; trial < 6; trial++) {
                int m = 1 + r.nextInt(200);
                int n = 1 + r.nextInt(300);
                int k = 1 + r.nextInt(400);
                float[] a = randomF(r, m * k);
                float[] b = randomF(r, k * n);
                float[] c1 = randomF(r, m * n);
                float[] c2 = c1.clone();
                s.sgemm(false, trial % 2 == 0, m, n, k, -1f, a, 0, k, b, 0, trial % 2 == 0 ? k : n, 1f, c1, 0, n);
                v.sgemm(false, trial % 2 == 0, m, n, k, -1f, a, 0, k, b, 0, trial % 2 == 0 ? k : n, 1f, c2, 0, n);
                assertThat(c2).as("seed=%d", SEED).isEqualTo(c1);
            }
            int n = 200 + r.nextInt(150);
            double[] spd = randomSpd(r, n);
            double[] u1 = spd.clone();
            double[] u2 = spd.clone();
            assertThat(s.inverseCholeskyUpper(n, u1, 0, n)).isTrue();
            assertThat(v.inverseCholeskyUpper(n, u2, 0, n)).isTrue();
            assertThat(u2).as("seed=%d", SEED).isEqualTo(u1);
        }
    }

    @Test
    void syrkPackedUpperMatchesNaiveGram() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (CpuBackend be : BACKENDS) {
            int n = 1 + r.nextInt(300);
            int k = 1 + r.nextInt(150);
            int ldx = n + 2;
            float[] x = randomF(r, k * ldx + 1);
            double[] c = new double[n * (n + 1) / 2];
            for (int i = 0; i < c.length; i++) {
                c[i] = i * 1e-3; // accumulates onto existing values
            }
            double[] start = c.clone();
            be.syrkPackedUpper(n, k, x, 1, ldx, c);
            int p = 0;
            for (int i = 0; i < n; i++) {
                for (int j = i; j < n; j++, p++) {
                    double s = start[p];
                    for (int t = 0; t < k; t++) {
                        s += (double) x[1 + t * ldx + i] * x[1 + t * ldx + j];
                    }
                    assertThat(c[p]).as("%s (%d,%d) n=%d k=%d", tag(be), i, j, n, k).isCloseTo(s, org.assertj.core.data.Offset.offset(1e-12 * (1 + Math.abs(s))));
                }
            }
        }
    }

    /**
     * The TF32 twin bit for bit against a naive re-statement of its contract (operands rounded by
     * {@link Tf32#round}, fp32 sums from zero over chunks of 256 tokens in token order, chunk sums
     * added in fp64), and within the fp32 rounding of the chunk sums of an exact fp64 reference (the
     * tolerance the GPU kernel, which adds inside a chunk in another order, must also meet).
     */
    @Test
    void syrkTf32MatchesChunkedFp32SumsOfRoundedOperands() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (CpuBackend be : BACKENDS) {
            for (int trial = 0; trial < 2; trial++) {
                int n = 1 + r.nextInt(trial == 0 ? 300 : 40);
                int k = trial == 0 ? 2 * 256 + 1 + r.nextInt(255) : 1 + r.nextInt(255); // ragged last chunk; one short chunk
                int ldx = n + 3;
                float[] x = randomF(r, 2 + k * ldx);
                int packed = n * (n + 1) / 2;
                double[] start = new double[packed];
                for (int i = 0; i < packed; i++) {
                    start[i] = r.nextDouble();
                }
                double[] c = start.clone();
                be.syrkPackedUpperTf32(n, k, x, 2, ldx, c);
                int p = 0;
                for (int i = 0; i < n; i++) {
                    for (int j = i; j < n; j++, p++) {
                        double naive = start[p];
                        double exact = start[p];
                        double bound = 0;
                        for (int c0 = 0; c0 < k; c0 += 256) {
                            int kc = Math.min(256, k - c0);
                            float s = 0f;
                            double e = 0;
                            double abs = 0;
                            for (int t = c0; t < c0 + kc; t++) {
                                float a = Tf32.round(x[2 + t * ldx + i]);
                                float b = Tf32.round(x[2 + t * ldx + j]);
                                s = s + a * b;
                                e += (double) a * b; // exact: 22-bit product, sums of 256 stay within fp64
                                abs += Math.abs((double) a * b);
                            }
                            naive += s;
                            exact += e;
                            double g = kc * 0x1p-24;
                            bound += g / (1 - g) * abs;
                        }
                        String at = String.format("%s (%d,%d) n=%d k=%d", tag(be), i, j, n, k);
                        assertThat(c[p]).as(at).isEqualTo(naive);
                        assertThat(Math.abs(c[p] - exact)).as(at).isLessThanOrEqualTo(bound + 1e-15 * Math.abs(exact));
                    }
                }
            }
        }
    }

    @Test
    void syrkTf32IsWithinTf32RoundingOfTheExactHessian() {
        SplittableRandom r = new SplittableRandom(SEED + 1);
        for (CpuBackend be : BACKENDS) {
            int n = 64 + r.nextInt(200);
            int k = 300 + r.nextInt(600);
            float[] x = randomF(r, k * n);
            double[] exact = new double[n * (n + 1) / 2];
            double[] tf32 = new double[exact.length];
            be.syrkPackedUpper(n, k, x, 0, n, exact);
            be.syrkPackedUpperTf32(n, k, x, 0, n, tf32);
            double num = 0;
            double den = 0;
            for (int i = 0; i < exact.length; i++) {
                num += (tf32[i] - exact[i]) * (tf32[i] - exact[i]);
                den += exact[i] * exact[i];
            }
            double rel = Math.sqrt(num / den);
            // operands carry 2^-11 relative rounding each: about 1e-4 on the Gram matrix, never 1e-3;
            // and strictly more than fp32 summation alone would give (the rounding really happens)
            assertThat(rel).as("%s n=%d k=%d", tag(be), n, k).isLessThan(1e-3).isGreaterThan(1e-6);
        }
    }

    @Test
    void syrkTf32RejectsShortOutputAndIgnoresEmptyInput() {
        CpuBackend be = BACKENDS.get(0);
        double[] c = {1.5};
        be.syrkPackedUpperTf32(1, 0, new float[0], 0, 1, c);
        assertThat(c).containsExactly(1.5);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> be.syrkPackedUpperTf32(3, 1, new float[3], 0, 3, new double[5]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("packed C needs 6");
    }

    static double[] randomSpd(SplittableRandom r, int n) {
        int k = n + 10;
        double[] g = new double[k * n];
        for (int i = 0; i < g.length; i++) {
            g[i] = r.nextGaussian();
        }
        double[] a = new double[n * n];
        for (int t = 0; t < k; t++) {
            for (int i = 0; i < n; i++) {
                double gi = g[t * n + i];
                for (int j = 0; j < n; j++) {
                    a[i * n + j] += gi * g[t * n + j];
                }
            }
        }
        for (int i = 0; i < n; i++) {
            a[i * n + i] += 0.1 * n;
        }
        return a;
    }

    private static double[] mul(double[] x, double[] y, int n) {
        double[] z = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int l = 0; l < n; l++) {
                double v = x[i * n + l];
                if (v != 0) {
                    for (int j = 0; j < n; j++) {
                        z[i * n + j] += v * y[l * n + j];
                    }
                }
            }
        }
        return z;
    }

    private static double[] transpose(double[] x, int n) {
        double[] t = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                t[j * n + i] = x[i * n + j];
            }
        }
        return t;
    }

    private static double maxAbsDiff(double[] x, double[] y) {
        double m = 0;
        for (int i = 0; i < x.length; i++) {
            m = Math.max(m, Math.abs(x[i] - y[i]));
        }
        return m;
    }

    private static double maxAbs(double[] x) {
        double m = 0;
        for (double v : x) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    private static double[] identity(int n) {
        double[] e = new double[n * n];
        for (int i = 0; i < n; i++) {
            e[i * n + i] = 1;
        }
        return e;
    }

    @Test
    void choleskyReconstructsLowerAndUpper() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (CpuBackend be : BACKENDS) {
            for (int n : new int[] {1, 7, 128, 129, 300}) {
                double[] a = randomSpd(r, n);
                double[] l = a.clone();
                assertThat(be.cholesky(n, l, 0, n, false)).isTrue();
                for (int i = 0; i < n; i++) {
                    for (int j = i + 1; j < n; j++) {
                        assertThat(l[i * n + j]).isZero();
                    }
                }
                assertThat(maxAbsDiff(mul(l, transpose(l, n), n), a)).as("%s n=%d", tag(be), n)
                        .isLessThan(1e-12 * maxAbs(a));
                double[] u = a.clone();
                assertThat(be.cholesky(n, u, 0, n, true)).isTrue();
                assertThat(maxAbsDiff(mul(transpose(u, n), u, n), a)).as("%s n=%d upper", tag(be), n)
                        .isLessThan(1e-12 * maxAbs(a));
                assertThat(maxAbsDiff(transpose(u, n), l)).isLessThan(1e-12 * Math.sqrt(maxAbs(a)));
            }
        }
    }

    @Test
    void choleskyReportsIndefiniteAndNanInsteadOfThrowing() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (CpuBackend be : BACKENDS) {
            int n = 200;
            double[] a = randomSpd(r, n);
            a[150 * n + 150] = -1e6;
            assertThat(be.cholesky(n, a.clone(), 0, n, false)).isFalse();
            double[] b = randomSpd(r, n);
            b[3 * n + 1] = Double.NaN;
            assertThat(be.cholesky(n, b, 0, n, false)).isFalse();
            // rank deficient PSD: Gram of 5 vectors in 200 dimensions
            double[] g = new double[n * n];
            double[] v = new double[5 * n];
            for (int i = 0; i < v.length; i++) {
                v[i] = r.nextGaussian();
            }
            for (int t = 0; t < 5; t++) {
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < n; j++) {
                        g[i * n + j] += v[t * n + i] * v[t * n + j];
                    }
                }
            }
            assertThat(be.cholesky(n, g, 0, n, false)).isFalse();
        }
    }

    @Test
    void triangularInverseInvertsLowerAndUpper() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (CpuBackend be : BACKENDS) {
            for (int n : new int[] {1, 5, 127, 128, 257, 300}) {
                double[] l = new double[n * n];
                for (int i = 0; i < n; i++) {
                    l[i * n + i] = 1 + r.nextDouble();
                    for (int j = 0; j < i; j++) {
                        l[i * n + j] = r.nextGaussian() / n;
                    }
                }
                double[] x = l.clone();
                for (int i = 0; i < n; i++) {
                    for (int j = i + 1; j < n; j++) {
                        x[i * n + j] = 42; // garbage in the unused triangle is ignored
                    }
                }
                be.triangularInverse(n, x, 0, n, false);
                assertThat(maxAbsDiff(mul(x, l, n), identity(n))).as("%s n=%d", tag(be), n).isLessThan(1e-12);
                double[] u = transpose(l, n);
                be.triangularInverse(n, u, 0, n, true);
                assertThat(maxAbsDiff(mul(transpose(l, n), u, n), identity(n))).as("%s n=%d upper", tag(be), n)
                        .isLessThan(1e-12);
            }
        }
    }

    @Test
    void choleskyInverseAndInverseFactorAgreeWithTheReferencePath() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (CpuBackend be : BACKENDS) {
            for (int n : new int[] {3, 130, 301}) {
                double[] a = randomSpd(r, n);
                double[] l = a.clone();
                assertThat(be.cholesky(n, l, 0, n, false)).isTrue();
                double[] inv = new double[n * n];
                be.choleskyInverse(n, l, 0, n, inv, 0, n);
                assertThat(maxAbsDiff(mul(a, inv, n), identity(n))).as("%s n=%d", tag(be), n).isLessThan(1e-10);
                // reference path: cholesky -> cholesky_inverse -> cholesky(upper)
                double[] uRef = inv.clone();
                assertThat(be.cholesky(n, uRef, 0, n, true)).isTrue();
                double[] u = a.clone();
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < i; j++) {
                        u[i * n + j] = Double.NaN; // only the upper triangle is read
                    }
                }
                assertThat(be.inverseCholeskyUpper(n, u, 0, n)).isTrue();
                assertThat(maxAbsDiff(u, uRef)).as("%s n=%d", tag(be), n).isLessThan(1e-12 * maxAbs(uRef));
                for (int i = 0; i < n; i++) {
                    assertThat(u[i * n + i]).isPositive();
                    for (int j = 0; j < i; j++) {
                        assertThat(u[i * n + j]).isZero();
                    }
                }
            }
            double[] bad = randomSpd(r, 50);
            bad[10 * 50 + 10] = -5e3;
            assertThat(be.inverseCholeskyUpper(50, bad, 0, 50)).isFalse();
        }
    }

    /**
     * Column-at-a-time transcription of the reference loop (sparsegpt.py, fasterprune inner loop)
     * for one block: whole columns are updated, including column i itself, and Q is kept apart.
     */
    private static float[] naiveBlock(int rows, int width, float[] w0, float[] u, byte[] mask, int nmKeep, int nmGroup,
                                      int bits, boolean sym, int groupSize, float[] scale0, float[] zero0,
                                      float[] errOut, double[] loss, byte[] codes) {
        float[] w = w0.clone();
        float[] q = new float[rows * width];
        float[] scale = scale0.clone();
        float[] zero = zero0.clone();
        for (int i = 0; i < width; i++) {
            if (nmGroup > 0 && i % nmGroup == 0) {
                for (int r = 0; r < rows; r++) {
                    Integer[] idx = new Integer[nmGroup];
                    float[] s = new float[nmGroup];
                    for (int j = 0; j < nmGroup; j++) {
                        idx[j] = j;
                        float v = w[r * width + i + j];
                        float d = u[(i + j) * width + i + j];
                        s[j] = v * v / (d * d);
                    }
                    Arrays.sort(idx, (x, y) -> Float.compare(s[x], s[y])); // stable: ties keep column order
                    for (int p = 0; p < nmGroup - nmKeep; p++) {
                        mask[r * width + i + idx[p]] = 1;
                    }
                }
            }
            if (bits > 0 && groupSize > 0 && i % groupSize == 0) {
                for (int r = 0; r < rows; r++) {
                    float[] g = new float[2];
                    GridMath.fit(w, r * width + i, groupSize, 1, bits, sym, g, 0);
                    scale[r] = g[0];
                    zero[r] = g[1];
                }
            }
            for (int r = 0; r < rows; r++) {
                float wi = w[r * width + i];
                float qi = mask[r * width + i] != 0 ? 0f : wi;
                if (bits > 0) {
                    int maxq = (1 << bits) - 1;
                    float lv = Math.min(Math.max((float) Math.rint(qi / scale[r]) + zero[r], 0f), maxq);
                    codes[r * width + i] = (byte) ((int) lv - (1 << (bits - 1)));
                    qi = scale[r] * (lv - zero[r]);
                }
                q[r * width + i] = qi;
                float e = (wi - qi) / u[i * width + i];
                loss[r] += (double) e * e;
                errOut[r * width + i] = e;
                for (int j = i; j < width; j++) {
                    w[r * width + j] -= e * u[i * width + j];
                }
            }
        }
        return q;
    }

    @Test
    void sparseGptBlockMatchesTheReferenceLoop() {
        SplittableRandom r = new SplittableRandom(SEED);
        int[][] configs = {
            // nmKeep, nmGroup, bits, sym(0/1), groupSize
            {0, 0, 0, 0, 0}, {2, 4, 0, 0, 0}, {4, 8, 0, 0, 0}, {2, 4, 4, 0, 0}, {0, 0, 4, 0, 0},
            {2, 4, 4, 1, 16}, {0, 0, 8, 0, 32}, {1, 4, 3, 1, 0},
        };
        for (CpuBackend be : BACKENDS) {
            for (int[] cfg : configs) {
                int rows = 1 + r.nextInt(40);
                int width = 64;
                float[] w = randomF(r, rows * width);
                double[] spd = randomSpd(r, width);
                assertThat(be.inverseCholeskyUpper(width, spd, 0, width)).isTrue();
                float[] u = new float[width * width];
                for (int i = 0; i < u.length; i++) {
                    u[i] = (float) spd[i];
                }
                byte[] mask = new byte[rows * width];
                if (cfg[1] == 0) {
                    for (int i = 0; i < mask.length; i++) {
                        mask[i] = (byte) (r.nextDouble() < 0.5 ? 1 : 0);
                    }
                }
                int bits = cfg[2];
                boolean sym = cfg[3] == 1;
                int gs = cfg[4];
                float[] scale = new float[rows];
                float[] zero = new float[rows];
                if (bits > 0 && gs == 0) {
                    float[] g = new float[2];
                    for (int i = 0; i < rows; i++) {
                        GridMath.fit(w, i * width, width, 1, bits, sym, g, 0);
                        scale[i] = g[0];
                        zero[i] = g[1];
                    }
                }
                byte[] maskRef = mask.clone();
                float[] errRef = new float[rows * width];
                double[] lossRef = new double[rows];
                byte[] codesRef = new byte[rows * width];
                float[] qRef = naiveBlock(rows, width, w, u, maskRef, cfg[0], cfg[1], bits, sym, gs, scale, zero,
                        errRef, lossRef, codesRef);

                float[] wk = w.clone();
                float[] err = new float[rows * width];
                double[] loss = new double[rows + 1];
                byte[] codes = new byte[rows * width];
                int gcols = gs == 0 ? 1 : width / gs;
                float[] sc = new float[rows * gcols];
                float[] ze = new float[rows * gcols];
                if (gs == 0) {
                    System.arraycopy(scale, 0, sc, 0, rows);
                    System.arraycopy(zero, 0, ze, 0, rows);
                }
                SparseGptBlock.Quant quant = bits == 0 ? null : new SparseGptBlock.Quant(bits, sym, gs,
                        new FloatView(sc, 0, gcols), new FloatView(ze, 0, gcols), new ByteView(codes, 0, width));
                be.sparseGptBlock(new SparseGptBlock(rows, width, new FloatView(wk, 0, width), new FloatView(u, 0, width),
                        new FloatView(err, 0, width), new ByteView(mask, 0, width), cfg[0], cfg[1], quant, loss, 1));
                String msg = tag(be) + " cfg " + Arrays.toString(cfg) + " rows " + rows;
                assertThat(mask).as(msg).containsExactly(maskRef);
                assertThat(wk).as(msg).containsExactly(qRef);
                assertThat(err).as(msg).containsExactly(errRef);
                for (int i = 0; i < rows; i++) {
                    assertThat(loss[i + 1]).as(msg).isCloseTo(lossRef[i], org.assertj.core.data.Offset.offset(1e-9 * (1 + lossRef[i])));
                }
                if (bits > 0) {
                    assertThat(codes).as(msg).containsExactly(codesRef);
                }
            }
        }
    }
}
