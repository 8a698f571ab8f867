package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.model.LlamaConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The block API: what the observer sees (rows = real tokens, cols = in_features, one call per
 * calibration group in block order) is checked against a naive fp64 re-implementation of the block
 * written in this test from the formulas; re-running a block with replaced weights uses them; the
 * adapters describe their tensors and groups as transformers names them.
 */
class BlockApiTest {
    private static CpuBackend backend;

    @BeforeAll
    static void setUp() {
        backend = CpuBackend.create();
    }

    @AfterAll
    static void tearDown() {
        backend.close();
    }

    /** One observer call, with a copy of the input. */
    record Seen(int layer, String group, double[] x, int rows, int cols) {
    }

    static LinearObserver recorder(List<Seen> seen) {
        return (layer, group, x, rows, cols) -> {
            assertThat(x.length).isGreaterThanOrEqualTo(rows * cols);
            double[] copy = new double[rows * cols];
            for (int i = 0; i < copy.length; i++) {
                copy[i] = x[i];
            }
            seen.add(new Seen(layer, group.name(), copy, rows, cols));
        };
    }

    @Test
    void llamaObserverSeesEveryGroupInputOfTheBlock() throws Exception {
        Path dir = LlamaFixtureTest.fixture("llama-gqa-tied");
        LlamaFixtureTest.Expected exp = LlamaFixtureTest.expected(dir);
        try (TransformerModel model = TransformerModel.open(dir, backend)) {
            LlamaAdapter a = (LlamaAdapter) model.adapter();
            LlamaConfig c = a.config();
            // two sequences of different lengths, packed
            TokenBatch batch = TokenBatch.of(java.util.Arrays.copyOf(exp.ids()[0], 33), exp.ids()[1]);
            SequenceLayout layout = batch.layout();
            int t = layout.tokens();
            int hs = c.hiddenSize();
            int heads = c.numAttentionHeads();
            int kvh = c.numKeyValueHeads();
            int hd = c.headDim();
            HiddenStates in = model.embed(batch);
            float[] inCopy = in.data().clone();
            Weights w = model.blockWeights(1);
            List<Seen> seen = new ArrayList<>();
            HiddenStates out = a.block(backend, 1, w, in, recorder(seen));
            assertThat(in.data()).containsExactly(inCopy); // input untouched

            assertThat(seen).extracting(Seen::group).containsExactly("qkv", "o", "gate_up", "down");
            assertThat(seen).extracting(Seen::layer).containsOnly(1);
            assertThat(seen).extracting(Seen::rows).containsOnly(t);
            assertThat(seen).extracting(Seen::cols).containsExactly(hs, heads * hd, hs, c.intermediateSize());

            double eps = c.rmsNormEps();
            double[] x = Naive.rmsNorm(Naive.toDouble(in.data()), t, hs, w.get("input_layernorm.weight"), eps);
            assertThat(maxDiff(seen.get(0).x(), x)).isLessThan(1e-5);
            double[] xq = seen.get(0).x();
            double[] q = Naive.linear(xq, t, hs, w.get("self_attn.q_proj.weight"), null, heads * hd);
            double[] k = Naive.linear(xq, t, hs, w.get("self_attn.k_proj.weight"), null, kvh * hd);
            double[] v = Naive.linear(xq, t, hs, w.get("self_attn.v_proj.weight"), null, kvh * hd);
            Naive.rope(q, layout, heads, hd, c.rope().theta());
            Naive.rope(k, layout, kvh, hd, c.rope().theta());
            double[] att = Naive.attention(q, k, v, layout, heads, kvh, hd, true);
            assertThat(maxDiff(seen.get(1).x(), att)).isLessThan(1e-4);
            double[] h = Naive.add(Naive.toDouble(in.data()),
                    Naive.linear(seen.get(1).x(), t, heads * hd, w.get("self_attn.o_proj.weight"), null, hs));
            double[] x2 = Naive.rmsNorm(h, t, hs, w.get("post_attention_layernorm.weight"), eps);
            assertThat(maxDiff(seen.get(2).x(), x2)).isLessThan(1e-4);
            int inter = c.intermediateSize();
            double[] g = Naive.linear(seen.get(2).x(), t, hs, w.get("mlp.gate_proj.weight"), null, inter);
            double[] u = Naive.linear(seen.get(2).x(), t, hs, w.get("mlp.up_proj.weight"), null, inter);
            double[] m = new double[g.length];
            for (int i = 0; i < m.length; i++) {
                m[i] = Naive.silu(g[i]) * u[i];
            }
            assertThat(maxDiff(seen.get(3).x(), m)).isLessThan(1e-4);
            double[] y = Naive.add(h, Naive.linear(seen.get(3).x(), t, inter, w.get("mlp.down_proj.weight"), null, hs));
            assertThat(Naive.maxRelDiff(out.data(), y)).isLessThan(1e-4);

            // re-run with a replaced weight: zero down_proj leaves the attention residual h
            Weights pruned = w.with("mlp.down_proj.weight", new float[hs * inter]);
            HiddenStates out2 = a.block(backend, 1, pruned, in, LinearObserver.NONE);
            assertThat(Naive.maxRelDiff(out2.data(), h)).isLessThan(1e-4);
            assertThat(w.get("mlp.down_proj.weight")).isNotEqualTo(new float[hs * inter]); // original untouched
        }
    }

