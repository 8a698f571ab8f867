package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A checkpoint's tensors do not fit the model its config describes: a tensor is missing, has the
 * wrong shape or a non-floating-point dtype. The message names the checkpoint and tensor, what was
 * expected, and the fix.
 */
public class ModelWeightsException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /** @param message names the checkpoint and tensor, what is wrong and the fix */
    public ModelWeightsException(String message) {
        super(message);
    }
}
