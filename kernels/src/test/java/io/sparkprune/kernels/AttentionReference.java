package io.sparkprune.kernels;

import java.util.Arrays;

/**
 * An fp64 reference of {@link AttentionJob} for the tests of the fp32 and TF32 attention, written from
 * the semantics in {@link AttentionJob}'s documentation (masks, grouped heads, packed sequences), not
 * from the kernels: scores, softmax and the weighted sum all in fp64, the softmax exact (no rounding
 * of the weights). With {@code roundOperands} the operands are first rounded as the TF32 path rounds
 * them ({@code q' = tf32(fp32(scale·q))}, {@code k' = tf32(k)}, {@code v' = tf32(v)}; scale then 1),
 * so that a TF32 result differs from it only by the rounding of the weights to TF32 and by fp32
 * arithmetic; {@link #bound} is the error bound of such a result, element by element.
 *
 * <p><b>Bound.</b> A TF32 implementation computes {@code o' = Σ_j w_j(1+δ_j) v'_j / Σ_j w_j(1+δ_j)}
 * up to its final fp32 sum, where {@code w_j = e^{s_j - m}} are the exact weights and
 * {@code |δ_j| ≤ η} collects every relative perturbation of one weight: the rounding to TF32 (unit
 * roundoff {@code u = 2^-11}), the fp32 error of the score {@code |Δs_j| ≤ γ_D Σ_d |q'_d k'_d|}
 * (which multiplies the weight by {@code e^{Δs_j}}), the fp32 subtraction {@code s - m}, the
 * exponential (2 ulp) and the online softmax's rescale factors (2 ulp each, at most one per key tile of
 * 64, plus a rounding of the rescaled fp32 sum). Since {@code Σ_j w_j (v'_j - o) = 0} for the exact
 * {@code o}, {@code o' - o = Σ_j w_j δ_j (v'_j - o) / Σ_j w_j (1+δ_j)}, so
 * {@code |o' - o| ≤ η / (1 - η) · max_j |v'_j - o|}; the fp32 sum of {@code n} weighted values adds at
 * most {@code γ_n max_j |v'_j|} after normalization and the final scaling by {@code fp32(1/l)} a few
 * roundings more. fp32 roundings are counted as {@code ε = 2^-23} (twice IEEE's unit roundoff, which
 * also covers tensor cores that truncate their fp32 sums), {@code γ_n = nε / (1 - nε)}.
 */
public final class AttentionReference {
    /** TF32's unit roundoff: 10 explicit mantissa bits, round to nearest. */
    public static final double U_TF32 = 0x1p-11;
    /** One fp32 rounding, counted generously (see the class comment). */
    public static final double EPS32 = 0x1p-23;
    /** Keys per tile of the online softmax whose rescalings the bound allows for (attention_tf32's 64). */
    private static final int KEY_TILE = 64;

    /** The reference output and its bound, {@code rows × heads·headDim} row-major (rows of {@code job.out()}). */
    public record Result(double[] out, double[] bound, int rows, int cols) {
        /** @return the reference at (row, col) */
        public double out(int row, int col) {
            return out[row * cols + col];
        }

        /** @return the bound at (row, col) */
        public double bound(int row, int col) {
            return bound[row * cols + col];
        }
    }

    private AttentionReference() {
    }

    /**
     * @param r the random source
     * @param n values
     * @param scale half-width of the range
     * @return {@code n} values uniform in {@code [-scale, scale)}
     */
    public static float[] randomF(java.util.SplittableRandom r, int n, double scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
        return x;
    }

    /**
     * Row offsets of packed sequences: {@code gap} rows before the first, then the given lengths.
     *
     * @param gap rows before the first sequence
     * @param lengths rows of each sequence
     * @return {@code lengths.length + 1} offsets
     */
    public static int[] packed(int gap, int... lengths) {
        int[] s = new int[lengths.length + 1];
        s[0] = gap;
        for (int i = 0; i < lengths.length; i++) {
            s[i + 1] = s[i] + lengths[i];
        }
        return s;
    }

