package io.sparkprune.pipeline.onnx;

import io.sparkprune.kernels.InvalidInputException;

/**
 * The tensors handed to {@link OnnxExporter} do not fit the ONNX template: a parameter the graph
 * needs is missing, or its shape or dtype differs from the template's initializer. The message
 * names the tensor (HF name and ONNX initializer), what was expected and the fix. The CLI maps it
 * (as every {@link InvalidInputException}) to exit code 3.
 */
public class OnnxExportException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /**
     * @param message what does not fit, which tensor, and the fix
     */
    public OnnxExportException(String message) {
        super(message);
    }
}
