package io.sparkprune.jobs.cluster;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * One application submitted with {@code org.apache.spark.deploy.SparkSubmit} in client deploy mode:
 * the driver is a child JVM of the test, whose standard output and error go to {@link #log()}.
 */
public final class Submission {
    private final Process process;
    private final Path log;
    private final String description;

    /**
     * The outcome of a finished driver.
     *
     * @param exitCode the driver JVM's exit status (0 when the application's main returned normally)
     * @param output everything the driver wrote to standard output and error
     */
    public record Result(int exitCode, String output) {
    }

    Submission(Process process, Path log, String description) {
        this.process = process;
        this.log = log;
        this.description = description;
    }

    /** @return the driver JVM */
    public Process process() {
        return process;
    }

    /** @return the driver JVM's process id */
    public long pid() {
        return process.pid();
    }

    /** @return the file holding the driver's standard output and error */
    public Path log() {
        return log;
    }

    /** @return the driver's output so far */
    public String output() {
        try {
            return Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read driver log " + log, e);
        }
    }

    /**
     * Waits for the driver to exit.
     *
     * @param timeout longest wait
     * @return exit status and output
     * @throws IllegalStateException if the driver is still running after {@code timeout} (it is then
     *     killed, and the message carries its output)
     * @throws InterruptedException if the waiting thread is interrupted
     */
    public Result waitFor(Duration timeout) throws InterruptedException {
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            kill();
            throw new IllegalStateException(description + " still running after " + timeout.toSeconds()
                    + " s; killed it. Driver output:\n" + output());
        }
        return new Result(process.exitValue(), output());
    }

    /**
     * Kills the driver JVM (SIGKILL, like a crashed machine) and anything it started, and waits up to
     * 10 s for it to be gone.
     *
     * @throws InterruptedException if the waiting thread is interrupted
     */
    public void kill() throws InterruptedException {
        ProcessTrees.killForcibly(process.toHandle(), Duration.ofSeconds(10));
    }

    @Override
    public String toString() {
        return description + " (pid " + process.pid() + ")";
    }
}
