package io.sparkprune.pipeline.formats;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A compressed checkpoint (sparse, compressed-tensors) is malformed or inconsistent: a missing
 * component tensor, a wrong dtype or shape, an index out of range, a bad manifest or
 * {@code quantization_config}. The message starts with the file or directory, then the tensor or
 * key, then says what is wrong and the fix. Being an {@link InvalidInputException}, the CLI maps it
 * to exit code 3.
 */
public class FormatException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param where the file or directory, then the tensor or key (e.g. {@code "/m/model.safetensors: 'w.values'"})
     * @param message what is wrong and the fix
     */
    public FormatException(String where, String message) {
        super(where + ": " + message);
    }

    /**
     * @param where the file or directory, then the tensor or key
     * @param message what is wrong and the fix
     * @param cause the low-level failure, kept for debugging
     */
    public FormatException(String where, String message, Throwable cause) {
        super(where + ": " + message, cause);
    }
}
