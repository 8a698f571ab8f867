package io.sparkprune.pipeline.defaults;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A default model or corpus resource is not on the classpath (typically under
 * {@code spark-submit} without the artifact). The message names the resource, the Maven
 * coordinates of the artifact that holds it and how to add it.
 */
public class MissingDefaultAssetException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what is missing and the fix
     */
    public MissingDefaultAssetException(String message) {
        super(message);
    }

    /**
     * @param message what failed and the fix
     * @param cause the low-level failure
     */
    public MissingDefaultAssetException(String message, Throwable cause) {
        super(message, cause);
    }
}
