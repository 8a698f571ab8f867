package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.Finite;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.calibration.sparsity.BitMask;
import io.sparkprune.calibration.sparsity.MaskScope;
import io.sparkprune.calibration.sparsity.SmallestK;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ResidentFactorizer;
import io.sparkprune.kernels.ResidentSolver;
import io.sparkprune.kernels.ByteView;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.GridMath;
import io.sparkprune.kernels.SparseGptBlock;

import java.util.Arrays;
import java.util.Objects;
import java.util.Optional;

/**
 * One-shot SparseGPT (Frantar &amp; Alistarh 2023, arXiv 2301.00774, Algorithm 1 with the lazy
 * batch updates of §3.4 and the joint quantization of §3.5 / Eq. 7, GPTQ arXiv 2210.17323 for the
 * grids), matching the authors' reference implementation ({@code sparsegpt.py fasterprune}).
 *
 * <p>For a weight {@code W} ({@code rows × cols} = out × in features) and the inverse factor U of
 * its input Hessian ({@link InverseFactor}), the columns are processed in blocks of
 * {@code blockSize} ({@code [i1, i2)}):
 * <ol>
 *   <li>the block's mask is chosen (for unstructured and block patterns) on the current weights;
 *   <li>the block is solved column by column by the fused kernel {@link Backend#sparseGptBlock}
 *       (N:M choices at each group start, quantization, error propagation inside the block);
 *   <li>the lazy update {@code W[:, i2:] -= E · U[i1:i2, i2:]} is one product ({@link Backend#sgemm}).
 * </ol>
 * Before the first block, dead inputs (as recorded by the factor) get their weight columns zeroed
 * and, for per-channel quantization, each row's grid is fitted on the dense weight.
 *
 * <h2>Masks</h2>
 * Scores are SparseGPT's OBS saliency {@code w² / U[i,i]²} (fp32), on the weights as updated by
 * the earlier columns.
 * <ul>
 *   <li>{@link SparsityPattern.Unstructured}{@code (p)} with {@link MaskScope#ALL_ROWS} (default):
 *       once per column block, over all rows given, the reference's quantile rule: the entries
 *       whose score is at most the {@code ⌊p·N⌋}-th smallest (0-based) of the block's N scores, i.e.
 *       {@code ⌊p·N⌋ + 1} entries (none when p = 0; ties broken by position, row-major). This is one
 *       entry more than {@code p·N} per block — the reference's {@code sort(...)[int(N·p)]} threshold
 *       with {@code <=} — kept so that results match the reference (verified on its outputs: 24577 of
 *       49152 per block at 50%). Each block is p-sparse, rows vary.
 *       <b>Row shards:</b> solving rows in independent shards ranks each shard's rows separately,
 *       so masks (and hence results) differ from solving the whole matrix and depend on the
 *       sharding; every shard is still exactly as sparse as above.
 *   <li>Unstructured with {@link MaskScope#PER_ROW}: every row of every block prunes
 *       {@code round(p · width)} entries; independent of sharding.
 *   <li>{@link SparsityPattern.NofM}{@code (n, m)}: at the first column of each group of m, per row,
 *       the {@code m - n} lowest scores among the group's current weights are pruned (ties: lower
 *       column), as the reference; row-independent, so sharding does not matter.
 *   <li>{@link SparsityPattern.Block}{@code (r, c, p)}: once per column block, each aligned
 *       {@code r × c} tile gets the score {@code Σ w² / U[i,i]²} over its entries (fp64 sum, compared
 *       in fp32); with ALL_ROWS the {@code round(p · T)} lowest of the block's T tiles are pruned,
 *       with PER_ROW the {@code round(p · T_band)} lowest of each band of r rows (ties: lower tile
 *       index, row-major). Pruned tiles are entirely zero in the result. Shards must align to r.
 * </ul>
 *
 * <h2>Quantization</h2>
 * With a {@link QuantizationSpec}, each weight's kept value is rounded to its grid when its column
 * is reached and the rounding error is propagated like a pruning error (Eq. 7); pruned weights
 * become exactly 0 (the grid always contains 0, see {@link GridMath}). Per-channel grids are fitted
 * once on the dense weight; group grids when the group's first column is reached, on the updated
 * weights (GPTQ fits on the values at the start of the lazy block instead, which only differs for
 * groups smaller than the block).
 *
 * <p>On a backend that implements {@link ResidentSolver} the whole loop runs there in one call; when the
 * factor is a resident one of the same backend ({@link InverseFactor#computeResident}), that call reads U
 * (or the factor the backend keeps in its place) where it already is ({@link ResidentFactorizer.Factor#solve})
 * and only U's diagonal comes to the host
 * (for the host mask selection of the per-row unstructured and block patterns).
 *
 * <p>Thread-safety: a solver is stateless apart from its backend and options; concurrent calls are
 * fine when the backend allows them.
 */
