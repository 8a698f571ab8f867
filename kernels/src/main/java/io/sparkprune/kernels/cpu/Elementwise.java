package io.sparkprune.kernels.cpu;

/**
 * The transcendental inner loops of {@link CpuForward} on contiguous runs of elements. Two
 * implementations: {@link ScalarElementwise} (plain Java, {@code Math.exp} and {@link
 * io.sparkprune.kernels.Erf}) and {@code SimdElementwise} (JDK Vector API, whose {@code EXP} is
 * Intel SVML's, within 1 ulp of fp64). Both evaluate in fp64 and round to fp32 once, so they agree
 * to the last fp32 bit except in rare rounding ties (never by more than 1 fp32 ulp).
 */
abstract class Elementwise {

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
}