    /**
     * @param job the attention's arguments (its {@code out} and {@code tf32} are ignored)
     * @param roundOperands round q (after scaling), k and v to TF32 first
     * @return the fp64 reference for every row of every sequence (other rows 0) and the TF32 error bound
     */
    public static Result compute(AttentionJob job, boolean roundOperands) {
        job.validate();
        int hd = job.headDim();
        int heads = job.heads();
        int group = heads / job.kvHeads();
        int rows = job.rows();
        int cols = heads * hd;
        double[] out = new double[rows * cols];
        double[] bound = new double[rows * cols];
        FloatView q = job.q();
        FloatView k = job.k();
        FloatView v = job.v();
        for (int s = 0; s < job.sequences(); s++) {
            int base = job.seqStarts()[s];
            int n = job.seqStarts()[s + 1] - base;
            int kl = job.keyLength(s);
            for (int h = 0; h < heads; h++) {
                int g = h / group;
                // the sequence's operands of this head, rounded or not, in fp64
                double[][] kk = new double[n][hd];
                double[][] vv = new double[n][hd];
                for (int j = 0; j < n; j++) {
                    for (int d = 0; d < hd; d++) {
                        float kf = k.data()[k.index(base + j, g * hd + d)];
                        float vf = v.data()[v.index(base + j, g * hd + d)];
                        kk[j][d] = roundOperands ? Tf32.round(kf) : kf;
                        vv[j][d] = roundOperands ? Tf32.round(vf) : vf;
                    }
                }
                for (int i = 0; i < n; i++) {
                    double[] qi = new double[hd];
                    for (int d = 0; d < hd; d++) {
                        float qf = q.data()[q.index(base + i, h * hd + d)];
                        qi[d] = roundOperands ? Tf32.round(job.scale() * qf) : (double) job.scale() * qf;
                    }
                    int lo = job.window() > 0 ? Math.max(0, i - job.window() + 1) : 0;
                    int hi = job.causal() ? Math.min(kl, i + 1) : kl;
                    int o = (base + i) * cols + h * hd;
                    if (hi <= lo) {
                        continue; // no allowed key: zeros, exactly
                    }
                    double[] sc = new double[hi - lo];
                    double max = Double.NEGATIVE_INFINITY;
                    double absDot = 0;
                    double absS = 0;
                    for (int j = lo; j < hi; j++) {
                        double dot = 0;
                        double abs = 0;
                        for (int d = 0; d < hd; d++) {
                            dot += qi[d] * kk[j][d];
                            abs += Math.abs(qi[d] * kk[j][d]);
                        }
                        sc[j - lo] = dot;
                        max = Math.max(max, dot);
                        absDot = Math.max(absDot, abs);
                        absS = Math.max(absS, Math.abs(dot));
                    }
                    double sum = 0;
                    for (int j = 0; j < sc.length; j++) {
                        sc[j] = Math.exp(sc[j] - max);
                        sum += sc[j];
                    }
                    int keys = hi - lo;
                    int tiles = (keys + KEY_TILE - 1) / KEY_TILE + 2;
                    double eta = U_TF32 + 2 * gamma(hd) * absDot + 2 * absS * EPS32 + (4 * tiles + 8) * EPS32;
                    double gn = gamma(keys + 24);
                    for (int d = 0; d < hd; d++) {
                        double acc = 0;
                        for (int j = lo; j < hi; j++) {
                            acc += sc[j - lo] * vv[j][d];
                        }
                        double ref = acc / sum;
                        double spread = 0;
                        double vmax = 0;
                        for (int j = lo; j < hi; j++) {
                            spread = Math.max(spread, Math.abs(vv[j][d] - ref));
                            vmax = Math.max(vmax, Math.abs(vv[j][d]));
                        }
                        out[o + d] = ref;
                        bound[o + d] = eta / (1 - eta) * spread + (gn + (tiles + 4) * EPS32) * vmax;
                    }
                }
            }
        }
        return new Result(out, bound, rows, cols);
    }

