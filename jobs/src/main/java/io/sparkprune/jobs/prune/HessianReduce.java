package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.spark.api.java.JavaPairRDD;
import scala.Tuple2;

/**
 * Sums partial Hessians from the calibration partitions as a tree, in a fixed order.
 *
 * <p>Spark's {@code treeAggregate} merges partial results in the order tasks finish, so its
 * floating-point sum (and in rare near-ties the masks that follow from it) could differ from run
 * to run. Here every partial carries its partition index; each tree level groups indices
 * {@code [k·f, (k+1)·f)} and merges them in index order on the executors, until one partial
 * remains, which is all the driver receives (a 7B layer's Hessians are about 0.7 GB in fp64; several
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
        JavaPairRDD<Integer, List<HessianAccumulator>> level = partials;
        long n = partials.getNumPartitions();
        while (n > 1) {
            long nodes = (n + FAN_IN - 1) / FAN_IN;
            level = level.mapToPair(t -> new Tuple2<>(t._1 / FAN_IN, t))
                    .groupByKey((int) nodes)
                    .mapToPair(g -> new Tuple2<>(g._1, mergeInOrder(g._2)));
            n = nodes;
        }
        return mergeInOrder(level.collect());
    }

    private static List<HessianAccumulator> mergeInOrder(Iterable<Tuple2<Integer, List<HessianAccumulator>>> parts) {
        List<Tuple2<Integer, List<HessianAccumulator>>> sorted = new ArrayList<>();
        parts.forEach(sorted::add);
        sorted.sort(Comparator.comparing(Tuple2::_1));
        List<HessianAccumulator> acc = null;
        for (Tuple2<Integer, List<HessianAccumulator>> t : sorted) {
            if (acc == null) {
                acc = new ArrayList<>();
                for (HessianAccumulator h : t._2) {
                    acc.add(new HessianAccumulator(h.name(), h.features()).merge(h));
                }
            } else {
                for (int i = 0; i < acc.size(); i++) {
                    acc.get(i).merge(t._2.get(i));
                }
            }
        }
        return acc;
    }
}
