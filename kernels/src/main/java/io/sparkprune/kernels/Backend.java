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

    /** Tokens per fp32 partial sum of {@link #syrkPackedUpperTf32}. */
    int SYRK_TF32_CHUNK = 256;

    /**
     * {@link #syrkPackedUpper} in TF32 tensor-core precision: {@code C += Xᵀ · X} for X of
     * {@code k × n} fp32 (k tokens, n features, row stride {@code ldx}) into the same packed fp64
     * upper triangle. Arithmetic, as the CUDA kernel {@code syrk_packed_tf32} does it:
     * <ol>
     *   <li>every element of X is rounded to TF32 ({@link Tf32#round}: {@code cvt.rna.tf32.f32},
     *       round to nearest with ties away from zero, 10 explicit mantissa bits; NVIDIA PTX ISA,
     *       "cvt" and "mma.sync ... .f32.tf32.tf32.f32");</li>
     *   <li>the tokens of this call are cut into chunks of {@value #SYRK_TF32_CHUNK}, counted from
     *       the call's token 0 (the last chunk may be shorter); within a chunk, products of the
     *       rounded values (exact in fp32: 11 × 11 significand bits) are summed in fp32 starting
     *       from 0;</li>
     *   <li>each chunk's fp32 sum is widened and added to C in fp64.</li>
     * </ol>
     * The order of the fp32 additions inside a chunk is the implementation's (the CPU twin adds the
     * tokens in order; the tensor cores add groups of 8 products, and their fp32 accumulator need
     * not round each addition as IEEE round-to-nearest does), so implementations agree to the fp32
     * rounding of the chunk sums (about {@code 256 · 2^-24} relative to the sum of absolute products),
     * not bit for bit. Against the exact fp64 sums of {@link #syrkPackedUpper} the relative error is
     * about {@code 2^-11} per operand, i.e. of order 1e-4 to 1e-3 for the whole matrix.
     *
     * @param n features (columns of X)
     * @param k tokens (rows of X)
     * @param x X's array
     * @param xOff index of X's element (0,0)
     * @param ldx X's row stride
     * @param cPacked packed upper triangle (layout of {@link #syrkPackedUpper}), updated
     * @throws IllegalArgumentException when X does not fit its array or cPacked is too short
     */
    void syrkPackedUpperTf32(int n, int k, float[] x, int xOff, int ldx, double[] cPacked);

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

    // =====================================================================================
    // Forward-pass kernels (model forward passes, issue 3). Shapes are row-major windows with a
    // row stride, as above; "rows" are tokens. Reductions (norm statistics, softmax sums,
    // log-sum-exp) are accumulated in fp64; every other operation is fp32 unless stated.
    // =====================================================================================

    /**
     * RMSNorm (Zhang &amp; Sennrich 2019, arXiv 1910.07467, Eq. 4; Hugging Face {@code LlamaRMSNorm}):
     * for every row, {@code y = w ⊙ (x · r)} with {@code r = 1/√(mean(x²) + eps)}; {@code mean(x²)}
     * is summed in fp64, r rounded to fp32, then two fp32 products per element (as transformers:
     * {@code weight * (x * rsqrt(var + eps))}). y may be the same window as x (in place).
     *
     * @param rows rows
     * @param cols features per row
     * @param eps ε added to the mean square
     * @param x input, {@code rows × cols}
     * @param xOff index of x(0,0)
     * @param ldx x's row stride
     * @param w {@code cols} gains
     * @param wOff index of w[0]
     * @param y output, {@code rows × cols}
     * @param yOff index of y(0,0)
     * @param ldy y's row stride
     */
    void rmsNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] w, int wOff,
                 float[] y, int yOff, int ldy);

    /**
     * LayerNorm (Ba et al. 2016, arXiv 1607.06450, Eq. 4; {@code torch.nn.LayerNorm}): for every
     * row, {@code y = (x - μ) · r ⊙ γ + β}, with mean μ and biased variance σ² of the row computed
     * in fp64 (two passes), {@code r = 1/√(σ² + eps)} rounded to fp32. y may be x (in place).
     *
     * @param rows rows
     * @param cols features per row
     * @param eps ε added to the variance
     * @param x input, {@code rows × cols}
     * @param xOff index of x(0,0)
     * @param ldx x's row stride
     * @param gamma {@code cols} gains
     * @param gOff index of gamma[0]
     * @param beta {@code cols} biases
     * @param bOff index of beta[0]
     * @param y output, {@code rows × cols}
     * @param yOff index of y(0,0)
     * @param ldy y's row stride
     */
    void layerNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] gamma, int gOff,
                   float[] beta, int bOff, float[] y, int yOff, int ldy);

    /**
     * Rotary position embedding, in place (Su et al. 2021, "RoFormer", arXiv 2104.09864, §3.4.2,
     * Eq. 34), in the "rotate_half" convention of Hugging Face transformers
     * ({@code apply_rotary_pos_emb}): a head vector x of width {@code d = headDim} is split into
     * halves {@code x1 = x[0, d/2)}, {@code x2 = x[d/2, d)} (not interleaved pairs), and for
     * {@code i < d/2}, with {@code c = cos[p, i]}, {@code s = sin[p, i]} of the token's position p:
     * {@code x[i] ← x1[i]·c - x2[i]·s}, {@code x[i + d/2] ← x2[i]·c + x1[i]·s} (fp32 products,
     * then one fp32 addition). The tables hold one row per position, {@code d/2} columns (the
     * frequencies; transformers' tables repeat them twice).
     *
     * @param rows tokens
     * @param heads heads per row
     * @param headDim width of one head, even
     * @param x {@code rows × heads·headDim}, head h in columns {@code [h·headDim, (h+1)·headDim)}; updated
     * @param xOff index of x(0,0)
     * @param ldx x's row stride
     * @param positions position of each row, indices into the tables
     * @param posOff index of row 0's position
     * @param cos {@code tableRows × headDim/2} cosines, row-major
     * @param sin {@code tableRows × headDim/2} sines, row-major
     * @param tableRows number of positions the tables cover
     * @throws IllegalArgumentException when a position is outside {@code [0, tableRows)} or shapes do not fit
     */
    void rope(int rows, int heads, int headDim, float[] x, int xOff, int ldx, int[] positions, int posOff,
              float[] cos, float[] sin, int tableRows);

    /**
     * Scaled dot-product attention over a batch of sequences, with causal, sliding-window and
     * padding masks and grouped key/value heads; see {@link AttentionJob} for the exact semantics.
     * Implementations must not materialise a {@code seq × seq} score matrix for all heads at once.
     *
     * @param job arguments
     * @throws IllegalArgumentException when the views do not fit their shapes
     */
    void attention(AttentionJob job);

    /**
     * SwiGLU gating (Shazeer 2020, arXiv 2002.05202, Eq. 6 with Swish₁ = SiLU): {@code y = silu(g) ⊙ u}
     * with {@code silu(g) = g / (1 + e^{-g})} evaluated in fp64 and rounded to fp32, then one fp32
     * product (the exponential within 1 ulp of fp64, so results agree across implementations to
     * 1 fp32 ulp). y may be g or u (in place).
     *
     * @param rows rows
     * @param cols features
     * @param g gate projection, {@code rows × cols}
     * @param gOff index of g(0,0)
     * @param ldg g's row stride
     * @param u up projection, {@code rows × cols}
     * @param uOff index of u(0,0)
     * @param ldu u's row stride
     * @param y output, {@code rows × cols}
     * @param yOff index of y(0,0)
     * @param ldy y's row stride
     */
    void siluMul(int rows, int cols, float[] g, int gOff, int ldg, float[] u, int uOff, int ldu,
                 float[] y, int yOff, int ldy);

    /**
     * GELU, exact erf form (Hendrycks &amp; Gimpel 2016, arXiv 1606.08415), in place:
     * {@code x ← 0.5·x·(1 + erf(x/√2))} evaluated in fp64 with W. J. Cody's rational approximations
     * ({@link Erf}) and rounded to fp32; implementations may differ in how they evaluate the
     * exponential inside erf, by at most 1 fp32 ulp of the result.
     *
     * @param rows rows
     * @param cols features
     * @param x {@code rows × cols}, updated
     * @param xOff index of x(0,0)
     * @param ldx x's row stride
     */
    void gelu(int rows, int cols, float[] x, int xOff, int ldx);

    /**
     * Embedding lookup: {@code y[r] = table[ids[r]]} (or {@code y[r] += table[ids[r]]} when
     * {@code accumulate}, one fp32 addition per element), for a table of {@code tableRows × cols}
     * stored contiguously from {@code tOff}. A device backend may keep a large table's device copy
     * between calls, keyed by the array's identity (the CUDA backend: tables of at least
     * {@code CudaBackend.CACHED_TABLE_BYTES}), so the table's contents must not change once passed, as
     * for a model's weights.
     *
     * @param rows rows to gather
     * @param cols features per row
     * @param ids row indices into the table
     * @param idOff index of row 0's id
     * @param table {@code tableRows × cols} row-major
     * @param tOff index of table(0,0)
     * @param tableRows rows of the table
     * @param y output, {@code rows × cols}
     * @param yOff index of y(0,0)
     * @param ldy y's row stride
     * @param accumulate add to y instead of overwriting it
     * @throws IllegalArgumentException when an id is outside {@code [0, tableRows)}
     */
    void embedding(int rows, int cols, int[] ids, int idOff, float[] table, int tOff, int tableRows,
                   float[] y, int yOff, int ldy, boolean accumulate);

    /**
     * Row broadcast add: {@code y[r, c] += v[c]} for every row (a linear layer's bias, added after the
     * product as {@code torch.nn.functional.linear} does).
     *
     * @param rows rows
     * @param cols features
     * @param v {@code cols} values
     * @param vOff index of v[0]
     * @param y {@code rows × cols}, updated
     * @param yOff index of y(0,0)
     * @param ldy y's row stride
     */
    void addRowVector(int rows, int cols, float[] v, int vOff, float[] y, int yOff, int ldy);

    /**
     * Elementwise add (a residual connection): {@code y += x}, fp32.
     *
     * @param rows rows
     * @param cols features
     * @param x {@code rows × cols}
     * @param xOff index of x(0,0)
     * @param ldx x's row stride
     * @param y {@code rows × cols}, updated
     * @param yOff index of y(0,0)
     * @param ldy y's row stride
     */
    void add(int rows, int cols, float[] x, int xOff, int ldx, float[] y, int yOff, int ldy);

    /**
     * Log-softmax of every row, in place: {@code x ← x - (m + log Σ e^{x - m})} with m the row
     * maximum; the sum and logarithm in fp64.
     *
     * @param rows rows
     * @param cols classes
     * @param x {@code rows × cols}, updated
     * @param xOff index of x(0,0)
     * @param ldx x's row stride
     */
    void logSoftmax(int rows, int cols, float[] x, int xOff, int ldx);

    /**
     * Per-row cross-entropy of logits against target classes, in fp64:
     * {@code nll[r] = m + log Σ_c e^{x[r,c] - m} - x[r, target[r]]} with m the row maximum, i.e.
     * {@code -log softmax(x[r])[target[r]]} ({@code torch.nn.CrossEntropyLoss} with
     * {@code reduction='none'}). Logits are not modified.
     *
     * @param rows rows
     * @param cols classes
     * @param logits {@code rows × cols}
     * @param xOff index of logits(0,0)
     * @param ldx row stride
     * @param targets class of each row
     * @param tOff index of row 0's target
     * @param nll receives {@code rows} negative log-likelihoods (nats)
     * @param nllOff index of row 0's result
     * @throws IllegalArgumentException when a target is outside {@code [0, cols)}
     */
    void crossEntropy(int rows, int cols, float[] logits, int xOff, int ldx, int[] targets, int tOff,
                      double[] nll, int nllOff);
}
