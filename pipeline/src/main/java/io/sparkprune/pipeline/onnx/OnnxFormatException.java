package io.sparkprune.pipeline.onnx;

import io.sparkprune.kernels.InvalidInputException;

/**
 * An ONNX file that SparkPrune cannot import: not a valid ONNX protobuf, not a BERT-family graph,
 * tensors stored outside the file, inconsistent shapes, or a weight whose producing module cannot
 * be identified. The message names the file and the tensor or node, says what was expected and
 * how to fix the input. The CLI maps it (as every {@link InvalidInputException}) to exit code 3.
 */
public class OnnxFormatException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what was wrong, where (file, tensor or node), and the fix
     */
    public OnnxFormatException(String message) {
        super(message);
    }

    /**
     * @param message what was wrong, where (file, tensor or node), and the fix
     * @param cause the low-level failure (protobuf parse error, I/O), kept for debugging
     */
    public OnnxFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
