package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.AttentionJob;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.pipeline.model.LlamaConfig;
import io.sparkprune.pipeline.model.ModelConfigException;
import java.util.ArrayList;
import java.util.List;

/**
 * The Llama family ({@code llama}, {@code mistral}, {@code qwen2}) as Hugging Face transformers
 * implements it ({@code LlamaForCausalLM}, {@code MistralForCausalLM}, {@code Qwen2ForCausalLM};
 * Touvron et al. 2023, arXiv 2302.13971): a pre-norm decoder.
 *
 * <p>Parameters (H = hidden, A = heads·head_dim, K = kv_heads·head_dim, I = intermediate, V = vocab),
 * global: {@code model.embed_tokens.weight} [V, H], {@code model.norm.weight} [H],
 * {@code lm_head.weight} [V, H] (absent when {@code tie_word_embeddings}: the embedding is reused).
 * Per block, under {@code model.layers.N.}: {@code input_layernorm.weight} [H],
 * {@code self_attn.{q,k,v,o}_proj.weight} [A, H], [K, H], [K, H], [H, A] (q/k/v biases when the
 * config has them, as qwen2; o bias with llama's {@code attention_bias}),
 * {@code post_attention_layernorm.weight} [H], {@code mlp.{gate,up}_proj.weight} [I, H],
 * {@code mlp.down_proj.weight} [H, I] (biases with {@code mlp_bias}).
 *
 * <p>Block (T tokens, packed):
 * <pre>
 *   x  = RMSNorm(h; input_layernorm)                       group "qkv" observes x    [T, H]
 *   q, k, v = x·Wqᵀ(+bq), x·Wkᵀ(+bk), x·Wvᵀ(+bv)
 *   q, k = RoPE(q), RoPE(k)            (positions restart at 0 in every sequence)
 *   a  = causal GQA attention(q, k, v), scale head_dim^-½, sliding window if configured
 *                                                          group "o" observes a      [T, A]
 *   h  = h + a·Woᵀ(+bo)
 *   x  = RMSNorm(h; post_attention_layernorm)              group "gate_up" observes x [T, H]
 *   m  = silu(x·Wgᵀ) ⊙ (x·Wuᵀ)                              group "down" observes m   [T, I]
 *   h  = h + m·Wdᵀ
 * </pre>
 * Head: {@code logits = RMSNorm(h; model.norm)·W_lmᵀ} [T, V].
 *
 * <p>Sliding window: Mistral's {@code sliding_window} masks keys more than {@code window - 1}
 * positions back in every layer. Qwen2's {@code use_sliding_window} applies only to layers from
 * {@code max_window_layers} on, which the parsed config does not carry; such configs are rejected.
 */
public final class LlamaAdapter implements ModelAdapter {
    /** Name of the token embedding. */
    public static final String EMBED = "model.embed_tokens.weight";
    /** Name of the final norm's weight. */
    public static final String NORM = "model.norm.weight";
    /** Name of the untied LM head. */
    public static final String LM_HEAD = "lm_head.weight";

    private final LlamaConfig config;
    private final RotaryEmbedding rotary;
    private final LinearSpec q;
    private final LinearSpec k;
    private final LinearSpec v;
    private final LinearSpec o;
    private final LinearSpec gate;
    private final LinearSpec up;
    private final LinearSpec down;
    private final List<LinearSpec> targets;
    private final List<CalibrationGroup> groups;
    private final List<ParameterSpec> blockParams;

