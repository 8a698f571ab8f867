package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.jobs.commit.LayerStaging;
import io.sparkprune.jobs.tools.RandomLlama;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import scala.Tuple2;

/**
 * {@link GroupSolve#run} with a group's row shards solved concurrently gives the same shard records, staged
 * bytes, metrics and group summaries as one shard after another (CPU backend, the tests' tiny Llama with
 * 16-row shards: up to 8 shards per group, SparseGPT 2:4 and Wanda/magnitude unstructured); a failing shard's
 * exception reaches the caller; {@link GroupSolve#solveAll} returns only when no shard is in flight, starts no
 * shard after a failure and keeps the other failures as suppressed.
 */
class GroupSolveTest {
    @TempDir
    static Path tmp;

    private static Path model;
    private static byte[] config;
    private static Backend cpu;

    @BeforeAll
    static void setUp() throws Exception {
        model = tmp.resolve("model");
        RandomLlama.write(JobFixtures.TINY, model);
        config = Files.readAllBytes(model.resolve("config.json"));
        cpu = CpuBackend.create(2);
    }

    @AfterAll
    static void tearDown() throws Exception {
        cpu.close();
    }

    private static Recipe recipe(Map<String, String> overrides) {
        Path corpus = JobFixtures.writeCorpus(tmp.resolve("data"));
        return JobFixtures.recipe(corpus, "sequential").withOverrides(overrides);
    }

    private static JobContext context(Recipe recipe) {
        return new JobContext(model.toString(), config, recipe, new HadoopConf(new Configuration()), "cpu", 2, 0);
    }

    private static LayerPlan plan(JobContext ctx) {
        ModelAdapter adapter = ModelAdapter.of(ModelConfigs.parse(config, "config.json"));
        return LayerPlan.of(adapter, ctx.checkpoint(), ctx.recipe(), JobFixtures.SHARD_ROWS);
    }

    /** Two partial Hessians of random activations for group gi, the same for the same seed (fresh objects). */
    private static Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> partials(int gi, String group,
                                                                                          int features, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        List<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> ps = new ArrayList<>();
        for (int p = 0; p < 2; p++) {
            HessianAccumulator h = new HessianAccumulator(group, features);
            int tokens = 3 * features;
            float[] x = new float[tokens * features];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            h.add(cpu, x, tokens);
            ps.add(new Tuple2<>(gi, new Tuple2<>(p, h)));
        }
        return ps.iterator();
    }

    private static List<GroupSolve.Result> runLayer(JobContext ctx, LayerPlan plan, String dir, int threads) {
        LayerStaging staging = new LayerStaging(0, tmp.resolve(dir).toUri().toString());
        List<SolveTask> tasks = plan.tasks(0);
        List<String> groups = plan.groups(0);
        List<GroupSolve.Result> out = new ArrayList<>();
        for (int gi = 0; gi < groups.size(); gi++) {
            String g = groups.get(gi);
            int features = tasks.stream().filter(t -> t.group().equals(g)).findFirst().orElseThrow().cols();
            out.add(GroupSolve.run(ctx, staging, tasks, g, gi, 2, partials(gi, g, features, 100 + gi), true,
                    new ExecutorPhases(), threads));
        }
        return out;
    }

    private static void assertSame(List<GroupSolve.Result> serial, List<GroupSolve.Result> concurrent, Path a, Path b)
            throws Exception {
        assertThat(concurrent).hasSameSizeAs(serial);
        int shards = 0;
        for (int gi = 0; gi < serial.size(); gi++) {
            GroupSummary s = serial.get(gi).summary();
            GroupSummary c = concurrent.get(gi).summary();
            assertThat(c.group()).isEqualTo(s.group());
            assertThat(c.calibrationTokens()).isEqualTo(s.calibrationTokens());
            assertThat(c.factored()).isEqualTo(s.factored());
            assertThat(Double.doubleToRawLongBits(c.dampening())).isEqualTo(Double.doubleToRawLongBits(s.dampening()));
            assertThat(c.deadInputs()).isEqualTo(s.deadInputs());
            assertThat(c.inputNorms()).isEqualTo(s.inputNorms());
            List<GroupSolve.Solved> ss = serial.get(gi).solved();
            List<GroupSolve.Solved> cs = concurrent.get(gi).solved();
            assertThat(cs).hasSameSizeAs(ss);
            for (int k = 0; k < ss.size(); k++) {
                GroupSolve.Solved x = ss.get(k);
                GroupSolve.Solved y = cs.get(k);
                assertThat(y.taskIndex()).isEqualTo(x.taskIndex());
                assertThat(y.records()).isEqualTo(x.records()); // names, sizes and SHA-256 of the staged files
                ShardMetrics m = x.metrics();
                ShardMetrics n = y.metrics();
                assertThat(n.tensor()).isEqualTo(m.tensor());
                assertThat(new long[] {n.elements(), n.zeros(), n.patternViolations(), n.nonFinite(), n.gridViolations()})
                        .isEqualTo(new long[] {m.elements(), m.zeros(), m.patternViolations(), m.nonFinite(),
                            m.gridViolations()});
                assertThat(bits(n.errorNumerator(), n.errorDenominator(), n.solverLoss(), n.dampening()))
                        .isEqualTo(bits(m.errorNumerator(), m.errorDenominator(), m.solverLoss(), m.dampening()));
                assertThat(n.rowLoss() == null ? null : bits(n.rowLoss()))
                        .isEqualTo(m.rowLoss() == null ? null : bits(m.rowLoss()));
                assertThat(m.zeros()).isPositive();
                assertThat(m.errorDenominator()).isPositive();
                for (var rec : x.records()) {
                    assertThat(Files.readAllBytes(b.resolve(rec.file()))).isEqualTo(Files.readAllBytes(a.resolve(rec.file())));
                }
                shards++;
            }
            if (ss.size() > 1) { // plan order
                for (int k = 1; k < ss.size(); k++) {
                    assertThat(cs.get(k).taskIndex()).isGreaterThan(cs.get(k - 1).taskIndex());
                }
            }
        }
        assertThat(shards).isGreaterThan(serial.size()); // some group had several shards to solve at once
    }

