package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ForwardWorkspace.Matrix;
import io.sparkprune.pipeline.model.BertConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * The BERT family (Devlin et al. 2018, arXiv 1810.04805, §3; Hugging Face {@code BertModel}): a
 * post-LayerNorm encoder with learned absolute positions, as used by sentence-embedding models
 * (all-MiniLM-L6-v2, BGE, E5). Names are those of {@code BertModel}'s state dict without a module
 * prefix (a {@code bert.} prefix is stripped by {@link TransformerModel}).
 *
 * <p>Parameters (H = hidden, I = intermediate), global: {@code embeddings.word_embeddings.weight}
 * [V, H], {@code embeddings.position_embeddings.weight} [P, H],
 * {@code embeddings.token_type_embeddings.weight} [S, H], {@code embeddings.LayerNorm.{weight,bias}}
 * [H]. Per block, under {@code encoder.layer.N.}: {@code attention.self.{query,key,value}.{weight,bias}}
 * [H, H] and [H], {@code attention.output.dense.{weight,bias}} [H, H], [H],
 * {@code attention.output.LayerNorm.{weight,bias}} [H], {@code intermediate.dense.{weight,bias}}
 * [I, H], [I], {@code output.dense.{weight,bias}} [H, I], [H], {@code output.LayerNorm.{weight,bias}} [H].
 *
 * <p>Embedding: {@code LayerNorm((word[id] + type[tt]) + pos[p])} (that addition order, as
 * {@code BertEmbeddings}), p = position within the sequence.
 *
 * <p>Block (T real tokens, packed; attention never crosses sequences, which is what BERT's padding
 * mask achieves on a padded batch):
 * <pre>
 *   q, k, v = x·Wᵀ + b                                     group "qkv" observes x       [T, H]
 *   c  = bidirectional attention(q, k, v), scale head_dim^-½
 *                                                          group "attn_out" observes c  [T, H]
 *   x1 = LayerNorm(c·Woᵀ + bo + x; attention.output.LayerNorm)
 *                                                          group "intermediate" observes x1 [T, H]
 *   i  = GELU(x1·Wiᵀ + bi)  (erf form)                     group "output" observes i    [T, I]
 *   y  = LayerNorm(i·Wo2ᵀ + bo2 + x1; output.LayerNorm)
 * </pre>
 * The last block's output is {@code last_hidden_state}; see {@link Pooling} for sentence embeddings.
 */
public final class BertAdapter implements ModelAdapter {
    /** Word embedding name. */
    public static final String WORD = "embeddings.word_embeddings.weight";
    /** Position embedding name. */
    public static final String POSITION = "embeddings.position_embeddings.weight";
    /** Token type embedding name. */
    public static final String TOKEN_TYPE = "embeddings.token_type_embeddings.weight";
    /** Embedding LayerNorm gain. */
    public static final String EMB_LN_WEIGHT = "embeddings.LayerNorm.weight";
    /** Embedding LayerNorm bias. */
    public static final String EMB_LN_BIAS = "embeddings.LayerNorm.bias";

    private final BertConfig config;
    private final LinearSpec query;
    private final LinearSpec key;
    private final LinearSpec value;
    private final LinearSpec attnOut;
    private final LinearSpec inter;
    private final LinearSpec out;
    private final List<LinearSpec> targets;
    private final List<CalibrationGroup> groups;
    private final List<ParameterSpec> blockParams;

    /** @param config the parsed config */
    public BertAdapter(BertConfig config) {
        this.config = config;
        int h = config.hiddenSize();
        int i = config.intermediateSize();
        query = new LinearSpec("attention.self.query", h, h, true);
        key = new LinearSpec("attention.self.key", h, h, true);
        value = new LinearSpec("attention.self.value", h, h, true);
        attnOut = new LinearSpec("attention.output.dense", h, h, true);
        inter = new LinearSpec("intermediate.dense", i, h, true);
        out = new LinearSpec("output.dense", h, i, true);
        targets = List.of(query, key, value, attnOut, inter, out);
        groups = List.of(new CalibrationGroup("qkv", List.of(query, key, value), h),
                new CalibrationGroup("attn_out", List.of(attnOut), h),
                new CalibrationGroup("intermediate", List.of(inter), h),
                new CalibrationGroup("output", List.of(out), i));
        List<ParameterSpec> p = new ArrayList<>();
        for (LinearSpec l : List.of(query, key, value, attnOut)) {
            p.add(ParameterSpec.of(l.weight(), l.outFeatures(), l.inFeatures()));
            p.add(ParameterSpec.of(l.biasName(), l.outFeatures()));
        }
        p.add(ParameterSpec.of("attention.output.LayerNorm.weight", h));
        p.add(ParameterSpec.of("attention.output.LayerNorm.bias", h));
        for (LinearSpec l : List.of(inter, out)) {
            p.add(ParameterSpec.of(l.weight(), l.outFeatures(), l.inFeatures()));
            p.add(ParameterSpec.of(l.biasName(), l.outFeatures()));
        }
        p.add(ParameterSpec.of("output.LayerNorm.weight", h));
        p.add(ParameterSpec.of("output.LayerNorm.bias", h));
        blockParams = List.copyOf(p);
    }

    @Override
    public BertConfig config() {
        return config;
    }

    @Override
    public String layerPrefix(int layer) {
        return "encoder.layer." + layer + ".";
    }

    @Override
    public List<ParameterSpec> blockParameters() {
        return blockParams;
    }

