package io.sparkprune.calibration;

/**
 * A sparsity pattern that cannot be parsed, or that does not fit a tensor's shape, e.g.
 * {@code "2:4 pruning needs in_features divisible by 4, got 1030 for model.layers.3.mlp.down_proj"}.
 */
public class SparsityPatternException extends CalibrationInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what was wrong, where, and the fix
     */
    public SparsityPatternException(String message) {
        super(message);
    }
}
