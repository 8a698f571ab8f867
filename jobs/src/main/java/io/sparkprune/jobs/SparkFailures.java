package io.sparkprune.jobs;

import io.sparkprune.kernels.InvalidInputException;
import java.util.Optional;

/**
 * Failures of Spark actions, seen on the driver. A task's typed error (an
 * {@link InvalidInputException} such as a non-finite activation or a corrupt shard, thrown on an
 * executor) reaches the driver wrapped in Spark's {@code SparkException}; the jobs rethrow the typed
 * error itself, so that the command line prints its message (naming the file, tensor or key and
 * the fix) and exits with the bad-input code instead of printing Spark's stack trace.
 */
public final class SparkFailures {
    private SparkFailures() {
    }

    /**
     * @param e a failure from a Spark action (often the checked {@code SparkException}, thrown undeclared)
     * @return what to throw: a task's typed error from the cause chain, else {@code e} itself when
     *     unchecked, else {@code e} wrapped in an {@link IllegalStateException}
     */
    public static RuntimeException rethrow(Throwable e) {
        Optional<InvalidInputException> typed = typedCause(e);
        if (typed.isPresent()) {
            return typed.get();
        }
        if (e instanceof RuntimeException r) {
            return r;
        }
        return new IllegalStateException("Spark job failed: " + e.getMessage(), e);
    }

    /**
     * @param e a failure from a Spark action
     * @return the first {@link InvalidInputException} in its cause chain (a task's typed error), if any
     */
    public static Optional<InvalidInputException> typedCause(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (c instanceof InvalidInputException i) {
                return Optional.of(i);
            }
        }
        return Optional.empty();
    }
}