public final class SparseGptSolver {
    private final Backend backend;
    private final SolverOptions options;

    /**
     * @param backend kernels
     * @param options block size and mask scope
     */
    public SparseGptSolver(Backend backend, SolverOptions options) {
        this.backend = Objects.requireNonNull(backend, "backend");
        this.options = Objects.requireNonNull(options, "options");
    }

    /** @return the options */
    public SolverOptions options() {
        return options;
    }

    /**
     * Prunes (and optionally quantizes) one weight or row shard.
     *
     * @param tensor the weight's name, used in messages, e.g. {@code model.layers.3.mlp.down_proj.weight}
     * @param weights {@code rows × cols} row-major fp32 (not modified)
     * @param rows out_features of the weight or shard, ≥ 0
     * @param cols in_features, equal to {@code factor.size()}
     * @param factor the inverse Hessian factor of the weight's input
     * @param pattern sparsity pattern
     * @param quantization joint quantization, or empty
     * @return pruned weights, mask, quantization, per-row loss and timing
     * @throws CalibrationInputException when shapes do not fit (array length, factor size,
     *     pattern or group divisibility — a {@link io.sparkprune.calibration.SparsityPatternException}
     *     for the pattern)
     * @throws io.sparkprune.calibration.NumericsException when the weights are not finite, or the
     *     result is not finite
     */
    public PruneResult prune(String tensor, float[] weights, int rows, int cols, InverseFactor factor,
                             SparsityPattern pattern, Optional<QuantizationSpec> quantization) {
        long t0 = System.nanoTime();
        Objects.requireNonNull(pattern, "pattern");
        if (rows < 0 || cols < 1 || weights.length != (long) rows * cols) {
            throw new CalibrationInputException("weight " + tensor + " must be " + rows + " x " + cols + " ("
                    + (long) rows * cols + " values), got " + weights.length);
        }
        if (factor.size() != cols) {
            throw new CalibrationInputException("weight " + tensor + " has in_features " + cols
                    + " but the Hessian factor " + factor.name() + " is " + factor.size() + " x " + factor.size()
                    + "; the Hessian must come from this weight's input");
        }
        final int bs = options.blockSize();
        pattern.checkShape(tensor, rows, cols, bs);
        QuantizationSpec spec = quantization.orElse(null);
        if (spec != null) {
            spec.checkShape(tensor, cols, bs);
        }
        Finite.check("weight " + tensor, weights, cols, "the checkpoint holds non-finite values; fix or"
                + " re-export it, or exclude this tensor from pruning (ignore)");

        float[] w = weights.clone();
        int groups = spec == null ? 0 : spec.groups(cols);
        float[] scale = spec == null ? null : new float[rows * groups];
        float[] zero = spec == null ? null : new float[rows * groups];
        byte[] codes = spec == null ? null : new byte[rows * cols];
        if (spec != null && spec.groupSize() == 0) {
            float[] g = new float[2];
            for (int r = 0; r < rows; r++) {
                GridMath.fit(w, r * cols, cols, 1, spec.bits(), spec.symmetric(), g, 0);
                scale[r] = g[0];
                zero[r] = g[1];
            }
        }
        for (int c = 0; c < cols; c++) {
            if (factor.isDead(c)) {
                for (int r = 0; r < rows; r++) {
                    w[r * cols + c] = 0f;
                }
            }
        }

        boolean residentLoop = backend instanceof ResidentSolver rsb && bs <= rsb.maxBlockSize();
        // a resident factor on this backend ({@link InverseFactor#computeResident}): the solve reads U (or
        // the factor kept in its place) in place, and the host selectors need only U's diagonal — U itself
        // never comes to the host
        ResidentFactorizer.Factor onDevice = residentLoop ? factor.residentOn(backend) : null;
        float[] u = onDevice != null ? null : factor.upper();
        BitMask mask;
        double[] loss = new double[rows];
        int maxWidth = Math.min(bs, cols);
        float[] err = new float[rows * maxWidth];
        byte[] blockMask = new byte[rows * maxWidth];
        float[] scores = pattern instanceof SparsityPattern.NofM ? null : new float[rows * maxWidth];
        float[] uDiag = scores == null ? null : factor.upperDiagonal(); // U[i,i], the saliency's denominators
        int nmKeep = 0;
        int nmGroup = 0;
        if (pattern instanceof SparsityPattern.NofM nm) {
            nmKeep = nm.n();
            nmGroup = nm.m();
        }
        if (residentLoop) {
            ResidentSolver rs = (ResidentSolver) backend;
            ResidentSolver.BlockSelector selector = null;
            double inSolve = 0.0;
            if (pattern instanceof SparsityPattern.Unstructured un && options.maskScope() == MaskScope.ALL_ROWS) {
                inSolve = un.sparsity();
            } else if (pattern instanceof SparsityPattern.Unstructured un) {
                selector = (b1, width, blockW, bm) -> selectUnstructured(un, blockW, 0, width, rows, b1, width, uDiag,
                        scores, bm);
            } else if (pattern instanceof SparsityPattern.Block bl) {
                selector = (b1, width, blockW, bm) -> selectTiles(bl, blockW, 0, width, rows, b1, width, uDiag,
                        scores, bm);
            }
            long[] bits = new long[ResidentSolver.SolveJob.maskWords(rows, cols)]; // BitMask's word layout
            ResidentSolver.SolveJob job = new ResidentSolver.SolveJob(rows, cols, bs, w, u, nmKeep, nmGroup, selector,
                    spec == null ? null : new ResidentSolver.SolveJob.Quant(spec.bits(), spec.symmetric(),
                            spec.groupSize(), scale, zero, codes), bits, loss, inSolve);
            if (onDevice != null) {
                onDevice.solve(job);
            } else {
                rs.sparseGptSolve(job);
            }
            mask = BitMask.ofWords(rows, cols, bits);
        } else {
            mask = new BitMask(rows, cols);
            for (int i1 = 0; i1 < cols; i1 += bs) {
                int i2 = Math.min(cols, i1 + bs);
                int width = i2 - i1;
                Arrays.fill(blockMask, 0, rows * width, (byte) 0);
                if (pattern instanceof SparsityPattern.Unstructured un) {
                    selectUnstructured(un, w, i1, cols, rows, i1, width, uDiag, scores, blockMask);
                } else if (pattern instanceof SparsityPattern.Block bl) {
                    selectTiles(bl, w, i1, cols, rows, i1, width, uDiag, scores, blockMask);
                }
                SparseGptBlock.Quant q = null;
                if (spec != null) {
                    boolean perChannel = spec.groupSize() == 0;
                    int gOff = perChannel ? 0 : i1 / spec.groupSize();
                    q = new SparseGptBlock.Quant(spec.bits(), spec.symmetric(), spec.groupSize(),
                            new FloatView(scale, gOff, groups), new FloatView(zero, gOff, groups),
                            new ByteView(codes, i1, cols));
                }
                backend.sparseGptBlock(new SparseGptBlock(rows, width, new FloatView(w, i1, cols),
                        new FloatView(u, i1 * cols + i1, cols), new FloatView(err, 0, width),
                        new ByteView(blockMask, 0, width), nmKeep, nmGroup, q, loss, 0));
                for (int r = 0; r < rows; r++) {
                    int o = r * width;
                    for (int i = 0; i < width; i++) {
                        if (blockMask[o + i] != 0) {
                            mask.set(r, i1 + i);
                        }
                    }
                }
                if (i2 < cols) {
                    backend.sgemm(false, false, rows, cols - i2, width, -1f, err, 0, width,
                            u, i1 * cols + i2, cols, 1f, w, i2, cols);
                }
            }
        }
        Finite.check("pruned weight " + tensor, w, cols, "the solve diverged; raise the dampening (e.g. 0.1)");

        Optional<QuantizedWeights> qw = Optional.empty();
        if (spec != null) {
            int half = 1 << (spec.bits() - 1);
            int[] zp = new int[zero.length];
            for (int i = 0; i < zp.length; i++) {
                zp[i] = (int) zero[i] - half;
            }
            qw = Optional.of(new QuantizedWeights(spec, rows, cols, codes, scale, zp));
        }
        return new PruneResult(tensor, rows, cols, w, mask, qw, loss, pattern, factor.dampening(), factor.lambda(),
                System.nanoTime() - t0);
    }

