package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.sparsity.MaskScope;

import java.util.Objects;

/**
 * Settings of {@link SparseGptSolver}.
 *
 * @param blockSize columns per lazy block (SparseGPT's {@code B_s}, "blocksize" in the reference;
 *     128 by default), ≥ 1
 * @param maskScope how unstructured and block masks are ranked within a column block
 */
public record SolverOptions(int blockSize, MaskScope maskScope) {
    /** Block size 128, masks ranked over all rows given (the reference's behaviour). */
    public static final SolverOptions DEFAULT = new SolverOptions(128, MaskScope.ALL_ROWS);

    /** @throws CalibrationInputException for a block size below 1 */
    public SolverOptions {
        Objects.requireNonNull(maskScope, "maskScope");
        if (blockSize < 1) {
            throw new CalibrationInputException("solver block size must be >= 1, got " + blockSize + "; use 128");
        }
    }

    /**
     * @param scope mask scope
     * @return these options with another mask scope
     */
    public SolverOptions withMaskScope(MaskScope scope) {
        return new SolverOptions(blockSize, scope);
    }
}
