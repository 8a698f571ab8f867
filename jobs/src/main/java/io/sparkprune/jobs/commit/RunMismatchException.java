package io.sparkprune.jobs.commit;

import io.sparkprune.kernels.InvalidInputException;

/**
 * {@code --resume} was asked for an output directory staged by a run with another fingerprint
 * (another recipe or model): continuing would mix layers of two different runs.
 */
public class RunMismatchException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message the two fingerprints, the directory, and the fix
     */
    public RunMismatchException(String message) {
        super(message);
    }
}
