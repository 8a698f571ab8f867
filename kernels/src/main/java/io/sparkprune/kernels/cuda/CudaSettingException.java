package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A CUDA backend setting given as a system property ({@value CudaBackend#CHOL_PANEL_PROPERTY},
 * {@value CudaBackend#UNSTRUCTURED_SELECT_PROPERTY}, {@value CudaBackend#SOLVE_FORM_PROPERTY}) has a value
 * the backend does not know. The message names the property, the value and the allowed values. Thrown
 * when a backend is created, before the driver is touched, so {@code --backend auto} reports it instead of
 * falling back to the CPU; the CLI maps it to exit code 3 like every {@link InvalidInputException}.
 */
public final class CudaSettingException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message the property, the value and the allowed values
     */
    public CudaSettingException(String message) {
        super(message);
    }
}
