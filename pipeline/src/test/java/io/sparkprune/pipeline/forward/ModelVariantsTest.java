package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.model.LlamaConfig;
import io.sparkprune.pipeline.model.ModelConfigException;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.model.RopeScaling;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Config variants without a transformers fixture of their own: Mistral's sliding window, linear
 * RoPE scaling, and configs the forward pass refuses.
 */
class ModelVariantsTest {
    private static CpuBackend backend;

    @BeforeAll
    static void setUp() {
        backend = CpuBackend.create();
    }

    @AfterAll
    static void tearDown() {
        backend.close();
    }

    private static Map<String, HostTensor> tensors(Path dir) {
        Map<String, HostTensor> m = new LinkedHashMap<>();
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            for (String n : c.tensorNames()) {
                HostTensor t = c.read(n);
                m.put(n, io.sparkprune.kernels.HostTensor.fromFloats(io.sparkprune.kernels.DType.F32, t.shape(), t.toFloatArray()));
            }
        }
        return m;
    }

    /** The fixture's config with model_type mistral and the given sliding_window (null: none). */
    private static LlamaConfig mistral(Path dir, Integer window) throws Exception {
        com.fasterxml.jackson.databind.ObjectMapper om = new com.fasterxml.jackson.databind.ObjectMapper();
        com.fasterxml.jackson.databind.node.ObjectNode n =
                (com.fasterxml.jackson.databind.node.ObjectNode) om.readTree(dir.resolve("config.json").toFile());
        n.put("model_type", "mistral");
        if (window == null) {
            n.putNull("sliding_window");
        } else {
            n.put("sliding_window", window);
        }
        return (LlamaConfig) ModelConfigs.parse(om.writeValueAsBytes(n), "variant");
    }

    /**
     * A Mistral-style window of W keys changes nothing for positions below W (every key is inside
     * the window in every layer) and changes the logits from position W on; a window at least as
     * long as the sequence changes nothing.
     */
    @Test
    void slidingWindowMasksOnlyBeyondTheWindow() throws Exception {
        Path dir = LlamaFixtureTest.fixture("llama-gqa-tied");
        LlamaFixtureTest.Expected exp = LlamaFixtureTest.expected(dir);
        Map<String, HostTensor> t = tensors(dir);
        int len = exp.ids()[0].length;
        int vocab = exp.vocab();
        TokenBatch batch = TokenBatch.of(exp.ids()[0]);
        LlamaConfig full = mistral(dir, null);
        LlamaConfig wide = mistral(dir, len);
        LlamaConfig narrow = mistral(dir, 9);
        assertThat(narrow.slidingWindow()).isEqualTo(9);
        float[] a = TransformerModel.of(full, TensorSource.of(t, "m"), backend).logits(batch);
        float[] b = TransformerModel.of(wide, TensorSource.of(t, "m"), backend).logits(batch);
        float[] c = TransformerModel.of(narrow, TensorSource.of(t, "m"), backend).logits(batch);
        assertThat(b).containsExactly(a);
        for (int p = 0; p < len; p++) {
            double d = 0;
            for (int v = 0; v < vocab; v++) {
                d = Math.max(d, Math.abs(a[p * vocab + v] - c[p * vocab + v]));
            }
            if (p < 9) {
                assertThat(d).as("position %d", p).isEqualTo(0.0);
            } else {
                assertThat(d).as("position %d", p).isGreaterThan(1e-4);
            }
        }
    }

    @Test
    void linearScalingDividesTheFrequencies() {
        float[] plain = RotaryEmbedding.inverseFrequencies(RopeScaling.plain(10000), 64);
        float[] lin = RotaryEmbedding.inverseFrequencies(new RopeScaling("linear", 10000, 4.0, 0, 0, 0), 64);
        for (int i = 0; i < plain.length; i++) {
            assertThat(lin[i]).isEqualTo(plain[i] / 4f);
            // θ_i = 10000^(-2i/d), to fp32 rounding
            assertThat((double) plain[i]).isCloseTo(Math.pow(10000, -2.0 * i / 64), org.assertj.core.data.Percentage.withPercentage(1e-5));
        }
        RotaryEmbedding.Tables tab = new RotaryEmbedding(RopeScaling.plain(10000), 8).tables(3);
        assertThat(tab.rows()).isGreaterThanOrEqualTo(3);
        assertThat(tab.cos()[0]).isEqualTo(1f);
        assertThat(tab.sin()[4]).isEqualTo((float) Math.sin(1.0)); // position 1, frequency 0: angle 1
    }

    @Test
    void llama3ScalingFollowsTheThreeBands() {
        // head_dim 16, θ = 500000, original context 64, low/high factors 1/4, factor 8 (the fixture's values)
        RopeScaling r = new RopeScaling("llama3", 500000, 8, 1, 4, 64);
        float[] plain = RotaryEmbedding.inverseFrequencies(RopeScaling.plain(500000), 16);
        float[] scaled = RotaryEmbedding.inverseFrequencies(r, 16);
        for (int i = 0; i < plain.length; i++) {
            double wavelen = 2 * Math.PI / plain[i];
            double expected;
            if (wavelen < 16) {
                expected = plain[i];
            } else if (wavelen > 64) {
                expected = plain[i] / 8.0;
            } else {
                double s = (64 / wavelen - 1) / (4 - 1);
                expected = (1 - s) * plain[i] / 8 + s * plain[i];
            }
            assertThat((double) scaled[i]).as("frequency %d", i)
                    .isCloseTo(expected, org.assertj.core.data.Percentage.withPercentage(1e-4));
        }
    }

    @Test
    void qwen2WithSlidingWindowIsRefused() throws Exception {
        Path dir = LlamaFixtureTest.fixture("qwen2-bias");
        String json = Files.readString(dir.resolve("config.json"))
                .replace("\"use_sliding_window\": false", "\"use_sliding_window\": true")
                .replace("\"sliding_window\": null", "\"sliding_window\": 16");
        LlamaConfig c = (LlamaConfig) ModelConfigs.parse(json.getBytes(StandardCharsets.UTF_8), "qwen2-window");
        assertThatThrownBy(() -> ModelAdapter.of(c)).isInstanceOf(ModelConfigException.class)
                .hasMessageContaining("max_window_layers");
    }
}
