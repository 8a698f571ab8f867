package io.sparkprune.pipeline.onnx;

import java.util.Objects;

/**
 * Where one Hugging Face {@code BertModel} parameter lives in an ONNX graph, as
 * {@link OnnxImporter#parameterMap} finds it.
 *
 * @param hfName the HF parameter name without a module prefix, e.g.
 *     {@code encoder.layer.0.attention.self.query.weight}
 * @param initializer the ONNX initializer holding it, e.g. {@code onnx::MatMul_787} or
 *     {@code bert.embeddings.word_embeddings.weight}
 * @param transposed true when the initializer holds the transpose of the HF tensor: a {@code MatMul}
 *     B input stored (in x out) while {@code torch.nn.Linear} keeps (out x in)
 * @param origin how it was found (the MatMul/Gemm node, or "named initializer"), for messages
 */
public record OnnxParameter(String hfName, String initializer, boolean transposed, String origin) {

    /**
     * @throws NullPointerException when an argument is null
     */
    public OnnxParameter {
        Objects.requireNonNull(hfName, "hfName");
        Objects.requireNonNull(initializer, "initializer");
        Objects.requireNonNull(origin, "origin");
    }

    /** @return a description for messages: initializer name, layout and origin */
    public String describe() {
        return "initializer '" + initializer + "'" + (transposed ? " (stored in x out, transposed)" : "") + ", " + origin;
    }
}
