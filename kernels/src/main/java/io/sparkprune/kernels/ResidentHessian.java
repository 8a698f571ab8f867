package io.sparkprune.kernels;

/**
 * Optional capability of a {@link Backend}: a Hessian sum {@code S = Σ xᵀx} that stays where the
 * backend computes across many batches (the GPU backend keeps the packed fp64 triangle in device
 * memory, uploads only each batch's rows and downloads the sum once). Without it, every
 * {@link Backend#syrkPackedUpper} call moves the whole packed sum ({@code n(n+1)/2} doubles, 485 MB for
 * n = 11008) to the device and back. Callers check {@code backend instanceof ResidentHessian} and fall
 * back to {@link Backend#syrkPackedUpper} on a host array otherwise (as
 * {@code io.sparkprune.calibration.hessian.HessianAccumulator} does).
 *
 * <p>The sum computed is the one of {@link Backend#syrkPackedUpper}: fp64 sums of exact fp32 products,
 * the upper triangle packed by rows (element {@code (i, j)}, {@code i ≤ j}, at
 * {@code i·n − i(i−1)/2 + (j − i)}).
 */
public interface ResidentHessian {

    /**
     * Opens an accumulator of order n whose sum starts at zero.
     *
     * @param n features (order of S), 1..65535
     * @param label what the sum describes, for messages (e.g. the layer and input name)
     * @return the accumulator; close it (in {@code finally}) to release the memory it holds
     * @throws IllegalArgumentException when n is out of range
     * @throws RuntimeException the backend's error (e.g. out of device memory) when the sum cannot be allocated
     */
    Accumulator openHessian(int n, String label);

    /**
     * A resident packed fp64 sum {@code S = Σ xᵀx}, {@code n(n+1)/2} doubles. Not for concurrent use by
     * several threads at once; closing is idempotent, and every other method throws
     * {@link IllegalStateException} after {@link #close()} (or after the owning backend was closed).
     */
    interface Accumulator extends AutoCloseable {

        /** @return n, the order of S */
        int features();

        /**
         * {@code S += Xᵀ·X} for the rows {@code x[xOff + t·ldx .. + n)}, {@code t < k}.
         *
         * @param k rows (tokens) in the batch, ≥ 0 (0 does nothing)
         * @param x {@code k × n} activations, row-major fp32 with row stride ldx
         * @param xOff index of row 0's first element
         * @param ldx row stride, ≥ n
         * @throws IllegalArgumentException when the window does not fit x
         * @throws IllegalStateException when closed
         */
        void add(int k, float[] x, int xOff, int ldx);

        /**
         * {@code S += Xᵀ·X} in TF32, the function of {@link Backend#syrkPackedUpperTf32} (operands rounded
         * to TF32, fp32 sums per {@value Backend#SYRK_TF32_CHUNK}-token chunk counted from this batch's
         * first row, each chunk's sums added in fp64).
         *
         * @param k rows (tokens) in the batch, ≥ 0 (0 does nothing)
         * @param x {@code k × n} activations, row-major fp32 with row stride ldx
         * @param xOff index of row 0's first element
         * @param ldx row stride, ≥ n
         * @throws IllegalArgumentException when the window does not fit x
         * @throws IllegalStateException when closed
         */
        void addTf32(int k, float[] x, int xOff, int ldx);

        /**
         * {@code S += Xᵀ·X} for a matrix that already lives where this sum does: a matrix of a resident
         * {@link ForwardWorkspace} of the same backend ({@link ForwardWorkspace#isResident()}), with no
         * copy. The arithmetic is {@link #add(int, float[], int, int)}'s, or {@link #addTf32}'s when
         * {@code tf32}. Callers check the matrix for non-finite values first
         * ({@link ForwardWorkspace#firstNonFinite}).
         *
         * @param x {@code k × n} activations, fp32 row-major
         * @param tf32 use the TF32 arithmetic of {@link #addTf32}
         * @throws IllegalArgumentException when x is not a live matrix of an open resident workspace of
         *     this accumulator's backend, or has other than n columns
         * @throws IllegalStateException when closed
         */
        void add(ForwardWorkspace.Matrix x, boolean tf32);

        /**
         * Adds S into a host array: {@code cPacked[i] += S[i]} for {@code i < n(n+1)/2}. S itself is
         * unchanged (call {@link #close()} to release it).
         *
         * @param cPacked packed upper triangle, fp64, length ≥ {@code n(n+1)/2}
         * @throws IllegalArgumentException when cPacked is too short
         * @throws IllegalStateException when closed
         */
        void addTo(double[] cPacked);

        /** Releases the memory of S (idempotent); the sum is lost unless {@link #addTo} ran first. */
        @Override
        void close();
    }
}
