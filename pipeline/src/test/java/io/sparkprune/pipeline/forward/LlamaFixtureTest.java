package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.model.LlamaConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.safetensors.SafetensorsFile;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Llama-family logits against Hugging Face transformers 5.17 (fp32, eager attention, CPU), from the
 * fixtures made by {@code tools/fixtures/make_llama_fixtures.py}: {@code llama-gqa-tied} (2 KV heads
 * for 4 query heads, tied LM head), {@code qwen2-bias} (q/k/v biases, θ = 1e6) and
 * {@code llama3-rope} (llama3 RoPE scaling with original context 64 &lt; 40-token inputs' frequencies
 * spanning all three bands). Each fixture's {@code expected.safetensors} holds {@code input_ids}
 * [2, 40] and transformers' {@code logits} [2, 40, 256].
 */
class LlamaFixtureTest {
    private static final double TOLERANCE = 1e-3;
    private static CpuBackend backend;

    @BeforeAll
    static void setUp() {
        backend = CpuBackend.create();
    }

    @AfterAll
    static void tearDown() {
        backend.close();
    }

    static Path fixture(String name) throws Exception {
        return Path.of(LlamaFixtureTest.class.getResource("/fixtures/llama/" + name).toURI());
    }

    /** The fixture's input ids [batch, seq] and expected logits [batch·seq·vocab]. */
    record Expected(int[][] ids, float[] logits, int vocab) {
    }

    static Expected expected(Path dir) {
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve("expected.safetensors"))) {
            HostTensor ids = f.read("input_ids");
            HostTensor logits = f.read("logits");
            assertThat(ids.dtype()).isEqualTo(DType.I64);
            long[] s = ids.shape();
            int[][] rows = new int[(int) s[0]][(int) s[1]];
            LongBuffer lb = ids.data().asLongBuffer();
            for (int b = 0; b < s[0]; b++) {
                for (int t = 0; t < s[1]; t++) {
                    rows[b][t] = (int) lb.get(b * (int) s[1] + t);
                }
            }
            return new Expected(rows, logits.toFloatArray(), (int) logits.shape()[2]);
        }
    }

    static double maxAbsDiff(float[] a, float[] b) {
        assertThat(a).hasSameSizeAs(b);
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs((double) a[i] - b[i]));
        }
        return m;
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa-tied", "qwen2-bias", "llama3-rope"})
    void logitsMatchTransformers(String name) throws Exception {
        Path dir = fixture(name);
        Expected exp = expected(dir);
        try (TransformerModel model = TransformerModel.open(dir, backend)) {
            float[] logits = model.logits(TokenBatch.of(exp.ids()));
            double diff = maxAbsDiff(logits, exp.logits());
            double scale = 0;
            for (float v : exp.logits()) {
                scale = Math.max(scale, Math.abs(v));
            }
            System.out.printf("%s: max |logit diff| vs transformers = %.3g (max |logit| %.3g)%n", name, diff, scale);
            assertThat(diff).as(name + " max |logit diff|").isLessThanOrEqualTo(TOLERANCE);
            // sequences are independent: each row alone gives the same logits as in the batch
            float[] row1 = model.logits(TokenBatch.of(exp.ids()[1]));
            float[] batchRow1 = java.util.Arrays.copyOfRange(logits, row1.length, 2 * row1.length);
            assertThat(maxAbsDiff(row1, batchRow1)).isLessThanOrEqualTo(1e-5);
        }
    }

    /**
     * F16 and BF16 checkpoints are widened exactly: the logits equal those of an fp32 checkpoint
     * holding the same (rounded) values, bit for bit.
     */
    @ParameterizedTest
    @ValueSource(strings = {"BF16", "F16"})
    void halfPrecisionWeightsAreWidenedExactly(String dtypeName) throws Exception {
        DType dtype = DType.valueOf(dtypeName);
        Path dir = fixture("qwen2-bias");
        Expected exp = expected(dir);
        LlamaConfig config = (LlamaConfig) ModelConfigs.read(dir);
        Map<String, HostTensor> half = new LinkedHashMap<>();
        Map<String, HostTensor> widened = new LinkedHashMap<>();
        try (ShardedCheckpoint ckpt = ShardedCheckpoint.open(dir)) {
            for (String n : ckpt.tensorNames()) {
                HostTensor t = ckpt.read(n);
                HostTensor h = HostTensor.fromFloats(dtype, t.shape(), t.toFloatArray());
                half.put(n, h);
                widened.put(n, HostTensor.fromFloats(DType.F32, t.shape(), h.toFloatArray()));
            }
        }
        float[] a = TransformerModel.of(config, TensorSource.of(half, dtypeName), backend).logits(TokenBatch.of(exp.ids()));
        float[] b = TransformerModel.of(config, TensorSource.of(widened, "F32"), backend).logits(TokenBatch.of(exp.ids()));
        assertThat(a).containsExactly(b);
        // and rounding the weights to half precision moves the logits, but not far
        double diff = maxAbsDiff(a, exp.logits());
        assertThat(diff).isGreaterThan(0).isLessThan(dtype == DType.BF16 ? 0.5 : 0.05);
    }
}