    /**
     * A host workspace that records the matrices it makes (uploads and allocations) and forgets those
     * released ({@code release}, {@code downloadAndRelease}): what a resident workspace would keep in
     * device memory until it closes.
     */
    private static io.sparkprune.kernels.ForwardWorkspace counting(io.sparkprune.kernels.HostWorkspace ws,
                                                                   java.util.Set<Object> live) {
        return (io.sparkprune.kernels.ForwardWorkspace) java.lang.reflect.Proxy.newProxyInstance(
                BlockApiTest.class.getClassLoader(), new Class<?>[] {io.sparkprune.kernels.ForwardWorkspace.class},
                (proxy, m, args) -> {
                    Object r;
                    try {
                        r = m.invoke(ws, args);
                    } catch (java.lang.reflect.InvocationTargetException e) {
                        throw e.getCause();
                    }
                    if (m.getName().equals("upload") || m.getName().equals("allocate")) {
                        live.add(r);
                    } else if (m.getName().equals("release") || m.getName().equals("downloadAndRelease")) {
                        live.remove(args[0]);
                    }
                    return r;
                });
    }

    /** What a test does with the two models and a counting workspace ({@link #withCountingWorkspace}). */
    @FunctionalInterface
    private interface CountingBody {
        void run(TransformerModel llama, TransformerModel bert, LlamaFixtureTest.Expected exp,
                 io.sparkprune.kernels.ForwardWorkspace ws, java.util.Set<Object> live) throws Exception;
    }

    /**
     * Runs {@code body} with the Llama fixture, the tiny BERT, and a {@link #counting} host workspace whose
     * live matrices are in {@code live}.
     */
    private static void withCountingWorkspace(CountingBody body) throws Exception {
        Path dir = LlamaFixtureTest.fixture("llama-gqa-tied");
        LlamaFixtureTest.Expected exp = LlamaFixtureTest.expected(dir);
        TransformerModel bert = TransformerModel.of(TinyBert.CONFIG, TensorSource.of(TinyBert.tensors(7), "tiny"), backend);
        try (TransformerModel llama = TransformerModel.open(dir, backend);
             io.sparkprune.kernels.HostWorkspace hw = new io.sparkprune.kernels.HostWorkspace(backend,
                     io.sparkprune.kernels.ForwardPrecision.FP32)) {
            java.util.Set<Object> live = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
            body.run(llama, bert, exp, counting(hw, live), live);
        }
    }

    @Test
    void blocksReleaseEveryMatrixTheyMakeSoOneWorkspaceCanRunManyBlocks() throws Exception {
        withCountingWorkspace((llama, bert, exp, ws, live) -> {
            TokenBatch lb = TokenBatch.of(exp.ids()[1]);
            HiddenStates lo = llama.adapter().block(ws, 1, llama.blockWeights(1), llama.embed(lb), LinearObserver.NONE);
            assertThat(live).as("Llama block").isEmpty();
            assertThat(lo.data()).containsExactly(llama.adapter().block(backend, 1, llama.blockWeights(1), llama.embed(lb),
                    LinearObserver.NONE).data());
            TokenBatch bb = TokenBatch.of(new int[][] {{2, 5, 9, 11, 3}, {2, 7, 3}});
            bert.adapter().block(ws, 0, bert.blockWeights(0), bert.embed(bb), LinearObserver.NONE);
            assertThat(live).as("BERT block").isEmpty();
        });
    }