    @Override
    public List<ParameterSpec> globalParameters(TensorSource source) {
        int h = config.hiddenSize();
        return List.of(ParameterSpec.of(WORD, config.vocabSize(), h),
                ParameterSpec.of(POSITION, config.maxPositionEmbeddings(), h),
                ParameterSpec.of(TOKEN_TYPE, config.typeVocabSize(), h),
                ParameterSpec.of(EMB_LN_WEIGHT, h), ParameterSpec.of(EMB_LN_BIAS, h));
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
    public HiddenStates embed(Backend be, Weights global, TokenBatch tokens) {
        int h = config.hiddenSize();
        SequenceLayout layout = tokens.layout();
        int n = tokens.tokens();
        int[] ids = tokens.ids();
        int[] types = tokens.tokenTypeIds() == null ? new int[n] : tokens.tokenTypeIds();
        for (int t = 0; t < n; t++) {
            if (ids[t] < 0 || ids[t] >= config.vocabSize()) {
                throw new ModelInputException("token id " + ids[t] + " at position " + t + " is outside the vocabulary [0, "
                        + config.vocabSize() + ") of this bert model; fix: tokenize with the model's own tokenizer");
            }
            if (types[t] < 0 || types[t] >= config.typeVocabSize()) {
                throw new ModelInputException("token type id " + types[t] + " at position " + t + " is outside [0, "
                        + config.typeVocabSize() + ") of this bert model");
            }
        }
        if (layout.maxLength() > config.maxPositionEmbeddings()) {
            throw new ModelInputException("a sequence of " + layout.maxLength() + " tokens exceeds this bert model's "
                    + config.maxPositionEmbeddings() + " position embeddings; fix: truncate to at most "
                    + config.maxPositionEmbeddings() + " tokens (including [CLS] and [SEP])");
        }
        float[] x = new float[Math.multiplyExact(n, h)];
        be.embedding(n, h, ids, 0, global.get(WORD), 0, config.vocabSize(), x, 0, h, false);
        be.embedding(n, h, types, 0, global.get(TOKEN_TYPE), 0, config.typeVocabSize(), x, 0, h, true);
        be.embedding(n, h, layout.positions(), 0, global.get(POSITION), 0, config.maxPositionEmbeddings(), x, 0, h, true);
        be.layerNorm(n, h, (float) config.layerNormEps(), x, 0, h, global.get(EMB_LN_WEIGHT), 0, global.get(EMB_LN_BIAS), 0,
                x, 0, h);
        return new HiddenStates(layout, h, x);
    }

    /**
     * {@inheritDoc}
     *
     * <p>Runs {@link #block(ForwardWorkspace, int, Weights, HiddenStates, LinearObserver)} in a workspace
     * opened on the backend with fp32 products ({@link ForwardWorkspace#open}).
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

    /** The block; with {@code output} false it stops after the output dense layer's input is observed (returns null). */
    private HiddenStates run(ForwardWorkspace ws, int layer, Weights w, HiddenStates input, LinearObserver observer,
                             boolean output) {
        checkLayer(layer);
        final int hidden = config.hiddenSize();
        if (input.width() != hidden) {
            throw new IllegalArgumentException("block input width " + input.width() + " != hidden_size " + hidden);
        }
        final SequenceLayout layout = input.layout();
        final int tokens = layout.tokens();
        final int heads = config.numAttentionHeads();
        final int hd = config.headDim();
        final float eps = (float) config.layerNormEps();

        Matrix x = ws.upload(input.data(), tokens, hidden);
        observer.observe(layer, groups.get(0), ws, x);
        Matrix qa = Ops.linear(ws, w, query, x);
        Matrix ka = Ops.linear(ws, w, key, x);
        Matrix va = Ops.linear(ws, w, value, x);
        Matrix ctx = ws.allocate(tokens, hidden);
        ws.attention(heads, heads, hd, (float) (1.0 / Math.sqrt(hd)), false, 0, layout.sequences(), layout.startsView(),
                null, qa, ka, va, ctx);
        ws.release(qa);
        ws.release(ka);
        ws.release(va);
        observer.observe(layer, groups.get(1), ws, ctx);
        Matrix x1 = Ops.linear(ws, w, attnOut, ctx);
        ws.release(ctx);
        ws.add(x, x1);
        ws.release(x);
        ws.layerNorm(x1, Ops.vector(ws, w, "attention.output.LayerNorm.weight"),
                Ops.vector(ws, w, "attention.output.LayerNorm.bias"), eps, x1);
        observer.observe(layer, groups.get(2), ws, x1);
        Matrix i = Ops.linear(ws, w, inter, x1);
        ws.gelu(i);
        observer.observe(layer, groups.get(3), ws, i);
        if (!output) {
            ws.release(i);
            ws.release(x1);
            return null;
        }
        Matrix y = Ops.linear(ws, w, out, i);
        ws.release(i);
        ws.add(x1, y);
        ws.release(x1);
        ws.layerNorm(y, Ops.vector(ws, w, "output.LayerNorm.weight"), Ops.vector(ws, w, "output.LayerNorm.bias"), eps, y);
        // the array is ours now; the workspace reuses the buffer, or a PIPELINE workspace keeps it on the
        // device for the next upload of this array (HiddenStates never modifies its array)
        float[] out = ws.downloadAndRelease(y);
        return new HiddenStates(layout, hidden, out);
    }
}
