package io.sparkprune.pipeline.model;

import io.sparkprune.kernels.InvalidInputException;

/** A {@code config.json} that is malformed, inconsistent or of an unsupported model type. */
public class ModelConfigException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /** @param message names the file and key, what is wrong, and the fix */
    public ModelConfigException(String message) {
        super(message);
    }

    /**
     * @param message names the file and key, what is wrong, and the fix
     * @param cause the JSON or I/O failure
     */
    public ModelConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