    /**
     * Number of entries the unstructured rule prunes among {@code n} ranked together with
     * {@link MaskScope#ALL_ROWS}: {@code min(n, ⌊p·n⌋ + 1)}, or 0 when p = 0 (the reference's
     * quantile rule, see the class Javadoc).
     *
     * @param p sparsity
     * @param n entries in the block
     * @return entries pruned
     */
    public static int prunedPerBlock(double p, int n) {
        return ResidentSolver.SolveJob.prunedPerBlock(p, n);
    }

    /**
     * Scores {@code w² / U[i,i]²} of one block; the block's weights are {@code w[wOff + r·ldw + i]}, its
     * first column is column {@code i1} of U, whose diagonal is {@code uDiag}.
     */
    private static void saliency(float[] w, int wOff, int ldw, int rows, int i1, int width, float[] uDiag,
                                 float[] scores) {
        float[] d2 = new float[width];
        for (int i = 0; i < width; i++) {
            float d = uDiag[i1 + i];
            d2[i] = d * d;
        }
        for (int r = 0; r < rows; r++) {
            int wo = wOff + r * ldw;
            int so = r * width;
            for (int i = 0; i < width; i++) {
                float v = w[wo + i];
                scores[so + i] = (v * v) / d2[i];
            }
        }
    }