    @Test
    void observeShowsTheObserverWhatBlockShowsItAndReleasesEverything() throws Exception {
        withCountingWorkspace((llama, bert, exp, ws, live) -> {
            TokenBatch lb = TokenBatch.of(java.util.Arrays.copyOf(exp.ids()[0], 21), exp.ids()[1]);
            TokenBatch bb = TokenBatch.of(new int[][] {{2, 5, 9, 11, 3}, {2, 7, 3}});
            for (TransformerModel m : List.of(llama, bert)) {
                int layer = m == llama ? 1 : 0;
                TokenBatch batch = m == llama ? lb : bb;
                List<Seen> byBlock = new ArrayList<>();
                List<Seen> byObserve = new ArrayList<>();
                m.adapter().block(ws, layer, m.blockWeights(layer), m.embed(batch), recorder(byBlock));
                live.clear();
                m.adapter().observe(ws, layer, m.blockWeights(layer), m.embed(batch), recorder(byObserve));
                assertThat(live).as("matrices left by observe").isEmpty();
                assertThat(byObserve).hasSize(4).hasSameSizeAs(byBlock);
                for (int g = 0; g < byBlock.size(); g++) {
                    Seen a = byBlock.get(g);
                    Seen b = byObserve.get(g);
                    assertThat(b.group()).isEqualTo(a.group());
                    assertThat(b.layer()).isEqualTo(a.layer());
                    assertThat(b.rows()).isEqualTo(a.rows());
                    assertThat(b.cols()).isEqualTo(a.cols());
                    assertThat(b.x()).as(a.group()).containsExactly(a.x());
                }
            }
        });
    }

    @Test
    void bertObserverSeesRealTokensOnly() {
        var cfg = TinyBert.CONFIG;
        TransformerModel model = TransformerModel.of(cfg, TensorSource.of(TinyBert.tensors(7), "tiny"), backend);
        BertAdapter a = (BertAdapter) model.adapter();
        int hs = cfg.hiddenSize();
        int heads = cfg.numAttentionHeads();
        int hd = cfg.headDim();
        int inter = cfg.intermediateSize();
        double eps = cfg.layerNormEps();
        int[][] seqs = {{2, 5, 9, 11, 3}, {2, 7, 3}, {2, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 3}};
        TokenBatch batch = TokenBatch.of(seqs);
        SequenceLayout layout = batch.layout();
        int t = layout.tokens();
        HiddenStates in = model.embed(batch);
        Weights w = model.blockWeights(0);
        List<Seen> seen = new ArrayList<>();
        HiddenStates out = a.block(backend, 0, w, in, recorder(seen));
        assertThat(seen).extracting(Seen::group).containsExactly("qkv", "attn_out", "intermediate", "output");
        assertThat(seen).extracting(Seen::rows).containsOnly(5 + 3 + 13);
        assertThat(seen).extracting(Seen::cols).containsExactly(hs, hs, hs, inter);
        assertThat(maxDiff(seen.get(0).x(), Naive.toDouble(in.data()))).isZero();

        double[] x = seen.get(0).x();
        double[] q = Naive.linear(x, t, hs, w.get("attention.self.query.weight"), w.get("attention.self.query.bias"), hs);
        double[] k = Naive.linear(x, t, hs, w.get("attention.self.key.weight"), w.get("attention.self.key.bias"), hs);
        double[] v = Naive.linear(x, t, hs, w.get("attention.self.value.weight"), w.get("attention.self.value.bias"), hs);
        double[] ctx = Naive.attention(q, k, v, layout, heads, heads, hd, false);
        assertThat(maxDiff(seen.get(1).x(), ctx)).isLessThan(1e-4);
        double[] x1 = Naive.layerNorm(Naive.add(Naive.linear(seen.get(1).x(), t, hs, w.get("attention.output.dense.weight"),
                w.get("attention.output.dense.bias"), hs), x), t, hs, w.get("attention.output.LayerNorm.weight"),
                w.get("attention.output.LayerNorm.bias"), eps);
        assertThat(maxDiff(seen.get(2).x(), x1)).isLessThan(1e-4);
        double[] i = Naive.linear(seen.get(2).x(), t, hs, w.get("intermediate.dense.weight"), w.get("intermediate.dense.bias"), inter);
        for (int j = 0; j < i.length; j++) {
            i[j] = Naive.gelu(i[j]);
        }
        assertThat(maxDiff(seen.get(3).x(), i)).isLessThan(1e-4);
        double[] y = Naive.layerNorm(Naive.add(Naive.linear(seen.get(3).x(), t, inter, w.get("output.dense.weight"),
                w.get("output.dense.bias"), hs), seen.get(2).x()), t, hs, w.get("output.LayerNorm.weight"),
                w.get("output.LayerNorm.bias"), eps);
        assertThat(Naive.maxRelDiff(out.data(), y)).isLessThan(1e-4);

        // a sequence alone gives the same last hidden state as inside the batch (no cross-sequence attention)
        HiddenStates all = model.encode(batch);
        HiddenStates alone = model.encode(TokenBatch.of(seqs[1]));
        float[] inBatch = java.util.Arrays.copyOfRange(all.data(), layout.start(1) * hs, (layout.start(1) + 3) * hs);
        assertThat(Naive.maxRelDiff(alone.data(), Naive.toDouble(inBatch))).isLessThan(1e-6);
    }

