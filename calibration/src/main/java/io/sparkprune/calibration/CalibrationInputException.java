package io.sparkprune.calibration;

import io.sparkprune.kernels.InvalidInputException;

/**
 * Bad input to a calibration algorithm: shapes that do not fit together, an invalid quantization
 * or solver setting, an empty Hessian. The message names the tensor, what is wrong and the fix.
 */
public class CalibrationInputException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what was wrong, where, and the fix
     */
    public CalibrationInputException(String message) {
        super(message);
    }
}
