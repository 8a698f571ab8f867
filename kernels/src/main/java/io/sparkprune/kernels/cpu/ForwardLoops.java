package io.sparkprune.kernels.cpu;

/**
 * The inner loops of {@link CpuForward}: the transcendental elementwise loops on contiguous runs
 * of elements, and attention's two small products. Two implementations: {@link ScalarForwardLoops}
 * (plain Java, {@code Math.exp} and {@link io.sparkprune.kernels.Erf}) and {@code SimdForwardLoops}
 * (JDK Vector API, whose {@code EXP} is Intel SVML's, within 1 ulp of fp64). The elementwise loops
 * evaluate in fp64 and round to fp32 once, so the two agree to the last fp32 bit except in rare
 * rounding cases (never by more than 1 fp32 ulp); the products are bit-identical (same FMA order).
 *
 * <p>Attention does not call the sgemm {@link Microkernels}: its products have small, irregular
 * shapes (a sequence's length as a dimension), and feeding them to the shared microkernel changes
 * the JIT's profile of that method enough to make every later large sgemm about ten times slower.
 */
abstract class ForwardLoops {

    /** @return "scalar" or "simd" */
    abstract String name();

    /**
     * GELU in place: {@code x[i] ← 0.5·x·erfc(-x/√2)} (= {@code 0.5·x·(1 + erf(x/√2))}) for
     * {@code i ∈ [off, off + n)}, W. J. Cody's rational approximations in fp64.
     *
     * @param x array
     * @param off first index
     * @param n elements
     */
    abstract void gelu(float[] x, int off, int n);

    /**
     * {@code y[yOff+i] ← fp32(g/(1 + e^{-g})) · u[uOff+i]} with {@code g = g[gOff+i]}, for
     * {@code i < n}; y may alias g or u at the same index.
     *
     * @param g gate values
     * @param gOff first gate index
     * @param u up values
     * @param uOff first up index
     * @param y output
     * @param yOff first output index
     * @param n elements
     */
    abstract void siluMul(float[] g, int gOff, float[] u, int uOff, float[] y, int yOff, int n);

    /**
     * The numerator of a stable softmax, in place: {@code s[i] ← fp32(exp(fp32(s[i] - max)))} for
     * {@code i ∈ [off, off + n)}.
     *
     * @param s scores
     * @param off first index
     * @param n elements
     * @param max the maximum of the scores (subtracted first, in fp32)
     * @return the sum of the new values, in fp64
     */
    abstract double expShift(float[] s, int off, int n, float max);

    /**
     * Attention scores {@code S = scale · Q · Kᵀ}: {@code S[i, j] = Σ_d fma(scale·q[i,d], kt[d,j], ·)}
     * accumulated over d = 0, 1, ... in fp32, for {@code i < rows}, {@code j < nk}; S is
     * overwritten.
     *
     * @param rows query rows
     * @param nk keys
     * @param hd head width
     * @param scale factor applied to q
     * @param q queries, row i at {@code qOff + i·ldq}
     * @param qOff index of q(0,0)
     * @param ldq q's row stride
     * @param kt packed Kᵀ, {@code hd × nk} contiguous
     * @param s output, {@code rows × nk} contiguous
     */
    abstract void scores(int rows, int nk, int hd, float scale, float[] q, int qOff, int ldq, float[] kt, float[] s);

    /**
     * Attention output {@code O = P · V}: {@code O[i, :] = Σ_j fma(p[i,j], v[j, :], ·)} over
     * j = 0, 1, ... in fp32; O is overwritten.
     *
     * @param rows query rows
     * @param hd head width
     * @param nk keys
     * @param p probabilities, {@code rows × nk} contiguous
     * @param v values, row j at {@code vOff + j·ldv}
     * @param vOff index of v(0,0)
     * @param ldv v's row stride
     * @param o output, row i at {@code oOff + i·ldo}
     * @param oOff index of o(0,0)
     * @param ldo o's row stride
     */
    abstract void weightedSum(int rows, int hd, int nk, float[] p, float[] v, int vOff, int ldv, float[] o, int oOff,
                              int ldo);
}
