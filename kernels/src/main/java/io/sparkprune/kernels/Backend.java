package io.sparkprune.kernels;

/**
 * The compute kernels SparkPrune needs, at the granularity of kernels: dense matrices are flat
 * row-major arrays with an offset and a leading dimension (row stride, in elements), BLAS style.
 * {@code io.sparkprune.kernels.cpu.CpuBackend} is the pure-Java, multi-threaded reference; a CUDA
 * backend implements the same contract and is compared with it kernel by kernel.
 *
 * <p>Precision: fp32 kernels take and return fp32 and accumulate in fp32 with fused multiply-adds;
 * the Hessian and every factorization (Cholesky, triangular inverses) accumulate and store in fp64,
 * because the inverse factor amplifies rounding in H by its condition number.
 *
 * <p>Argument errors (windows outside an array, negative sizes) are programming errors and throw
 * {@link IllegalArgumentException}; numerical failure of a factorization is reported through the
 * return value, never by an exception, so that callers can retry with more dampening.
 * Implementations are thread-safe: calls may come from several threads at once.
 */
public interface Backend extends AutoCloseable {

    /** @return a short name for logs and benchmarks, e.g. {@code "cpu(2 threads, simd)"} */
    String name();

    /** @return the number of threads (or streams) one call may use */
    int threads();

    /**
     * General matrix product, fp32: {@code C = alpha · op(A) · op(B) + beta · C} where
     * {@code op(X) = X} or {@code Xᵀ}. {@code op(A)} is {@code m × k}, {@code op(B)} is
     * {@code k × n}, C is {@code m × n}. Stored shapes: A is {@code m × k} ({@code k × m} when
     * {@code transA}), B is {@code k × n} ({@code n × k} when {@code transB}). With {@code beta == 0}
     * C is not read (NaN in C does not propagate), as in BLAS. C must not overlap A or B.
     * Examples: {@code C -= A·B} is {@code alpha = -1, beta = 1}; a linear layer {@code Y = X·Wᵀ} is
     * {@code transB = true}.
     *
     * @param transA use Aᵀ
     * @param transB use Bᵀ
     * @param m rows of C
     * @param n columns of C
     * @param k inner dimension
     * @param alpha scale of the product
     * @param a A's array
     * @param aOff index of A's element (0,0)
     * @param lda A's row stride
     * @param b B's array
     * @param bOff index of B's element (0,0)
     * @param ldb B's row stride
     * @param beta scale of the old C
     * @param c C's array, updated
     * @param cOff index of C's element (0,0)
     * @param ldc C's row stride
     */
    void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
               float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
               float beta, float[] c, int cOff, int ldc);

    /**
     * Symmetric rank-k update into a packed fp64 upper triangle: {@code C += Xᵀ · X} for X of
     * {@code k × n} fp32 (k tokens, n features, row stride {@code ldx}); products and sums in fp64.
     * C is the upper triangle packed by rows: element {@code (i, j)}, {@code j ≥ i}, lives at
     * {@code i·n - i·(i-1)/2 + (j - i)}; length {@code n·(n+1)/2}.
     *
     * @param n features (columns of X)
     * @param k tokens (rows of X)
     * @param x X's array
     * @param xOff index of X's element (0,0)
     * @param ldx X's row stride
     * @param cPacked packed upper triangle, updated
     */
    void syrkPackedUpper(int n, int k, float[] x, int xOff, int ldx, double[] cPacked);

    /**
     * In-place Cholesky factorization of a symmetric positive definite {@code n × n} matrix, fp64.
     * Lower: {@code A = L·Lᵀ}, L written to the lower triangle; upper: {@code A = Uᵀ·U}, U written
     * to the upper triangle. Only that triangle of A is read; the other triangle is set to zero on
     * success.
     *
     * @param n order
     * @param a matrix, overwritten
     * @param aOff index of element (0,0)
     * @param lda row stride
     * @param upper factor as {@code UᵀU} instead of {@code LLᵀ}
     * @return false when A is not (numerically) positive definite: a pivot was ≤ 0 or NaN; A is then
     *     partly overwritten
     */
    boolean cholesky(int n, double[] a, int aOff, int lda, boolean upper);

    /**
     * In-place inverse of a non-singular triangular {@code n × n} matrix, fp64; the other triangle
     * is set to zero.
     *
     * @param n order
     * @param a triangular matrix, overwritten with its inverse
     * @param aOff index of element (0,0)
     * @param lda row stride
     * @param upper A is upper (else lower) triangular
     */
    void triangularInverse(int n, double[] a, int aOff, int lda, boolean upper);

    /**
     * {@code (L·Lᵀ)⁻¹} from a lower Cholesky factor L, fp64, full symmetric result (PyTorch's
     * {@code torch.cholesky_inverse}).
     *
     * @param n order
     * @param l lower factor (only the lower triangle is read)
     * @param lOff index of L's element (0,0)
     * @param ldl L's row stride
     * @param out receives the inverse, {@code n × n}; must not overlap L
     * @param outOff index of out's element (0,0)
     * @param ldo out's row stride
     */
    void choleskyInverse(int n, double[] l, int lOff, int ldl, double[] out, int outOff, int ldo);

    /**
     * SparseGPT's inverse factor in one call, fp64, in place: for a symmetric positive definite A,
     * writes the upper triangular U with positive diagonal and {@code Uᵀ·U = A⁻¹} (the upper
     * Cholesky factor of A⁻¹), zeros below the diagonal. Equal, up to fp64 rounding, to
     * {@code cholesky(A) → choleskyInverse → cholesky(upper)} as the reference computes it, at half
     * the cost: with P the order-reversing permutation and {@code P·A·P = L'·L'ᵀ},
     * {@code U = P·L'⁻¹·P}.
     *
     * @param n order
     * @param a symmetric matrix (only its upper triangle is read), overwritten with U
     * @param aOff index of element (0,0)
     * @param lda row stride
     * @return false when A is not (numerically) positive definite
     */
    boolean inverseCholeskyUpper(int n, double[] a, int aOff, int lda);

    /**
     * The fused SparseGPT in-block solve (mask selection for N:M, joint quantization, error
     * propagation inside one column block); see {@link SparseGptBlock} for the exact semantics.
     *
     * @param job arguments
     * @throws IllegalArgumentException when the views do not fit their shapes
     */
    void sparseGptBlock(SparseGptBlock job);

    /** Releases threads or device resources; the backend is unusable afterwards. */
    @Override
    void close();
}
