package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Set;
import org.apache.spark.Dependency;
import org.apache.spark.NarrowDependency;
import org.apache.spark.Partition;
import org.apache.spark.SparkContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.rdd.RDD;
import org.apache.spark.storage.RDDBlockId;
import org.apache.spark.storage.StorageLevel;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple2;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * How a layer's partial Hessians get from the calibration partitions' Hessian tasks to the group
 * tasks: through the executors' block stores (Spark's cache), not a shuffle. Each Hessian task's
 * partials stay in its executor's memory as they are (settled in their wire form:
 * {@link HessianAccumulator#settleForExchange()}), one cached block per (calibration partition,
 * group); a group task reads its group's blocks, in partition order: a block in its own executor's
 * memory is the object itself (nothing serialized or copied; a block that Spark had to spill to disk
 * for lack of storage memory is read back and deserialized), a block on another executor is fetched
 * and deserialized by Spark's block manager (only that one group's partial).
 *
 * <p>Why not a shuffle: a shuffle writes every partial to a file at the end of the Hessian stage
 * and reads it back at the start of the group stage, even when both run on one executor; for a
 * 7B layer that is 0.34 GB per calibration partition, about 0.4 s at the end of the Hessian stage
 * and 0.5 s before the down projection's group task can start (docs/benchmarks.md, issue 9).
 *
 * <p>The plan, two RDDs over the Hessian passes ({@code passes}: one element per calibration
 * partition, the array of its G groups' partials indexed by group):
 * <ul>
 *   <li>{@link #blocks()}: P·G partitions, partition {@code p·G + g} holding the record
 *       {@code (g, (p, partial))}, persisted at the given storage level. Computing partition
 *       {@code (p, g)} runs partition p's Hessian pass and puts the pass's other groups into the
 *       local block store under their own partitions' block ids ({@code RDDBlockId}, reported to the
 *       driver's block manager master), so one pass fills all G blocks of its partition.
 *       {@link #materialize} runs only the partitions {@code (p, 0)}: one task per calibration
 *       partition.</li>
 *   <li>{@link #byGroup()}: G partitions; partition g depends (narrowly) on blocks {@code (p, g)}
 *       for every p and yields their records in partition order, each read lazily, so at most one
 *       fetched partial is held beyond the reduce's own sums. Its preferred location is the executor
 *       that {@link #balance} chose for the group, or else every executor that caches one of its
 *       blocks.</li>
 * </ul>
 *
 * <p>Failures: a lost executor loses its blocks; a group task that finds a block missing
 * recomputes it through the lineage (partition p's Hessian pass again, on its own executor, which
 * puts the pass's other groups there too), as Spark does for any lost cached partition. Group tasks
 * on different executors that miss the same partition's blocks at the same time each run that pass
 * (up to G times). A retried group task reads the same blocks. {@link #release()} unpersists the
 * blocks on every executor once the group stage is done; a task of that stage still running then (a
 * speculative copy being killed) that had to recompute a pass may put blocks after it, which stay
 * until Spark's cleaner drops the unreachable RDD. With {@code spark.rdd.cache.visibilityTracking.enabled} (off by default) Spark
 * treats the blocks put for the other groups as not yet visible and recomputes them: correct, but
 * each group task then runs its partitions' passes again.
 *
 * <p>Memory: the blocks use storage memory (0.34 GB per calibration partition of a 7B layer with TF32
 * Hessians) until the group stage ends, and Spark may evict other cached blocks to make room: with an
 * activations storage level that has no disk ({@code MEMORY_ONLY}) an evicted activation partition is
 * recomputed from its lineage, so give the executors storage memory for both, or keep a level with
 * disk (the default is serialized, with disk).
 *
 * <p>The partials of one group reach its task in partition order, so the fixed-order sum
 * ({@link HessianReduce.TreeOrder}) gives the same bits on any cluster.
 */
final class GroupPartials {
    private static final Logger LOG = LoggerFactory.getLogger(GroupPartials.class);

    /** The record type of both RDDs: (group index, (calibration partition index, partial)). */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static final ClassTag<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> RECORD =
            (ClassTag) ClassTag$.MODULE$.apply(Tuple2.class);

    private final BlocksRDD blocks;
    private final ByGroupRDD byGroup;

    /**
     * Defines the plan over the passes, persisting the blocks at {@code level}; computes nothing.
     *
     * @param passes one element per calibration partition: that partition's G partials, indexed by
     *     group (none null), each settled ({@link HessianAccumulator#settleForExchange()})
     * @param groups G, ≥ 1
     * @param level the blocks' storage level (deserialized levels keep local reads free of copies;
     *     with disk the blocks that do not fit in memory spill instead of being recomputed)
     * @throws IllegalArgumentException when groups &lt; 1 or the level is NONE
     */
    GroupPartials(RDD<HessianAccumulator[]> passes, int groups, StorageLevel level) {
        if (groups < 1) {
            throw new IllegalArgumentException("a layer needs at least one calibration group, got " + groups);
        }
        if (level == null || level.equals(StorageLevel.NONE())) {
            throw new IllegalArgumentException("the partial Hessians' blocks need a storage level, got " + level);
        }
        this.blocks = new BlocksRDD(passes, groups);
        blocks.persist(level);
        this.byGroup = new ByGroupRDD(blocks, passes.getNumPartitions(), groups);
    }

    /** @return the blocks RDD, P·G partitions: {@code (p, g)} at index {@code p·G + g} */
    RDD<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> blocks() {
        return blocks;
    }

    /** @return G partitions, partition g yielding group g's records in calibration partition order */
    RDD<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> byGroup() {
        return byGroup;
    }

    /**
     * Runs the Hessian passes (one Spark job, one task per calibration partition) and leaves every
     * partial in its executor's block store.
     *
     * @param sc the driver's context
     * @throws RuntimeException whatever the job throws (Spark's {@code SparkException}, undeclared)
     */
    void materialize(SparkContext sc) {
        List<Object> firsts = new ArrayList<>();
        for (int p = 0; p < byGroup.partitions; p++) {
            firsts.add(p * blocks.groups);
        }
        sc.runJob(blocks, new Drain(), CollectionConverters.asScala(firsts).toSeq(),
                ClassTag$.MODULE$.apply(Long.class));
    }

    /** Removes the blocks from every executor (non-blocking). */
    void release() {
        blocks.unpersist(false);
    }

    /**
     * Chooses one executor for each group task, so that the executors that hold the partials share the
     * group stage's work evenly instead of as Spark's offers happen to fall: longest processing time
     * first (Graham 1969) — the groups in decreasing estimated cost, each to the executor with the least
     * cost so far (ties: one that caches some of the group's blocks, then the first seen). The choice
     * becomes each group task's only preferred location (process-local: the scheduler starts it there
     * while that executor has a free slot within {@code spark.locality.wait}). With one executor every
     * group goes to it, as before. Call after {@link #materialize} (the blocks' locations are what the
     * driver's block manager master knows then) and before the group stage's job; a group whose blocks have no
     * known location keeps the default preference (every executor caching one of its blocks).
     *
     * @param sc the driver's context
     * @param costs estimated cost of each group's task, by group index (any unit, ≥ 0), length G
     * @return the chosen location of each group (null where none was chosen), in Spark's task location
     *     form ({@code executor_<host>_<id>})
     * @throws IllegalArgumentException when costs has not G entries
     */
    String[] balance(SparkContext sc, double[] costs) {
        int groups = blocks.groups;
        if (costs.length != groups) {
            throw new IllegalArgumentException("need " + groups + " group costs, got " + costs.length);
        }
        // the driver's block manager master, asked directly and once for all P·G blocks (the DAG scheduler's
        // location cache is refreshed only when a job is submitted, so between jobs it may predate the blocks)
        org.apache.spark.storage.BlockId[] ids = new org.apache.spark.storage.BlockId[byGroup.partitions * groups];
        for (int b = 0; b < ids.length; b++) {
            ids[b] = new RDDBlockId(blocks.id(), b);
        }
        List<scala.collection.immutable.Seq<org.apache.spark.storage.BlockManagerId>> located = CollectionConverters.asJava(
                sc.env().blockManager().master().getLocations(ids));
        List<String> executors = new ArrayList<>();
        List<Set<String>> held = new ArrayList<>();
        for (int g = 0; g < groups; g++) {
            Set<String> where = new LinkedHashSet<>();
            for (int p = 0; p < byGroup.partitions; p++) {
                for (org.apache.spark.storage.BlockManagerId bm : CollectionConverters.asJava(located.get(p * groups + g))) {
                    String loc = org.apache.spark.scheduler.ExecutorCacheTaskLocation.apply(bm.host(), bm.executorId())
                            .toString();
                    where.add(loc);
                    if (!executors.contains(loc)) {
                        executors.add(loc);
                    }
                }
            }
            held.add(where);
        }
        String[] chosen = longestFirst(costs, executors, held);
        byGroup.placement = chosen;
        return chosen;
    }

    /**
     * Longest processing time first ({@link #balance}'s rule): the groups in decreasing cost (ties: lower
     * index first), each to the executor with the least cost so far; between executors of equal cost, one
     * that holds some of the group's blocks, else the first in {@code executors}' order.
     *
     * @param costs cost by group, length G
     * @param executors the candidate executors, in a fixed order
     * @param held for each group, the executors that hold any of its blocks (an empty set: not placed)
     * @return the executor chosen for each group, null for a group that holds no block
     */
    static String[] longestFirst(double[] costs, List<String> executors, List<Set<String>> held) {
        int groups = costs.length;
        String[] chosen = new String[groups];
        if (executors.isEmpty()) {
            return chosen;
        }
        Integer[] order = new Integer[groups];
        for (int g = 0; g < groups; g++) {
            order[g] = g;
        }
        java.util.Arrays.sort(order, (a, b) -> costs[a] != costs[b] ? Double.compare(costs[b], costs[a])
                : Integer.compare(a, b));
        double[] load = new double[executors.size()];
        for (int g : order) {
            if (held.get(g).isEmpty()) {
                continue;
            }
            int best = 0;
            for (int e = 1; e < executors.size(); e++) {
                if (load[e] < load[best] || load[e] == load[best] && held.get(g).contains(executors.get(e))
                        && !held.get(g).contains(executors.get(best))) {
                    best = e;
                }
            }
            load[best] += costs[g];
            chosen[g] = executors.get(best);
        }
        return chosen;
    }

    /** Counts a partition's records (all that {@link #materialize} needs: computing and storing them). */
    private static final class Drain extends scala.runtime.AbstractFunction2<TaskContext,
            scala.collection.Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>>, Object>
            implements java.io.Serializable {
        private static final long serialVersionUID = 1L;

        @Override
        public Object apply(TaskContext context, scala.collection.Iterator<Tuple2<Integer, Tuple2<Integer,
                HessianAccumulator>>> it) {
            long n = 0;
            while (it.hasNext()) {
                it.next();
                n++;
            }
            return n;
        }
    }

    /**
     * A partition of either RDD: its index and the parent partitions it reads (an RDD's partitions
     * are computed on the driver only, so a task finds its parents' here, as Spark's own RDDs do).
     */
    static final class Part implements Partition {
        private static final long serialVersionUID = 1L;
        private final int index;
        private final Partition[] parents;

        Part(int index, Partition... parents) {
            this.index = index;
            this.parents = parents;
        }

        @Override
        public int index() {
            return index;
        }

        /** @return the parent partitions this one reads, in reading order */
        Partition[] parents() {
            return parents;
        }

        /** Scala's trait plumbing behind {@link Partition}'s equals (invisible to javac, called at run time). */
        public boolean org$apache$spark$Partition$$super$equals(Object other) {
            return super.equals(other);
        }

        @Override
        public String toString() {
            return "partition " + index;
        }
    }

    private static <T> scala.collection.immutable.Seq<T> seq(List<T> list) {
        return CollectionConverters.asScala(list).toSeq();
    }

    /** Partition {@code p·G + g}: group g's partial of calibration partition p (see the class comment). */
    static final class BlocksRDD extends RDD<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> {
        private static final long serialVersionUID = 1L;
        private final RDD<HessianAccumulator[]> passes;
        private final int groups;

        BlocksRDD(RDD<HessianAccumulator[]> passes, int groups) {
            super(passes.context(), seq(List.<Dependency<?>>of(new NarrowDependency<>(passes) {
                private static final long serialVersionUID = 1L;

                @Override
                public scala.collection.immutable.Seq<Object> getParents(int partitionId) {
                    return seq(List.of(partitionId / groups));
                }
            })), RECORD);
            this.passes = passes;
            this.groups = groups;
        }

        @Override
        public Partition[] getPartitions() {
            Partition[] parents = passes.partitions();
            Partition[] res = new Partition[parents.length * groups];
            for (int i = 0; i < res.length; i++) {
                res[i] = new Part(i, parents[i / groups]);
            }
            return res;
        }

        @Override
        public scala.collection.Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> compute(Partition split,
                                                                                                      TaskContext context) {
            int p = split.index() / groups;
            int g = split.index() % groups;
            scala.collection.Iterator<HessianAccumulator[]> it = passes.iterator(((Part) split).parents()[0], context);
            if (!it.hasNext()) {
                throw new IllegalStateException("the Hessian pass of calibration partition " + p + " returned nothing");
            }
            HessianAccumulator[] all = it.next();
            if (all.length != groups) {
                throw new IllegalStateException("the Hessian pass of calibration partition " + p + " returned "
                        + all.length + " partials for " + groups + " groups");
            }
            StorageLevel level = getStorageLevel();
            if (!level.equals(StorageLevel.NONE())) {
                // the pass's other groups go to the block store under their own partitions' ids, so
                // their group tasks find them (here or, through the driver's block manager master, from
                // another executor) instead of running this pass again
                org.apache.spark.storage.BlockManager bm = SparkEnv.get().blockManager();
                for (int k = 0; k < groups; k++) {
                    if (k != g && !bm.putSingle(new RDDBlockId(id(), p * groups + k), record(k, p, all[k]), level,
                            true, RECORD)) {
                        LOG.warn("could not store the partial Hessian of group {} of calibration partition {} (RDD {});"
                                + " its group task will run the partition's Hessian pass again", k, p, id());
                    }
                }
            }
            return scala.collection.Iterator.single(record(g, p, all[g]));
        }

        private static Tuple2<Integer, Tuple2<Integer, HessianAccumulator>> record(int g, int p, HessianAccumulator h) {
            if (h == null) {
                throw new IllegalStateException("the Hessian pass of calibration partition " + p
                        + " has no partial for group " + g);
            }
            return new Tuple2<>(g, new Tuple2<>(p, h));
        }
    }

    /** Partition g: group g's blocks in calibration partition order (see the class comment). */
    static final class ByGroupRDD extends RDD<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> {
        private static final long serialVersionUID = 1L;
        private final BlocksRDD blocks;
        private final int partitions;
        private final int groups;
        /** Each group task's one preferred location ({@link GroupPartials#balance}), or null: every block's. */
        private transient volatile String[] placement;

        ByGroupRDD(BlocksRDD blocks, int partitions, int groups) {
            super(blocks.context(), seq(List.<Dependency<?>>of(new NarrowDependency<>(blocks) {
                private static final long serialVersionUID = 1L;

                @Override
                public scala.collection.immutable.Seq<Object> getParents(int g) {
                    List<Object> res = new ArrayList<>(partitions);
                    for (int p = 0; p < partitions; p++) {
                        res.add(p * groups + g);
                    }
                    return seq(res);
                }
            })), RECORD);
            this.blocks = blocks;
            this.partitions = partitions;
            this.groups = groups;
        }

        @Override
        public Partition[] getPartitions() {
            Partition[] all = blocks.partitions();
            Partition[] res = new Partition[groups];
            for (int g = 0; g < groups; g++) {
                Partition[] mine = new Partition[partitions];
                for (int p = 0; p < partitions; p++) {
                    mine[p] = all[p * groups + g];
                }
                res[g] = new Part(g, mine);
            }
            return res;
        }

        /**
         * The executor that {@link GroupPartials#balance} chose for the group, when it chose one; else
         * every executor that caches one of the group's blocks (the DAG scheduler's own fallback would
         * name only the first block's, sending every group task to the executor of partition 0).
         */
        @Override
        public scala.collection.immutable.Seq<String> getPreferredLocations(Partition split) {
            String[] chosen = placement;
            if (chosen != null && chosen[split.index()] != null) {
                return seq(List.of(chosen[split.index()]));
            }
            Set<String> locations = new LinkedHashSet<>();
            for (int p = 0; p < partitions; p++) {
                CollectionConverters.asJava(sparkContext().getPreferredLocs(blocks, p * groups + split.index()))
                        .forEach(l -> locations.add(l.toString()));
            }
            return seq(new ArrayList<>(locations));
        }

        @Override
        public scala.collection.Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> compute(Partition split,
                                                                                                      TaskContext context) {
            Partition[] mine = ((Part) split).parents();
            Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> inOrder = new Iterator<>() {
                private int p;
                private scala.collection.Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> current =
                        scala.collection.Iterator.empty();

                @Override
                public boolean hasNext() {
                    while (!current.hasNext() && p < mine.length) {
                        current = blocks.iterator(mine[p], context); // each block read when reached
                        p++;
                    }
                    return current.hasNext();
                }

                @Override
                public Tuple2<Integer, Tuple2<Integer, HessianAccumulator>> next() {
                    if (!hasNext()) {
                        throw new NoSuchElementException();
                    }
                    return current.next();
                }
            };
            return CollectionConverters.asScala(inOrder);
        }
    }
}