    @Test
    void adaptersNameTensorsAndGroupsAsTransformers() throws Exception {
        Path dir = LlamaFixtureTest.fixture("qwen2-bias");
        try (TransformerModel model = TransformerModel.open(dir, backend)) {
            ModelAdapter a = model.adapter();
            assertThat(a.layerPrefix(1)).isEqualTo("model.layers.1.");
            assertThat(a.targets()).extracting(LinearSpec::name).containsExactly("self_attn.q_proj", "self_attn.k_proj",
                    "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj");
            assertThat(a.targets()).extracting(LinearSpec::bias).containsExactly(true, true, true, false, false, false, false);
            assertThat(a.calibrationGroups()).extracting(CalibrationGroup::name).containsExactly("qkv", "o", "gate_up", "down");
            assertThat(a.calibrationGroups().get(0).linears()).extracting(LinearSpec::name)
                    .containsExactly("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj");
            // every block parameter exists in the checkpoint under the prefix, with that shape
            for (int l = 0; l < a.numLayers(); l++) {
                for (ParameterSpec p : a.blockParameters()) {
                    assertThat(model.source().shape(a.layerPrefix(l) + p.name())).containsExactly(p.shape());
                }
            }
            assertThat(model.source().contains("lm_head.weight")).isTrue();
        }
        BertAdapter b = new BertAdapter(TinyBert.CONFIG);
        assertThat(b.layerPrefix(0)).isEqualTo("encoder.layer.0.");
        assertThat(b.calibrationGroups()).extracting(CalibrationGroup::name)
                .containsExactly("qkv", "attn_out", "intermediate", "output");
        assertThat(b.calibrationGroups()).extracting(g -> g.linears().stream().map(LinearSpec::name).toList())
                .containsExactly(List.of("attention.self.query", "attention.self.key", "attention.self.value"),
                        List.of("attention.output.dense"), List.of("intermediate.dense"), List.of("output.dense"));
    }

    @Test
    void badWeightsAndInputsAreTypedErrors() throws Exception {
        var tensors = TinyBert.tensors(3);
        tensors.remove("encoder.layer.1.output.dense.bias");
        TransformerModel model = TransformerModel.of(TinyBert.CONFIG, TensorSource.of(tensors, "tiny.safetensors"), backend);
        assertThatThrownBy(() -> model.blockWeights(1)).isInstanceOf(ModelWeightsException.class)
                .hasMessageContaining("tiny.safetensors").hasMessageContaining("encoder.layer.1.output.dense.bias");
        var tensors2 = TinyBert.tensors(3);
        tensors2.put("encoder.layer.0.intermediate.dense.weight", tensors2.get("encoder.layer.0.output.dense.weight"));
        TransformerModel model2 = TransformerModel.of(TinyBert.CONFIG, TensorSource.of(tensors2, "tiny2"), backend);
        assertThatThrownBy(() -> model2.blockWeights(0)).isInstanceOf(ModelWeightsException.class)
                .hasMessageContaining("intermediate.dense.weight").hasMessageContaining("[32, 64]").hasMessageContaining("[64, 32]");
        assertThatThrownBy(() -> model.embed(TokenBatch.of(new int[] {1, 50}))).isInstanceOf(ModelInputException.class)
                .hasMessageContaining("token id 50");
        assertThatThrownBy(() -> model.embed(TokenBatch.of(new int[41]))).isInstanceOf(ModelInputException.class)
                .hasMessageContaining("41 tokens").hasMessageContaining("40 position embeddings");
        assertThatThrownBy(() -> model.logits(TokenBatch.of(new int[] {1}))).isInstanceOf(UnsupportedOperationException.class);
        // weights with a wrong-length replacement are refused
        Weights w = TransformerModel.of(TinyBert.CONFIG, TensorSource.of(TinyBert.tensors(3), "t"), backend).blockWeights(0);
        assertThatThrownBy(() -> w.with("output.dense.weight", new float[5])).isInstanceOf(IllegalArgumentException.class);
    }

    static double maxDiff(double[] a, double[] b) {
        assertThat(a).hasSameSizeAs(b);
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }
}
