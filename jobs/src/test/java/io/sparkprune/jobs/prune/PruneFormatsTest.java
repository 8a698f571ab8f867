package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.jobs.tools.RandomLlama;
import io.sparkprune.pipeline.formats.compressed.CompressedTensorsCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --format hf,sparse,compressed-tensors} on a quantized (2:4 + int4, group 32) prune of the
 * tiny bf16 Llama: each format in its subdirectory; the compressed-tensors codes unpack to the
 * integers recomputed independently from the hf values and the grids; compressed-tensors and
 * sparse (with deflated codes and indices, {@code prune.sparse_codec: deflate}) decompress to the
 * hf output bit for bit; the report's storage reflects the written files.
 */
class PruneFormatsTest {
    @TempDir
    static Path tmp;

    private static SparkSession spark;
    private static Path model;
    private static Path out;

    @BeforeAll
    static void prune() {
        model = tmp.resolve("model");
        RandomLlama.write(JobFixtures.TINY, model);
        Path corpus = JobFixtures.writeCorpus(tmp.resolve("data"));
        spark = JobFixtures.localSession();
        Map<String, String> o = new LinkedHashMap<>();
        o.put("prune.quantization", "int4-g32");
        o.put("prune.format", "hf,sparse,compressed-tensors");
        o.put("prune.sparse_codec", "deflate");
        Recipe r = JobFixtures.recipe(corpus, "sequential").withOverrides(o);
        out = tmp.resolve("out");
        PruneJob.run(spark, new PruneJob.Request(model.toString(), out.toString(), r, false));
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    private static byte[] raw(io.sparkprune.kernels.HostTensor t) {
        byte[] b = new byte[(int) t.byteLength()];
        t.data().duplicate().get(b);
        return b;
    }

    @Test
    void everyFormatDecompressesToTheHfOutputAndCodesMatchTheGrids() throws Exception {
        assertThat(out.resolve("_assembling")).doesNotExist();
        assertThat(out.resolve("_staging")).doesNotExist();
        for (String d : new String[] {"hf", "sparse", "compressed-tensors"}) {
            assertThat(out.resolve(d).resolve("config.json")).as(d).exists();
        }
        JsonNode cfg = new ObjectMapper().readTree(out.resolve("hf/config.json").toFile());
        assertThat(cfg.path("sparsity_config").path("sparsity_structure").asText()).isEqualTo("2:4");
        JsonNode ctCfg = new ObjectMapper().readTree(out.resolve("compressed-tensors/config.json").toFile());
        assertThat(ctCfg.path("quantization_config").path("format").asText()).isEqualTo("pack-quantized");
        assertThat(ctCfg.path("quantization_config").path("sparsity_config").path("sparsity_structure").asText())
                .isEqualTo("2:4");
        int quantized = 0;
        long zeros = 0;
        long elements = 0;
        try (ShardedCheckpoint hf = ShardedCheckpoint.open(out.resolve("hf"));
             ShardedCheckpoint in = ShardedCheckpoint.open(model);
             CompressedTensorsCheckpoint ct = CompressedTensorsCheckpoint.open(out.resolve("compressed-tensors"));
             SparseCheckpoint sp = SparseCheckpoint.open(out.resolve("sparse"))) {
            assertThat(ct.names()).containsExactlyInAnyOrderElementsOf(hf.tensorNames());
            for (String n : hf.tensorNames()) {
                byte[] dense = raw(hf.read(n));
                assertThat(raw(ct.read(n))).as("compressed-tensors " + n).isEqualTo(dense);
                assertThat(raw(sp.read(n))).as("sparse " + n).isEqualTo(dense);
                if (!ct.quantizedNames().contains(n)) {
                    assertThat(dense).as("untouched " + n).isEqualTo(raw(in.read(n)));
                    continue;
                }
                quantized++;
                QuantizedWeights q = ct.quantized(n);
                assertThat(sp.quantized(n).orElseThrow().codes()).as(n).isEqualTo(q.codes());
                assertThat(sp.manifest().tensors()).filteredOn(e -> e.name().equals(n)).singleElement()
                        .satisfies(e -> assertThat(e.deflated()).extracting(d -> d.payload())
                                .as("deflated payloads of " + n).containsExactly("codes", "indices"));
                float[] v = hf.read(n).toFloatArray();
                int g = q.groups();
                for (int r = 0; r < q.rows(); r++) {
                    for (int c = 0; c < q.cols(); c++) {
                        int k = r * g + c / q.spec().groupSize();
                        float s = q.scales()[k];
                        int z = q.zeroPoints()[k];
                        // independent: the integer on the stored grid nearest to the written value
                        long expect = z + Math.round(v[r * q.cols() + c] / (double) s);
                        assertThat((long) q.codes()[r * q.cols() + c]).as(n + " [" + r + "," + c + "]").isEqualTo(expect);
                        if (v[r * q.cols() + c] == 0f) {
                            zeros++;
                        }
                        elements++;
                    }
                }
                for (int r = 0; r < q.rows(); r++) {
                    for (int c0 = 0; c0 < q.cols(); c0 += 4) {
                        int nonZero = 0;
                        for (int j = 0; j < 4; j++) {
                            if (q.codes()[r * q.cols() + c0 + j] != q.zeroPoints()[r * g + (c0 + j) / q.spec().groupSize()]) {
                                nonZero++;
                            }
                        }
                        assertThat(nonZero).as(n + " row " + r + " group " + c0 / 4).isLessThanOrEqualTo(2);
                    }
                }
            }
        }
        assertThat(quantized).isEqualTo(JobFixtures.TINY.layers() * 7);
        assertThat(cfg.path("sparsity_config").path("global_sparsity").asDouble()).isEqualTo((double) zeros / elements);

        JsonNode report = JobFixtures.report(out);
        assertThat(report.path("storage")).extracting(s -> s.path("format").asText())
                .containsExactly("hf", "sparse", "compressed-tensors");
        try (SparseCheckpoint sp = SparseCheckpoint.open(out.resolve("sparse"))) {
            long sparseBytes = 0;
            long denseBytes = 0;
            for (JsonNode t : report.path("tensors")) {
                String n = t.path("tensor").asText();
                assertThat(t.path("bytes_stored").path("sparse").asLong()).isEqualTo(sp.storedBytes(n));
                assertThat(t.path("bytes_stored").path("hf").asLong()).isEqualTo(t.path("bytes_dense").asLong());
                sparseBytes += sp.storedBytes(n);
                denseBytes += t.path("bytes_dense").asLong();
            }
            assertThat(report.path("storage").get(1).path("stored_bytes").asLong()).isEqualTo(sparseBytes);
            assertThat(report.path("storage").get(1).path("ratio").asDouble()).isEqualTo((double) sparseBytes / denseBytes);
        }
        assertThat(Files.list(out).map(p -> p.getFileName().toString()).filter(f -> !f.startsWith(".")))
                .containsExactlyInAnyOrder("hf", "sparse", "compressed-tensors", "report.json", "report.html",
                        "metrics.parquet");
    }
}
