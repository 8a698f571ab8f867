package io.sparkprune.jobs.gpu;

import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Caps how many tasks of one executor JVM run GPU work at the same time (spark-rapids'
 * {@code GpuSemaphore} idea): a task {@link #acquire()}s a {@link Permit} before it touches the
 * device and closes it after, in try-with-resources. Fair, so tasks get the GPU in arrival order.
 *
 * <p>One instance per executor JVM comes from {@link #executorWide(int)}; tests may create their
 * own.
 */
public final class GpuSemaphore {
    private static GpuSemaphore executorWide;

    private final int permits;
    private final Semaphore semaphore;

    /**
     * @param permits tasks allowed on the GPU at once, at least 1
     * @throws IllegalArgumentException if {@code permits < 1}
     */
    public GpuSemaphore(int permits) {
        if (permits < 1) {
            throw new IllegalArgumentException("GPU permits must be >= 1, got " + permits);
        }
        this.permits = permits;
        this.semaphore = new Semaphore(permits, true);
    }

    /**
     * The executor's semaphore, created on first use with {@code permits}. A later call with another
     * size replaces it if no permit is held (a new SparkContext in the same JVM, as in local-mode
     * tests), and fails otherwise.
     *
     * @param permits tasks allowed on the GPU at once, at least 1
     * @return the JVM-wide instance
     * @throws IllegalStateException if permits are held under a different size
     */
    public static synchronized GpuSemaphore executorWide(int permits) {
        if (executorWide == null || (executorWide.permits != permits && executorWide.idle())) {
            executorWide = new GpuSemaphore(permits);
        } else if (executorWide.permits != permits) {
            throw new IllegalStateException("the executor's GPU semaphore has " + executorWide.permits
                    + " permits and is in use; cannot resize it to " + permits);
        }
        return executorWide;
    }

    /** @return the number of permits this semaphore was created with */
    public int permits() {
        return permits;
    }

    /** @return permits not held right now */
    public int available() {
        return semaphore.availablePermits();
    }

    private boolean idle() {
        return semaphore.availablePermits() == permits;
    }

    /**
     * Blocks until a permit is free.
     *
     * @return the permit; close it to release
     * @throws InterruptedException if the task is interrupted (killed) while waiting
     */
    public Permit acquire() throws InterruptedException {
        semaphore.acquire();
        return new Permit(semaphore);
    }

    /** A held GPU permit; {@link #close()} releases it once (later calls do nothing). */
    public static final class Permit implements AutoCloseable {
        private final Semaphore semaphore;
        private final AtomicBoolean released = new AtomicBoolean();

        private Permit(Semaphore semaphore) {
            this.semaphore = semaphore;
        }

        /** @return true until {@link #close()} */
        public boolean held() {
            return !released.get();
        }

        @Override
        public void close() {
            if (released.compareAndSet(false, true)) {
                semaphore.release();
            }
        }
    }
}