    private static long[] bits(double... v) {
        return Arrays.stream(v).mapToLong(Double::doubleToRawLongBits).toArray();
    }

    @Test
    void concurrentShardsEqualSerialSparseGpt() throws Exception {
        JobContext ctx = context(recipe(Map.of()));
        LayerPlan plan = plan(ctx);
        List<GroupSolve.Result> serial = runLayer(ctx, plan, "sgpt-serial", 1);
        List<GroupSolve.Result> concurrent = runLayer(ctx, plan, "sgpt-concurrent", 4);
        assertSame(serial, concurrent, tmp.resolve("sgpt-serial"), tmp.resolve("sgpt-concurrent"));
        assertThat(serial.get(0).summary().factored()).isTrue();
        assertThat(serial.get(0).solved().get(0).metrics().rowLoss()).isNotNull();
    }

    @Test
    void concurrentShardsEqualSerialWanda() throws Exception {
        JobContext ctx = context(recipe(Map.of("prune.method", "wanda", "prune.pattern", "unstructured:0.5")));
        LayerPlan plan = plan(ctx);
        List<GroupSolve.Result> serial = runLayer(ctx, plan, "wanda-serial", 1);
        List<GroupSolve.Result> concurrent = runLayer(ctx, plan, "wanda-concurrent", 3);
        assertSame(serial, concurrent, tmp.resolve("wanda-serial"), tmp.resolve("wanda-concurrent"));
        assertThat(serial.get(0).summary().factored()).isFalse();
    }

    @Test
    void aFailingShardFailsTheGroup() {
        JobContext ctx = context(recipe(Map.of()));
        LayerPlan plan = plan(ctx);
        List<SolveTask> tasks = new ArrayList<>(plan.tasks(0));
        String g = plan.groups(0).get(0);
        int victim = -1;
        int seen = 0;
        for (int i = 0; i < tasks.size(); i++) {
            if (tasks.get(i).group().equals(g) && seen++ == 1) {
                victim = i;
            }
        }
        assertThat(victim).as("a group with two shards or more").isNotNegative();
        SolveTask t = tasks.get(victim);
        tasks.set(victim, new SolveTask(t.layer(), "model.layers.0.no_such.weight", t.group(), t.rows(), t.cols(),
                t.dtype(), t.rowStart(), t.rowCount(), t.shardIndex(), t.shardCount()));
        LayerStaging staging = new LayerStaging(0, tmp.resolve("failing").toUri().toString());
        assertThatThrownBy(() -> GroupSolve.run(ctx, staging, tasks, g, 0, 2, partials(0, g, t.cols(), 100), false,
                new ExecutorPhases(), 4)).hasMessageContaining("no_such");
    }

    @Test
    void aStagedFileThatCannotBeWrittenFailsTheGroupNamingTheShard() throws Exception {
        JobContext ctx = context(recipe(Map.of()));
        LayerPlan plan = plan(ctx);
        List<SolveTask> tasks = plan.tasks(0);
        String g = plan.groups(0).get(0);
        int features = tasks.stream().filter(t -> t.group().equals(g)).findFirst().orElseThrow().cols();
        // a regular file where the staging directory should be: every shard's write fails (on the writer
        // thread, while the error is computed) and the group task reports it
        Path blocked = tmp.resolve("blocked-staging");
        java.nio.file.Files.writeString(blocked, "not a directory");
        LayerStaging staging = new LayerStaging(0, blocked.toUri().toString());
        assertThatThrownBy(() -> GroupSolve.run(ctx, staging, tasks, g, 0, 2, partials(0, g, features, 100), false,
                new ExecutorPhases(), 4)).isInstanceOf(java.io.UncheckedIOException.class)
                .hasMessageContaining("cannot write shard");
    }