    /** @return {@code γ_n = nε / (1 - nε)} with {@link #EPS32} */
    public static double gamma(int n) {
        return n * EPS32 / (1 - n * EPS32);
    }

    /**
     * The largest ratio {@code |got - ref| / bound} over the rows of the job's sequences (an
     * unwritten or non-finite element gives infinity); at most 1 means every element is within its bound.
     *
     * @param got output, {@code job.out()}'s layout
     * @param job the job (its out view's offset and stride locate {@code got}'s rows)
     * @param ref the reference
     * @return the worst ratio ({@link #check} describes the element)
     */
    public static double worstRatio(float[] got, AttentionJob job, Result ref) {
        return worst(got, job, ref)[0];
    }

    /**
     * Describes the worst element against the bound, for assertion messages.
     *
     * @param got output in {@code job.out()}'s layout
     * @param job the job
     * @param ref the reference
     * @return "row r col c: got x, reference y, bound b (ratio z)"
     */
    public static String check(float[] got, AttentionJob job, Result ref) {
        double[] w = worst(got, job, ref);
        int r = (int) w[1];
        int c = (int) w[2];
        if (r < 0) {
            return "no element";
        }
        return "row " + r + " col " + c + ": got " + got[job.out().index(r, c)] + ", reference " + ref.out(r, c)
                + ", bound " + ref.bound(r, c) + " (ratio " + w[0] + ")";
    }

    private static double[] worst(float[] got, AttentionJob job, Result ref) {
        double[] w = {0, -1, -1};
        for (int s = 0; s < job.sequences(); s++) {
            for (int r = job.seqStarts()[s]; r < job.seqStarts()[s + 1]; r++) {
                for (int c = 0; c < ref.cols(); c++) {
                    float x = got[job.out().index(r, c)];
                    double diff = Math.abs(x - ref.out(r, c));
                    double ratio = !Float.isFinite(x) ? Double.POSITIVE_INFINITY
                            : diff == 0 ? 0 : diff / ref.bound(r, c);
                    if (ratio > w[0] || w[1] < 0) {
                        w[0] = ratio;
                        w[1] = r;
                        w[2] = c;
                    }
                }
            }
        }
        return w;
    }

    /**
     * The largest absolute difference of two outputs over the rows of the job's sequences.
     *
     * @param a output in {@code job.out()}'s layout
     * @param b another
     * @param job the job
     * @return max |a - b|
     */
    public static double maxAbsDiff(float[] a, float[] b, AttentionJob job) {
        double m = 0;
        int cols = job.heads() * job.headDim();
        for (int s = 0; s < job.sequences(); s++) {
            for (int r = job.seqStarts()[s]; r < job.seqStarts()[s + 1]; r++) {
                for (int c = 0; c < cols; c++) {
                    int i = job.out().index(r, c);
                    m = Math.max(m, Math.abs((double) a[i] - b[i]));
                }
            }
        }
        return m;
    }

    /**
     * The largest absolute error of an output against a reference, over the rows of the job's sequences.
     *
     * @param got output in {@code job.out()}'s layout
     * @param job the job
     * @param ref the reference
     * @return max |got - ref|
     */
    public static double maxAbsError(float[] got, AttentionJob job, Result ref) {
        double m = 0;
        for (int s = 0; s < job.sequences(); s++) {
            for (int r = job.seqStarts()[s]; r < job.seqStarts()[s + 1]; r++) {
                for (int c = 0; c < ref.cols(); c++) {
                    m = Math.max(m, Math.abs(got[job.out().index(r, c)] - ref.out(r, c)));
                }
            }
        }
        return m;
    }

    /** @return a copy of {@code a} with {@code NaN} in every element of the job's output rows */
    public static float[] poisoned(float[] a, AttentionJob job) {
        float[] p = a.clone();
        int cols = job.heads() * job.headDim();
        for (int s = 0; s < job.sequences(); s++) {
            for (int r = job.seqStarts()[s]; r < job.seqStarts()[s + 1]; r++) {
                int i = job.out().index(r, 0);
                Arrays.fill(p, i, i + cols, Float.NaN);
            }
        }
        return p;
    }
}
