package io.sparkprune.pipeline.onnx;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.kernels.HostTensor;
import java.util.LinkedHashMap;
import java.util.Objects;

/**
 * A BERT-family model imported from ONNX, in Hugging Face form: what a {@code BertModel}
 * checkpoint directory holds ({@code config.json} plus the safetensors parameters), still in memory.
 *
 * <p>Tensor names are those of HF's {@code BertModel} state dict without a {@code bert.} prefix
 * (as in sentence-transformers' {@code model.safetensors}), e.g.
 * {@code embeddings.word_embeddings.weight} (vocab x hidden) or
 * {@code encoder.layer.0.attention.self.query.weight} (out x in, i.e. hidden x hidden, row-major,
 * the {@code torch.nn.Linear} layout). Order: embeddings, then each encoder layer in module order
 * (query, key, value, attention.output.dense, attention.output.LayerNorm, intermediate.dense,
 * output.dense, output.LayerNorm; weight before bias), then the pooler if the export has one.
 * Values are bit-exact copies of the ONNX initializers (transposed where ONNX stored
 * {@code MatMul} weights as in x out).
 *
 * @param config HF {@code BertConfig} tree ({@code config.json}); see {@link OnnxImporter} for keys
 * @param tensors parameters by HF name, in the order above
 * @param source where the model came from (file path or resource name), for messages and reports
 */
public record ImportedModel(ObjectNode config, LinkedHashMap<String, HostTensor> tensors, String source) {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /**
     * @throws NullPointerException when an argument is null
     */
    public ImportedModel {
        Objects.requireNonNull(config, "config");
        Objects.requireNonNull(tensors, "tensors");
        Objects.requireNonNull(source, "source");
    }

    /**
     * @return the config as {@code config.json} text: pretty-printed JSON, keys in the order of
     *     {@link #config()} (alphabetical, as {@code transformers} writes them), ending in a newline
     */
    public String configJson() {
        try {
            return JSON.writeValueAsString(config) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize config of " + source, e);
        }
    }

    /**
     * @param key an integer config key such as {@code "hidden_size"}
     * @return its value
     * @throws IllegalArgumentException when the key is absent or not an integer
     */
    public int configInt(String key) {
        if (!config.has(key) || !config.get(key).canConvertToInt() || !config.get(key).isIntegralNumber()) {
            throw new IllegalArgumentException("config of " + source + " has no integer key '" + key + "'");
        }
        return config.get(key).intValue();
    }
}
