package io.sparkprune.pipeline.model;

import java.util.List;

/** Architecture families SparkPrune knows, with the Hugging Face {@code model_type} values of each. */
public enum ModelFamily {
    /** Decoder-only, RMSNorm, RoPE, grouped-query attention, SwiGLU MLP. */
    LLAMA(List.of("llama", "mistral", "qwen2")),
    /** Encoder, post-LayerNorm, learned absolute positions, GELU MLP. */
    BERT(List.of("bert"));

    private final List<String> modelTypes;

    ModelFamily(List<String> modelTypes) {
        this.modelTypes = modelTypes;
    }

    /** @return the {@code model_type} strings this family accepts */
    public List<String> modelTypes() {
        return modelTypes;
    }

    /** @return every supported {@code model_type}, in a stable order, for error messages */
    public static List<String> supportedModelTypes() {
        return java.util.Arrays.stream(values()).flatMap(f -> f.modelTypes.stream()).toList();
    }
}
