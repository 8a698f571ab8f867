package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.jobs.commit.LayerStaging;
import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.pipeline.recipe.PruneMethod;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import scala.Tuple2;

/**
 * The task body of a layer's group stage: one task per calibration group, on an executor. It
 * receives that group's partial Hessians from every calibration partition (through a shuffle keyed
 * by group), sums them in {@link HessianReduce}'s fixed order ({@link HessianReduce.TreeOrder}: the
 * same bits as the driver-side reduce this replaces), computes the inverse factor for SparseGPT
 * ({@link InverseFactor#computeResident}, dead inputs and dampening retry as before), and solves every row
 * shard of the group's tensors with {@link ShardSolver#solve}, in the layer plan's order. On the GPU
 * backend the factor is resident: H is uploaded once (packed), U (by default: the Cholesky factor of H and
 * U's band, see {@code CudaBackend.solveOnDeviceCholesky}) stays on the device for every solve
 * and H's device copy serves the reconstruction-error metric; the factor is closed (its device memory
 * freed) when the group's shards are done or one fails. The
 * Hessian and factor never leave the executor: the driver gets the shard records and measurements
 * and a {@link GroupSummary}.
 *
 * <p>A retried task refetches the partials from the shuffle and recomputes everything from them, so
 * it writes the same bytes ({@link LayerStaging#writeShard} checks this).
 */
final class GroupSolve {
    private GroupSolve() {
    }

    /**
     * One solved row shard.
     *
     * @param taskIndex index of its {@link SolveTask} in the layer's {@link LayerPlan#tasks} list
     * @param records the staged shard files ({@link ShardSolver#solve})
     * @param metrics its measurements
     */
    record Solved(int taskIndex, List<ShardRecord> records, ShardMetrics metrics) implements Serializable {
    }

    /**
     * What a group task returns.
     *
     * @param summary the group's summary
     * @param solved its row shards, in plan order
     */
    record Result(GroupSummary summary, List<Solved> solved) implements Serializable {
    }

    /**
     * Runs one group's task.
     *
     * @param ctx the job's context
     * @param staging the layer's staging directory
     * @param tasks every row-shard task of the layer, in plan order (those of other groups are skipped)
     * @param group the group's name
     * @param groupIndex its index in {@link LayerPlan#groups}, the shuffle key of its partials
     * @param partitions the number of calibration partitions (partials to expect)
     * @param partials (group index, (partition index, partial Hessian)) in any order; each is
     *     dropped once merged
     * @param inputNorms whether to return Wanda's input norms
     * @param phases where the task's executor seconds by phase go ({@code group.*}, {@code solve.*})
     * @return the solved shards and the group's summary
     * @throws IllegalStateException when a partial of another group arrives, or partials are missing or repeated
     */
    static Result run(JobContext ctx, LayerStaging staging, List<SolveTask> tasks, String group, int groupIndex,
                      int partitions, Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> partials,
                      boolean inputNorms, ExecutorPhases phases) {
        long tr = System.nanoTime();
        HessianAccumulator h = reduce(group, groupIndex, partitions, partials);
        phases.time("group.read_and_reduce", tr);
        long tf = System.nanoTime();
        InverseFactor f = ctx.recipe().prune().method() == PruneMethod.SPARSEGPT
                ? InverseFactor.computeResident(ctx.backend(), h, ctx.recipe().prune().dampening()) : null;
        double factorSeconds = f == null ? 0 : (System.nanoTime() - tf) / 1e9;
        phases.time("group.factor", tf);
        List<Solved> solved = new ArrayList<>();
        try {
            GroupStats gs = new GroupStats(h, f);
            for (int i = 0; i < tasks.size(); i++) {
                SolveTask t = tasks.get(i);
                if (t.group().equals(group)) {
                    Tuple2<List<ShardRecord>, ShardMetrics> r = ShardSolver.solve(ctx, staging, gs, t, phases);
                    solved.add(new Solved(i, r._1, r._2));
                }
            }
        } catch (RuntimeException | Error e) {
            if (f != null) {
                try {
                    f.close(); // frees a resident factor's device H and U when a solve failed
                } catch (RuntimeException suppressed) { // keep the solve's failure, not the cleanup's
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
        if (f != null) {
            f.close(); // frees a resident factor's device H and U
        }
        GroupSummary summary = new GroupSummary(group, h.count(), f != null, f != null ? f.dampening() : Double.NaN,
                f != null ? f.deadCount() : 0, inputNorms ? h.inputNorms() : null, factorSeconds);
        return new Result(summary, solved);
    }

    /**
     * Sums the group's partials in the fixed order, given what {@link HessianReduce#toGroups} delivers:
     * the partials themselves (≤ {@link HessianReduce#FAN_IN} partitions) or the tree's top-level node
     * sums; each is released as soon as it is merged, and at most {@link HessianReduce#FAN_IN} are held.
     *
     * @param partitions calibration partitions (the children are {@link HessianReduce#topChildren} of it)
     */
    static HessianAccumulator reduce(String group, int groupIndex, int partitions,
                                     Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> partials) {
        HessianReduce.TreeOrder order = new HessianReduce.TreeOrder(HessianReduce.topChildren(partitions));
        while (partials.hasNext()) {
            Tuple2<Integer, Tuple2<Integer, HessianAccumulator>> p = partials.next();
            if (p._1 != groupIndex) {
                throw new IllegalStateException("the task of calibration group " + groupIndex + " (" + group
                        + ") received a Hessian partial of group " + p._1);
            }
            order.add(p._2._1, p._2._2);
        }
        return HessianReduce.finish(order.result(), partitions);
    }
}
