package io.sparkprune.calibration;

import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.kernels.cuda.CudaBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInfo;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Base of this module's {@code @Tag("gpu")} test classes that compare the CUDA backend with a CPU
 * backend: opens both before the class's tests ({@link GpuTestBackend}: without a usable device,
 * {@link #requireGpu()} skips with the reason, as on CI) and closes them after. The fields are static
 * and reassigned per class (JUnit runs the classes one after another); {@link #SEED} is one random
 * seed per run.
 */
public abstract class GpuSuite {
    /**
     * The run's random seed (tests print it in their messages); {@code -Dsparkprune.test.seed=N} repeats a
     * run's seed.
     */
    protected static final long SEED = Long.getLong("sparkprune.test.seed", new SplittableRandom().nextLong());
    /** CUDA device 0, or null without a usable device. */
    protected static CudaBackend gpu;
    /** A CPU backend with 4 threads. */
    protected static CpuBackend cpu;
    /** Why there is no device, or null. */
    protected static String unavailable;

    @BeforeAll
    static void openSuite(TestInfo info) {
        cpu = CpuBackend.create(4);
        GpuTestBackend g = GpuTestBackend.open(info.getTestClass().map(Class::getSimpleName).orElse("GPU tests"));
        gpu = g.gpu();
        unavailable = g.unavailable();
    }

    @AfterAll
    static void closeSuite() {
        if (gpu != null) {
            gpu.close();
        }
        cpu.close();
    }

    /** Skips the calling test, with the reason, when no CUDA device could be opened. */
    protected static void requireGpu() {
        assumeTrue(gpu != null, () -> unavailable);
    }
}
