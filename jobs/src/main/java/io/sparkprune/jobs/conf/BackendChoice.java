package io.sparkprune.jobs.conf;

import java.util.Locale;

/** Which compute backend executors use; setting {@code spark.sparkprune.backend}. */
public enum BackendChoice {
    /** CUDA when the task has a GPU (a {@code gpu} resource, or a device in local mode) and the CUDA backend is available, else CPU. */
    AUTO,
    /** The pure-Java CPU backend, the reference. */
    CPU,
    /** The CUDA backend; a task without a usable GPU fails instead of falling back. */
    CUDA;

    /** @return the value as written in the setting, e.g. {@code "cpu"} */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }
}
