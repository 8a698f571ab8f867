package io.sparkprune.kernels;

/**
 * Arguments of the fused SparseGPT in-block solve, {@link Backend#sparseGptBlock}: SparseGPT
 * Algorithm 1 (Frantar &amp; Alistarh 2023, arXiv 2301.00774, §3.4, "lazy batch" inner loop) with
 * the joint quantization of Eq. 7 (GPTQ-style), for the {@code rows} rows of one column block of
 * {@code width} columns.
 *
 * <p>For every row {@code r} independently, for {@code i = 0 .. width-1} left to right:
 * <ol>
 *   <li>if {@code nmGroup > 0} and {@code i % nmGroup == 0}: among {@code w[r, i .. i+nmGroup-1]}
 *       (current, already updated values) mark the {@code nmGroup - nmKeep} entries with the lowest
 *       score {@code w² / U[j,j]²} (fp32; ties go to the lower column) in {@code mask};
 *   <li>if quantizing with {@code quant.groupSize() > 0} and {@code i % groupSize == 0}: fit the
 *       group's grid ({@link GridMath#fit}) on the current {@code w[r, i .. i+groupSize-1]} and store
 *       it in {@code quant.scale()/zero()} at column {@code i / groupSize} of the grid view;
 *   <li>{@code q = mask[r,i] != 0 ? 0 : w[r,i]}; when quantizing, {@code q} is replaced by its grid
 *       value and the signed code {@code level - 2^(bits-1)} is written to {@code quant.codes()};
 *   <li>{@code e = (w[r,i] - q) / U[i,i]}; {@code rowLoss[lossOffset + r] += e²};
 *       {@code w[r, j] -= e * U[i, j]} for {@code j > i} (fp32 product, then fp32 subtraction, as the
 *       reference's outer product); {@code w[r,i] = q}; {@code err[r,i] = e}.
 * </ol>
 * On return {@code w} holds the block's final (pruned, quantized) values and {@code err} the scaled
 * errors {@code E} for the caller's lazy update {@code W[:, i2:] -= E · U[i1:i2, i2:]}.
 *
 * @param rows rows of the block (a row shard of the weight), ≥ 0
 * @param width columns of the block, ≥ 0
 * @param w {@code rows × width} weights, updated in place (fp32)
 * @param u {@code width × width} diagonal block of the upper inverse factor U (fp32; only the
 *     upper triangle is read)
 * @param err {@code rows × width} output: scaled errors
 * @param mask {@code rows × width} pruning mask, 1 = pruned. Read as given when {@code nmGroup == 0}
 *     (the caller pre-selected it); otherwise the kernel sets the N:M choices (entries it does not
 *     select are left as given, so pass zeros)
 * @param nmKeep N of N:M: non-zeros kept per group (ignored when {@code nmGroup == 0})
 * @param nmGroup M of N:M, a divisor of {@code width}; 0 when the mask is pre-selected
 * @param quant joint quantization, or null for none
 * @param rowLoss per-row loss accumulator (fp64), added to
 * @param lossOffset index of row 0 in {@code rowLoss}
 */
public record SparseGptBlock(int rows, int width, FloatView w, FloatView u, FloatView err, ByteView mask,
                             int nmKeep, int nmGroup, Quant quant, double[] rowLoss, int lossOffset) {

    /**
     * Joint quantization arguments.
     *
     * @param bits bits per code, 2..8
     * @param symmetric symmetric grid (see {@link GridMath})
     * @param groupSize 0 = one grid per row, given in {@code scale/zero} column 0 (fitted by the
     *     caller); &gt; 0 = one grid per {@code groupSize} columns, a divisor of {@code width}, fitted
     *     by the kernel at the group's first column
     * @param scale grid steps: {@code rows × (groupSize == 0 ? 1 : width / groupSize)} view
     * @param zero zero levels (unsigned level space, integer-valued floats), same shape as
     *     {@code scale}
     * @param codes {@code rows × width} output: signed codes {@code level - 2^(bits-1)}
     */
    public record Quant(int bits, boolean symmetric, int groupSize, FloatView scale, FloatView zero, ByteView codes) {
    }

    /**
     * Checks shapes and bounds of every operand.
     *
     * @throws IllegalArgumentException on any inconsistency
     */
    public void validate() {
        if (rows < 0 || width < 0) {
            throw new IllegalArgumentException("negative block shape " + rows + " x " + width);
        }
        w.checkFits("w", rows, width);
        u.checkFits("u", width, width);
        err.checkFits("err", rows, width);
        mask.checkFits("mask", rows, width);
        if (nmGroup < 0 || (nmGroup > 0 && (nmKeep < 0 || nmKeep > nmGroup || width % nmGroup != 0))) {
            throw new IllegalArgumentException("bad N:M " + nmKeep + ":" + nmGroup + " for block width " + width);
        }
        if (rowLoss == null || lossOffset < 0 || (long) lossOffset + rows > rowLoss.length) {
            throw new IllegalArgumentException("rowLoss too short for " + rows + " rows at " + lossOffset);
        }
        if (quant != null) {
            GridMath.maxq(quant.bits());
            int g = quant.groupSize();
            if (g < 0 || (g > 0 && width % g != 0)) {
                throw new IllegalArgumentException("quant group " + g + " does not divide block width " + width);
            }
            int gcols = g == 0 ? 1 : width / g;
            quant.scale().checkFits("scale", rows, gcols);
            quant.zero().checkFits("zero", rows, gcols);
            quant.codes().checkFits("codes", rows, width);
        }
    }
}
