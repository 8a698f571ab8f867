package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.jobs.cli.SparkPruneCli;
import io.sparkprune.jobs.cluster.StandaloneCluster;
import io.sparkprune.jobs.cluster.StandaloneClusterExtension;
import io.sparkprune.jobs.cluster.Submission;
import io.sparkprune.jobs.commit.CommitLog;
import io.sparkprune.jobs.tools.RandomLlama;
import io.sparkprune.kernels.DType;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The prune job submitted with {@code SparkSubmit} to a real standalone cluster of 2 Workers × 1
 * core: its output equals the local-mode output bit for bit; so does the output of a run that loses
 * an executor after layer 0 is committed, and of a run whose driver is killed after layer 1 is
 * committed and that is then resumed; and a driver whose heap is smaller than the checkpoint's
 * weights prunes it (the driver holds metadata only).
 *
 * <p>Both runs use the same calibration partitioning ({@code spark.sparkprune.calibration.partitions}
 * 4, holding 4 batches of 4096 tokens) and row shards of 16 rows (2 to 8 per weight), so each layer's
 * Hessians are computed on both Workers and its solve tasks run on both.
 */
@Tag("cluster")
class PruneJobClusterTest {
    private static final Duration DRIVER_TIMEOUT = Duration.ofSeconds(400);
    /** 3 layers, otherwise {@link JobFixtures#TINY}. */
    private static final RandomLlama.Spec MODEL = new RandomLlama.Spec(64, 3, 4, 2, 128, 256, DType.BF16, 5, 60_000, false,
            2048);
    private static final String MAIN = SparkPruneCli.class.getName();

    @RegisterExtension
    static final StandaloneClusterExtension CLUSTER = new StandaloneClusterExtension(
            StandaloneCluster.builder().workers(2).coresPerWorker(1).executorMemory("1g"));

    @TempDir
    static Path tmp;

    private static Path model;
    private static Path corpus;
    private static Path localOut;

    @BeforeAll
    static void pruneInLocalMode() {
        model = tmp.resolve("model");
        RandomLlama.write(MODEL, model);
        corpus = JobFixtures.writeCorpus(tmp.resolve("data"));
        localOut = tmp.resolve("local");
        List<String> args = new ArrayList<>(pruneArgs(model, localOut));
        args.addAll(List.of("--master", "local[2]", "--conf", "spark.ui.enabled=false", "--conf",
                "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1"));
        JobFixtures.sparkPruneConf().forEach((k, v) -> args.addAll(List.of("--conf", k + "=" + v)));
        CommandLine r = cli(args);
        assertThat(r.code()).as(r.err()).isZero();
    }

    private record CommandLine(int code, String out, String err) {
    }

    private static CommandLine cli(List<String> args) {
        picocli.CommandLine cl = SparkPruneCli.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        return new CommandLine(cl.execute(args.toArray(new String[0])), out.toString(), err.toString());
    }

    /** {@code prune <model> -o <out>}, 128 calibration windows of 128 tokens from the corpus, 2:4, sequential. */
    private static List<String> pruneArgs(Path modelDir, Path out) {
        return List.of("prune", modelDir.toString(), "-o", out.toString(), "--pattern", "2:4", "--calib",
                corpus.toString(), "--samples", "128", "--seq-len", "128", "--mode", "sequential");
    }

    /**
     * Submits {@link #pruneArgs} to the cluster. Its executors run the CPU backend with one thread
     * (their one core); the local run used the default, all cores of this machine: the kernels'
     * results do not depend on the thread count.
     */
    private static Submission submit(Path out, String... extra) throws IOException {
        List<String> args = new ArrayList<>(pruneArgs(model, out));
        args.addAll(List.of(extra));
        Map<String, String> conf = new LinkedHashMap<>(JobFixtures.sparkPruneConf());
        conf.put("spark.sparkprune.threads", "1");
        return CLUSTER.cluster().submitAsync(MAIN, conf, args);
    }

    /** Every file but the report files is byte-identical; report.json agrees but for timings and paths. */
    private static void assertSameOutput(Path expected, Path actual) {
        TreeMap<String, byte[]> a = JobFixtures.files(expected);
        TreeMap<String, byte[]> b = JobFixtures.files(actual);
        a.keySet().removeIf(k -> k.startsWith("."));
        b.keySet().removeIf(k -> k.startsWith("."));
        assertThat(b.keySet()).isEqualTo(a.keySet());
        assertThat(a.keySet()).contains("config.json", "tokenizer.json", ShardedCheckpoint.INDEX_FILE, "report.json");
        for (Map.Entry<String, byte[]> e : a.entrySet()) {
            if (!JobFixtures.REPORT_FILES.contains(e.getKey())) {
                assertThat(b.get(e.getKey())).as("%s of %s", e.getKey(), actual).isEqualTo(e.getValue());
            }
        }
        JsonNode ra = JobFixtures.report(expected);
        JsonNode rb = JobFixtures.report(actual);
        assertThat(rb.get("recipe")).isEqualTo(ra.get("recipe"));
        assertThat(rb.get("calibration")).isEqualTo(ra.get("calibration"));
        assertThat(withoutSeconds(rb.get("tensors"))).isEqualTo(withoutSeconds(ra.get("tensors")));
        assertThat(rb.get("summary")).isEqualTo(ra.get("summary"));
        assertThat(rb.get("quality")).isEqualTo(ra.get("quality"));
        assertThat(rb.at("/summary/all_patterns_verified").asBoolean()).isTrue();
    }

