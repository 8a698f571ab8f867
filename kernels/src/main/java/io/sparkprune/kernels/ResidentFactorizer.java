package io.sparkprune.kernels;

/**
 * Optional capability of a {@link Backend}: one calibration group's Hessian and its inverse factor kept
 * where the backend computes, from the factorization to the last solve of the group (the GPU backend
 * uploads the packed Hessian once and never copies U to the host unless asked). Without it, callers
 * factor through {@link DampedFactorizer} or {@link Backend#inverseCholeskyUpper} on host arrays and
 * hand U to every solve ({@link ResidentSolver}), which uploads it again per weight.
 *
 * <p>The functions computed are those of the host path: H = {@code scale · S} from the packed sum S
 * (the layout of {@link Backend#syrkPackedUpper}: element {@code (i, j)}, {@code i ≤ j}, at
 * {@code i·n − i(i−1)/2 + (j − i)}, products in fp64); {@link Factor#factor} is
 * {@link DampedFactorizer#dampedInverseCholeskyUpper} on it (SparseGPT, arXiv 2301.00774, Algorithm 1,
 * {@code Hinv = Cholesky(H⁻¹)ᵀ}); {@link Factor#solve} is {@link ResidentSolver#sparseGptSolve} with that
 * U — a backend may compute it from another factor of the same H (the CUDA backend's default keeps the
 * Cholesky factor R of H and U's diagonal band, see {@code CudaBackend.solveOnDeviceCholesky}): the same
 * function, rounded differently; {@link Factor#hessianProduct} is the fp32 product {@code A·H} with {@code H} rounded to fp32 element
 * by element ({@code (float)} of the fp64 value).
 */
public interface ResidentFactorizer {

    /**
     * Copies a packed Hessian sum where the backend computes, once.
     *
     * @param n order of H, 1..65535
     * @param packed the packed upper triangle of S, {@code n(n+1)/2} fp64, not modified; a backend may keep a
     *     reference to it until the factor is closed (the CUDA backend's Cholesky form does, to compute U on
     *     demand): do not modify it before {@link Factor#close()}
     * @param scale factor turning S into H (e.g. {@code 2 / tokens}), applied in fp64
     * @param label what the Hessian describes (layer and input), for messages and leak reports
     * @return the group's factor handle, not yet factored; close it (in {@code finally}) to free its memory
     * @throws IllegalArgumentException when n is out of range or {@code packed} is too short
     * @throws RuntimeException the backend's error (e.g. out of device memory)
     */
    Factor openFactor(int n, double[] packed, double scale, String label);

    /**
     * A group's Hessian H ({@code n × n}, held packed in fp64) and, after {@link #factor}, its inverse
     * factor U ({@code n × n} row-major fp32, zero below the diagonal) or what the backend's solves use in
     * its place (then {@link #download} computes U on demand), both resident. Safe for use by several
     * threads at once: an implementation serializes its calls (the CUDA backend's hold the backend's
     * monitor), since the prune job solves a group's row shards concurrently, all reading one factor; the
     * caller closes it only after every such use has returned. {@link #close()} is idempotent, and every method that reads or
     * writes device memory throws {@link IllegalStateException} after it (or after the owning backend
     * was closed); {@code size()} and {@code factored()} still answer.
     */
    interface Factor extends AutoCloseable {

        /** @return n, the order of H and U */
        int size();

        /**
         * For {@code k = 0, 1, …}: with the diagonal of H replaced by {@code diag[i] + lambdas[k]}, the
         * upper Cholesky factor U of {@code (H + λI)⁻¹} in fp64, rounded to fp32 and kept (or the factor the
         * backend's solves use instead, from the same fp64 Cholesky); stops at the
         * first attempt whose Cholesky succeeds. Work memory of the attempts is freed before returning.
         *
         * @param diag the diagonal to use, length ≥ n (e.g. {@code H_ii}, with dead inputs set to 1), fp64
         * @param lambdas absolute dampenings λ to try, in order (same units as H)
         * @return the index of the λ that worked, or -1 when H + λI was not positive definite for every λ
         * @throws IllegalArgumentException when {@code diag} is too short
         * @throws IllegalStateException when closed, or when U was already computed
         */
        int factor(double[] diag, double[] lambdas);

        /** @return whether {@link #factor} succeeded, i.e. U (or what the solves use in its place) is held */
        boolean factored();

        /**
         * @return the row-major index ({@code i·n + j}) of the first NaN or infinite element of U, or, when the
         *     backend holds another factor in its place ({@link #holdsInverseFactor()} false), the index of the
         *     first such element of what its solves read, in the backend's order; −1 when all are finite
         * @throws IllegalStateException when closed or not factored
         */
        long firstNonFinite();

        /**
         * @return whether U itself is held (false: the backend's solves use another factor of the same H,
         *     and {@link #download} computes U, at the cost of a factorization)
         * @throws IllegalStateException when not factored
         */
        default boolean holdsInverseFactor() {
            return true;
        }

        /**
         * Copies U to the host (computing it first when {@link #holdsInverseFactor()} is false).
         *
         * @param u receives U, {@code n × n} row-major fp32 (zeros below the diagonal)
         * @throws IllegalArgumentException when u is shorter than n²
         * @throws IllegalStateException when closed or not factored
         */
        void download(float[] u);

        /**
         * Copies U's diagonal to the host.
         *
         * @param d receives {@code U[i,i]}, length ≥ n, fp32
         * @throws IllegalArgumentException when d is shorter than n
         * @throws IllegalStateException when closed or not factored
         */
        void diagonal(float[] d);

        /**
         * {@link ResidentSolver#sparseGptSolve} with this U: {@code job.u()} is ignored (it may be null)
         * and {@code job.cols()} must equal n.
         *
         * @param job the solve's arguments; its weights, mask, row losses and quantization outputs are updated
         * @throws IllegalArgumentException when the arrays do not fit the shapes, or the block size exceeds
         *     {@link ResidentSolver#maxBlockSize()} of the backend
         * @throws IllegalStateException when closed or not factored
         */
        void solve(ResidentSolver.SolveJob job);

        /**
         * {@code T = A·H} in fp32 with H rounded to fp32 element by element ({@code (float)(scale · S_ij)},
         * both triangles), the product of a fp32 linear layer {@code x·Wᵀ} with {@code W = H} (H is symmetric).
         *
         * @param rows rows of A, ≥ 0
         * @param a {@code rows × n} row-major fp32
         * @param t receives {@code rows × n} row-major fp32
         * @throws IllegalArgumentException when an array is too short
         * @throws IllegalStateException when closed
         */
        void hessianProduct(int rows, float[] a, float[] t);

        /**
         * The rows' quadratic forms with H: {@code q[r] = Σ_c a[r][c] · T[r][c]} with {@code T = A·H} the
         * product of {@link #hessianProduct}; each term {@code (double) a · (double) t} and the sum in fp64
         * (summed on the backend in its own order, so equal to a host loop over the same T to fp64
         * rounding). Only the {@code rows} sums leave the backend (for SparseGPT's reconstruction error
         * {@code Σ_r Δw_r H Δw_rᵀ} without copying T back).
         *
         * @param rows rows of A, ≥ 0
         * @param a {@code rows × n} row-major fp32
         * @param q receives {@code rows} fp64 sums
         * @throws IllegalArgumentException when an array is too short
         * @throws IllegalStateException when closed
         */
        void rowQuadratics(int rows, float[] a, double[] q);

        /** Frees the memory held (H, U and scratch); idempotent. */
        @Override
        void close();
    }
}
