package io.sparkprune.jobs.cluster;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.Arrays;

/**
 * Entry point of every child JVM the harness starts (Master, Worker, SparkSubmit driver): it runs
 * {@code args[0]}'s {@code main} with the remaining arguments, and exits the JVM when its standard
 * input reaches end of file, which happens when the parent JVM (the test) dies without closing the
 * cluster (for example when surefire is killed). The exit goes through {@link System#exit} so that
 * Spark's shutdown hooks run (a Worker kills its executors there); if those hang, the JVM halts
 * after {@value #HALT_AFTER_MILLIS} ms.
 *
 * <p>Exit code of the child when orphaned: {@value #ORPHAN_EXIT_CODE}.
 */
public final class ParentWatchdog {
    /** Exit status of a child whose parent went away. */
    public static final int ORPHAN_EXIT_CODE = 86;
    /** Milliseconds the shutdown hooks get before {@link Runtime#halt}. */
    public static final long HALT_AFTER_MILLIS = 10_000;

    private ParentWatchdog() {
    }

    /**
     * @param args the main class to run, then its arguments
     * @throws Throwable whatever the wrapped main throws
     */
    public static void main(String[] args) throws Throwable {
        if (args.length == 0) {
            throw new IllegalArgumentException("usage: ParentWatchdog <main class> [args...]");
        }
        Thread watcher = new Thread(ParentWatchdog::watchStdin, "parent-watchdog");
        watcher.setDaemon(true);
        watcher.start();
        Method main = Class.forName(args[0]).getMethod("main", String[].class);
        try {
            main.invoke(null, (Object) Arrays.copyOfRange(args, 1, args.length));
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private static void watchStdin() {
        InputStream in = System.in;
        byte[] buf = new byte[256];
        try {
            while (in.read(buf) >= 0) {
                // The parent never writes; anything read is ignored.
            }
        } catch (IOException e) {
            // A broken pipe means the parent is gone as well.
        }
        Thread halter = new Thread(() -> {
            try {
                Thread.sleep(HALT_AFTER_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            Runtime.getRuntime().halt(ORPHAN_EXIT_CODE);
        }, "parent-watchdog-halt");
        halter.setDaemon(true);
        halter.start();
        System.err.println("ParentWatchdog: parent JVM went away (stdin closed); exiting");
        System.exit(ORPHAN_EXIT_CODE);
    }
}
