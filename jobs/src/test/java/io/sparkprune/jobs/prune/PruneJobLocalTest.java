package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.jobs.tools.RandomLlama;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.safetensors.SafetensorsFile;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The prune job in Spark local mode on a tiny generated Llama (bf16, sharded into 4 files), 2:4,
 * in both pipeline modes: the output is the input checkpoint with exactly its layout, every
 * target 2:4 in every row (checked here, not by the job), every other tensor byte for byte the
 * input's, a report with per-tensor metrics and perplexity before/after; runs are deterministic;
 * an existing output is refused.
 */
class PruneJobLocalTest {
    private static final Pattern LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\.");

    @TempDir
    static Path tmp;

    private static SparkSession spark;
    private static Path model;
    private static Path corpus;
    private static Path sequential;
    private static Path independent;

    @BeforeAll
    static void prune() {
        model = tmp.resolve("model");
        RandomLlama.write(JobFixtures.TINY, model);
        corpus = JobFixtures.writeCorpus(tmp.resolve("data"));
        spark = JobFixtures.localSession();
        sequential = run("sequential", "out-seq");
        independent = run("independent", "out-ind");
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    private static Path run(String mode, String dir) {
        Path out = tmp.resolve(dir);
        // the independent run also scores quality with TF32 forward passes (evaluation.forward_precision)
        io.sparkprune.pipeline.recipe.Recipe recipe = JobFixtures.recipe(corpus, mode);
        if (mode.equals("independent")) {
            recipe = recipe.withOverrides(java.util.Map.of("evaluation.forward_precision", "tf32"));
        }
        PruneJob.run(spark, new PruneJob.Request(model.toString(), out.toString(), recipe, false));
        return out;
    }

    @Test
    void theQualityCheckOnTheCommittedShardsMatchesTheWrittenCheckpoint() {
        // the job scores the pruned model from its committed shards while it assembles the output
        // (JobContext.committedSource, memory-mapped where a tensor is one shard); validate reads the
        // written checkpoint: the same bytes, so the same perplexities
        for (Path out : List.of(sequential, independent)) {
            JsonNode job = JobFixtures.report(out);
            com.fasterxml.jackson.databind.node.ObjectNode val = ValidateJob.run(spark, new ValidateJob.Request(
                    model.toString(), out.toString(), null, null, java.util.Map.of()));
            for (String k : List.of("perplexity_dense", "perplexity_pruned", "windows")) {
                assertThat(val.at("/quality/" + k).asDouble()).as(out + " " + k)
                        .isEqualTo(job.at("/quality/" + k).asDouble());
            }
            assertThat(job.at("/run/stage_seconds").fieldNames()).toIterable().containsSubsequence("assemble", "evaluate");
        }
    }

    /** Non-hidden files of a directory (Hadoop's local file system adds .crc files beside them). */
    private static TreeMap<String, byte[]> visibleFiles(Path dir) {
        TreeMap<String, byte[]> m = JobFixtures.files(dir);
        m.keySet().removeIf(k -> k.startsWith("."));
        return m;
    }

    private static int layerOf(String tensor) {
        Matcher m = LAYER.matcher(tensor);
        return m.lookingAt() ? Integer.parseInt(m.group(1)) : -1;
    }

    private static boolean isTarget(String tensor) {
        return layerOf(tensor) >= 0 && tensor.endsWith("_proj.weight");
    }

    @Test
    void outputIsTheInputCheckpointWithPrunedTargetsInBothModes() throws Exception {
        for (Path out : List.of(sequential, independent)) {
            TreeMap<String, byte[]> in = visibleFiles(model);
            TreeMap<String, byte[]> got = visibleFiles(out);
            List<String> expectedNames = new ArrayList<>(in.keySet());
            expectedNames.addAll(JobFixtures.REPORT_FILES);
            assertThat(got.keySet()).as(out.toString()).containsExactlyInAnyOrderElementsOf(expectedNames);
            assertThat(in.keySet()).contains(ShardedCheckpoint.INDEX_FILE, "model-00004-of-00004.safetensors");
            for (String f : List.of("tokenizer.json", ShardedCheckpoint.INDEX_FILE)) {
                assertThat(got.get(f)).as(f).isEqualTo(in.get(f));
            }
            // config.json: the input's plus the sparsity_config block (format dense, 2:4)
            ObjectNode cfg = (ObjectNode) new com.fasterxml.jackson.databind.ObjectMapper().readTree(got.get("config.json"));
            JsonNode block = cfg.remove("sparsity_config");
            assertThat(cfg).isEqualTo(new com.fasterxml.jackson.databind.ObjectMapper().readTree(in.get("config.json")));
            assertThat(block.path("format").asText()).isEqualTo("dense");
            assertThat(block.path("sparsity_structure").asText()).isEqualTo("2:4");
            assertThat(block.path("global_sparsity").asDouble()).isEqualTo(0.5);
            assertThat(out.resolve("_staging")).doesNotExist();

            int targets = 0;
            try (ShardedCheckpoint dense = ShardedCheckpoint.open(model); ShardedCheckpoint pruned = ShardedCheckpoint.open(out)) {
                assertThat(pruned.files()).containsExactlyElementsOf(dense.files());
                for (String file : dense.files()) {
                    SafetensorsFile a = dense.shard(file);
                    SafetensorsFile b = pruned.shard(file);
                    assertThat(b.metadata()).isEqualTo(a.metadata());
                    assertThat(b.tensors()).extracting(TensorInfo::name).containsExactlyElementsOf(
                            a.tensors().stream().map(TensorInfo::name).toList());
                    for (TensorInfo t : a.tensors()) {
                        TensorInfo u = b.info(t.name());
                        assertThat(u.dtype()).as(t.name()).isEqualTo(t.dtype());
                        assertThat(u.shape()).as(t.name()).isEqualTo(t.shape());
                        byte[] before = JobFixtures.rawBytes(dense, t.name());
                        byte[] after = JobFixtures.rawBytes(pruned, t.name());
                        if (!isTarget(t.name())) {
                            assertThat(after).as("untouched " + t.name()).isEqualTo(before);
                            continue;
                        }
                        targets++;
                        float[] w = dense.read(t.name()).toFloatArray();
                        float[] p = pruned.read(t.name()).toFloatArray();
                        int rows = (int) t.shape()[0];
                        int cols = (int) t.shape()[1];
                        long changedKept = 0;
                        long kept = 0;
                        for (int r = 0; r < rows; r++) {
                            for (int g = 0; g < cols; g += 4) {
                                int zeros = 0;
                                for (int j = g; j < g + 4; j++) {
                                    float v = p[r * cols + j];
                                    if (v == 0f) {
                                        zeros++;
                                    } else {
                                        kept++;
                                        if (v != w[r * cols + j]) {
                                            changedKept++;
                                        }
                                    }
                                }
                                assertThat(zeros).as("zeros in %s row %d columns %d..%d", t.name(), r, g, g + 3)
                                        .isGreaterThanOrEqualTo(2);
                            }
                        }
                        // SparseGPT updates the kept weights (the OBS step), unlike magnitude pruning
                        assertThat(changedKept).as("updated kept weights of " + t.name()).isGreaterThan(kept / 2);
                    }
                }
            }
            assertThat(targets).isEqualTo(14);
        }
    }

    @Test
    void reportHasPerTensorMetricsAndPerplexityBeforeAndAfter() {
        for (Path out : List.of(sequential, independent)) {
            JsonNode r = JobFixtures.report(out);
            assertThat(r.get("format").asText()).isEqualTo("sparkprune.report.v3");
            assertThat(r.at("/recipe/prune/pipeline").asText()).isEqualTo(out == sequential ? "sequential" : "independent");
            assertThat(r.at("/run/resumed").asBoolean()).isFalse();
            assertThat(r.at("/calibration/sequences").asInt()).isEqualTo(8);
            assertThat(r.at("/calibration/tokens").asInt()).isEqualTo(256);
            JsonNode tensors = r.get("tensors");
            assertThat(tensors).hasSize(14);
            List<String> names = new ArrayList<>();
            for (JsonNode t : tensors) {
                String name = t.get("tensor").asText();
                names.add(name);
                assertThat(t.get("layer").asInt()).isEqualTo(layerOf(name));
                assertThat(t.get("sparsity").asDouble()).as(name).isEqualTo(0.5);
                assertThat(t.get("zeros").asLong()).isEqualTo(t.get("elements").asLong() / 2);
                assertThat(t.get("elements").asLong()).isEqualTo(t.get("rows").asLong() * t.get("cols").asLong());
                assertThat(t.get("pattern").asText()).isEqualTo("2:4");
                assertThat(t.get("pattern_verified").asBoolean()).as(name).isTrue();
                assertThat(t.get("all_finite").asBoolean()).isTrue();
                assertThat(t.get("dtype").asText()).isEqualTo("BF16");
                assertThat(t.get("relative_reconstruction_error").asDouble()).as(name).isStrictlyBetween(0.0, 1.0);
                assertThat(t.get("dampening").asDouble()).isEqualTo(0.01);
                assertThat(t.get("calibration_tokens").asLong()).isEqualTo(256);
                assertThat(t.get("shards").asInt()).isEqualTo((t.get("rows").asInt() + JobFixtures.SHARD_ROWS - 1)
                        / JobFixtures.SHARD_ROWS);
            }
            assertThat(names).doesNotHaveDuplicates().allMatch(PruneJobLocalTest::isTarget);
            assertThat(r.at("/summary/target_sparsity").asDouble()).isEqualTo(0.5);
            assertThat(r.at("/summary/all_patterns_verified").asBoolean()).isTrue();
            JsonNode q = r.get("quality");
            assertThat(q.get("metric").asText()).isEqualTo("perplexity");
            assertThat(q.get("forward_precision").asText()).isEqualTo(out == sequential ? "fp32" : "tf32");
            assertThat(r.at("/recipe/evaluation/forward_precision").asText()).isEqualTo(q.get("forward_precision").asText());
            assertThat(q.get("windows").asInt()).isPositive();
            double dense = q.get("perplexity_dense").asDouble();
            double pruned = q.get("perplexity_pruned").asDouble();
            // a random model is close to uniform over its 256 byte ids
            assertThat(dense).isBetween(200.0, 320.0);
            assertThat(pruned).isBetween(200.0, 320.0).isNotEqualTo(dense);
            assertThat(q.get("perplexity_increase").asDouble()).isCloseTo(pruned / dense - 1, org.assertj.core.data.Offset.offset(1e-12));
            assertThat(r.at("/run/stage_seconds/solve").asDouble()).isPositive();
            // every phase of the three per-layer stages was timed on the executors
            JsonNode ex = r.at("/run/executor_seconds");
            assertThat(ex.fieldNames()).toIterable().contains("hessians.weights", "hessians.forward", "hessians.flush",
                    "hessians.store", "group.read", "group.read_and_reduce", "group.factor",
                    "solve.read_weights", "solve.prune", "solve.measure", "solve.error", "solve.write", "forward.weights",
                    "forward.compute", "warmup.backend", "warmup.global_weights", "calibration.embed");
            ex.fields().forEachRemaining(e -> assertThat(e.getValue().asDouble()).as(e.getKey()).isPositive());
            // the shuffle read happens inside the group's read-and-reduce
            assertThat(ex.get("group.read").asDouble()).isLessThanOrEqualTo(ex.get("group.read_and_reduce").asDouble());
        }
    }

    @Test
    void modesAgreeOnLayerZeroAndDifferAfterIt() throws Exception {
        try (ShardedCheckpoint s = ShardedCheckpoint.open(sequential); ShardedCheckpoint i = ShardedCheckpoint.open(independent)) {
            for (String name : s.tensorNames()) {
                byte[] a = JobFixtures.rawBytes(s, name);
                byte[] b = JobFixtures.rawBytes(i, name);
                if (isTarget(name) && layerOf(name) >= 1) {
                    assertThat(a).as(name).isNotEqualTo(b);
                } else {
                    assertThat(a).as(name).isEqualTo(b);
                }
            }
        }
        // the metrics of layer 0 agree too (same Hessians); "seconds" are timings
        JsonNode rs = JobFixtures.report(sequential).get("tensors");
        JsonNode ri = JobFixtures.report(independent).get("tensors");
        for (int k = 0; k < rs.size(); k++) {
            if (rs.get(k).get("layer").asInt() == 0) {
                ObjectNode a = rs.get(k).deepCopy();
                ObjectNode b = ri.get(k).deepCopy();
                a.remove("seconds");
                b.remove("seconds");
                assertThat(a).isEqualTo(b);
            }
        }
    }

    @Test
    void aSecondRunWritesByteIdenticalFiles() {
        Path again = run("sequential", "out-seq-again");
        assertSameFilesButReports(sequential, again);
        JsonNode a = JobFixtures.report(sequential);
        JsonNode b = JobFixtures.report(again);
        assertThat(b.get("quality")).isEqualTo(a.get("quality"));
        assertThat(b.get("calibration")).isEqualTo(a.get("calibration"));
        assertThat(withoutSeconds(b.get("tensors"))).isEqualTo(withoutSeconds(a.get("tensors")));
    }

    /** Two outputs hold the same files, byte for byte, except the reports (which carry timings). */
    private static void assertSameFilesButReports(Path a, Path b) {
        TreeMap<String, byte[]> first = visibleFiles(a);
        TreeMap<String, byte[]> second = visibleFiles(b);
        assertThat(second.keySet()).isEqualTo(first.keySet());
        for (Map.Entry<String, byte[]> e : first.entrySet()) {
            if (!JobFixtures.REPORT_FILES.contains(e.getKey())) {
                assertThat(second.get(e.getKey())).as(e.getKey()).isEqualTo(e.getValue());
            }
        }
    }

    private static JsonNode withoutSeconds(JsonNode tensors) {
        JsonNode copy = tensors.deepCopy();
        copy.forEach(t -> ((ObjectNode) t).remove("seconds"));
        return copy;
    }

    @Test
    void smallerCalibrationBatchesGiveTheSameMasks() throws Exception {
        // 8 sequences of 32 tokens: one batch by default, eight with a 32-token budget. Only the order of
        // the fp64 Hessian sums changes, so the masks must be the same and the weights nearly so.
        org.apache.spark.SparkConf sc = spark.sparkContext().conf();
        sc.set("spark.sparkprune.calibration.batchTokens", "32");
        Path small;
        try {
            small = run("sequential", "out-seq-batch32");
        } finally {
            sc.remove("spark.sparkprune.calibration.batchTokens");
        }
        long same = 0;
        long total = 0;
        double worst = 0;
        try (ShardedCheckpoint a = ShardedCheckpoint.open(sequential); ShardedCheckpoint b = ShardedCheckpoint.open(small)) {
            for (String file : a.files()) {
                for (TensorInfo t : a.shard(file).tensors()) {
                    if (!isTarget(t.name())) {
                        continue;
                    }
                    float[] x = a.read(t.name()).toFloatArray();
                    float[] y = b.read(t.name()).toFloatArray();
                    double num = 0;
                    double den = 0;
                    for (int i = 0; i < x.length; i++) {
                        same += (x[i] == 0f) == (y[i] == 0f) ? 1 : 0;
                        num += (double) (x[i] - y[i]) * (x[i] - y[i]);
                        den += (double) x[i] * x[i];
                    }
                    total += x.length;
                    worst = Math.max(worst, Math.sqrt(num / Math.max(den, 1e-300)));
                }
            }
        }
        assertThat(total).isPositive();
        assertThat((double) same / total).as("mask agreement").isEqualTo(1.0);
        assertThat(worst).as("worst relative weight difference").isLessThan(1e-4);
        assertThat(JobFixtures.report(small).path("quality").path("perplexity_pruned").asDouble())
                .isCloseTo(JobFixtures.report(sequential).path("quality").path("perplexity_pruned").asDouble(),
                        org.assertj.core.data.Percentage.withPercentage(0.01));
    }

    @Test
    void moreCalibrationPartitionsThanTheFanInReduceThroughTreeLevelsDeterministically() throws Exception {
        // 8 one-sequence batches over 6 partitions: the partial Hessians go through one tree level of
        // fan-in 4 (a shuffle of its own) before the group tasks, which then merge 2 node sums each
        org.apache.spark.SparkConf sc = spark.sparkContext().conf();
        sc.set("spark.sparkprune.calibration.batchTokens", "32");
        sc.set("spark.sparkprune.calibration.partitions", "6");
        Path first;
        Path second;
        try {
            first = run("sequential", "out-seq-p6");
            second = run("sequential", "out-seq-p6-again");
        } finally {
            sc.remove("spark.sparkprune.calibration.batchTokens");
            sc.set("spark.sparkprune.calibration.partitions", Integer.toString(JobFixtures.PARTITIONS));
        }
        assertSameFilesButReports(first, second);
        // the same calibration data in another summation order: the same masks as the default run
        long same = 0;
        long total = 0;
        try (ShardedCheckpoint x = ShardedCheckpoint.open(sequential); ShardedCheckpoint y = ShardedCheckpoint.open(first)) {
            for (String file : x.files()) {
                for (TensorInfo t : x.shard(file).tensors()) {
                    if (isTarget(t.name())) {
                        float[] u = x.read(t.name()).toFloatArray();
                        float[] v = y.read(t.name()).toFloatArray();
                        for (int i = 0; i < u.length; i++) {
                            same += (u[i] == 0f) == (v[i] == 0f) ? 1 : 0;
                        }
                        total += u.length;
                    }
                }
            }
        }
        assertThat(total).isPositive();
        assertThat((double) same / total).as("mask agreement with the 4-partition run").isEqualTo(1.0);
    }

    @Test
    void anExistingOutputIsRefusedWithoutResumeAndLeftAsItWas() throws Exception {
        TreeMap<String, byte[]> before = JobFixtures.files(sequential);
        assertThatThrownBy(() -> run("sequential", "out-seq"))
                .isInstanceOf(OutputExistsException.class).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining(sequential.toString()).hasMessageContaining("config.json")
                .hasMessageContaining("--resume");
        TreeMap<String, byte[]> after = JobFixtures.files(sequential);
        assertThat(after.keySet()).isEqualTo(before.keySet());
        before.forEach((k, v) -> assertThat(after.get(k)).as(k).isEqualTo(v));
        // an empty directory is fine
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        assertThat(Files.list(empty)).isEmpty();
    }
}
