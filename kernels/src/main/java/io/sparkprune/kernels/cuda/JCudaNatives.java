package io.sparkprune.kernels.cuda;

import jcuda.driver.JCudaDriver;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * Loads JCuda's native driver binding once per JVM, into a temporary directory of this JVM's own.
 *
 * <p>JCuda ({@code jcuda.LibUtils}) first tries {@code System.loadLibrary} on
 * {@code java.library.path}, then extracts {@code libJCudaDriver-<version>-linux-x86_64.so} from the
 * natives jar to a file of that fixed name directly under {@code java.io.tmpdir}: several executors
 * starting on one host would write the same file while others load it. We therefore point
 * {@code java.io.tmpdir} at a fresh directory (the system property {@code sparkprune.jcuda.tmpdir},
 * or a new {@code sparkprune-jcuda-<pid>-*} directory under the real temporary directory) while JCuda's
 * driver class initializes, then restore it. The directory is deleted when the JVM exits.
 */
final class JCudaNatives {
    private static boolean loaded;
    private static Throwable failure;

    private JCudaNatives() {
    }

    /**
     * @param t a failure, possibly with a many-line message (JCuda's includes nested stack traces)
     * @return its class and the first line of its message, then the same for its root cause
     */
    static String summary(Throwable t) {
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String s = firstLine(t);
        if (root != t) {
            s += " (cause: " + firstLine(root) + ")";
        }
        if (String.valueOf(t.getMessage()).contains("libcuda.so.1: cannot open")) {
            s = "no NVIDIA driver on this host (libcuda.so.1 not found); " + s;
        }
        return s;
    }

    private static String firstLine(Throwable t) {
        String m = String.valueOf(t.getMessage());
        int nl = m.indexOf('\n');
        return t.getClass().getSimpleName() + ": " + (nl < 0 ? m : m.substring(0, nl));
    }

    /**
     * Loads the binding (idempotent) and enables JCuda's exceptions on failed driver calls.
     *
     * @throws IllegalStateException when the binding cannot be loaded (no {@code libcuda.so.1}, wrong
     *     platform, unwritable temporary directory); the cause says why
     */
    static synchronized void load() {
        if (loaded) {
            return;
        }
        if (failure != null) {
            throw new IllegalStateException("JCuda's native driver binding could not be loaded: " + summary(failure),
                    failure);
        }
        String old = System.getProperty("java.io.tmpdir");
        try {
            String configured = System.getProperty("sparkprune.jcuda.tmpdir");
            Path dir = configured != null
                    ? Files.createDirectories(Paths.get(configured))
                    : Files.createTempDirectory("sparkprune-jcuda-" + ProcessHandle.current().pid() + "-");
            dir.toFile().deleteOnExit();
            System.setProperty("java.io.tmpdir", dir.toString());
            try {
                JCudaDriver.setExceptionsEnabled(true);
            } finally {
                System.setProperty("java.io.tmpdir", old);
            }
            // deleteOnExit runs in reverse registration order: files first, then the directory
            File[] files = dir.toFile().listFiles();
            if (files != null && configured == null) {
                for (File f : files) {
                    f.deleteOnExit();
                }
            }
            loaded = true;
        } catch (IOException | LinkageError | RuntimeException e) {
            failure = e;
            throw new IllegalStateException("JCuda's native driver binding could not be loaded: " + summary(e), e);
        }
    }
}