    @Test
    void stagedShardsAreReadWholeOrHandedOverAndATruncatedOneIsATypedError() throws Exception {
        JobContext ctx = context(recipe(Map.of()));
        SolveTask t = plan(ctx).tasks(0).get(0);
        String name = t.tensor();
        byte[] whole = toBytes(ctx.checkpoint().read(name));
        Path dir = tmp.resolve("staged-read");
        java.nio.file.Files.createDirectories(dir);
        String file = io.sparkprune.jobs.commit.ShardNames.fileName(name, 0, 2);
        String file2 = io.sparkprune.jobs.commit.ShardNames.fileName(name, 1, 2);
        int half = whole.length / 2;
        java.nio.file.Files.write(dir.resolve(file), java.util.Arrays.copyOfRange(whole, 0, half));
        java.nio.file.Files.write(dir.resolve(file2), java.util.Arrays.copyOfRange(whole, half, whole.length));
        String sha = "0".repeat(64);
        List<io.sparkprune.jobs.commit.ShardRecord> records = List.of(
                new io.sparkprune.jobs.commit.ShardRecord(0, name, 0, 2, file, half, sha),
                new io.sparkprune.jobs.commit.ShardRecord(0, name, 1, 2, file2, whole.length - half, sha));
        String staging = dir.toUri().toString();
        // read from the files (two shards concatenated) ...
        assertThat(toBytes(ctx.stagedSource(staging, Map.of(name, records)).read(name))).isEqualTo(whole);
        // ... or handed over by this executor's group task (keyed by the file and its SHA-256)
        byte[] handed = java.util.Arrays.copyOfRange(whole, half, whole.length);
        ExecutorState.offerStagedShard(new org.apache.hadoop.fs.Path(new org.apache.hadoop.fs.Path(staging), file2)
                .toString(), sha, handed);
        java.nio.file.Files.write(dir.resolve(file2), new byte[whole.length - half]); // the file no longer matters
        assertThat(toBytes(ctx.stagedSource(staging, Map.of(name, records)).read(name))).isEqualTo(whole);
        // a shard shorter than its commit record: a typed error naming the tensor, the file and the fix
        java.nio.file.Files.write(dir.resolve(file2), new byte[3]);
        assertThatThrownBy(() -> ctx.stagedSource(staging, Map.of(name, records)).read(name))
                .isInstanceOf(io.sparkprune.pipeline.forward.ModelWeightsException.class)
                .hasMessageContaining(name).hasMessageContaining(file2).hasMessageContaining("run again");
    }

    private static byte[] toBytes(io.sparkprune.kernels.HostTensor t) {
        java.nio.ByteBuffer b = t.data().duplicate();
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    @Test
    void solveAllWaitsForShardsInFlightAndStopsAfterAFailure() {
        int count = 12;
        AtomicIntegerArray started = new AtomicIntegerArray(count);
        AtomicIntegerArray finished = new AtomicIntegerArray(count);
        CountDownLatch failing = new CountDownLatch(1);
        CountDownLatch twoStarted = new CountDownLatch(1);
        Throwable thrown = null;
        try {
            GroupSolve.solveAll(count, 3, k -> {
                started.set(k, 1);
                if (k == 2) {
                    twoStarted.countDown();
                }
                if (k == 1) { // fails once shards 0 and 2 are in flight on the other two threads
                    try {
                        twoStarted.await(30, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    failing.countDown();
                    throw new IllegalStateException("shard 1 failed");
                }
                if (k == 0 || k == 2) { // in flight when shard 1 fails: they finish, and shard 2 fails too
                    try {
                        failing.await(30, TimeUnit.SECONDS);
                        Thread.sleep(50); // still running when the failure is recorded
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    finished.set(k, 1);
                    if (k == 2) {
                        throw new IllegalArgumentException("shard 2 failed");
                    }
                    return;
                }
                finished.set(k, 1);
            });
        } catch (RuntimeException e) {
            thrown = e;
        }
        assertThat(thrown).isNotNull();
        List<String> messages = new ArrayList<>();
        messages.add(thrown.getMessage());
        for (Throwable s : thrown.getSuppressed()) {
            messages.add(s.getMessage());
        }
        assertThat(messages).containsExactlyInAnyOrder("shard 1 failed", "shard 2 failed");
        for (int k = 0; k < count; k++) {
            if (started.get(k) == 1 && k != 1) {
                assertThat(finished.get(k)).as("shard %d finished before solveAll returned", k).isEqualTo(1);
            }
        }
        int startedCount = 0;
        for (int k = 0; k < count; k++) {
            startedCount += started.get(k);
        }
        // shards 0 and 2 were held until shard 1 failed: at most the shards the three threads had taken
        // before then ran (no thread takes a shard after the failure)
        assertThat(startedCount).isLessThan(count);
    }

    @Test
    void solveAllRunsEveryShardOnce() {
        int count = 40;
        AtomicIntegerArray runs = new AtomicIntegerArray(count);
        GroupSolve.solveAll(count, 4, k -> runs.incrementAndGet(k));
        for (int k = 0; k < count; k++) {
            assertThat(runs.get(k)).isEqualTo(1);
        }
    }
}
