package io.sparkprune.jobs.conf;

import io.sparkprune.kernels.InvalidInputException;

/**
 * An invalid {@code spark.sparkprune.*} setting: an unknown key, or a value that does not parse or
 * is out of range. The message names the key, the value, what is allowed and how to set it; the CLI
 * maps it to exit code 3.
 */
public class SparkPruneConfException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    private final String key;

    /**
     * @param key the offending key, e.g. {@code spark.sparkprune.backend}
     * @param message the full message: key, value, what is allowed, the fix
     */
    public SparkPruneConfException(String key, String message) {
        this(key, message, null);
    }

    /**
     * @param key the offending key
     * @param message the full message
     * @param cause the parse failure, kept for debugging
     */
    public SparkPruneConfException(String key, String message, Throwable cause) {
        super(message, cause);
        this.key = key;
    }

    /** @return the offending key */
    public String key() {
        return key;
    }
}
