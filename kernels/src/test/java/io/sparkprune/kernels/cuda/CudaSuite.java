package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInfo;

import java.util.Random;

/**
 * Base of the {@code @Tag("gpu")} test classes that compare one CUDA backend with a CPU backend: opens
 * both before the class's tests (the CUDA one through {@link CudaTestDevice}, so that without a usable
 * device every test that calls {@code device.require()} skips with the reason, as on CI) and closes them
 * after. The fields are static and reassigned per class (JUnit runs the classes one after another).
 * {@link #SEED} is one random seed per run, printed with each class's name so that a failure can be
 * replayed.
 */
abstract class CudaSuite {
    /** The run's random seed (printed by {@link CudaTestDevice#open}). */
    static final long SEED = new Random().nextLong();
    /** The class's CUDA backend on device 0, or null without a usable device. */
    static CudaBackend gpu;
    /** A CPU backend with 4 threads, the reference of the comparisons. */
    static CpuBackend cpu;
    /** The class's device, for {@code device.require()}. */
    static CudaTestDevice device;

    @BeforeAll
    static void openSuite(TestInfo info) {
        cpu = CpuBackend.create(4);
        String suite = info.getTestClass().map(Class::getSimpleName).orElse("CUDA tests");
        device = CudaTestDevice.open(suite, SEED, () -> CudaBackend.create(0, 4));
        gpu = device.backend(0);
    }

    @AfterAll
    static void closeSuite() {
        device.close();
        cpu.close();
    }
}
