package io.sparkprune.pipeline.data;

import io.sparkprune.kernels.InvalidInputException;

/**
 * Bad calibration data: a spec that matches no file, an unreadable or malformed file (the message
 * names it, and the line number for text and JSONL), a missing JSON field or Parquet column, or a
 * corpus that cannot provide the requested samples. The message says what is wrong and the fix.
 */
public class CalibrationDataException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what was wrong, where, and the fix
     */
    public CalibrationDataException(String message) {
        super(message);
    }

    /**
     * @param message what was wrong, where, and the fix
     * @param cause the low-level failure (I/O, JSON, Parquet)
     */
    public CalibrationDataException(String message, Throwable cause) {
        super(message, cause);
    }
}
