package io.sparkprune.kernels;

/**
 * Optional capability of a {@link Backend}: SparseGPT's whole column-block loop for one weight (or row
 * shard) with the weights resident where the backend computes (the GPU backend uploads W and U once,
 * runs every fused block solve and lazy update on the device, and downloads the result once).
 * The function computed is the loop of {@code io.sparkprune.calibration.solver.SparseGptSolver}: for
 * each block of {@code blockSize} columns {@code [i1, i2)}: the mask selection (the callback
 * {@link SolveJob#selector()} for unstructured and block patterns, the kernel itself for N:M),
 * {@link Backend#sparseGptBlock}, then {@code W[:, i2:] -= Err · U[i1:i2, i2:]}
 * (SparseGPT, arXiv 2301.00774, Algorithm 1).
 */
public interface ResidentSolver {

    /**
     * Runs the solve.
     *
     * @param job arguments; {@code job.w()}, {@code job.mask()}, {@code job.rowLoss()} and the
     *     quantization outputs are updated
     * @throws IllegalArgumentException when the arrays do not fit the shapes
     */
    void sparseGptSolve(SolveJob job);

    /** @return the widest column block {@link #sparseGptSolve} accepts; callers fall back to their own loop above it */
    default int maxBlockSize() {
        return Integer.MAX_VALUE;
    }

    /**
     * Mask selection of one column block, on the host.
     */
    @FunctionalInterface
    interface BlockSelector {
        /**
         * @param i1 first column of the block in the weight
         * @param width columns in the block
         * @param blockW {@code rows × width} row-major fp32: the block's current (already updated) weights
         * @param blockMask {@code rows × width} output, zeros on entry: 1 = prune
         */
        void select(int i1, int width, float[] blockW, byte[] blockMask);
    }

