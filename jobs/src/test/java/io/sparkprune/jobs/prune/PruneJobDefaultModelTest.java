package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.data.DocumentSource;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.forward.Pooling;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.forward.TransformerModel;
import io.sparkprune.pipeline.onnx.ImportedModel;
import io.sparkprune.pipeline.onnx.OnnxImporter;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.tokenizer.EncodedBatch;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The prune job in Spark local mode on the real default model (all-MiniLM-L6-v2 from its ONNX
 * export, English Europarl calibration), small sizes; its output and report checked against
 * computations made here without Spark.
 */
class PruneJobDefaultModelTest {

    @TempDir
    static Path tmp;

    static SparkSession spark;
    static PruneJob.Outcome outcome;
    static Path out;
    static Recipe recipe;

    @BeforeAll
    static void run() {
        spark = SparkSession.builder().master("local[2]").appName("test").config("spark.ui.enabled", "false").getOrCreate();
        recipe = Recipe.defaults().withOverrides(Map.of("calibration.samples", "24", "calibration.seq_len", "64",
                "evaluation.samples", "40"));
        out = tmp.resolve("pruned");
        outcome = PruneJob.run(spark, new PruneJob.Request("default", out.toString(), recipe, false));
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    @Test
    void targetsAre2of4AndEverythingElseIsUntouched() throws Exception {
        ImportedModel dense;
        try (InputStream in = DefaultAssets.modelOnnx().openStream()) {
            dense = OnnxImporter.importModel(in, "test");
        }
        assertThat(out.resolve("_staging")).doesNotExist();
        assertThat(out.resolve("_source")).doesNotExist();
        assertThat(out.resolve("tokenizer.json")).exists();
        int pruned = 0;
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(out)) {
            assertThat(ck.tensorNames()).containsExactlyElementsOf(dense.tensors().keySet());
            for (Map.Entry<String, HostTensor> e : dense.tensors().entrySet()) {
                HostTensor got = ck.read(e.getKey());
                boolean target = e.getKey().startsWith("encoder.layer.") && e.getKey().endsWith(".weight")
                        && !e.getKey().contains("LayerNorm");
                if (!target) {
                    assertThat(got).as(e.getKey()).isEqualTo(e.getValue());
                    continue;
                }
                pruned++;
                float[] w = got.toFloatArray();
                float[] d = e.getValue().toFloatArray();
                int cols = (int) got.shape()[1];
                for (int g = 0; g < w.length; g += 4) {
                    int nz = 0;
                    for (int j = 0; j < 4; j++) {
                        nz += w[g + j] != 0f ? 1 : 0;
                    }
                    assertThat(nz).as("%s row %d group %d", e.getKey(), g / cols, (g % cols) / 4).isLessThanOrEqualTo(2);
                }
                assertThat(w).isNotEqualTo(d); // OBS updates changed the kept weights
            }
        }
        assertThat(pruned).isEqualTo(36);
    }

    @Test
    void reportMatchesTheFiles() throws Exception {
        JsonNode r = new ObjectMapper().readTree(out.resolve("report.json").toFile());
        assertThat(r.get("format").asText()).isEqualTo("sparkprune.report.v3");
        assertThat(r.get("tensors")).hasSize(36);
        assertThat(r.at("/calibration/sequences").asInt()).isEqualTo(24);
        assertThat(r.at("/calibration/max_seq_len").asInt()).isLessThanOrEqualTo(64);
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(out)) {
            for (JsonNode t : r.get("tensors")) {
                float[] w = ck.read(t.get("tensor").asText()).toFloatArray();
                long zeros = 0;
                for (float v : w) {
                    zeros += v == 0f ? 1 : 0;
                }
                assertThat(t.get("zeros").asLong()).isEqualTo(zeros);
                assertThat(t.get("sparsity").asDouble()).isEqualTo(0.5);
                assertThat(t.get("pattern_verified").asBoolean()).isTrue();
                assertThat(t.get("relative_reconstruction_error").asDouble()).isBetween(0.01, 0.6);
                assertThat(t.get("dampening").asDouble()).isEqualTo(0.01);
            }
        }
    }

    /** The embedding metrics recomputed in-process (no Spark) from the dense import and the written output. */
    @Test
    void qualityNumbersAreReproducibleWithoutSpark() throws Exception {
        JsonNode q = outcome.report().get("quality");
        int n = q.get("sentences").asInt();
        assertThat(n).isEqualTo(40);
        DocumentSource heldOut = recipe.calibration().split().heldOutPart(DefaultAssets.englishEuroparl());
        List<String> sentences = heldOut.readAll(n);
        ImportedModel dense;
        try (InputStream in = DefaultAssets.modelOnnx().openStream()) {
            dense = OnnxImporter.importModel(in, "test");
        }
        int seqLen = q.get("seq_len").asInt();
        try (CpuBackend be = CpuBackend.create(2);
             HfTokenizer tok = HfTokenizer.fromFile(out.resolve("tokenizer.json"));
             TransformerModel d = TransformerModel.fromOnnx(dense, be);
             TransformerModel p = TransformerModel.open(out, be)) {
            EncodedBatch enc = tok.encodeBatch(sentences, seqLen);
            int[][] seqs = new int[n][];
            for (int i = 0; i < n; i++) {
                seqs[i] = Arrays.copyOf(enc.rowIds(i), enc.lengths()[i]);
            }
            float[] ed = d.sentenceEmbeddings(TokenBatch.of(seqs), Pooling.MEAN, true);
            float[] ep = p.sentenceEmbeddings(TokenBatch.of(seqs), Pooling.MEAN, true);
            int h = 384;
            double mean = 0;
            double agree = 0;
            for (int i = 0; i < n; i++) {
                mean += QualityEvaluator.dot(ed, i, ep, i, h) / n;
                agree += QualityEvaluator.overlap(QualityEvaluator.topK(ed, i, n, h), QualityEvaluator.topK(ep, i, n, h)) / 10.0 / n;
            }
            assertThat(q.get("mean_cosine").asDouble()).isCloseTo(mean, org.assertj.core.data.Offset.offset(1e-5));
            assertThat(q.get("top10_neighbour_agreement").asDouble()).isCloseTo(agree, org.assertj.core.data.Offset.offset(1e-9));
            assertThat(mean).isBetween(0.7, 0.999);
        }
    }

    @Test
    void anExistingOutputIsRefusedWithoutResume() {
        assertThatThrownBy(() -> PruneJob.run(spark, new PruneJob.Request("default", out.toString(), recipe, false)))
                .isInstanceOf(InvalidInputException.class).hasMessageContaining("already exists");
        assertThat(Files.exists(out.resolve("report.json"))).isTrue();
    }
}
