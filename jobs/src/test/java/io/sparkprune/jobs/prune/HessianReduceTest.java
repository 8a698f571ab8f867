package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link HessianReduce}'s order against plain Java merges: with at most {@link HessianReduce#FAN_IN}
 * partitions the in-order sum of the partials; with more, the fan-in tree's order (the order of the
 * driver-side Spark tree that the group tasks replaced; commit 18fee53 checked the two equal bit for
 * bit). Through {@link HessianReduce.TreeOrder} in any arrival order, and through the prune job's
 * path: partials kept in the block store by {@link GroupPartials} (one pass per partition, a lost
 * block recomputed through its pass), reduced by {@link GroupSolve#reduce} in each group's task. All
 * bit for bit, with partials whose values make the order matter.
 */
class HessianReduceTest {
    private static SparkSession spark;
    private static CpuBackend cpu;

    @BeforeAll
    static void start() {
        spark = JobFixtures.localSession();
        cpu = CpuBackend.create(1);
    }

    @AfterAll
    static void stop() {
        spark.stop();
        cpu.close();
    }

    /** Partition k's partials: two groups (5 and 3 features) over rows drawn from seed k at very different scales. */
    private static List<HessianAccumulator> partial(int k) {
        SplittableRandom r = new SplittableRandom(1000 + k);
        List<HessianAccumulator> res = new ArrayList<>();
        for (int n : new int[] {5, 3}) {
            HessianAccumulator h = new HessianAccumulator("g" + n, n);
            int rows = 1 + r.nextInt(7);
            float[] x = new float[rows * n];
            double scale = Math.pow(10, r.nextInt(-3, 4)); // sums of mixed magnitudes: order changes the bits
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (r.nextGaussian() * scale);
            }
            h.add(cpu, x, rows);
            res.add(h);
        }
        return res;
    }

    private static List<HessianAccumulator> inOrder(List<List<HessianAccumulator>> parts) {
        List<HessianAccumulator> acc = new ArrayList<>();
        for (HessianAccumulator h : parts.get(0)) {
            acc.add(new HessianAccumulator(h.name(), h.features()).merge(h));
        }
        for (int p = 1; p < parts.size(); p++) {
            for (int i = 0; i < acc.size(); i++) {
                acc.get(i).merge(parts.get(p).get(i));
            }
        }
        return acc;
    }

    /** The fan-in tree over the partials, as plain merges: nodes in index order, level by level, the root copied. */
    private static List<HessianAccumulator> tree(List<List<HessianAccumulator>> parts) {
        if (parts.size() <= HessianReduce.FAN_IN) {
            return inOrder(parts);
        }
        List<List<HessianAccumulator>> level = parts;
        while (level.size() > 1) {
            List<List<HessianAccumulator>> next = new ArrayList<>();
            for (int k = 0; k < level.size(); k += HessianReduce.FAN_IN) {
                next.add(inOrder(level.subList(k, Math.min(level.size(), k + HessianReduce.FAN_IN))));
            }
            level = next;
        }
        return inOrder(level);
    }

    /**
     * The prune job's path: each partition's pass yields its groups' partials, kept in the block store
     * ({@link GroupPartials}); one reduce task per group. Optionally drops one block after the passes ran
     * (as a lost executor would) before the group tasks read them.
     *
     * @param dropPartition the partition whose group-1 block is dropped, or −1
     * @param passesRun counts the passes run
     * @return the group sums
     */
    private static List<HessianAccumulator> viaGroupPartials(int partitions, int dropPartition,
                                                          org.apache.spark.util.LongAccumulator passesRun) {
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        List<Integer> ids = IntStream.range(0, partitions).boxed().toList();
        int groups = partial(0).size();
        org.apache.spark.api.java.JavaRDD<HessianAccumulator[]> passes = jsc.parallelize(ids, partitions)
                .mapPartitions(it -> {
                    int k = it.next();
                    passesRun.add(1);
                    return List.<HessianAccumulator[]>of(partial(k).toArray(new HessianAccumulator[0])).iterator();
                });
        GroupPartials exchange = new GroupPartials(passes.rdd(), groups,
                org.apache.spark.storage.StorageLevel.MEMORY_AND_DISK());
        try {
            exchange.materialize(spark.sparkContext());
            assertThat(passesRun.value()).as("one pass per partition fills all its groups' blocks").isEqualTo(partitions);
            int id = exchange.blocks().id();
            // every block is known to the driver's block manager master (asked directly: Spark's storage info
            // comes from its status store, which the listener bus updates later)
            for (int b = 0; b < partitions * groups; b++) {
                assertThat(scala.jdk.javaapi.CollectionConverters.asJava(org.apache.spark.SparkEnv.get().blockManager()
                        .master().getLocations(new org.apache.spark.storage.RDDBlockId(id, b))))
                        .as("locations of cached block %d", b).isNotEmpty();
            }
            if (dropPartition >= 0) { // the block of group 1 of one partition is lost
                org.apache.spark.SparkEnv.get().blockManager().removeBlock(
                        new org.apache.spark.storage.RDDBlockId(id, dropPartition * groups + 1), true);
            }
            // local mode: one executor holds every block, so the balance places every group task there
            double[] costs = new double[groups];
            java.util.Arrays.setAll(costs, g -> g + 1);
            String[] placed = exchange.balance(spark.sparkContext(), costs);
            String local = org.apache.spark.scheduler.ExecutorCacheTaskLocation.apply(
                    org.apache.spark.SparkEnv.get().blockManager().blockManagerId().host(),
                    org.apache.spark.SparkEnv.get().executorId()).toString();
            assertThat(placed).as("group tasks' locations").containsOnly(local).hasSize(groups);
            for (int g = 0; g < groups; g++) {
                assertThat(scala.jdk.javaapi.CollectionConverters.asJava(exchange.byGroup().preferredLocations(
                        exchange.byGroup().partitions()[g]))).containsExactly(local);
            }
            // each group task gets its group's partials, every partition once, in partition order
            List<List<Integer>> seen = exchange.byGroup().toJavaRDD().mapPartitionsWithIndex((g, it) -> {
                List<Integer> order = new ArrayList<>();
                it.forEachRemaining(t -> {
                    if (t._1 != g) {
                        throw new IllegalStateException("group " + g + " got a partial of group " + t._1);
                    }
                    order.add(t._2._1);
                });
                return java.util.Collections.singletonList(order).iterator();
            }, false).collect();
            assertThat(seen).hasSize(groups).allSatisfy(o -> assertThat(o).isEqualTo(ids));
            return exchange.byGroup().toJavaRDD().mapPartitionsWithIndex((g, it) -> java.util.Collections.singletonList(
                    GroupSolve.reduce("g" + g, g, partitions, it)).iterator(), false).collect();
        } finally {
            exchange.release();
        }
    }

    /** Each group's partials through {@link HessianReduce.TreeOrder}, offered in a shuffled order. */
    private static List<HessianAccumulator> viaTreeOrder(List<List<HessianAccumulator>> parts, long seed) {
        List<Integer> order = new ArrayList<>(IntStream.range(0, parts.size()).boxed().toList());
        java.util.Collections.shuffle(order, new java.util.Random(seed));
        List<HessianAccumulator> res = new ArrayList<>();
        for (int g = 0; g < parts.get(0).size(); g++) {
            HessianReduce.TreeOrder t = new HessianReduce.TreeOrder(parts.size());
            for (int k : order) {
                assertThat(t.complete()).isFalse();
                t.add(k, parts.get(k).get(g));
            }
            assertThat(t.complete()).isTrue();
            res.add(t.result());
        }
        return res;
    }

    private static void assertSameBits(List<HessianAccumulator> got, List<HessianAccumulator> want, String what) {
        assertThat(got).hasSameSizeAs(want);
        for (int i = 0; i < want.size(); i++) {
            assertThat(got.get(i).count()).as(what).isEqualTo(want.get(i).count());
            assertThat(got.get(i).hessian()).as(what + " group " + i).containsExactly(want.get(i).hessian());
        }
    }

    private static List<List<HessianAccumulator>> partials(int n) {
        List<List<HessianAccumulator>> parts = new ArrayList<>();
        for (int k = 0; k < n; k++) {
            parts.add(partial(k));
        }
        return parts;
    }

    @Test
    void upToFanInPartitionsSumInIndexOrder() {
        for (int n = 1; n <= HessianReduce.FAN_IN; n++) {
            List<HessianAccumulator> want = inOrder(partials(n));
            for (long seed = 0; seed < 3; seed++) {
                assertSameBits(viaTreeOrder(partials(n), seed), want, n + " partitions, arrival order " + seed);
            }
        }
    }

    @Test
    void morePartitionsSumAsTheFanInTree() {
        int n = 6; // nodes {0..3} and {4, 5}, then the root
        List<List<HessianAccumulator>> parts = partials(n);
        List<HessianAccumulator> want = inOrder(List.of(inOrder(List.of(inOrder(parts.subList(0, 4)),
                inOrder(parts.subList(4, 6))))));
        assertSameBits(tree(parts), want, "the test's tree");
        for (long seed = 0; seed < 3; seed++) {
            assertSameBits(viaTreeOrder(parts, seed), want, "6 partitions, arrival order " + seed);
        }
        // and the order matters for these partials (else the test could not tell the orders apart)
        List<HessianAccumulator> flat = inOrder(parts);
        boolean differs = false;
        for (int i = 0; i < flat.size(); i++) {
            differs |= !java.util.Arrays.equals(flat.get(i).hessian(), want.get(i).hessian());
        }
        assertThat(differs).as("the tree and the flat order give different bits for these partials").isTrue();
    }

    @Test
    void groupTasksReadingTheCachedPartialsSumInTheFixedOrder() {
        for (int n : new int[] {1, 3, 4, 5, 9, 17}) {
            List<List<HessianAccumulator>> parts = partials(n);
            List<HessianAccumulator> want = tree(parts);
            org.apache.spark.util.LongAccumulator passes = spark.sparkContext().longAccumulator();
            assertSameBits(viaGroupPartials(n, -1, passes), want, n + " partitions through the block store");
            assertThat(passes.value()).as("no pass ran again for the group tasks").isEqualTo(n);
            assertSameBits(viaTreeOrder(parts, n), want, n + " partitions, shuffled arrival");
            assertThat(parts.get(0).get(0).hessian()).as("inputs untouched").containsExactly(partial(0).get(0).hessian());
        }
    }

    @Test
    void aLostPartialIsRecomputedThroughItsPass() {
        int n = 5;
        org.apache.spark.util.LongAccumulator passes = spark.sparkContext().longAccumulator();
        assertSameBits(viaGroupPartials(n, 3, passes), tree(partials(n)), "partition 3's group-1 block lost");
        assertThat(passes.value()).as("partition 3's pass ran once more, and only it").isEqualTo(n + 1);
    }

    @Test
    void releasedPartialsLeaveTheBlockStores() throws Exception {
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        GroupPartials exchange = new GroupPartials(jsc.parallelize(List.of(0, 1), 2)
                .map(k -> partial(k).toArray(new HessianAccumulator[0])).rdd(), 2,
                org.apache.spark.storage.StorageLevel.MEMORY_AND_DISK());
        exchange.materialize(spark.sparkContext());
        int id = exchange.blocks().id();
        assertThat(spark.sparkContext().getPersistentRDDs().contains(id)).isTrue();
        exchange.release();
        assertThat(spark.sparkContext().getPersistentRDDs().contains(id)).isFalse();
        long deadline = System.nanoTime() + 10_000_000_000L;
        boolean gone = false;
        while (!gone && System.nanoTime() < deadline) {
            gone = java.util.Arrays.stream(spark.sparkContext().getRDDStorageInfo()).noneMatch(r -> r.id() == id)
                    && org.apache.spark.SparkEnv.get().blockManager().getMatchingBlockIds(b -> b.isRDD()
                    && ((org.apache.spark.storage.RDDBlockId) b).rddId() == id).isEmpty();
            Thread.sleep(20);
        }
        assertThat(gone).as("the blocks of RDD %d are removed", id).isTrue();
    }

    @Test
    void groupTasksAreSpreadLongestFirst() {
        // Llama-2-7B's four groups of one layer, one shard per tensor (rows, inputs), as LayerPlan makes them
        List<SolveTask> tasks = List.of(
                new SolveTask(0, "q", "qkv", 4096, 4096, io.sparkprune.kernels.DType.BF16, 0, 4096, 0, 1),
                new SolveTask(0, "k", "qkv", 4096, 4096, io.sparkprune.kernels.DType.BF16, 0, 4096, 0, 1),
                new SolveTask(0, "v", "qkv", 4096, 4096, io.sparkprune.kernels.DType.BF16, 0, 4096, 0, 1),
                new SolveTask(0, "o", "o", 4096, 4096, io.sparkprune.kernels.DType.BF16, 0, 4096, 0, 1),
                new SolveTask(0, "gate", "mlp", 11008, 4096, io.sparkprune.kernels.DType.BF16, 0, 11008, 0, 1),
                new SolveTask(0, "up", "mlp", 11008, 4096, io.sparkprune.kernels.DType.BF16, 0, 11008, 0, 1),
                new SolveTask(0, "down", "down", 4096, 11008, io.sparkprune.kernels.DType.BF16, 0, 2048, 0, 2),
                new SolveTask(0, "down", "down", 4096, 11008, io.sparkprune.kernels.DType.BF16, 2048, 2048, 1, 2));
        double n = 4096;
        double m = 11008;
        assertThat(GroupSolve.estimatedCost(tasks, "qkv", true)).isEqualTo(6 * 12288 * n * n + n * n * n);
        assertThat(GroupSolve.estimatedCost(tasks, "mlp", false)).isEqualTo(6 * 22016 * n * n);
        assertThat(GroupSolve.estimatedCost(tasks, "down", true)).isEqualTo(6 * 4096 * m * m + m * m * m);
        assertThat(GroupSolve.estimatedCost(tasks, "none", true)).isZero();
        double[] costs = new double[4];
        String[] names = {"qkv", "o", "mlp", "down"};
        for (int g = 0; g < 4; g++) {
            costs[g] = GroupSolve.estimatedCost(tasks, names[g], true);
        }
        // costs (GFLOP): qkv 1306, o 481, mlp 2285, down 4313. Two executors, each holding a partial of every
        // group: down to A (tie, first); mlp to B; qkv to B (2285 < 4313); o to B (3591 < 4313)
        List<Set<String>> both = java.util.Collections.nCopies(4, Set.of("A", "B"));
        assertThat(GroupPartials.longestFirst(costs, List.of("A", "B"), both)).containsExactly("B", "B", "B", "A");
        // three executors: down A, mlp B, qkv C, o C (1306 < 2285)
        assertThat(GroupPartials.longestFirst(costs, List.of("A", "B", "C"), java.util.Collections.nCopies(4,
                Set.of("A", "B", "C")))).containsExactly("C", "C", "B", "A");
        // equal loads go to an executor that holds the group's blocks; a group with no known block is not placed
        assertThat(GroupPartials.longestFirst(new double[] {5, 5, 1}, List.of("A", "B"),
                List.of(Set.of("B"), Set.of("A", "B"), Set.of()))).containsExactly("B", "A", null);
        assertThat(GroupPartials.longestFirst(costs, List.of(), both)).containsOnlyNulls();
        // one executor: every group there
        assertThat(GroupPartials.longestFirst(costs, List.of("A"), java.util.Collections.nCopies(4, Set.of("A"))))
                .containsOnly("A");
    }

    @Test
    void badPlansAreRefused() {
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        org.apache.spark.rdd.RDD<HessianAccumulator[]> passes = jsc.parallelize(List.of(0), 1)
                .map(k -> partial(k).toArray(new HessianAccumulator[0])).rdd();
        assertThatThrownBy(() -> new GroupPartials(passes, 0, org.apache.spark.storage.StorageLevel.MEMORY_ONLY()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at least one calibration group");
        assertThatThrownBy(() -> new GroupPartials(passes, 2, org.apache.spark.storage.StorageLevel.NONE()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("storage level");
        GroupPartials wrongCount = new GroupPartials(passes, 3, org.apache.spark.storage.StorageLevel.MEMORY_ONLY());
        try {
            assertThatThrownBy(() -> wrongCount.materialize(spark.sparkContext()))
                    .hasStackTraceContaining("returned 2 partials for 3 groups");
        } finally {
            wrongCount.release();
        }
    }

    @Test
    void treeOrderRefusesDuplicatesAndReportsMissingPartials() {
        HessianReduce.TreeOrder t = new HessianReduce.TreeOrder(6);
        t.add(1, partial(1).get(0));
        t.add(0, partial(0).get(0));
        assertThatThrownBy(() -> t.add(0, partial(0).get(0))).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("partial 0 of 6");
        assertThatThrownBy(() -> t.add(6, partial(0).get(0))).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(t::result).isInstanceOf(IllegalStateException.class).hasMessageContaining("[2, 3, 4, 5]");
    }
}
