package io.sparkprune.pipeline.model;

/**
 * Configuration of a BERT-family encoder ({@code bert}: all-MiniLM-L6-v2, BGE, E5), as in Hugging
 * Face transformers' {@code BertConfig}.
 *
 * <p>Shapes (rows × cols, [out, in]): query/key/value/attention.output.dense [hidden, hidden],
 * intermediate.dense [intermediate, hidden], output.dense [hidden, intermediate], word embeddings
 * [vocab, hidden], position embeddings [maxPositions, hidden], token-type embeddings [typeVocab, hidden].
 *
 * @param hiddenSize residual width
 * @param numHiddenLayers number of encoder blocks
 * @param numAttentionHeads attention heads (hidden must be divisible by it)
 * @param intermediateSize MLP inner width
 * @param vocabSize vocabulary size
 * @param maxPositionEmbeddings number of learned absolute positions
 * @param typeVocabSize number of token types (segments)
 * @param layerNormEps ε of every LayerNorm
 * @param hiddenAct activation; only the erf form of GELU ({@code "gelu"}) is supported
 * @param padTokenId id of the padding token
 * @param torchDtype the checkpoint's declared dtype, may be null
 */
public record BertConfig(int hiddenSize, int numHiddenLayers, int numAttentionHeads, int intermediateSize,
                         int vocabSize, int maxPositionEmbeddings, int typeVocabSize, double layerNormEps,
                         String hiddenAct, int padTokenId, String torchDtype) implements ModelConfig {

    @Override
    public ModelFamily family() {
        return ModelFamily.BERT;
    }

    @Override
    public String modelType() {
        return "bert";
    }

    /** @return per-head width, hidden / heads */
    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }
}
