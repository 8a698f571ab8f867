package io.sparkprune.pipeline.model;

/**
 * Configuration of a Llama-family decoder ({@code llama}, {@code mistral}, {@code qwen2}), as in
 * Hugging Face transformers' {@code LlamaConfig}, {@code MistralConfig} and {@code Qwen2Config}.
 *
 * <p>Shapes it implies (rows × cols, row-major, [out, in] as stored by transformers):
 * {@code q_proj} [heads·headDim, hidden], {@code k_proj}/{@code v_proj} [kvHeads·headDim, hidden],
 * {@code o_proj} [hidden, heads·headDim], {@code gate_proj}/{@code up_proj} [intermediate, hidden],
 * {@code down_proj} [hidden, intermediate], {@code embed_tokens} [vocab, hidden].
 *
 * @param modelType {@code llama}, {@code mistral} or {@code qwen2}
 * @param hiddenSize residual width
 * @param intermediateSize SwiGLU inner width
 * @param numHiddenLayers number of decoder blocks
 * @param numAttentionHeads query heads
 * @param numKeyValueHeads key/value heads (grouped-query attention; equals heads for MHA)
 * @param headDim per-head width ({@code head_dim}, default hidden / heads)
 * @param vocabSize vocabulary size
 * @param maxPositionEmbeddings trained context length
 * @param rmsNormEps ε of RMSNorm
 * @param rope rotary embedding parameters
 * @param tieWordEmbeddings whether {@code lm_head} reuses {@code embed_tokens}
 * @param qkvBias whether q/k/v projections carry a bias (qwen2 always; llama when {@code attention_bias})
 * @param oBias whether o_proj carries a bias (llama {@code attention_bias} only)
 * @param mlpBias whether the MLP projections carry biases (llama {@code mlp_bias})
 * @param slidingWindow attention window in tokens when the config enables one, else 0 (no window)
 * @param torchDtype the checkpoint's declared dtype ({@code torch_dtype} or {@code dtype}), may be null
 */
public record LlamaConfig(String modelType, int hiddenSize, int intermediateSize, int numHiddenLayers,
                          int numAttentionHeads, int numKeyValueHeads, int headDim, int vocabSize,
                          int maxPositionEmbeddings, double rmsNormEps, RopeScaling rope, boolean tieWordEmbeddings,
                          boolean qkvBias, boolean oBias, boolean mlpBias, int slidingWindow, String torchDtype)
        implements ModelConfig {

    @Override
    public ModelFamily family() {
        return ModelFamily.LLAMA;
    }

    /** @return query heads per key/value head (GQA group size) */
    public int headsPerKvHead() {
        return numAttentionHeads / numKeyValueHeads;
    }
}