    /**
     * @param config the parsed config
     * @throws ModelConfigException for a qwen2 config with a sliding window
     */
    public LlamaAdapter(LlamaConfig config) {
        if (config.modelType().equals("qwen2") && config.slidingWindow() > 0) {
            throw new ModelConfigException("qwen2 config with use_sliding_window=true (sliding_window "
                    + config.slidingWindow() + "): per-layer windows (max_window_layers) are not supported; set"
                    + " use_sliding_window to false (as every released Qwen2/2.5 checkpoint does) to evaluate with full attention");
        }
        this.config = config;
        this.rotary = new RotaryEmbedding(config.rope(), config.headDim());
        int h = config.hiddenSize();
        int a = config.numAttentionHeads() * config.headDim();
        int kv = config.numKeyValueHeads() * config.headDim();
        int inter = config.intermediateSize();
        q = new LinearSpec("self_attn.q_proj", a, h, config.qkvBias());
        k = new LinearSpec("self_attn.k_proj", kv, h, config.qkvBias());
        v = new LinearSpec("self_attn.v_proj", kv, h, config.qkvBias());
        o = new LinearSpec("self_attn.o_proj", h, a, config.oBias());
        gate = new LinearSpec("mlp.gate_proj", inter, h, config.mlpBias());
        up = new LinearSpec("mlp.up_proj", inter, h, config.mlpBias());
        down = new LinearSpec("mlp.down_proj", h, inter, config.mlpBias());
        targets = List.of(q, k, v, o, gate, up, down);
        groups = List.of(new CalibrationGroup("qkv", List.of(q, k, v), h), new CalibrationGroup("o", List.of(o), a),
                new CalibrationGroup("gate_up", List.of(gate, up), h), new CalibrationGroup("down", List.of(down), inter));
        List<ParameterSpec> p = new ArrayList<>();
        p.add(ParameterSpec.of("input_layernorm.weight", h));
        for (LinearSpec l : List.of(q, k, v, o)) {
            addLinear(p, l);
        }
        p.add(ParameterSpec.of("post_attention_layernorm.weight", h));
        for (LinearSpec l : List.of(gate, up, down)) {
            addLinear(p, l);
        }
        blockParams = List.copyOf(p);
    }

    private static void addLinear(List<ParameterSpec> p, LinearSpec l) {
        p.add(ParameterSpec.of(l.weight(), l.outFeatures(), l.inFeatures()));
        if (l.bias()) {
            p.add(ParameterSpec.of(l.biasName(), l.outFeatures()));
        }
    }

    @Override
    public LlamaConfig config() {
        return config;
    }

    /** @return the rotary embedding of this model */
    public RotaryEmbedding rotary() {
        return rotary;
    }

    @Override
    public String layerPrefix(int layer) {
        return "model.layers." + layer + ".";
    }

    @Override
    public List<ParameterSpec> blockParameters() {
        return blockParams;
    }

    @Override
    public List<ParameterSpec> globalParameters(TensorSource source) {
        int h = config.hiddenSize();
        int vocab = config.vocabSize();
        List<ParameterSpec> p = new ArrayList<>();
        p.add(ParameterSpec.of(EMBED, vocab, h));
        p.add(ParameterSpec.of(NORM, h));
        if (!config.tieWordEmbeddings()) {
            p.add(ParameterSpec.of(LM_HEAD, vocab, h));
        }
        return p;
    }

    @Override
    public List<LinearSpec> targets() {
        return targets;
    }

    @Override
    public List<CalibrationGroup> calibrationGroups() {
        return groups;
    }

    @Override
    public HiddenStates embed(Backend backend, Weights global, TokenBatch tokens) {
        int h = config.hiddenSize();
        int vocab = config.vocabSize();
        int[] ids = tokens.ids();
        for (int t = 0; t < ids.length; t++) {
            if (ids[t] < 0 || ids[t] >= vocab) {
                throw new ModelInputException("token id " + ids[t] + " at position " + t + " is outside the vocabulary [0, "
                        + vocab + ") of this " + config.modelType() + " model; fix: tokenize with the model's own tokenizer");
            }
        }
        float[] out = new float[Math.multiplyExact(ids.length, h)];
        backend.embedding(ids.length, h, ids, 0, global.get(EMBED), 0, vocab, out, 0, h, false);
        return new HiddenStates(tokens.layout(), h, out);
    }

