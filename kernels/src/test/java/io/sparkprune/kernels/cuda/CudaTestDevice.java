package io.sparkprune.kernels.cuda;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The CUDA backends of one {@code @Tag("gpu")} test class, opened in its {@code @BeforeAll}: all of
 * them, or none and the reason, with which the class's tests then skip (as on CI, which has no GPU).
 * A backend opened before a later one failed is closed again.
 */
final class CudaTestDevice implements AutoCloseable {
    /** Opens one backend; throws when no CUDA device or driver is usable. */
    @FunctionalInterface
    interface Opener {
        CudaBackend open();
    }

    private final List<CudaBackend> backends;
    private final String unavailable;

    private CudaTestDevice(List<CudaBackend> backends, String unavailable) {
        this.backends = backends;
        this.unavailable = unavailable;
    }

    /**
     * Opens the backends in order and prints which device runs the suite, or why it is skipped.
     *
     * @param suite the test class's subject, for the printed line
     * @param seed the class's random seed, printed so that a failure can be replayed
     * @param openers one per backend, at least one
     * @return the opened backends, or none and the reason
     */
    static CudaTestDevice open(String suite, long seed, Opener... openers) {
        List<CudaBackend> opened = new ArrayList<>();
        try {
            for (Opener o : openers) {
                opened.add(o.open());
            }
            System.out.println(suite + " on " + opened.get(0).name() + " seed=" + seed);
            return new CudaTestDevice(opened, null);
        } catch (RuntimeException | LinkageError e) {
            opened.forEach(CudaBackend::close);
            String why = "no usable CUDA device: " + e.getMessage();
            System.out.println("SKIPPED " + suite + ": " + why);
            return new CudaTestDevice(List.of(), why);
        }
    }

    /**
     * @param i index among the openers
     * @return that backend, or null when none could be opened
     */
    CudaBackend backend(int i) {
        return backends.isEmpty() ? null : backends.get(i);
    }

    /** Skips the calling test, with the reason, when no backend could be opened. */
    void require() {
        assumeTrue(unavailable == null, () -> unavailable);
    }

    /** Closes the backends, the last opened first. */
    @Override
    public void close() {
        for (int i = backends.size() - 1; i >= 0; i--) {
            backends.get(i).close();
        }
    }
}
