package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.sparkprune.kernels.cpu.CpuBackend;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Perplexity by the SparseGPT evaluation rule, against the same rule computed here in plain fp64
 * from logits: from transformers' logits of the fixture (independent of our forward pass) and from
 * our own logits (independent of the windowing and cross-entropy code).
 */
class PerplexityTest {
    private static CpuBackend backend;

    @BeforeAll
    static void setUp() {
        backend = CpuBackend.create();
    }

    @AfterAll
    static void tearDown() {
        backend.close();
    }

    /** Mean NLL of predicting tokens 1..L-1 of one window from logits [L, vocab] at offset. */
    static double windowLoss(float[] logits, int offset, int[] ids, int vocab) {
        int len = ids.length;
        double sum = 0;
        for (int t = 0; t < len - 1; t++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < vocab; c++) {
                max = Math.max(max, logits[offset + t * vocab + c]);
            }
            double s = 0;
            for (int c = 0; c < vocab; c++) {
                s += Math.exp(logits[offset + t * vocab + c] - max);
            }
            sum += max + Math.log(s) - logits[offset + t * vocab + ids[t + 1]];
        }
        return sum / (len - 1);
    }

    @Test
    void tf32ForwardStaysNearTheReferenceButIsNotTheFp32Result() throws Exception {
        Path dir = LlamaFixtureTest.fixture("llama-gqa-tied");
        LlamaFixtureTest.Expected exp = LlamaFixtureTest.expected(dir);
        int len = exp.ids()[0].length;
        int vocab = exp.vocab();
        int[] stream = new int[2 * len];
        System.arraycopy(exp.ids()[0], 0, stream, 0, len);
        System.arraycopy(exp.ids()[1], 0, stream, len, len);
        try (TransformerModel model = TransformerModel.open(dir, backend)) {
            Perplexity.Result fp32 = Perplexity.evaluate(model, stream, len, 1);
            Perplexity.Result tf32 = Perplexity.evaluate(model, stream, len, 1, io.sparkprune.kernels.ForwardPrecision.TF32);
            // the TF32 rounding of the blocks' operands really happens
            assertThat(tf32.windowLosses()).isNotEqualTo(fp32.windowLosses());
            // the rule on our own TF32 logits: equal up to fp64 rounding
            float[] ours = model.logits(TokenBatch.of(exp.ids()), io.sparkprune.kernels.ForwardPrecision.TF32);
            for (int w = 0; w < 2; w++) {
                assertThat(tf32.windowLosses()[w]).isCloseTo(windowLoss(ours, w * len * vocab, exp.ids()[w], vocab),
                        within(1e-12));
                // against transformers' fp32 logits: TF32 keeps 11 significant bits (unit roundoff 2^-11 ≈ 4.9e-4) per
                // operand, so logits move by about 1e-3 relative and each window's mean NLL by far less than 1e-2
                double hf = windowLoss(exp.logits(), w * len * vocab, exp.ids()[w], vocab);
                assertThat(tf32.windowLosses()[w]).isCloseTo(hf, within(1e-2));
            }
        }
    }

    @Test
    void matchesReferenceRuleOnTransformersLogits() throws Exception {
        Path dir = LlamaFixtureTest.fixture("llama-gqa-tied");
        LlamaFixtureTest.Expected exp = LlamaFixtureTest.expected(dir);
        int len = exp.ids()[0].length;
        int vocab = exp.vocab();
        // stream = row 0, row 1, then 7 tokens that do not fill a window (dropped, as numel // L)
        int[] stream = new int[2 * len + 7];
        System.arraycopy(exp.ids()[0], 0, stream, 0, len);
        System.arraycopy(exp.ids()[1], 0, stream, len, len);
        System.arraycopy(exp.ids()[0], 3, stream, 2 * len, 7);
        try (TransformerModel model = TransformerModel.open(dir, backend)) {
            Perplexity.Result r1 = Perplexity.evaluate(model, stream, len, 1);
            Perplexity.Result r2 = Perplexity.evaluate(model, stream, len, 2);
            assertThat(r1.windows()).isEqualTo(2);
            assertThat(r2.perplexity()).isEqualTo(r1.perplexity());
            assertThat(r2.windowLosses()).containsExactly(r1.windowLosses());

            // reference rule on transformers' logits: exp(sum(loss_i * L) / (nsamples * L))
            double[] hf = new double[2];
            for (int w = 0; w < 2; w++) {
                hf[w] = windowLoss(exp.logits(), w * len * vocab, exp.ids()[w], vocab);
            }
            double pplHf = Math.exp((hf[0] * len + hf[1] * len) / (2.0 * len));
            // |Δ NLL| ≤ 2 max |Δ logit| ≤ 2e-5 per token (logits agree to < 1e-5)
            assertThat(Math.log(r1.perplexity())).isCloseTo(Math.log(pplHf), within(2e-5));
            assertThat(r1.windowLosses()[0]).isCloseTo(hf[0], within(2e-5));
            assertThat(r1.windowLosses()[1]).isCloseTo(hf[1], within(2e-5));

            // same rule on our own logits: equal up to fp64 rounding
            float[] ours = model.logits(TokenBatch.of(exp.ids()));
            double o0 = windowLoss(ours, 0, exp.ids()[0], vocab);
            double o1 = windowLoss(ours, len * vocab, exp.ids()[1], vocab);
            assertThat(r1.windowLosses()[0]).isCloseTo(o0, within(1e-12));
            assertThat(r1.windowLosses()[1]).isCloseTo(o1, within(1e-12));
            assertThat(r1.perplexity()).isCloseTo(Math.exp((o0 + o1) / 2), within(1e-9 * r1.perplexity()));
            System.out.printf("perplexity: ours %.9f, from transformers' logits %.9f%n", r1.perplexity(), pplHf);

            assertThatThrownBy(() -> Perplexity.evaluate(model, new int[len - 1], len, 1))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("fewer than one window");
        }
    }
}
