package io.sparkprune.jobs.prune;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A fresh run (no {@code --resume}) was pointed at an output directory that already exists and is
 * not empty, e.g. the finished output of an earlier run, which the job would otherwise overwrite.
 */
public class OutputExistsException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message the directory, what it holds, and the fix
     */
    public OutputExistsException(String message) {
        super(message);
    }
}
