package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.storage.StorageLevel;
import scala.Tuple2;

/**
 * Sums partial Hessians from the calibration partitions as a tree, in a fixed order.
 *
 * <p>Spark's {@code treeAggregate} merges partial results in the order tasks finish, so its
 * floating-point sum (and in rare near-ties the masks that follow from it) could differ from run
 * to run. Here every partial carries its partition index; each tree level groups indices
 * {@code [k·f, (k+1)·f)} and merges them in index order on the executors, until one partial
 * remains, which is all the driver receives (with at most f partials, the one node's merge runs on
 * the driver, fetching the partials one at a time: the same order and bits without a shuffle) (a 7B layer's Hessians are about 0.7 GB in fp64; several
 * partials at once would exceed {@code spark.driver.maxResultSize}). The result is bit-identical
 * for any cluster, executor count or task timing, given the same partitioning of the calibration
 * batches (which {@code spark.sparkprune.calibration.partitions} fixes).
 */
final class HessianReduce {
    /** Partials merged per tree node. */
    static final int FAN_IN = 4;

    private HessianReduce() {
    }

    /**
     * @param partials per calibration partition: (partition index, one accumulator per group, in group order)
     * @return one accumulator per group, in group order
     */
    static List<HessianAccumulator> reduce(JavaPairRDD<Integer, List<HessianAccumulator>> partials) {
        long n = partials.getNumPartitions();
        if (n <= FAN_IN) {
            return reduceOnDriver(partials);
        }
        JavaPairRDD<Integer, List<HessianAccumulator>> level = partials;
        while (n > 1) {
            long nodes = (n + FAN_IN - 1) / FAN_IN;
            level = level.mapToPair(t -> new Tuple2<>(t._1 / FAN_IN, t))
                    .groupByKey((int) nodes)
                    .mapToPair(g -> new Tuple2<>(g._1, mergeInOrder(g._2)));
            n = nodes;
        }
        return mergeInOrder(level.collect());
    }

    /**
     * The tree's single node, run on the driver: with at most {@link #FAN_IN} partials the tree is one
     * node that merges them in index order, so merging them here in that order gives the same bits,
     * without the shuffle that writes every partial to disk and reads it back (0.7 GB per partition and
     * layer for a 7B model). The partials are computed in parallel into the executors' memory first,
     * then fetched one partition at a time ({@code toLocalIterator}), so the driver holds one partial
     * besides the sum and each result stays within {@code spark.driver.maxResultSize} as before.
     */
    private static List<HessianAccumulator> reduceOnDriver(JavaPairRDD<Integer, List<HessianAccumulator>> partials) {
        JavaPairRDD<Integer, List<HessianAccumulator>> cached = partials.persist(StorageLevel.MEMORY_AND_DISK());
        try {
            cached.count();
            List<HessianAccumulator> acc = null;
            int expected = 0;
            java.util.Iterator<Tuple2<Integer, List<HessianAccumulator>>> it = cached.toLocalIterator();
            while (it.hasNext()) { // partitions in index order; partition k holds the partial of index k
                Tuple2<Integer, List<HessianAccumulator>> t = it.next();
                if (t._1 != expected++) {
                    throw new IllegalStateException("Hessian partial " + t._1 + " arrived where " + (expected - 1)
                            + " was expected");
                }
                acc = mergeInto(acc, t._2);
            }
            return acc;
        } finally {
            cached.unpersist(false);
        }
    }

    private static List<HessianAccumulator> mergeInOrder(Iterable<Tuple2<Integer, List<HessianAccumulator>>> parts) {
        List<Tuple2<Integer, List<HessianAccumulator>>> sorted = new ArrayList<>();
        parts.forEach(sorted::add);
        sorted.sort(Comparator.comparing(Tuple2::_1));
        List<HessianAccumulator> acc = null;
        for (Tuple2<Integer, List<HessianAccumulator>> t : sorted) {
            acc = mergeInto(acc, t._2);
        }
        return acc;
    }

    /**
     * Adds one partition's partials to the running sums: the first partition's are copied into fresh
     * accumulators (so no input is modified), later ones merged group by group.
     *
     * @param acc the sums so far, or null before the first partition
     * @param part one accumulator per group, in group order
     * @return the sums
     */
    private static List<HessianAccumulator> mergeInto(List<HessianAccumulator> acc, List<HessianAccumulator> part) {
        if (acc == null) {
            List<HessianAccumulator> fresh = new ArrayList<>();
            for (HessianAccumulator h : part) {
                fresh.add(new HessianAccumulator(h.name(), h.features()).merge(h));
            }
            return fresh;
        }
        for (int i = 0; i < acc.size(); i++) {
            acc.get(i).merge(part.get(i));
        }
        return acc;
    }
}
