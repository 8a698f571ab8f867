package io.sparkprune.pipeline.driver;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.calibration.baseline.MagnitudePruner;
import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.forward.HiddenStates;
import io.sparkprune.pipeline.forward.LinearSpec;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.TensorSource;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.forward.TransformerModel;
import io.sparkprune.pipeline.forward.Weights;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The generic driver on a Llama-family fixture and on a BERT-family model (the default MiniLM's
 * config shape is too slow here, so a Llama fixture and a random tiny BERT): with an identity pruner
 * it reproduces the dense forward pass; with 2:4 magnitude pruning its sequential output equals a
 * plain forward pass of the model rebuilt from the pruned weights, its Hessians count every token,
 * and in independent mode later blocks calibrate on dense activations.
 */
class LayerSequentialDriverTest {
    private static CpuBackend backend;

    @BeforeAll
    static void setUp() {
        backend = CpuBackend.create();
    }

    @AfterAll
    static void tearDown() {
        backend.close();
    }

    record Model(ModelConfig config, Map<String, HostTensor> tensors, List<TokenBatch> batches) {
    }

    static Model model(String which) throws Exception {
        SplittableRandom r = new SplittableRandom(11);
        if (which.equals("bert")) {
            var cfg = new io.sparkprune.pipeline.model.BertConfig(32, 2, 4, 64, 50, 40, 2, 1e-12, "gelu", 0, "float32");
            Map<String, HostTensor> t = new LinkedHashMap<>();
            ModelAdapter a = ModelAdapter.of(cfg);
            List<io.sparkprune.pipeline.forward.ParameterSpec> specs = new ArrayList<>(a.globalParameters(null));
            for (int l = 0; l < cfg.numHiddenLayers(); l++) {
                for (var p : a.blockParameters()) {
                    specs.add(new io.sparkprune.pipeline.forward.ParameterSpec(a.layerPrefix(l) + p.name(), p.shape()));
                }
            }
            for (var p : specs) {
                float[] v = new float[(int) p.numel()];
                for (int i = 0; i < v.length; i++) {
                    v[i] = p.name().endsWith("LayerNorm.weight") ? 1f : (float) (r.nextGaussian() * 0.3);
                }
                t.put(p.name(), HostTensor.fromFloats(DType.F32, p.shape(), v));
            }
            List<TokenBatch> batches = List.of(TokenBatch.of(ids(r, 7, 50), ids(r, 12, 50)), TokenBatch.of(ids(r, 30, 50)));
            return new Model(cfg, t, batches);
        }
        Path dir = Path.of(LayerSequentialDriverTest.class.getResource("/fixtures/llama/" + which).toURI());
        Map<String, HostTensor> t = new LinkedHashMap<>();
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            for (String n : c.tensorNames()) {
                HostTensor h = c.read(n);
                t.put(n, HostTensor.fromFloats(DType.F32, h.shape(), h.toFloatArray()));
            }
        }
        List<TokenBatch> batches = List.of(TokenBatch.of(ids(r, 24, 256), ids(r, 24, 256)), TokenBatch.of(ids(r, 24, 256)));
        return new Model(ModelConfigs.read(dir), t, batches);
    }

    static int[] ids(SplittableRandom r, int n, int vocab) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = r.nextInt(vocab);
        }
        return a;
    }

    static Weights magnitude24(ModelAdapter a, int layer, Weights dense) {
        Weights w = dense;
        for (LinearSpec l : a.targets()) {
            float[] pruned = MagnitudePruner.prune(a.layerPrefix(layer) + l.weight(), dense.get(l.weight()), l.outFeatures(),
                    l.inFeatures(), new SparsityPattern.NofM(2, 4)).weights();
            w = w.with(l.weight(), pruned);
        }
        return w;
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa-tied", "bert"})
    void identityPrunerReproducesTheDenseForward(String which) throws Exception {
        Model m = model(which);
        TensorSource src = TensorSource.of(m.tensors(), which);
        TransformerModel dense = TransformerModel.of(m.config(), src, backend);
        ModelAdapter a = dense.adapter();
        int totalTokens = m.batches().stream().mapToInt(TokenBatch::tokens).sum();
        List<Integer> sunk = new ArrayList<>();
        for (LayerSequentialDriver.Mode mode : LayerSequentialDriver.Mode.values()) {
            List<HiddenStates> out = new LayerSequentialDriver(a, src, backend).run(m.batches(), mode,
                    (layer, w, hessians) -> {
                        assertThat(hessians.keySet()).containsExactlyElementsOf(
                                a.calibrationGroups().stream().map(g -> g.name()).toList());
                        for (HessianAccumulator h : hessians.values()) {
                            assertThat(h.count()).isEqualTo(totalTokens);
                        }
                        return w;
                    }, (layer, w) -> sunk.add(layer));
            for (int b = 0; b < out.size(); b++) {
                assertThat(out.get(b).data()).as(mode + " batch " + b).containsExactly(dense.encode(m.batches().get(b)).data());
            }
        }
        assertThat(sunk).hasSize(2 * a.numLayers());
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa-tied", "bert"})
    void sequentialPruningEqualsForwardOfThePrunedModel(String which) throws Exception {
        Model m = model(which);
        TensorSource src = TensorSource.of(m.tensors(), which);
        ModelAdapter a = ModelAdapter.of(m.config());
        Map<String, HostTensor> prunedTensors = new LinkedHashMap<>(m.tensors());
        List<HiddenStates> out = new LayerSequentialDriver(a, src, backend).run(m.batches(),
                LayerSequentialDriver.Mode.SEQUENTIAL, (layer, w, h) -> magnitude24(a, layer, w),
                (layer, w) -> {
                    for (var p : w.specs()) {
                        prunedTensors.put(a.layerPrefix(layer) + p.name(), HostTensor.fromFloats(DType.F32, p.shape(), w.get(p.name())));
                    }
                });
        TransformerModel pruned = TransformerModel.of(m.config(), TensorSource.of(prunedTensors, "pruned"), backend);
        TransformerModel dense = TransformerModel.of(m.config(), src, backend);
        for (int b = 0; b < out.size(); b++) {
            assertThat(out.get(b).data()).containsExactly(pruned.encode(m.batches().get(b)).data());
            assertThat(out.get(b).data()).isNotEqualTo(dense.encode(m.batches().get(b)).data());
        }
        // half of every target weight is zero
        for (LinearSpec l : a.targets()) {
            float[] w = prunedTensors.get(a.layerPrefix(1) + l.weight()).toFloatArray();
            long zeros = 0;
            for (float v : w) {
                zeros += v == 0f ? 1 : 0;
            }
            assertThat(zeros).as(l.name()).isEqualTo(w.length / 2);
        }
    }

    /** In independent mode block 1 calibrates on dense activations; in sequential mode on pruned ones. */
    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa-tied", "bert"})
    void independentModeCalibratesOnDenseActivations(String which) throws Exception {
        Model m = model(which);
        TensorSource src = TensorSource.of(m.tensors(), which);
        ModelAdapter a = ModelAdapter.of(m.config());
        Map<LayerSequentialDriver.Mode, byte[]> layer1 = new LinkedHashMap<>();
        for (LayerSequentialDriver.Mode mode : LayerSequentialDriver.Mode.values()) {
            new LayerSequentialDriver(a, src, backend).run(m.batches(), mode, (layer, w, h) -> {
                if (layer == 1) {
                    layer1.put(mode, h.get("qkv").toBytes());
                }
                return magnitude24(a, layer, w);
            }, (layer, w) -> { });
        }
        final byte[][] dense = new byte[1][];
        new LayerSequentialDriver(a, src, backend).run(m.batches(), LayerSequentialDriver.Mode.SEQUENTIAL, (layer, w, h) -> {
            if (layer == 1) {
                dense[0] = h.get("qkv").toBytes();
            }
            return w;
        }, (layer, w) -> { });
        assertThat(layer1.get(LayerSequentialDriver.Mode.INDEPENDENT)).isEqualTo(dense[0]);
        assertThat(layer1.get(LayerSequentialDriver.Mode.SEQUENTIAL)).isNotEqualTo(dense[0]);
    }
}
