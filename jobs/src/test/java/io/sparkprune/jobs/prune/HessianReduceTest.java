package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import scala.Tuple2;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link HessianReduce}'s order against plain Java merges: with at most {@link HessianReduce#FAN_IN}
 * partitions the in-order sum of the partials; with more, the fan-in tree's order (the order of the
 * driver-side Spark tree that the group tasks replaced; commit 18fee53 checked the two equal bit for
 * bit). Through {@link HessianReduce.TreeOrder} in any arrival order, and through the prune job's
 * path: partials shuffled by group, reduced by {@link GroupSolve#reduce} in each group's task. All bit
 * for bit, with partials whose values make the order matter.
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

    /** The prune job's path: each partition emits (group, (partition, partial)); one reduce task per group. */
    private static List<HessianAccumulator> viaGroupShuffle(int partitions) {
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        List<Integer> ids = IntStream.range(0, partitions).boxed().toList();
        int groups = partial(0).size();
        JavaPairRDD<Integer, Tuple2<Integer, HessianAccumulator>> emitted = jsc.parallelize(ids, partitions)
                .flatMapToPair(k -> {
                    List<HessianAccumulator> p = partial(k);
                    List<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> res = new ArrayList<>();
                    for (int g = 0; g < p.size(); g++) {
                        res.add(new Tuple2<>(g, new Tuple2<>(k, p.get(g))));
                    }
                    return res.iterator();
                });
        HessianReduce.GroupShuffle routed = HessianReduce.toGroups(emitted, groups, partitions);
        // no group task is handed more than FAN_IN partials or node sums, however many partitions
        assertThat(routed.children()).isEqualTo(HessianReduce.topChildren(partitions)).isBetween(1, HessianReduce.FAN_IN);
        List<Integer> perTask = routed.byGroup().mapPartitions(it -> {
            int c = 0;
            for (; it.hasNext(); it.next()) {
                c++;
            }
            return java.util.Collections.singletonList(c).iterator();
        }).collect();
        assertThat(perTask).as(partitions + " partitions: records per group task").hasSize(groups)
                .allSatisfy(c -> assertThat(c).isEqualTo(routed.children()));
        assertThat(routed.shuffles()).hasSize(partitions > HessianReduce.FAN_IN ? 1 + levels(partitions) : 1);
        return routed.byGroup().mapPartitionsWithIndex((g, it) -> java.util.Collections.singletonList(
                GroupSolve.reduce("g" + g, g, partitions, it)).iterator(), false).collect();
    }

    /** Tree levels below the group tasks for n partitions (each dividing the count by FAN_IN, rounding up). */
    private static int levels(int n) {
        int l = 0;
        while (n > HessianReduce.FAN_IN) {
            n = (n + HessianReduce.FAN_IN - 1) / HessianReduce.FAN_IN;
            l++;
        }
        return l;
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
    void groupTasksAfterTheShuffleSumInTheFixedOrder() {
        for (int n : new int[] {1, 3, 4, 5, 9, 17}) {
            List<List<HessianAccumulator>> parts = partials(n);
            List<HessianAccumulator> want = tree(parts);
            assertSameBits(viaGroupShuffle(n), want, n + " partitions through the group shuffle");
            assertSameBits(viaTreeOrder(parts, n), want, n + " partitions, shuffled arrival");
            assertThat(parts.get(0).get(0).hessian()).as("inputs untouched").containsExactly(partial(0).get(0).hessian());
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
