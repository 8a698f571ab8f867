package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.onnx.ImportedModel;
import io.sparkprune.pipeline.onnx.OnnxImporter;
import io.sparkprune.pipeline.tokenizer.EncodedBatch;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.io.InputStream;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The BERT forward pass against onnxruntime, two independent implementations of the same weights:
 * onnxruntime runs the default model's ONNX graph (all-MiniLM-L6-v2, {@link DefaultAssets#modelOnnx()})
 * on padded batches with an attention mask; our encoder runs the parameters {@link OnnxImporter}
 * extracted from that file, on the same sentences packed without padding. Inputs: 256 English
 * Europarl sentences (the default calibration corpus, split at sentence ends), tokenized with the
 * model's tokenizer, in batches of 32 consecutive sentences of mixed lengths, each batch padded to
 * its longest sentence (at most 128 tokens: longer sentences are truncated).
 */
class BertOnnxRuntimeTest {
    private static final int SENTENCES = 256;
    private static final int BATCH = 32;
    private static final int MAX_LENGTH = 128;

    private static CpuBackend backend;
    private static OrtEnvironment env;
    private static OrtSession session;
    private static TransformerModel model;
    private static HfTokenizer tokenizer;
    private static List<String> sentences;

    @BeforeAll
    static void setUp() throws Exception {
        backend = CpuBackend.create();
        byte[] onnx;
        try (InputStream in = DefaultAssets.modelOnnx().openStream()) {
            onnx = in.readAllBytes();
        }
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions opts = new OrtSession.SessionOptions();
        opts.setIntraOpNumThreads(Math.max(1, Runtime.getRuntime().availableProcessors()));
        // idle onnxruntime workers must not spin and steal the cores our forward pass runs on next
        opts.addConfigEntry("session.intra_op.allow_spinning", "0");
        session = env.createSession(onnx, opts);
        ImportedModel imported = OnnxImporter.importModel(new java.io.ByteArrayInputStream(onnx), DefaultAssets.MODEL_ONNX_RESOURCE);
        model = TransformerModel.fromOnnx(imported, backend);
        tokenizer = DefaultAssets.openTokenizer();
        sentences = new ArrayList<>();
        for (String doc : DefaultAssets.englishEuroparl().readAll(400)) {
            for (String s : doc.split("(?<=[.!?])\\s+")) {
                if (s.split(" ").length >= 3 && sentences.size() < SENTENCES) {
                    sentences.add(s);
                }
            }
        }
    }

    @AfterAll
    static void tearDown() throws Exception {
        if (session != null) {
            session.close();
        }
        if (tokenizer != null) {
            tokenizer.close();
        }
        backend.close();
    }

    @Test
    void sessionTakesBertInputs() {
        assertThat(session.getInputNames()).containsExactlyInAnyOrder("input_ids", "attention_mask", "token_type_ids");
        assertThat(session.getOutputNames()).contains("last_hidden_state");
    }

    @Test
    void lastHiddenStateMatchesOnnxRuntime() throws Exception {
        assertThat(sentences).hasSize(SENTENCES);
        double worst = 0;
        double worstPooled = 0;
        int tokens = 0;
        int padded = 0;
        int truncated = 0;
        long ortNanos = 0;
        long ourNanos = 0;
        for (int b0 = 0; b0 < SENTENCES; b0 += BATCH) {
            List<String> texts = sentences.subList(b0, Math.min(SENTENCES, b0 + BATCH));
            EncodedBatch probe = tokenizer.encodeBatch(texts, MAX_LENGTH);
            int longest = 0;
            for (int i = 0; i < probe.rows(); i++) {
                longest = Math.max(longest, probe.lengths()[i]);
                truncated += probe.fullLengths()[i] > probe.lengths()[i] ? 1 : 0;
            }
            EncodedBatch enc = tokenizer.encodeBatch(texts, longest);
            int rows = enc.rows();
            int seq = enc.seqLength();
            int h = model.config().hiddenSize();

            float[][][] ort;
            long t0 = System.nanoTime();
            try (OnnxTensor ids = OnnxTensor.createTensor(env, LongBuffer.wrap(toLongs(enc.ids())), new long[] {rows, seq});
                 OnnxTensor mask = OnnxTensor.createTensor(env, LongBuffer.wrap(toLongs(enc.attentionMask())), new long[] {rows, seq});
                 OnnxTensor types = OnnxTensor.createTensor(env, LongBuffer.wrap(toLongs(enc.tokenTypeIds())), new long[] {rows, seq});
                 OrtSession.Result res = session.run(Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types))) {
                ort = (float[][][]) res.get("last_hidden_state").orElseThrow().getValue();
            }
            long t1 = System.nanoTime();

            TokenBatch packed = TokenBatch.fromEncoded(enc);
            HiddenStates ours = model.encode(packed);
            ortNanos += t1 - t0;
            ourNanos += System.nanoTime() - t1;
            float[] pooled = Pooling.MEAN.apply(ours, true);
            for (int r = 0; r < rows; r++) {
                int len = enc.lengths()[r];
                tokens += len;
                padded += seq - len;
                double[] mean = new double[h];
                for (int t = 0; t < len; t++) {
                    int row = packed.layout().start(r) + t;
                    for (int c = 0; c < h; c++) {
                        worst = Math.max(worst, Math.abs(ours.data()[row * h + c] - ort[r][t][c]));
                        mean[c] += ort[r][t][c];
                    }
                }
                // sentence-transformers mean pooling + L2 normalisation, from onnxruntime's output
                double norm = 0;
                for (int c = 0; c < h; c++) {
                    mean[c] /= len;
                    norm += mean[c] * mean[c];
                }
                norm = Math.sqrt(norm);
                for (int c = 0; c < h; c++) {
                    worstPooled = Math.max(worstPooled, Math.abs(pooled[r * h + c] - mean[c] / norm));
                }
            }
        }
        System.out.printf("BERT vs onnxruntime: %d sentences, %d real tokens, %d padding positions, %d truncated;"
                + " max |last_hidden_state diff| = %.3g, max |mean-pooled normalised diff| = %.3g;"
                + " onnxruntime %.1f s, ours %.1f s%n",
                SENTENCES, tokens, padded, truncated, worst, worstPooled, ortNanos / 1e9, ourNanos / 1e9);
        assertThat(padded).as("the batches must contain padding").isGreaterThan(0);
        assertThat(worst).isLessThanOrEqualTo(1e-4);
        assertThat(worstPooled).isLessThanOrEqualTo(1e-5);
    }

    private static long[] toLongs(int[] a) {
        long[] l = new long[a.length];
        for (int i = 0; i < a.length; i++) {
            l[i] = a[i];
        }
        return l;
    }
}
