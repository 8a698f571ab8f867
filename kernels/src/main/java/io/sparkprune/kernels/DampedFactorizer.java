package io.sparkprune.kernels;

/**
 * Optional capability of a {@link Backend}: SparseGPT's damped inverse factor with the dampening
 * retry done where the matrix lives (the GPU backend uploads A once and retries on the device).
 * Callers fall back to {@link Backend#inverseCholeskyUpper} on a host copy per attempt when the
 * backend does not implement it.
 */
public interface DampedFactorizer {

    /**
     * For {@code k = 0, 1, …}: with the diagonal of A replaced by {@code diag[i] + lambdas[k]}, computes
     * {@link Backend#inverseCholeskyUpper} (the upper Cholesky factor U of {@code (A + λI)⁻¹}, fp64);
     * the first attempt whose Cholesky succeeds is rounded to fp32 into {@code u}.
     *
     * @param n order, ≥ 1
     * @param a {@code n × n} row-major fp64, symmetric; only the strict upper triangle is read (the
     *     diagonal comes from {@code diag}); not modified
     * @param diag the diagonal to use, length ≥ n (e.g. {@code H_ii}, with dead inputs set to 1)
     * @param lambdas absolute dampenings λ to try, in order
     * @param u receives U, {@code n × n} row-major fp32, zeros below the diagonal (written only on success)
     * @return the index of the λ that worked, or -1 when every attempt found A + λI not positive definite
     * @throws IllegalArgumentException when an array is too short
     */
    int dampedInverseCholeskyUpper(int n, double[] a, double[] diag, double[] lambdas, float[] u);
}
