package io.sparkprune.kernels.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.AttentionJob;
import io.sparkprune.kernels.Erf;
import io.sparkprune.kernels.FloatView;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The forward-pass kernels of {@link CpuBackend} against naive fp64 implementations written here
 * from the formulas (per element, per row, per query: no tiling, no shared code with the backend),
 * on fresh random inputs; the seed is in every message. Run for the plain-Java and, when present,
 * the Vector API microkernels, with one and two threads; shapes are large enough to be split into
 * several row chunks and attention tiles.
 */
class CpuForwardTest {
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

    private static float[] randomF(SplittableRandom r, int n, double scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
        return x;
    }

    private static void assertClose(String what, float[] got, int gOff, int ldg, double[] ref, int rows, int cols,
                                    double tol) {
        double worst = 0;
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                double g = got[gOff + i * ldg + j];
                double e = ref[i * cols + j];
                double err = Math.abs(g - e) / (1 + Math.abs(e));
                if (!(err <= tol)) {
                    throw new AssertionError(what + ": element (" + i + ", " + j + ") = " + g + ", expected " + e);
                }
                worst = Math.max(worst, err);
            }
        }
        assertThat(worst).as(what).isLessThanOrEqualTo(tol);
    }

    @Test
    void rmsNormMatchesFormula() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (CpuBackend be : BACKENDS) {
            int rows = 50 + r.nextInt(200);
            int cols = 1 + r.nextInt(300);
            int ldx = cols + r.nextInt(3);
            float[] x = randomF(r, rows * ldx + 2, 3);
            float[] w = randomF(r, cols + 1, 2);
            float eps = 1e-5f;
            float[] y = new float[rows * cols + 1];
            be.rmsNorm(rows, cols, eps, x, 1, ldx, w, 1, y, 1, cols);
            double[] ref = new double[rows * cols];
            for (int i = 0; i < rows; i++) {
                double ms = 0;
                for (int j = 0; j < cols; j++) {
                    ms += Math.pow(x[1 + i * ldx + j], 2);
                }
                ms /= cols;
                for (int j = 0; j < cols; j++) {
                    ref[i * cols + j] = w[1 + j] * x[1 + i * ldx + j] / Math.sqrt(ms + eps);
                }
            }
            assertClose("rmsNorm " + tag(be), y, 1, cols, ref, rows, cols, 1e-6);
            // in place gives the same
            float[] xi = x.clone();
            be.rmsNorm(rows, cols, eps, xi, 1, ldx, w, 1, xi, 1, ldx);
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    assertThat(xi[1 + i * ldx + j]).isEqualTo(y[1 + i * cols + j]);
                }
            }
        }
    }

    @Test
    void layerNormMatchesFormula() {
        SplittableRandom r = new SplittableRandom(SEED + 1);
        for (CpuBackend be : BACKENDS) {
            int rows = 50 + r.nextInt(200);
            int cols = 2 + r.nextInt(400);
            float[] x = randomF(r, rows * cols, 4);
            for (int i = 0; i < x.length; i++) {
                x[i] += 10f; // a large mean: the two-pass variance must not cancel
            }
            float[] g = randomF(r, cols, 2);
            float[] b = randomF(r, cols, 1);
            float eps = 1e-12f;
            float[] y = new float[rows * cols];
            be.layerNorm(rows, cols, eps, x, 0, cols, g, 0, b, 0, y, 0, cols);
            double[] ref = new double[rows * cols];
            for (int i = 0; i < rows; i++) {
                double m = 0;
                for (int j = 0; j < cols; j++) {
                    m += x[i * cols + j];
                }
                m /= cols;
                double v = 0;
                for (int j = 0; j < cols; j++) {
                    v += Math.pow(x[i * cols + j] - m, 2);
                }
                v /= cols;
                for (int j = 0; j < cols; j++) {
                    ref[i * cols + j] = (x[i * cols + j] - m) / Math.sqrt(v + eps) * g[j] + b[j];
                }
            }
            assertClose("layerNorm " + tag(be), y, 0, cols, ref, rows, cols, 2e-6);
        }
    }

    @Test
    void ropeRotatesHalvesAsTransformers() {
        SplittableRandom r = new SplittableRandom(SEED + 2);
        for (CpuBackend be : BACKENDS) {
            int rows = 30 + r.nextInt(100);
            int heads = 1 + r.nextInt(5);
            int hd = 2 * (1 + r.nextInt(16));
            int half = hd / 2;
            int tableRows = 64;
            int ld = heads * hd + r.nextInt(3);
            float[] x = randomF(r, rows * ld, 2);
            float[] cos = new float[tableRows * half];
            float[] sin = new float[tableRows * half];
            for (int p = 0; p < tableRows; p++) {
                for (int i = 0; i < half; i++) {
                    double ang = p * Math.pow(10000, -2.0 * i / hd);
                    cos[p * half + i] = (float) Math.cos(ang);
                    sin[p * half + i] = (float) Math.sin(ang);
                }
            }
            int[] pos = new int[rows];
            for (int i = 0; i < rows; i++) {
                pos[i] = r.nextInt(tableRows);
            }
            float[] y = x.clone();
            be.rope(rows, heads, hd, y, 0, ld, pos, 0, cos, sin, tableRows);
            double[] ref = new double[rows * heads * hd];
            for (int t = 0; t < rows; t++) {
                for (int h = 0; h < heads; h++) {
                    // out = x*cos_full + rotate_half(x)*sin_full, cos_full = cat(cos, cos), rotate_half = cat(-x2, x1)
                    for (int d = 0; d < hd; d++) {
                        double xv = x[t * ld + h * hd + d];
                        double rot = d < half ? -x[t * ld + h * hd + d + half] : x[t * ld + h * hd + d - half];
                        double c = cos[pos[t] * half + d % half];
                        double s = sin[pos[t] * half + d % half];
                        ref[(t * heads + h) * hd + d] = xv * c + rot * s;
                    }
                }
            }
            double[] got = new double[rows * heads * hd];
            for (int t = 0; t < rows; t++) {
                for (int c = 0; c < heads * hd; c++) {
                    got[t * heads * hd + c] = y[t * ld + c];
                }
                for (int c = heads * hd; c < ld; c++) {
                    assertThat(y[t * ld + c]).isEqualTo(x[t * ld + c]); // padding columns untouched
                }
            }
            float[] gotF = new float[got.length];
            for (int i = 0; i < got.length; i++) {
                gotF[i] = (float) got[i];
            }
            assertClose("rope " + tag(be), gotF, 0, heads * hd, ref, rows, heads * hd, 1e-6);
            int[] bad = pos.clone();
            bad[rows - 1] = tableRows;
            assertThatThrownBy(() -> be.rope(rows, heads, hd, y, 0, ld, bad, 0, cos, sin, tableRows))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("position " + tableRows);
        }
    }

    /** Naive attention, fp64, per query. */
    private static double[] naiveAttention(AttentionJob j) {
        int hd = j.headDim();
        int group = j.heads() / j.kvHeads();
        int rows = j.rows();
        double[] out = new double[rows * j.heads() * hd];
        for (int s = 0; s < j.sequences(); s++) {
            int base = j.seqStarts()[s];
            int n = j.seqStarts()[s + 1] - base;
            int kl = j.keyLengths() == null ? n : Math.min(n, j.keyLengths()[s]);
            for (int h = 0; h < j.heads(); h++) {
                int g = h / group;
                for (int i = 0; i < n; i++) {
                    List<Integer> keys = new ArrayList<>();
                    for (int k = 0; k < kl; k++) {
                        if (j.causal() && k > i) {
                            continue;
                        }
                        if (j.window() > 0 && i - k >= j.window()) {
                            continue;
                        }
                        keys.add(k);
                    }
                    if (keys.isEmpty()) {
                        continue;
                    }
                    double[] sc = new double[keys.size()];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int a = 0; a < sc.length; a++) {
                        double dot = 0;
                        for (int d = 0; d < hd; d++) {
                            dot += (double) j.q().data()[j.q().index(base + i, h * hd + d)]
                                    * j.k().data()[j.k().index(base + keys.get(a), g * hd + d)];
                        }
                        sc[a] = dot * j.scale();
                        max = Math.max(max, sc[a]);
                    }
                    double sum = 0;
                    for (int a = 0; a < sc.length; a++) {
                        sc[a] = Math.exp(sc[a] - max);
                        sum += sc[a];
                    }
                    for (int d = 0; d < hd; d++) {
                        double acc = 0;
                        for (int a = 0; a < sc.length; a++) {
                            acc += sc[a] / sum * j.v().data()[j.v().index(base + keys.get(a), g * hd + d)];
                        }
                        out[(base + i) * j.heads() * hd + h * hd + d] = acc;
                    }
                }
            }
        }
        return out;
    }

    private static void checkAttention(CpuBackend be, SplittableRandom r, int heads, int kvHeads, int hd,
                                       boolean causal, int window, int[] lengths, boolean padded, String what) {
        int seqs = lengths.length;
        int[] starts = new int[seqs + 1];
        int[] keyLengths = null;
        int maxLen = 0;
        for (int len : lengths) {
            maxLen = Math.max(maxLen, len);
        }
        if (padded) {
            keyLengths = lengths.clone();
            for (int s = 0; s <= seqs; s++) {
                starts[s] = s * maxLen;
            }
        } else {
            for (int s = 0; s < seqs; s++) {
                starts[s + 1] = starts[s] + lengths[s];
            }
        }
        int rows = starts[seqs];
        int ldq = heads * hd + r.nextInt(3);
        int ldk = kvHeads * hd + r.nextInt(3);
        float[] q = randomF(r, rows * ldq + 1, 2);
        float[] k = randomF(r, rows * ldk + 1, 2);
        float[] v = randomF(r, rows * ldk + 1, 1);
        float[] o = randomF(r, rows * heads * hd, 1);
        float scale = (float) (1 / Math.sqrt(hd));
        AttentionJob job = new AttentionJob(heads, kvHeads, hd, scale, causal, window, seqs, starts, keyLengths,
                new FloatView(q, 1, ldq), new FloatView(k, 1, ldk), new FloatView(v, 1, ldk), new FloatView(o, 0, heads * hd));
        be.attention(job);
        assertClose("attention " + what + " " + tag(be), o, 0, heads * hd, naiveAttention(job), rows, heads * hd, 2e-6);
    }

    @Test
    void attentionMatchesNaiveForEveryMask() {
        SplittableRandom r = new SplittableRandom(SEED + 3);
        for (CpuBackend be : BACKENDS) {
            // causal GQA, packed sequences longer than one tile
            checkAttention(be, r, 6, 2, 16, true, 0, new int[] {150, 1, 70}, false, "causal gqa packed");
            // causal multi-head, sliding window shorter than the sequence and than a tile
            checkAttention(be, r, 4, 4, 8, true, 37, new int[] {200, 90}, false, "causal window");
            // bidirectional, padded batch with padding masks (incl. a sequence without real tokens)
            checkAttention(be, r, 4, 4, 12, false, 0, new int[] {130, 17, 0, 64}, true, "padded bidirectional");
            // causal over a padded batch: padding queries attend to the real keys only
            checkAttention(be, r, 2, 1, 32, true, 0, new int[] {80, 33}, true, "padded causal mqa");
            // head width not a multiple of the vector length, one sequence of one token
            checkAttention(be, r, 3, 1, 7, false, 0, new int[] {1}, false, "single token");
        }
    }

    @Test
    void attentionIsStableForLargeScores() {
        for (CpuBackend be : BACKENDS) {
            int n = 5;
            float[] q = new float[n * 2];
            float[] k = new float[n * 2];
            float[] v = new float[n * 2];
            for (int i = 0; i < n; i++) {
                q[2 * i] = 300f;
                k[2 * i] = 300f + i; // scores ~ 9e4: exp overflows without max subtraction
                v[2 * i] = i;
                v[2 * i + 1] = 1f;
            }
            float[] o = new float[n * 2];
            be.attention(new AttentionJob(1, 1, 2, 1f, false, 0, 1, new int[] {0, n}, null,
                    new FloatView(q, 0, 2), new FloatView(k, 0, 2), new FloatView(v, 0, 2), new FloatView(o, 0, 2)));
            for (int i = 0; i < n; i++) {
                assertThat(o[2 * i]).as(tag(be)).isEqualTo(n - 1f); // all weight on the largest key
                assertThat(o[2 * i + 1]).isEqualTo(1f);
            }
        }
    }

    @Test
    void attentionRejectsBadShapes() {
        CpuBackend be = BACKENDS.get(0);
        float[] a = new float[8];
        FloatView fv = new FloatView(a, 0, 4);
        assertThatThrownBy(() -> be.attention(new AttentionJob(3, 2, 2, 1f, false, 0, 1, new int[] {0, 2}, null, fv, fv, fv, fv)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("multiple of kvHeads");
        assertThatThrownBy(() -> be.attention(new AttentionJob(2, 2, 2, 1f, false, 0, 1, new int[] {0, 3}, null, fv, fv, fv, fv)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("attention q");
        assertThatThrownBy(() -> be.attention(new AttentionJob(2, 2, 2, 1f, false, 4, 1, new int[] {0, 2}, null, fv, fv, fv, fv)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("only with causal");
    }

    @Test
    void activationsMatchFormulas() {
        SplittableRandom r = new SplittableRandom(SEED + 4);
        for (CpuBackend be : BACKENDS) {
            int rows = 40 + r.nextInt(100);
            int cols = 1 + r.nextInt(500);
            float[] g = randomF(r, rows * cols, 12);
            float[] u = randomF(r, rows * cols, 3);
            float[] y = new float[rows * cols];
            be.siluMul(rows, cols, g, 0, cols, u, 0, cols, y, 0, cols);
            double[] ref = new double[rows * cols];
            for (int i = 0; i < ref.length; i++) {
                ref[i] = g[i] * (1 / (1 + Math.exp(-(double) g[i]))) * u[i];
            }
            assertClose("siluMul " + tag(be), y, 0, cols, ref, rows, cols, 4e-7);

            float[] x = g.clone();
            be.gelu(rows, cols, x, 0, cols);
            for (int i = 0; i < ref.length; i++) {
                // Φ(x) from erfc of the independent identity Φ(x) = 1 - Φ(-x), checked against Erf separately
                ref[i] = g[i] * 0.5 * (1 + Erf.erf(g[i] / Math.sqrt(2)));
            }
            assertClose("gelu " + tag(be), x, 0, cols, ref, rows, cols, 3e-7);
        }
    }

    /**
     * The Vector API elementwise loops agree with the plain-Java ones to within 1 fp32 ulp on
     * random values over a wide range (every interval of Cody's approximation, exp underflow) and
     * exactly on special values.
     */
    @Test
    void simdElementwiseAgreesWithScalar() throws Exception {
        org.assertj.core.api.Assumptions.assumeThat(CpuBackend.simdAvailable()).isTrue();
        ForwardLoops simd = (ForwardLoops) Class.forName("io.sparkprune.kernels.cpu.SimdForwardLoops")
                .getDeclaredConstructor().newInstance();
        ForwardLoops scalar = new ScalarForwardLoops();
        SplittableRandom r = new SplittableRandom(SEED + 7);
        int n = 100_003;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextGaussian() * (i % 3 == 0 ? 1 : i % 3 == 1 ? 6 : 40));
        }
        float[] special = {0f, -0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, 1e-30f, -1e-30f,
            30f, -30f, 5.657f, -5.657f, 0.6629126f, -0.6629126f, 0.66291267f, 40f, -40f, 3.4e38f, -3.4e38f};
        System.arraycopy(special, 0, x, 0, special.length);
        float[] a = x.clone();
        float[] b = x.clone();
        simd.gelu(a, 0, n);
        scalar.gelu(b, 0, n);
        assertWithinUlp("gelu", a, b, special.length);
        float[] u = randomF(r, n, 3);
        a = new float[n];
        b = new float[n];
        simd.siluMul(x, 0, u, 0, a, 0, n);
        scalar.siluMul(x, 0, u, 0, b, 0, n);
        assertWithinUlp("siluMul", a, b, special.length);
        a = x.clone();
        b = x.clone();
        for (int i = 0; i < special.length; i++) {
            a[i] = b[i] = -1f; // finite scores only
        }
        double sa = simd.expShift(a, 3, n - 3, 50f);
        double sb = scalar.expShift(b, 3, n - 3, 50f);
        assertWithinUlp("expShift", a, b, 0);
        assertThat(sa).isCloseTo(sb, org.assertj.core.data.Offset.offset(1e-12 * sb));

        // attention products: same FMA order, bit-identical, for sizes around the vector lengths
        for (int trial = 0; trial < 20; trial++) {
            int rows = 1 + r.nextInt(70);
            int nk = 1 + r.nextInt(150);
            int hd = 1 + r.nextInt(140);
            int ldq = hd + r.nextInt(3);
            float[] q = randomF(r, rows * ldq + 2, 1);
            float[] kt = randomF(r, hd * nk, 1);
            float[] s1 = randomF(r, rows * nk, 1);
            float[] s2 = randomF(r, rows * nk, 1);
            simd.scores(rows, nk, hd, 0.3f, q, 2, ldq, kt, s1);
            scalar.scores(rows, nk, hd, 0.3f, q, 2, ldq, kt, s2);
            assertThat(s1).as("scores %d x %d x %d", rows, nk, hd).containsExactly(s2);
            int ldv = hd + r.nextInt(3);
            float[] v = randomF(r, nk * ldv + 1, 1);
            float[] o1 = randomF(r, rows * ldv + 1, 1);
            float[] o2 = o1.clone();
            simd.weightedSum(rows, hd, nk, s1, v, 1, ldv, o1, 1, ldv);
            scalar.weightedSum(rows, hd, nk, s1, v, 1, ldv, o2, 1, ldv);
            assertThat(o1).as("weightedSum %d x %d x %d", rows, hd, nk).containsExactly(o2);
        }
    }

    private static void assertWithinUlp(String what, float[] a, float[] b, int exactPrefix) {
        for (int i = 0; i < a.length; i++) {
            if (Float.isNaN(b[i])) {
                assertThat(a[i]).as(what + " at %d", i).isNaN();
                continue;
            }
            if (i < exactPrefix) {
                assertThat(a[i]).as(what + " special value %d", i).isEqualTo(b[i]);
            }
            if (a[i] == b[i]) {
                continue; // also ±∞
            }
            float ulp = Math.max(Math.ulp(b[i]), Float.MIN_VALUE);
            assertThat(Math.abs(a[i] - b[i])).as(what + " at %d: %s vs %s, seed %d", i, a[i], b[i], SEED)
                    .isLessThanOrEqualTo(ulp);
        }
    }

    @Test
    void embeddingAndAddsMatchFormulas() {
        SplittableRandom r = new SplittableRandom(SEED + 5);
        for (CpuBackend be : BACKENDS) {
            int vocab = 50;
            int cols = 1 + r.nextInt(200);
            int rows = 100 + r.nextInt(300);
            float[] table = randomF(r, vocab * cols + 3, 1);
            int[] ids = new int[rows + 1];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = r.nextInt(vocab);
            }
            float[] y = randomF(r, rows * cols, 1);
            float[] y0 = y.clone();
            be.embedding(rows, cols, ids, 1, table, 3, vocab, y, 0, cols, true);
            double[] ref = new double[rows * cols];
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    ref[i * cols + j] = y0[i * cols + j] + table[3 + ids[i + 1] * cols + j];
                }
            }
            assertClose("embedding accumulate " + tag(be), y, 0, cols, ref, rows, cols, 1e-7);
            be.embedding(rows, cols, ids, 1, table, 3, vocab, y, 0, cols, false);
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    assertThat(y[i * cols + j]).isEqualTo(table[3 + ids[i + 1] * cols + j]);
                }
            }
            int[] bad = ids.clone();
            bad[5] = vocab;
            assertThatThrownBy(() -> be.embedding(rows, cols, bad, 1, table, 3, vocab, y, 0, cols, false))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("id " + vocab);

            float[] bias = randomF(r, cols, 1);
            float[] z = randomF(r, rows * cols, 1);
            float[] z0 = z.clone();
            be.addRowVector(rows, cols, bias, 0, z, 0, cols);
            for (int i = 0; i < rows * cols; i++) {
                assertThat(z[i]).isEqualTo(z0[i] + bias[i % cols]);
            }
            float[] w = randomF(r, rows * cols, 1);
            be.add(rows, cols, w, 0, cols, z, 0, cols);
            for (int i = 0; i < rows * cols; i++) {
                assertThat(z[i]).isEqualTo((z0[i] + bias[i % cols]) + w[i]);
            }
        }
    }

    @Test
    void logSoftmaxAndCrossEntropyMatchFormulas() {
        SplittableRandom r = new SplittableRandom(SEED + 6);
        for (CpuBackend be : BACKENDS) {
            int rows = 30 + r.nextInt(60);
            int cols = 2 + r.nextInt(3000);
            float[] x = randomF(r, rows * cols, 30);
            x[0] = 1e4f; // stability: a huge logit must not overflow
            int[] t = new int[rows];
            for (int i = 0; i < rows; i++) {
                t[i] = r.nextInt(cols);
            }
            double[] nll = new double[rows + 2];
            be.crossEntropy(rows, cols, x, 0, cols, t, 0, nll, 2);
            double[] lse = new double[rows];
            for (int i = 0; i < rows; i++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < cols; j++) {
                    max = Math.max(max, x[i * cols + j]);
                }
                double s = 0;
                for (int j = 0; j < cols; j++) {
                    s += Math.exp(x[i * cols + j] - max);
                }
                lse[i] = max + Math.log(s);
                double ref = lse[i] - x[i * cols + t[i]];
                assertThat(nll[2 + i]).as("nll row %d %s", i, tag(be)).isCloseTo(ref, org.assertj.core.data.Offset.offset(1e-9 * (1 + ref)));
            }
            float[] ls = x.clone();
            be.logSoftmax(rows, cols, ls, 0, cols);
            double[] ref = new double[rows * cols];
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    ref[i * cols + j] = x[i * cols + j] - lse[i];
                }
            }
            assertClose("logSoftmax " + tag(be), ls, 0, cols, ref, rows, cols, 1e-6);
            int[] bad = t.clone();
            bad[0] = -1;
            assertThatThrownBy(() -> be.crossEntropy(rows, cols, x, 0, cols, bad, 0, nll, 0))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("target -1");
        }
    }
}