    @Override
    public HiddenStates block(Backend be, int layer, Weights w, HiddenStates input, LinearObserver observer) {
        checkLayer(layer);
        final int hidden = config.hiddenSize();
        if (input.width() != hidden) {
            throw new IllegalArgumentException("block input width " + input.width() + " != hidden_size " + hidden);
        }
        final SequenceLayout layout = input.layout();
        final int tokens = layout.tokens();
        final int hd = config.headDim();
        final int heads = config.numAttentionHeads();
        final int kvHeads = config.numKeyValueHeads();
        final float eps = (float) config.rmsNormEps();

        float[] x = new float[tokens * hidden];
        be.rmsNorm(tokens, hidden, eps, input.data(), 0, hidden, w.get("input_layernorm.weight"), 0, x, 0, hidden);
        observer.observe(layer, groups.get(0), x, tokens, hidden);
        float[] qa = Ops.linear(be, w, q, x, tokens);
        float[] ka = Ops.linear(be, w, k, x, tokens);
        float[] va = Ops.linear(be, w, v, x, tokens);
        int[] positions = layout.positions();
        RotaryEmbedding.Tables tab = rotary.tables(layout.maxLength());
        be.rope(tokens, heads, hd, qa, 0, q.outFeatures(), positions, 0, tab.cos(), tab.sin(), tab.rows());
        be.rope(tokens, kvHeads, hd, ka, 0, k.outFeatures(), positions, 0, tab.cos(), tab.sin(), tab.rows());
        float[] att = new float[tokens * q.outFeatures()];
        be.attention(new AttentionJob(heads, kvHeads, hd, (float) (1.0 / Math.sqrt(hd)), true, config.slidingWindow(),
                layout.sequences(), layout.startsView(), null, new FloatView(qa, 0, q.outFeatures()),
                new FloatView(ka, 0, k.outFeatures()), new FloatView(va, 0, v.outFeatures()),
                new FloatView(att, 0, q.outFeatures())));
        qa = null;
        ka = null;
        va = null;
        observer.observe(layer, groups.get(1), att, tokens, o.inFeatures());
        float[] h = Ops.linear(be, w, o, att, tokens);
        be.add(tokens, hidden, input.data(), 0, hidden, h, 0, hidden); // h = o + residual
        be.rmsNorm(tokens, hidden, eps, h, 0, hidden, w.get("post_attention_layernorm.weight"), 0, x, 0, hidden);
        observer.observe(layer, groups.get(2), x, tokens, hidden);
        float[] g = Ops.linear(be, w, gate, x, tokens);
        float[] u = Ops.linear(be, w, up, x, tokens);
        be.siluMul(tokens, gate.outFeatures(), g, 0, gate.outFeatures(), u, 0, up.outFeatures(), g, 0, gate.outFeatures());
        u = null;
        observer.observe(layer, groups.get(3), g, tokens, down.inFeatures());
        float[] d = Ops.linear(be, w, down, g, tokens);
        be.add(tokens, hidden, d, 0, hidden, h, 0, hidden);
        return new HiddenStates(layout, hidden, h);
    }

    /**
     * The LM head: {@code logits = RMSNorm(h; model.norm) · W_lmᵀ}, W_lm = {@code lm_head.weight} or,
     * when tied, {@code model.embed_tokens.weight}.
     *
     * @param be kernels
     * @param global global weights
     * @param hidden output of the last block, {@code T × H}
     * @return logits, {@code T × vocab} row-major
     */
    public float[] logits(Backend be, Weights global, HiddenStates hidden) {
        int hs = config.hiddenSize();
        int tokens = hidden.tokens();
        float[] x = new float[tokens * hs];
        be.rmsNorm(tokens, hs, (float) config.rmsNormEps(), hidden.data(), 0, hs, global.get(NORM), 0, x, 0, hs);
        float[] head = config.tieWordEmbeddings() ? global.get(EMBED) : global.get(LM_HEAD);
        return Ops.linear(be, x, tokens, hs, head, null, config.vocabSize());
    }
}
