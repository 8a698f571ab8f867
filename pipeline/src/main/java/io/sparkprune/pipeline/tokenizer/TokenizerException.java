package io.sparkprune.pipeline.tokenizer;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A tokenizer file that is missing, unreadable or malformed, or a request the tokenizer cannot
 * serve (for example a maximum length too short for its special tokens). The message names the
 * tokenizer file (or the resource it came from), what is wrong and the fix.
 */
public class TokenizerException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what was wrong, in which tokenizer file, and the fix
     */
    public TokenizerException(String message) {
        super(message);
    }

    /**
     * @param message what was wrong, in which tokenizer file, and the fix
     * @param cause the low-level failure (I/O, JSON, native library)
     */
    public TokenizerException(String message, Throwable cause) {
        super(message, cause);
    }
}
