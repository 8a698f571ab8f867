package io.sparkprune.kernels.cuda;

import jcuda.CudaException;
import jcuda.driver.CUresult;

/** Checked CUDA driver calls: every call goes through {@link #check} with a description of what it does. */
final class Driver {
    private Driver() {
    }

    /** A driver call returning a {@link CUresult} code. */
    @FunctionalInterface
    interface Call {
        int run();
    }

    /**
     * Runs one driver call and turns a failure (an error code, or JCuda's exception when exceptions
     * are enabled) into a {@link CudaCallException} naming {@code what}.
     *
     * @param what the call and its operand, e.g. {@code "cuMemcpyHtoD sgemm A (384 x 128 fp32)"}
     * @param call the call
     * @throws CudaCallException on failure
     */
    static void check(String what, Call call) {
        int rc;
        try {
            rc = call.run();
        } catch (CudaException e) {
            throw new CudaCallException(what + " failed: " + e.getMessage(), e);
        }
        if (rc != CUresult.CUDA_SUCCESS) {
            throw new CudaCallException(what + " failed: " + CUresult.stringFor(rc), null);
        }
    }
}
