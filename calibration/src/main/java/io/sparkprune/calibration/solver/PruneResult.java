package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.calibration.sparsity.BitMask;
import io.sparkprune.calibration.sparsity.SparsityPattern;

import java.util.Optional;

/**
 * Output of {@link SparseGptSolver#prune}. Arrays are owned by the result (not shared with the
 * input); records compare arrays by identity.
 *
 * @param tensor the weight's name
 * @param rows out_features (of the shard solved)
 * @param cols in_features
 * @param weights {@code rows × cols} row-major fp32: pruned, and dequantized when quantized (exact
 *     zeros where pruned)
 * @param mask entries pruned by the pattern (a kept weight may still be exactly zero, e.g. a dead
 *     input or a value that quantized to 0)
 * @param quantization integer codes, scales and zero points when quantizing;
 *     {@code quantization.get().dequantize()} equals {@code weights} bit for bit
 * @param rowLoss per row, {@code Σ_i (w_i - q_i)² / U_ii²} accumulated as the solver runs (fp64),
 *     where w_i is the weight as updated when column i is reached; it equals
 *     {@code (w - ŵ)(H + λI)(w - ŵ)ᵀ} for the row's original (dead columns zeroed) weights w and
 *     result ŵ, i.e. {@code (2/n)‖(w - ŵ)X‖² + λ‖w - ŵ‖²}. The reference prints half of this sum.
 * @param pattern the pattern solved for
 * @param dampening relative dampening d of the factor used
 * @param lambda absolute λ of the factor used
 * @param solveNanos wall time of the solve, excluding the factor's computation, nanoseconds
 */
public record PruneResult(String tensor, int rows, int cols, float[] weights, BitMask mask,
                          Optional<QuantizedWeights> quantization, double[] rowLoss, SparsityPattern pattern,
                          double dampening, double lambda, long solveNanos) {

    /** @return {@code Σ rowLoss} */
    public double totalLoss() {
        double s = 0.0;
        for (double v : rowLoss) {
            s += v;
        }
        return s;
    }

    /** @return fraction of exactly-zero weights in {@link #weights()} */
    public double zeroFraction() {
        long z = 0;
        for (float v : weights) {
            if (v == 0f) {
                z++;
            }
        }
        return weights.length == 0 ? 0.0 : (double) z / weights.length;
    }
}
