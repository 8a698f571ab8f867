package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ForwardWorkspace.Matrix;
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

    /**
     * {@inheritDoc}
     *
     * <p>Runs {@link #block(ForwardWorkspace, int, Weights, HiddenStates, LinearObserver)} in a workspace
     * opened on the backend with fp32 products ({@link ForwardWorkspace#open}: device-resident on the
     * CUDA backend, host arrays otherwise).
     */
    @Override
    public HiddenStates block(Backend be, int layer, Weights w, HiddenStates input, LinearObserver observer) {
        try (ForwardWorkspace ws = ForwardWorkspace.open(be, ForwardPrecision.FP32, layerPrefix(layer) + " forward")) {
            return block(ws, layer, w, input, observer);
        }
    }

    @Override
    public HiddenStates block(ForwardWorkspace ws, int layer, Weights w, HiddenStates input, LinearObserver observer) {
        return run(ws, layer, w, input, observer, true);
    }

    @Override
    public void observe(ForwardWorkspace ws, int layer, Weights w, HiddenStates input, LinearObserver observer) {
        run(ws, layer, w, input, observer, false);
    }

    /** The block; with {@code output} false it stops after the down projection's input is observed (returns null). */
    private HiddenStates run(ForwardWorkspace ws, int layer, Weights w, HiddenStates input, LinearObserver observer,
                             boolean output) {
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

        Matrix residual = ws.upload(input.data(), tokens, hidden);
        Matrix x = ws.allocate(tokens, hidden);
        ws.rmsNorm(residual, Ops.vector(ws, w, "input_layernorm.weight"), eps, x);
        observer.observe(layer, groups.get(0), ws, x);
        Matrix qa = Ops.linear(ws, w, q, x);
        Matrix ka = Ops.linear(ws, w, k, x);
        Matrix va = Ops.linear(ws, w, v, x);
        int[] positions = layout.positions();
        RotaryEmbedding.Tables tab = rotary.tables(layout.maxLength());
        ws.rope(qa, heads, hd, positions, tab.cos(), tab.sin(), tab.rows());
        ws.rope(ka, kvHeads, hd, positions, tab.cos(), tab.sin(), tab.rows());
        Matrix att = ws.allocate(tokens, q.outFeatures());
        ws.attention(heads, kvHeads, hd, (float) (1.0 / Math.sqrt(hd)), true, config.slidingWindow(), layout.sequences(),
                layout.startsView(), null, qa, ka, va, att);
        ws.release(qa);
        ws.release(ka);
        ws.release(va);
        observer.observe(layer, groups.get(1), ws, att);
        Matrix h = Ops.linear(ws, w, o, att);
        ws.release(att);
        ws.add(residual, h); // h = o + residual
        ws.release(residual);
        ws.rmsNorm(h, Ops.vector(ws, w, "post_attention_layernorm.weight"), eps, x);
        observer.observe(layer, groups.get(2), ws, x);
        Matrix g = Ops.linear(ws, w, gate, x);
        Matrix u = Ops.linear(ws, w, up, x);
        ws.release(x);
        ws.siluMul(g, u, g);
        ws.release(u);
        observer.observe(layer, groups.get(3), ws, g);
        if (!output) {
            ws.release(g);
            ws.release(h);
            return null;
        }
        Matrix d = Ops.linear(ws, w, down, g);
        ws.release(g);
        ws.add(d, h);
        ws.release(d);
        // the array is ours now; the workspace reuses the buffer, or a PIPELINE workspace keeps it on the
        // device for the next upload of this array (HiddenStates never modifies its array)
        float[] out = ws.downloadAndRelease(h);
        return new HiddenStates(layout, hidden, out);
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
