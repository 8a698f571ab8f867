package io.sparkprune.jobs.tools;

import io.sparkprune.kernels.InvalidInputException;

/** A checkpoint generator request that cannot be met: a bad size or dtype, or an occupied output directory. */
public class GeneratorException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /** @param message what is wrong (the option or path) and the fix */
    public GeneratorException(String message) {
        super(message);
    }
}