    /**
     * Arguments of {@link #sparseGptSolve}.
     *
     * @param rows rows of W, ≥ 0
     * @param cols columns of W and order of U, ≥ 1
     * @param blockSize column block, ≥ 1
     * @param w {@code rows × cols} row-major fp32 weights (dead input columns already zeroed),
     *     replaced by the pruned (and quantized) weights
     * @param u {@code cols × cols} row-major fp32 upper inverse factor (upper triangle read); null only for
     *     {@link ResidentFactorizer.Factor#solve}, which reads its resident U ({@link #sparseGptSolve}
     *     rejects null)
     * @param nmKeep N of N:M (with {@code nmGroup > 0})
     * @param nmGroup M of N:M, a divisor of {@code blockSize} and {@code cols}; 0 when
     *     {@code selector} selects the masks
     * @param selector mask selection per block, or null for none (N:M, or no pruning)
     * @param quant joint quantization arrays, or null
     * @param mask the pruning mask as bits, output, zeros on entry: {@code rows × wordsPerRow} 64-bit words
     *     row-major, {@code wordsPerRow = ceil(cols / 64)} ({@link #maskWords(int, int)}); column c of row r is bit
     *     {@code c % 64} of word {@code r·wordsPerRow + c / 64}, set = pruned; the bits beyond {@code cols} in
     *     a row's last word stay 0 (the word layout of {@code io.sparkprune.calibration.sparsity.BitMask})
     * @param rowLoss {@code rows} per-row loss accumulators (fp64), added to
     * @param unstructured when &gt; 0 (with no selector and {@code nmGroup == 0}): the solve itself selects
     *     each block's unstructured mask over all its rows — the {@link #prunedPerBlock} smallest scores
     *     {@code w² / U[i,i]²} (fp32), ties to the lower row-major index (SparseGPT's per-block rule)
     */
    record SolveJob(int rows, int cols, int blockSize, float[] w, float[] u, int nmKeep, int nmGroup,
                    BlockSelector selector, Quant quant, long[] mask, double[] rowLoss, double unstructured) {

        /** The arguments without in-solve unstructured selection ({@code unstructured = 0}). */
        public SolveJob(int rows, int cols, int blockSize, float[] w, float[] u, int nmKeep, int nmGroup,
                        BlockSelector selector, Quant quant, long[] mask, double[] rowLoss) {
            this(rows, cols, blockSize, w, u, nmKeep, nmGroup, selector, quant, mask, rowLoss, 0.0);
        }

        /**
         * @param cols columns, ≥ 0
         * @return 64-bit words per row of the mask: {@code ceil(cols / 64)}
         */
        public static int wordsPerRow(int cols) {
            return (cols + 63) >>> 6;
        }

        /**
         * Length of the {@link #mask()} array of a {@code rows × cols} solve.
         *
         * @param rows rows, ≥ 0
         * @param cols columns, ≥ 0
         * @return {@code rows · ceil(cols / 64)}
         * @throws IllegalArgumentException for negative sizes or more words than a Java array holds
         */
        public static int maskWords(int rows, int cols) {
            long n = (long) rows * wordsPerRow(cols);
            if (rows < 0 || cols < 0 || n > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("no bit mask for a " + rows + " x " + cols + " solve");
            }
            return (int) n;
        }

        /**
         * Sets the mask bits of one column block from a byte mask: bit {@code (r, i1 + i)} of {@code mask}
         * is set where {@code blockMask[r·width + i] != 0}; other bits are left as they are (blocks need not
         * start on a word boundary). For the host mask selection of the resident loops.
         *
         * @param mask the solve's bit mask ({@link #mask()} layout, {@code rows × ceil(cols / 64)} words)
         * @param rows rows
         * @param cols columns of the weight
         * @param i1 first column of the block
         * @param width columns in the block, {@code i1 + width ≤ cols}
         * @param blockMask {@code rows × width} row-major bytes, non-zero = pruned
         * @throws IllegalArgumentException when the block or the arrays do not fit the shape
         */
        public static void setBlockBits(long[] mask, int rows, int cols, int i1, int width, byte[] blockMask) {
            int wpr = wordsPerRow(cols);
            if (i1 < 0 || width < 0 || (long) i1 + width > cols || mask.length < (long) rows * wpr
                    || blockMask.length < (long) rows * width) {
                throw new IllegalArgumentException("block mask of columns [" + i1 + ", " + (i1 + width) + ") does not"
                        + " fit a " + rows + " x " + cols + " bit mask of " + mask.length + " words");
            }
            for (int r = 0; r < rows; r++) {
                int o = r * width;
                int w0 = r * wpr;
                for (int i = 0; i < width; i++) {
                    if (blockMask[o + i] != 0) {
                        int c = i1 + i;
                        mask[w0 + (c >>> 6)] |= 1L << c;
                    }
                }
            }
        }

        /**
         * Entries the unstructured rule prunes among {@code n} ranked together: {@code min(n, ⌊p·n⌋ + 1)},
         * or 0 when p = 0 (the reference's quantile rule: {@code torch.sort} then the entries below the
         * value at index ⌊p·n⌋, inclusive).
         *
         * @param p sparsity
         * @param n entries in the block
         * @return entries pruned
         */
        public static int prunedPerBlock(double p, int n) {
            if (p <= 0.0) {
                return 0;
            }
            return (int) Math.min(n, (long) Math.floor((double) n * p) + 1);
        }

        /**
         * Whole-weight quantization arrays (see {@link SparseGptBlock.Quant} for the per-block contract).
         *
         * @param bits bits per code, 2..8
         * @param symmetric symmetric grid
         * @param groupSize 0: one grid per row, fitted by the caller into column 0 of scale/zero;
         *     &gt; 0: one grid per group of columns, fitted by the solve
         * @param scale {@code rows × groups} grid steps ({@code groups = 1} or {@code cols / groupSize})
         * @param zero {@code rows × groups} zero levels
         * @param codes {@code rows × cols} output signed codes
         */
        public record Quant(int bits, boolean symmetric, int groupSize, float[] scale, float[] zero, byte[] codes) {
            /** @return grids per row */
            public int groups(int cols) {
                return groupSize == 0 ? 1 : cols / groupSize;
            }
        }

        /**
         * Checks that {@link #mask()} holds {@link #maskWords(int, int)} words (part of {@link #validate()},
         * and all of it that applies to a solve whose W and U are already on the device).
         *
         * @throws IllegalArgumentException when the mask is too short, naming the words it needs
         */
        public void checkMask() {
            if (mask.length < maskWords(rows, cols)) {
                throw new IllegalArgumentException("solve mask of " + mask.length + " words is too short for "
                        + rows + " x " + cols + ": it needs rows * ceil(cols / 64) = " + maskWords(rows, cols)
                        + " words (SolveJob.maskWords)");
            }
        }

        /**
         * Checks the array lengths against the shapes.
         *
         * @throws IllegalArgumentException on a mismatch
         */
        public void validate() {
            long rc = (long) rows * cols;
            if (rows < 0 || cols < 1 || blockSize < 1) {
                throw new IllegalArgumentException("bad solve shape " + rows + " x " + cols + ", block " + blockSize);
            }
            if (w.length < rc || (u != null && u.length < (long) cols * cols) || rowLoss.length < rows) {
                throw new IllegalArgumentException("solve arrays too short for " + rows + " x " + cols);
            }
            checkMask();
            if (unstructured < 0 || unstructured > 1 || (unstructured > 0 && (selector != null || nmGroup != 0))) {
                throw new IllegalArgumentException("in-solve unstructured selection needs 0 <= p <= 1 and neither a"
                        + " selector nor N:M, got p = " + unstructured);
            }
            if (nmGroup < 0 || (nmGroup > 0 && (blockSize % nmGroup != 0 || cols % nmGroup != 0
                    || nmKeep < 0 || nmKeep > nmGroup))) {
                throw new IllegalArgumentException("bad N:M " + nmKeep + ":" + nmGroup + " for block " + blockSize
                        + " and " + cols + " columns");
            }
            if (quant != null) {
                int g = quant.groups(cols);
                if (quant.groupSize() < 0 || (quant.groupSize() > 0 && (cols % quant.groupSize() != 0
                        || blockSize % quant.groupSize() != 0)) || quant.scale().length < (long) rows * g
                        || quant.zero().length < (long) rows * g || quant.codes().length < rc) {
                    throw new IllegalArgumentException("quantization arrays do not fit " + rows + " x " + cols
                            + " with group size " + quant.groupSize());
                }
            }
        }
    }
}
