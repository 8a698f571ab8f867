package io.sparkprune.calibration.baseline;

import io.sparkprune.calibration.sparsity.SparsityPattern;

/**
 * Magnitude pruning: zero the weights of smallest |w|, nothing else changes.
 * <ul>
 *   <li>unstructured p: one threshold for the whole matrix (or the row shard given): the
 *       {@code round(p · rows · cols)} smallest |w| (ties by position, row-major);
 *   <li>N:M: in every group of m consecutive inputs of a row, the {@code m - n} smallest |w|;
 *   <li>block r × c: tiles scored by {@code Σ w²}, the {@code round(p · tiles)} lowest of the matrix.
 * </ul>
 */
public final class MagnitudePruner {
    private MagnitudePruner() {
    }

    /**
     * @param tensor the weight's name, for messages
     * @param weights {@code rows × cols} row-major fp32 (not modified)
     * @param rows out_features
     * @param cols in_features
     * @param pattern sparsity pattern
     * @return the pruned copy and its mask
     * @throws io.sparkprune.calibration.CalibrationInputException for a shape mismatch (a
     *     {@link io.sparkprune.calibration.SparsityPatternException} when the pattern does not fit)
     * @throws io.sparkprune.calibration.NumericsException for non-finite weights
     */
    public static MaskedWeights prune(String tensor, float[] weights, int rows, int cols, SparsityPattern pattern) {
        Baselines.checkWeights(tensor, weights, rows, cols, pattern);
        float[] scores = new float[weights.length];
        for (int i = 0; i < scores.length; i++) {
            scores[i] = Math.abs(weights[i]);
        }
        return Baselines.apply(tensor, weights, rows, cols, scores, pattern, false, false);
    }
}
