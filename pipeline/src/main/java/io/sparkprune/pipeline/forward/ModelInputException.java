package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.InvalidInputException;

/**
 * Input a model cannot take: a token id outside the vocabulary, a token type outside the model's
 * segments, or a sequence longer than its position embeddings. The message names the model, the
 * value and the limit, and the fix.
 */
public class ModelInputException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /** @param message names the model, the value, the limit and the fix */
    public ModelInputException(String message) {
        super(message);
    }
}
