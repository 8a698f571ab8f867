package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.Backends;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * On the CUDA backend, block forwards over weights kept in half precision (uploaded as their 2-byte values
 * and widened on the device, {@code bf16_to_f32} / {@code f16_to_f32}) are bit for bit those over the same
 * values widened on the host and uploaded as fp32 arrays ({@link Weights#of}), in fp32 and TF32 workspaces,
 * for the Llama family (the qwen2 fixture) and BERT; the blocks leave no host fp32 array in the
 * {@link Weights}; whole-model logits over a BF16 checkpoint equal those over its F32 widening. Skipped
 * without a usable CUDA device; runs with {@code -Dgpu} through Maven (the GPU bundle runs the kernels
 * module's twin, {@code CudaWeightWideningTest}).
 */
@Tag("gpu")
class CudaHalfWeightsForwardTest {
    private static Backend cuda;
    private static String unavailable;

    @BeforeAll
    static void open() {
        try {
            cuda = Backends.create("cuda", 0, 2);
        } catch (RuntimeException | LinkageError e) {
            unavailable = "no usable CUDA device: " + e.getMessage();
            System.out.println("SKIPPED CudaHalfWeightsForwardTest: " + unavailable);
        }
    }

    @AfterAll
    static void close() throws Exception {
        if (cuda != null) {
            cuda.close();
        }
    }

    private static void requireDevice() {
        assumeTrue(unavailable == null, () -> unavailable);
    }

    private static void assertBlocksEqual(ModelConfig config, Map<String, HostTensor> half, TokenBatch batch) {
        TensorSource source = TensorSource.of(half, "half");
        ModelAdapter a = ModelAdapter.of(config);
        HiddenStates h;
        try (TransformerModel model = TransformerModel.of(config, source, cuda)) {
            h = model.embed(batch);
        }
        for (int l = 0; l < a.numLayers(); l++) {
            Weights lazy = a.loadBlock(source, l);
            Weights arrays = HalfWeightsForwardTest.widenedArrays(a, source, l);
            HiddenStates next = null;
            for (ForwardPrecision p : ForwardPrecision.values()) {
                HiddenStates viaDevice;
                HiddenStates viaHost;
                try (ForwardWorkspace ws = ForwardWorkspace.open(cuda, p, "half weights " + p)) {
                    assertThat(ws.isResident()).isTrue();
                    viaDevice = a.block(ws, l, lazy, h, LinearObserver.NONE);
                    viaHost = a.block(ws, l, arrays, h, LinearObserver.NONE);
                }
                WeightsTest.assertSameBits(viaDevice.data(), viaHost.data(), "layer " + l + " " + p);
                if (p == ForwardPrecision.FP32) {
                    next = viaHost;
                }
            }
            for (ParameterSpec s : a.blockParameters()) {
                assertThat(lazy.isWidened(s.name())).as(s.name() + " widened on the device only").isFalse();
            }
            h = next;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"BF16", "F16"})
    void llamaBlocksOverDeviceWidenedWeightsEqualTheHostWidenedArrays(String dtypeName) throws Exception {
        requireDevice();
        Path dir = LlamaFixtureTest.fixture("qwen2-bias");
        LlamaFixtureTest.Expected exp = LlamaFixtureTest.expected(dir);
        Map<String, HostTensor> half = HalfWeightsForwardTest.rounded(HalfWeightsForwardTest.fixtureTensors(dir),
                DType.valueOf(dtypeName));
        ModelConfig config = ModelConfigs.read(dir);
        TokenBatch batch = TokenBatch.of(java.util.Arrays.copyOf(exp.ids()[0], 29), exp.ids()[1]);
        assertBlocksEqual(config, half, batch);
        // the whole model: a BF16/F16 checkpoint against its exact F32 widening
        float[] a;
        float[] b;
        try (TransformerModel m = TransformerModel.of(config, TensorSource.of(half, dtypeName), cuda)) {
            a = m.logits(batch);
        }
        try (TransformerModel m = TransformerModel.of(config,
                TensorSource.of(HalfWeightsForwardTest.rounded(half, DType.F32), "F32"), cuda)) {
            b = m.logits(batch);
        }
        WeightsTest.assertSameBits(a, b, "logits " + dtypeName);
    }

    @ParameterizedTest
    @ValueSource(strings = {"BF16", "F16"})
    void bertBlocksOverDeviceWidenedWeightsEqualTheHostWidenedArrays(String dtypeName) {
        requireDevice();
        Map<String, HostTensor> half = HalfWeightsForwardTest.rounded(TinyBert.tensors(12), DType.valueOf(dtypeName));
        assertBlocksEqual(TinyBert.CONFIG, half, TokenBatch.of(new int[] {1, 5, 9, 2, 7}, new int[] {3, 4, 8}));
    }
}
