package io.sparkprune.kernels.cpu;

/**
 * The innermost loops of the CPU backend: a cache-resident matrix product tile. Two
 * implementations exist, {@link ScalarMicrokernels} (plain Java; the JIT vectorises the loops it
 * can) and {@code SimdMicrokernels} (JDK Vector API, register-blocked), and they produce
 * bit-identical results: every element of C is updated as {@code c = fma(alpha * a[i,l], b[l,j], c)}
 * for {@code l = 0, 1, ..., k-1} in that order, in fp32 (resp. fp64).
 */
abstract class Microkernels {

    /** @return "scalar" or "simd" */
    abstract String name();

    /**
     * {@code C[m×n] += alpha · A[m×k] · B[k×n]}, fp32, all row-major with the given strides.
     *
     * @param m rows of C
     * @param n columns of C
     * @param k inner dimension
     * @param alpha scale
     * @param a A's array
     * @param aOff A(0,0)
     * @param lda A's row stride
     * @param b B's array
     * @param bOff B(0,0)
     * @param ldb B's row stride
     * @param c C's array
     * @param cOff C(0,0)
     * @param ldc C's row stride
     */
    abstract void gemmF(int m, int n, int k, float alpha, float[] a, int aOff, int lda,
                        float[] b, int bOff, int ldb, float[] c, int cOff, int ldc);

    /**
     * {@code C[m×n] += alpha · A[m×k] · B[k×n]}, fp64; see {@link #gemmF}.
     *
     * @param m rows of C
     * @param n columns of C
     * @param k inner dimension
     * @param alpha scale
     * @param a A's array
     * @param aOff A(0,0)
     * @param lda A's row stride
     * @param b B's array
     * @param bOff B(0,0)
     * @param ldb B's row stride
     * @param c C's array
     * @param cOff C(0,0)
     * @param ldc C's row stride
     */
    abstract void gemmD(int m, int n, int k, double alpha, double[] a, int aOff, int lda,
                        double[] b, int bOff, int ldb, double[] c, int cOff, int ldc);

    /**
     * {@code y[yOff + j] -= e * x[xOff + j]} for {@code j < n}, fp32, product rounded then
     * subtracted (not fused), exactly as the reference's outer-product update.
     *
     * @param n length
     * @param e scale
     * @param x x's array
     * @param xOff x(0)
     * @param y y's array, updated
     * @param yOff y(0)
     */
    abstract void subScaled(int n, float e, float[] x, int xOff, float[] y, int yOff);
}
