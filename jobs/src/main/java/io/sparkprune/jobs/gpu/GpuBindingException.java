package io.sparkprune.jobs.gpu;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A task's GPU assignment or the GPU settings are unusable: a task got zero or several GPU
 * addresses, an address is not a device ordinal, or a {@code spark.sparkprune.gpu.*} value is out of
 * range. The message names the setting to fix.
 */
public class GpuBindingException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what was wrong and which setting fixes it
     */
    public GpuBindingException(String message) {
        super(message);
    }
}
