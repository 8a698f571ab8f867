package io.sparkprune.jobs.commit;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A fresh run (no {@code --resume}) was pointed at an output directory that already holds a run's
 * staging area; starting over would silently throw its committed layers away.
 */
public class StagingExistsException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message the directory, what it holds, and the fix
     */
    public StagingExistsException(String message) {
        super(message);
    }
}
