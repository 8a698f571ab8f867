package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import java.util.ArrayList;
import java.util.List;

/**
 * The fixed order in which the partial Hessians of the calibration partitions are summed.
 *
 * <p>Spark's {@code treeAggregate} merges partial results in the order tasks finish, so its
 * floating-point sum (and in rare near-ties the masks that follow from it) could differ from run
 * to run. Here every partial carries its partition index. With at most {@link #FAN_IN} partials they
 * are merged in index order; with more, as a tree of fan-in {@link #FAN_IN}: each level groups
 * indices {@code [k·f, (k+1)·f)} and merges them in index order, until one sum remains, which is
 * copied once more (the order the driver-side Spark tree used before the group tasks, kept so that
 * the bits did not change). The result is bit-identical for any cluster, executor count, task
 * timing or arrival order, given the same partitioning of the calibration batches (which
 * {@code spark.sparkprune.calibration.partitions} fixes).
 *
 * <p>Each calibration group is reduced on its own, in the group's task on an executor
 * ({@link GroupSolve}), by a {@link TreeOrder} over the partials that {@link GroupPartials} brings.
 */
final class HessianReduce {
    /** Partials merged per tree node. */
    static final int FAN_IN = 4;

    private HessianReduce() {
    }

    /**
     * The one merge step of every order here: the first partial of a tree node is copied into a fresh
     * accumulator (so no input is modified; 0 + x, which turns a −0.0 into +0.0 like every later
     * sum), later ones are added into it.
     *
     * @param acc the node's sum so far, or null before its first partial
     * @param part the next partial, in index order
     * @return the sum
     */
    static HessianAccumulator mergeStep(HessianAccumulator acc, HessianAccumulator part) {
        return acc == null ? new HessianAccumulator(part.name(), part.features()).merge(part) : acc.merge(part);
    }

    /**
     * The fixed order of this class for one calibration group, run in one JVM: partials arrive in any
     * order ({@link #add}) and are merged as soon as the order allows, so only partials that came
     * early are held. With n ≤ {@link #FAN_IN} partials that is one node merging indices 0..n−1 in
     * order; with more, nodes {@code [k·f, (k+1)·f)} in index order level by level, and the root
     * copied once more at the end (as the tree's final collect did): the same merge steps on the same
     * values in the same order whatever the arrival order, so the same bits.
     *
     * <p>Not thread-safe; one instance per group and task.
     */
    static final class TreeOrder {
        private final int partials;
        /** Per level: children merged into it, their pending early arrivals, each node's sum and next child. */
        private final List<Level> levels = new ArrayList<>();
        private HessianAccumulator result;

        /**
         * @param partials the number of partials (calibration partitions), ≥ 1
         * @throws IllegalArgumentException when {@code partials < 1}
         */
        TreeOrder(int partials) {
            if (partials < 1) {
                throw new IllegalArgumentException("a Hessian reduce needs at least one partial, got " + partials);
            }
            this.partials = partials;
            int n = partials;
            do {
                Level l = new Level(n);
                levels.add(l);
                n = l.sums.length;
            } while (n > 1);
        }

        /**
         * Takes partial {@code index}; merges it (and any partials that waited for it) into its node.
         *
         * @param index the partial's partition index, in [0, partials)
         * @param partial its accumulator (not modified; the reducer keeps no reference once merged)
         * @throws IllegalStateException when the index is out of range or came twice
         */
        void add(int index, HessianAccumulator partial) {
            if (index < 0 || index >= partials || levels.get(0).pending.containsKey(index)
                    || index < levels.get(0).next[index / FAN_IN]) {
                throw new IllegalStateException("Hessian partial " + index + " of " + partials
                        + " is out of range or arrived twice");
            }
            offer(0, index, partial);
        }

        private void offer(int level, int index, HessianAccumulator value) {
            Level l = levels.get(level);
            l.pending.put(index, value);
            int node = index / FAN_IN;
            int end = Math.min(l.children, (node + 1) * FAN_IN);
            HessianAccumulator v;
            while ((v = l.pending.remove(l.next[node])) != null) {
                l.sums[node] = mergeStep(l.sums[node], v);
                l.next[node]++;
            }
            if (l.next[node] == end) {
                HessianAccumulator done = l.sums[node];
                l.sums[node] = null;
                if (level + 1 < levels.size()) {
                    offer(level + 1, node, done);
                } else {
                    // more than FAN_IN partials: the root is copied once more, as the Spark tree's final collect did
                    result = partials > FAN_IN ? mergeStep(null, done) : done;
                }
            }
        }

        /** @return whether every partial has been added */
        boolean complete() {
            return result != null;
        }

        /**
         * @return the sum of all partials
         * @throws IllegalStateException when partials are missing (the message lists them)
         */
        HessianAccumulator result() {
            if (result == null) {
                List<Integer> missing = new ArrayList<>();
                Level l0 = levels.get(0);
                for (int i = 0; i < partials; i++) {
                    if (!l0.pending.containsKey(i) && i >= l0.next[i / FAN_IN] && missing.size() < 10) {
                        missing.add(i);
                    }
                }
                throw new IllegalStateException("Hessian reduce of " + partials + " partials is missing partials "
                        + missing + (missing.size() == 10 ? " ..." : ""));
            }
            return result;
        }

        /** One level of the tree: {@code children} inputs, ⌈children / FAN_IN⌉ nodes. */
        private static final class Level {
            final int children;
            final HessianAccumulator[] sums;
            final int[] next;
            final java.util.TreeMap<Integer, HessianAccumulator> pending = new java.util.TreeMap<>();

            Level(int children) {
                this.children = children;
                int nodes = (children + FAN_IN - 1) / FAN_IN;
                this.sums = new HessianAccumulator[nodes];
                this.next = new int[nodes];
                for (int k = 0; k < nodes; k++) {
                    next[k] = k * FAN_IN;
                }
            }
        }
    }
}