    private static JsonNode withoutSeconds(JsonNode tensors) {
        JsonNode copy = tensors.deepCopy();
        copy.forEach(t -> ((ObjectNode) t).remove(java.util.List.of("seconds", "backend"))); // run facts, not results
        return copy;
    }

    private static Path marker(Path out, int layer) {
        return out.resolve(CommitLog.STAGING).resolve(String.format("layer-%05d", layer)).resolve(CommitLog.MARKER);
    }

    private static void awaitFile(Path file, Submission driver, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!Files.exists(file)) {
            if (!driver.process().isAlive()) {
                throw new AssertionError("driver exited before " + file + " appeared:\n" + driver.output());
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError(file + " did not appear within " + timeout.toSeconds() + " s:\n" + driver.output());
            }
            Thread.sleep(20);
        }
    }

    /** Workers whose executors logged finished tasks since {@code since}. */
    private static Set<Integer> workersThatRanTasks(Instant since) throws IOException {
        StandaloneCluster cluster = CLUSTER.cluster();
        Set<Integer> workers = new HashSet<>();
        for (int i = 0; i < cluster.workerDirs().size(); i++) {
            try (Stream<Path> s = Files.walk(cluster.workerDirs().get(i))) {
                for (Path p : s.filter(f -> f.getFileName().toString().equals("stderr")).toList()) {
                    FileTime created = (FileTime) Files.getAttribute(p, "creationTime");
                    FileTime modified = Files.getLastModifiedTime(p);
                    if (modified.toInstant().isAfter(since) && Files.readString(p).contains("Finished task")
                            && !created.toInstant().isBefore(since.minusSeconds(1))) {
                        workers.add(i);
                    }
                }
            }
        }
        return workers;
    }

    @Test
    void submittedJobWritesTheLocalModeOutputBitForBit() throws Exception {
        Path out = tmp.resolve("cluster");
        Instant start = Instant.now();
        Submission.Result r = submit(out).waitFor(DRIVER_TIMEOUT);
        assertThat(r.exitCode()).as(r.output()).isZero();
        assertThat(r.output()).contains("pruned checkpoint: " + out);
        assertSameOutput(localOut, out);
        JsonNode report = JobFixtures.report(out);
        assertThat(report.at("/run/spark_master").asText()).isEqualTo(CLUSTER.cluster().masterUrl());
        assertThat(report.at("/run/resumed").asBoolean()).isFalse();
        assertThat(report.at("/run/backend").asText()).startsWith("cpu(1 threads");
        assertThat(workersThatRanTasks(start)).as("workers whose executors ran tasks").containsExactlyInAnyOrder(0, 1);
        printTimings("2-worker cluster", report);
        printTimings("local[2]", JobFixtures.report(localOut));
    }

    private static void printTimings(String where, JsonNode report) {
        System.out.println("timings " + where + ": " + report.at("/run/seconds").asDouble() + " s, stages "
                + report.at("/run/stage_seconds"));
    }

    @Test
    void losingAnExecutorAfterLayerZeroChangesNothing() throws Exception {
        Path out = tmp.resolve("executor-lost");
        Submission driver = submit(out);
        awaitFile(marker(out, 0), driver, DRIVER_TIMEOUT);
        long killed = CLUSTER.cluster().killOneExecutor();
        Submission.Result r = driver.waitFor(DRIVER_TIMEOUT);
        assertThat(r.exitCode()).as(r.output()).isZero();
        assertThat(r.output()).as("the driver noticed executor " + killed + " was lost").containsPattern(
                "(?i)lost executor|executor .* (removed|exited)|ExecutorLostFailure");
        assertSameOutput(localOut, out);
    }

    @Test
    void killedDriverResumesAfterLayerOneWithIdenticalOutput() throws Exception {
        Path out = tmp.resolve("driver-killed");
        Submission first = submit(out);
        awaitFile(marker(out, 1), first, DRIVER_TIMEOUT);
        first.kill();
        assertThat(first.process().isAlive()).isFalse();
        assertThat(out.resolve("report.json")).doesNotExist();
        int committed = 0;
        while (Files.exists(marker(out, committed))) {
            committed++;
        }
        System.out.println("driver killed with " + committed + " of " + MODEL.layers() + " layers committed");
        assertThat(committed).isGreaterThanOrEqualTo(2);

        Submission.Result r = submit(out, "--resume").waitFor(DRIVER_TIMEOUT);
        assertThat(r.exitCode()).as(r.output()).isZero();
        assertSameOutput(localOut, out);
        JsonNode report = JobFixtures.report(out);
        assertThat(report.at("/run/resumed").asBoolean()).isTrue();
        // the committed layers' forward passes are replayed when a layer was left to prune
        assertThat(report.at("/run/stage_seconds").has("resume_replay")).as("replayed committed layers")
                .isEqualTo(committed < MODEL.layers());
        assertThat(out.resolve(CommitLog.STAGING)).doesNotExist();
    }

    @Test
    void killedDriverAfterTheLastCommitResumesWithoutReplayingAnyLayer() throws Exception {
        Path out = tmp.resolve("driver-killed-late");
        Submission first = submit(out);
        awaitFile(marker(out, MODEL.layers() - 1), first, DRIVER_TIMEOUT);
        first.kill(); // assembling or evaluating: every layer is committed, no report yet
        assertThat(first.process().isAlive()).isFalse();
        assertThat(out.resolve("report.json")).doesNotExist();

        Submission.Result r = submit(out, "--resume").waitFor(DRIVER_TIMEOUT);
        assertThat(r.exitCode()).as(r.output()).isZero();
        assertSameOutput(localOut, out);
        JsonNode report = JobFixtures.report(out);
        assertThat(report.at("/run/resumed").asBoolean()).isTrue();
        assertThat(report.at("/run/stage_seconds").has("resume_replay")).as("no forward pass replayed: nothing reads it")
                .isFalse();
        assertThat(out.resolve(CommitLog.STAGING)).doesNotExist();
    }

    @Test
    void driverWithLessHeapThanTheWeightsPrunesTheCheckpoint() throws Exception {
        // 400k x 64 fp32 embedding and head: 205 MB of weights, 128 MiB of driver heap
        RandomLlama.Spec spec = new RandomLlama.Spec(64, 1, 4, 2, 128, 400_000, DType.F32, 9, 120_000_000, false, 2048);
        Path big = tmp.resolve("big-model");
        RandomLlama.Summary s = RandomLlama.write(spec, big);
        long driverHeap = 128L << 20;
        assertThat(s.tensorBytes()).isGreaterThan(driverHeap + (64L << 20));
        Path out = tmp.resolve("big-out");
        Map<String, String> conf = new LinkedHashMap<>(JobFixtures.sparkPruneConf());
        conf.put("spark.testing.reservedMemory", "16777216");
        List<String> args = List.of("prune", big.toString(), "-o", out.toString(), "--pattern", "2:4", "--calib",
                corpus.toString(), "--samples", "8", "--seq-len", "32", "--eval-samples", "4");
        Submission.Result r = CLUSTER.cluster().submitAsync(MAIN, conf, args, "128m").waitFor(DRIVER_TIMEOUT);
        assertThat(r.exitCode()).as(r.output()).isZero();

        JsonNode report = JobFixtures.report(out);
        assertThat(report.at("/summary/target_tensors").asInt()).isEqualTo(7);
        assertThat(report.at("/summary/all_patterns_verified").asBoolean()).isTrue();
        assertThat(report.at("/quality/perplexity_pruned").asDouble()).isPositive();
        try (ShardedCheckpoint in = ShardedCheckpoint.open(big); ShardedCheckpoint pruned = ShardedCheckpoint.open(out)) {
            assertThat(pruned.files()).containsExactlyElementsOf(in.files());
            for (String name : in.tensorNames()) {
                TensorInfo t = in.info(name);
                boolean target = name.startsWith("model.layers.") && name.endsWith("_proj.weight");
                if (target) {
                    float[] p = pruned.read(name).toFloatArray();
                    for (int g = 0; g < p.length; g += 4) {
                        int zeros = (p[g] == 0f ? 1 : 0) + (p[g + 1] == 0f ? 1 : 0) + (p[g + 2] == 0f ? 1 : 0)
                                + (p[g + 3] == 0f ? 1 : 0);
                        assertThat(zeros).as("%s group at %d", name, g).isGreaterThanOrEqualTo(2);
                    }
                } else {
                    assertThat(sha256(pruned, name, t.byteLength())).as(name).isEqualTo(sha256(in, name, t.byteLength()));
                }
            }
        }
    }

    private static String sha256(ShardedCheckpoint ck, String name, long length) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        for (long off = 0; off < length; off += 8 << 20) {
            ByteBuffer b = ck.readBytes(name, off, (int) Math.min(8 << 20, length - off));
            md.update(b);
        }
        return java.util.HexFormat.of().formatHex(md.digest());
    }
}
