package io.sparkprune.kernels.cuda;

/**
 * A CUDA driver call or kernel launch failed. The message names the call or kernel and the operand
 * (tensor, shape, bytes) it was working on, then the driver's error name (e.g.
 * {@code CUDA_ERROR_OUT_OF_MEMORY}).
 */
public final class CudaCallException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what failed and why
     * @param cause the JCuda exception, or null
     */
    public CudaCallException(String message, Throwable cause) {
        super(message, cause);
    }
}
