package io.sparkprune.calibration.baseline;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.NumericsException;
import io.sparkprune.calibration.sparsity.SparsityPattern;

/**
 * Wanda (Sun, Liu, Bair, Kolter 2023, arXiv 2306.11695, Eq. 1): score {@code |W_ij| · ‖X_j‖₂} with
 * the input feature norms over the calibration tokens (from
 * {@link io.sparkprune.calibration.hessian.HessianAccumulator#inputNorms()}), compared per output
 * row; nothing else changes.
 * <ul>
 *   <li>unstructured p: in every row, the {@code round(p · cols)} lowest scores (ties by column);
 *   <li>N:M: in every group of m consecutive inputs of a row, the {@code m - n} lowest scores;
 *   <li>block r × c: tiles scored by {@code Σ score²}, in every band of r rows the
 *       {@code round(p · cols / c)} lowest tiles.
 * </ul>
 * Scores are fp32 ({@code |w| · (float) norm}).
 */
public final class WandaPruner {
    private WandaPruner() {
    }

    /**
     * @param tensor the weight's name, for messages
     * @param weights {@code rows × cols} row-major fp32 (not modified)
     * @param rows out_features
     * @param cols in_features
     * @param inputNorms {@code cols} non-negative norms {@code ‖X_j‖₂}
     * @param pattern sparsity pattern
     * @return the pruned copy and its mask
     * @throws CalibrationInputException for a shape mismatch (a
     *     {@link io.sparkprune.calibration.SparsityPatternException} when the pattern does not fit)
     * @throws NumericsException for non-finite weights or norms
     */
    public static MaskedWeights prune(String tensor, float[] weights, int rows, int cols, double[] inputNorms,
                                      SparsityPattern pattern) {
        Baselines.checkWeights(tensor, weights, rows, cols, pattern);
        if (inputNorms.length != cols) {
            throw new CalibrationInputException("Wanda for " + tensor + " needs " + cols + " input norms, got "
                    + inputNorms.length + "; the norms must come from this weight's input");
        }
        float[] norms = new float[cols];
        for (int j = 0; j < cols; j++) {
            double v = inputNorms[j];
            if (!(v >= 0.0) || Double.isInfinite(v)) {
                throw new NumericsException("input norm " + j + " of " + tensor + " is " + v
                        + "; the calibration activations were not finite");
            }
            norms[j] = (float) v;
        }
        float[] scores = new float[weights.length];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < cols; j++) {
                scores[r * cols + j] = Math.abs(weights[r * cols + j]) * norms[j];
            }
        }
        return Baselines.apply(tensor, weights, rows, cols, scores, pattern, true, true);
    }
}
