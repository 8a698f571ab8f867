package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.HostWorkspace;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Block forwards over weights kept in half precision ({@link Weights#load} of a BF16 or F16 checkpoint, widened
 * lazily) are bit for bit those over the host-widened fp32 arrays ({@link Weights#of}), for the Llama family
 * (the qwen2 fixture: GQA, q/k/v biases) and BERT, on the CPU backend's host workspace and on a workspace that
 * reports itself resident (so {@link Weights#weight} hands it the checkpoint tensors, as to the CUDA workspace):
 * that one widens them itself, and the block then leaves no fp32 array of its weights in the {@link Weights}.
 */
class HalfWeightsForwardTest {
    private static CpuBackend backend;

    @BeforeAll
    static void setUp() {
        backend = CpuBackend.create(2);
    }

    @AfterAll
    static void tearDown() {
        backend.close();
    }

    /** A model's tensors rounded to {@code dtype}. */
    static Map<String, HostTensor> rounded(Map<String, HostTensor> tensors, DType dtype) {
        Map<String, HostTensor> out = new LinkedHashMap<>();
        tensors.forEach((n, t) -> out.put(n, HostTensor.fromFloats(dtype, t.shape(), t.toFloatArray())));
        return out;
    }

    static Map<String, HostTensor> fixtureTensors(Path dir) {
        Map<String, HostTensor> m = new LinkedHashMap<>();
        try (ShardedCheckpoint ckpt = ShardedCheckpoint.open(dir)) {
            for (String n : ckpt.tensorNames()) {
                HostTensor t = ckpt.read(n);
                m.put(n, HostTensor.fromFloats(DType.F32, t.shape(), t.toFloatArray())); // on the heap
            }
        }
        return m;
    }

    /** The block's weights as fp32 arrays widened on the host (what {@code Weights.load} made before). */
    static Weights widenedArrays(ModelAdapter a, TensorSource source, int layer) {
        Map<String, float[]> arrays = new LinkedHashMap<>();
        for (ParameterSpec p : a.blockParameters()) {
            arrays.put(p.name(), source.read(a.layerPrefix(layer) + p.name()).toFloatArray());
        }
        return Weights.of("widened " + layer, a.blockParameters(), arrays);
    }

    /** A host workspace that says it is resident; counts the weights it was given as tensors. */
    static ForwardWorkspace residentLike(HostWorkspace host, AtomicInteger tensorWeights) {
        return (ForwardWorkspace) Proxy.newProxyInstance(ForwardWorkspace.class.getClassLoader(),
                new Class<?>[] {ForwardWorkspace.class}, (proxy, m, args) -> {
                    if (m.getName().equals("isResident")) {
                        return true;
                    }
                    if (m.getName().equals("weight") && args[0] instanceof HostTensor) {
                        tensorWeights.incrementAndGet();
                    }
                    try {
                        return m.invoke(host, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    private static void assertBlocksEqual(ModelConfig config, Map<String, HostTensor> half, TokenBatch batch) {
        TensorSource source = TensorSource.of(half, "half");
        ModelAdapter a = ModelAdapter.of(config);
        HiddenStates h;
        try (TransformerModel model = TransformerModel.of(config, source, backend)) {
            h = model.embed(batch);
        }
        for (int l = 0; l < a.numLayers(); l++) {
            Weights lazy = a.loadBlock(source, l);
            Weights arrays = widenedArrays(a, source, l);
            HiddenStates ref = a.block(backend, l, arrays, h, LinearObserver.NONE);
            // a resident workspace gets the tensors and widens them itself: no host array is made
            AtomicInteger tensors = new AtomicInteger();
            HiddenStates resident;
            try (HostWorkspace host = new HostWorkspace(backend, ForwardPrecision.FP32)) {
                resident = a.block(residentLike(host, tensors), l, lazy, h, LinearObserver.NONE);
            }
            assertThat(tensors.get()).as("weights passed as tensors").isEqualTo(a.blockParameters().size());
            for (ParameterSpec p : a.blockParameters()) {
                assertThat(lazy.isWidened(p.name())).as(p.name() + " not widened on the host").isFalse();
            }
            WeightsTest.assertSameBits(resident.data(), ref.data(), "layer " + l + " resident");
            // the host workspace widens the Weights' arrays (once) and computes the same
            HiddenStates onHost = a.block(backend, l, lazy, h, LinearObserver.NONE);
            WeightsTest.assertSameBits(onHost.data(), ref.data(), "layer " + l + " host");
            assertThat(lazy.isWidened(a.blockParameters().get(0).name())).isTrue();
            h = ref;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"BF16", "F16"})
    void llamaBlocksOverHalfWeightsEqualTheWidenedArraysBitForBit(String dtypeName) throws Exception {
        Path dir = LlamaFixtureTest.fixture("qwen2-bias");
        LlamaFixtureTest.Expected exp = LlamaFixtureTest.expected(dir);
        Map<String, HostTensor> half = rounded(fixtureTensors(dir), DType.valueOf(dtypeName));
        assertBlocksEqual(ModelConfigs.read(dir), half, TokenBatch.of(java.util.Arrays.copyOf(exp.ids()[0], 29),
                exp.ids()[1]));
    }

    @ParameterizedTest
    @ValueSource(strings = {"BF16", "F16"})
    void bertBlocksOverHalfWeightsEqualTheWidenedArraysBitForBit(String dtypeName) {
        Map<String, HostTensor> half = rounded(TinyBert.tensors(11), DType.valueOf(dtypeName));
        assertBlocksEqual(TinyBert.CONFIG, half, TokenBatch.of(new int[] {1, 5, 9, 2, 7}, new int[] {3, 4, 8}));
    }
}
