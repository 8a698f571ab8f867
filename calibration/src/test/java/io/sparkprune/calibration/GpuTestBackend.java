package io.sparkprune.calibration;

import io.sparkprune.kernels.cuda.CudaBackend;

/**
 * Opens CUDA device 0 for a {@code @Tag("gpu")} test class of this module, or says why it cannot (no
 * device or driver: CI), so that the class's tests skip with that reason.
 *
 * @param gpu the backend, or null when there is none
 * @param unavailable why there is none, or null
 */
public record GpuTestBackend(CudaBackend gpu, String unavailable) {

    /**
     * @param testClass the test class's name, for the line printed either way
     * @return the opened backend, or null with the reason (printed as {@code SKIPPED ...})
     */
    public static GpuTestBackend open(String testClass) {
        try {
            CudaBackend gpu = CudaBackend.create(0, 2);
            System.out.println(testClass + " on " + gpu.name());
            return new GpuTestBackend(gpu, null);
        } catch (RuntimeException | LinkageError e) {
            String why = "no usable CUDA device: " + e.getMessage();
            System.out.println("SKIPPED " + testClass + ": " + why);
            return new GpuTestBackend(null, why);
        }
    }
}
