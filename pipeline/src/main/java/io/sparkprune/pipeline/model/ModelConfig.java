package io.sparkprune.pipeline.model;

/**
 * A parsed, validated Hugging Face model configuration.
 *
 * <p>Obtain one with {@link ModelConfigs#parse(byte[], String)} or {@link ModelConfigs#read(java.nio.file.Path)}.
 */
public sealed interface ModelConfig permits LlamaConfig, BertConfig {

    /** @return the architecture family */
    ModelFamily family();

    /** @return the {@code model_type} as written in config.json, e.g. {@code "qwen2"} */
    String modelType();

    /** @return the width of the residual stream ({@code hidden_size}) */
    int hiddenSize();

    /** @return the number of transformer blocks ({@code num_hidden_layers}) */
    int numHiddenLayers();

    /** @return the number of attention heads for queries */
    int numAttentionHeads();

    /** @return the MLP inner width ({@code intermediate_size}) */
    int intermediateSize();

    /** @return the vocabulary size (rows of the token embedding) */
    int vocabSize();

    /** @return the number of position embeddings or the trained context length */
    int maxPositionEmbeddings();
}