    private void selectUnstructured(SparsityPattern.Unstructured un, float[] w, int wOff, int ldw, int rows,
                                    int i1, int width, float[] uDiag, float[] scores, byte[] blockMask) {
        double p = un.sparsity();
        if (p <= 0.0 || rows == 0) {
            return;
        }
        saliency(w, wOff, ldw, rows, i1, width, uDiag, scores);
        if (options.maskScope() == MaskScope.ALL_ROWS) {
            int n = rows * width;
            SmallestK.mark(scores, 0, n, prunedPerBlock(p, n), blockMask, 0);
        } else {
            int k = (int) Math.round(p * width);
            for (int r = 0; r < rows; r++) {
                SmallestK.mark(scores, r * width, width, k, blockMask, r * width);
            }
        }
    }

    private void selectTiles(SparsityPattern.Block bl, float[] w, int wOff, int ldw, int rows, int i1,
                             int width, float[] uDiag, float[] scores, byte[] blockMask) {
        double p = bl.sparsity();
        if (p <= 0.0 || rows == 0) {
            return;
        }
        saliency(w, wOff, ldw, rows, i1, width, uDiag, scores);
        int tr = bl.rows();
        int tc = bl.cols();
        int bands = rows / tr;
        int perBand = width / tc;
        float[] tileScores = new float[bands * perBand];
        for (int b = 0; b < bands; b++) {
            for (int t = 0; t < perBand; t++) {
                double s = 0.0;
                for (int rr = 0; rr < tr; rr++) {
                    int o = (b * tr + rr) * width + t * tc;
                    for (int cc = 0; cc < tc; cc++) {
                        s += scores[o + cc];
                    }
                }
                tileScores[b * perBand + t] = (float) s;
            }
        }
        byte[] tiles = new byte[bands * perBand];
        if (options.maskScope() == MaskScope.ALL_ROWS) {
            SmallestK.mark(tileScores, 0, tiles.length, (int) Math.round(p * tiles.length), tiles, 0);
        } else {
            int k = (int) Math.round(p * perBand);
            for (int b = 0; b < bands; b++) {
                SmallestK.mark(tileScores, b * perBand, perBand, k, tiles, b * perBand);
            }
        }
        for (int b = 0; b < bands; b++) {
            for (int t = 0; t < perBand; t++) {
                if (tiles[b * perBand + t] != 0) {
                    for (int rr = 0; rr < tr; rr++) {
                        int o = (b * tr + rr) * width + t * tc;
                        Arrays.fill(blockMask, o, o + tc, (byte) 1);
                    }
                }
            }
        }
    }
}
