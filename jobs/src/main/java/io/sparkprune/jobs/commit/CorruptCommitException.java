package io.sparkprune.jobs.commit;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A committed layer in the staging area fails validation: its {@code _COMMITTED} marker is
 * unreadable or inconsistent, or a shard or metrics file it lists is missing, has another size, or
 * another SHA-256. The message names the file, the expected and the found value, and how to recover
 * (delete that layer's staging directory so the layer is recomputed).
 */
public class CorruptCommitException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what is wrong, where, and the fix
     */
    public CorruptCommitException(String message) {
        super(message);
    }

    /**
     * @param message what is wrong, where, and the fix
     * @param cause the low-level failure
     */
    public CorruptCommitException(String message, Throwable cause) {
        super(message, cause);
    }
}
