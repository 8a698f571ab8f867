package io.sparkprune.kernels;

/**
 * Root of SparkPrune's typed errors for bad user input: a malformed checkpoint, config, recipe or
 * data file. The message names the file, tensor or key, what was wrong and how to fix it. The CLI
 * maps this type to exit code 3.
 *
 * <p>Subclasses narrow the source (safetensors, ONNX, config, recipe, calibration data) so callers
 * can catch what they can handle.
 */
public class InvalidInputException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what was wrong, where, and the fix
     */
    public InvalidInputException(String message) {
        super(message);
    }

    /**
     * @param message what was wrong, where, and the fix
     * @param cause the low-level failure (I/O, JSON, protobuf), kept for debugging
     */
    public InvalidInputException(String message, Throwable cause) {
        super(message, cause);
    }
}
