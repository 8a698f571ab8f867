package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.jobs.commit.LayerStaging;
import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.pipeline.recipe.PruneMethod;
import io.sparkprune.kernels.Backend;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.apache.hadoop.fs.FileSystem;
import scala.Tuple2;

/**
 * The task body of a layer's group stage: one task per calibration group, on an executor. It
 * receives that group's partial Hessians from every calibration partition (from the executors' block
 * stores: {@link GroupPartials}), sums them in {@link HessianReduce}'s fixed order ({@link HessianReduce.TreeOrder}: the
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
 * <p>A retried task reads the partials again (a lost one is recomputed by Spark) and recomputes everything from them, so
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
     * Most row shards of one group solved at once: the task's own thread and up to this many − 1 helpers
     * from {@link #HELPERS}.
     */
    static final int SHARD_THREADS = 4;

    /**
     * The JVM's helper threads of the group tasks (daemon, idle ones end after a minute), shared by the
     * group tasks that run at the same time on an executor. A helper takes shards from its group's queue
     * and never waits on another task, so a busy pool only delays helpers: the task's own thread solves
     * the shards that no helper took.
     */
    private static final java.util.concurrent.ThreadPoolExecutor HELPERS = helpers();

    private static java.util.concurrent.ThreadPoolExecutor helpers() {
        java.util.concurrent.atomic.AtomicInteger n = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.ThreadPoolExecutor p = new java.util.concurrent.ThreadPoolExecutor(2 * SHARD_THREADS,
                2 * SHARD_THREADS, 60, java.util.concurrent.TimeUnit.SECONDS,
                new java.util.concurrent.LinkedBlockingQueue<>(), r -> {
                    Thread t = new Thread(r, "sparkprune-shard-solve-" + n.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                });
        p.allowCoreThreadTimeOut(true);
        return p;
    }

    /**
     * Runs one group's task, its row shards {@link #SHARD_THREADS} at a time
     * ({@link #run(JobContext, LayerStaging, List, String, int, int, Iterator, boolean, ExecutorPhases, int)}).
     *
     * @param ctx the job's context
     * @param staging the layer's staging directory
     * @param tasks every row-shard task of the layer, in plan order (those of other groups are skipped)
     * @param group the group's name
     * @param groupIndex its index in {@link LayerPlan#groups}, the group index of its partials
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
        return run(ctx, staging, tasks, group, groupIndex, partitions, partials, inputNorms, phases, SHARD_THREADS);
    }

    /**
     * Runs one group's task: reduces the partials, factors H (SparseGPT), then solves the group's row shards
     * with up to {@code threads} of them at once — the calling (task) thread and up to {@code threads − 1}
     * helpers of the JVM's shared pool, taking the shards in plan order from one queue. The results are the
     * same bits whatever {@code threads} is: each shard's solve depends only on its rows and the group's
     * H and factor, and its staged file names only on the task.
     *
     * <p><b>What the concurrent shards share, and why it is safe:</b>
     * <ul>
     *   <li>the {@link GroupStats}: the reduced {@link HessianAccumulator} is only read after the reduce
     *       (its device partial, if any, folded in here before the shards start: {@code flush()}, so the
     *       shards' reads never write it); the {@link InverseFactor}'s reads are immutable fields or
     *       {@code synchronized} ({@code upper()}, {@code upperDiagonal()}, {@code residentOn});</li>
     *   <li>a resident factor's device handle ({@code residentOn(be)}: {@code solve}, {@code rowQuadratics},
     *       the lazily built fp32 H): every method of the CUDA backend's handle holds the backend's monitor,
     *       so calls are serialized (the GPU work of the shards runs one at a time; the host passes
     *       overlap); the factor is closed only after every shard finished, also when one failed;</li>
     *   <li>{@link io.sparkprune.calibration.solver.SparseGptSolver}: stateless, one per shard;</li>
     *   <li>the backend: the CUDA backend's methods are {@code synchronized}; the CPU backend keeps no
     *       per-call state (its fork/join pool accepts calls from several threads; its thread-local pack
     *       buffers are used within one leaf task, which never joins); the backend itself is resolved here,
     *       on the task's thread ({@link JobContext#backend()} reads Spark's TaskContext for the GPU
     *       binding, which helper threads do not have), and so is the staging file system;</li>
     *   <li>{@link ShardSolver.ExecutorCaches}: a synchronized map, the dense H made once
     *       ({@code computeIfAbsent} under its lock);</li>
     *   <li>the checkpoint: {@code ExecutorState.checkpoint} and {@code ShardedCheckpoint.shard} are
     *       synchronized, safetensors reads are safe concurrently;</li>
     *   <li>the staging writer: each shard writes its own file names through a unique temp name
     *       ({@link LayerStaging#writeShard}); Hadoop's FileSystem is thread-safe;</li>
     *   <li>{@link ExecutorPhases}: {@code add} is synchronized; the shards' {@code solve.*} seconds add up
     *       over the threads (so they may exceed the stage's wall time), and all are added before this
     *       returns.</li>
     * </ul>
     * Host memory: each shard in flight holds its dense and pruned rows (and the solver's working copy), so
     * the peak grows with the shards solved at once.
     *
     * <p>Failures: once a shard fails no further shard starts; the shards in flight finish, then the
     * resident factor is closed and the first failure is thrown with the others (and a failure to close)
     * suppressed. An interrupt of the task's thread (a killed task) stops further shards the same way and
     * is thrown as an {@link IllegalStateException} with the thread's interrupt flag set again.
     *
     * @param threads most shards solved at once, ≥ 1 (1: one after another on the calling thread)
     * @return the solved shards, in plan order, and the group's summary
     * @throws IllegalArgumentException when threads &lt; 1
     * @see #run(JobContext, LayerStaging, List, String, int, int, Iterator, boolean, ExecutorPhases)
     */
    static Result run(JobContext ctx, LayerStaging staging, List<SolveTask> tasks, String group, int groupIndex,
                      int partitions, Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> partials,
                      boolean inputNorms, ExecutorPhases phases, int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        long tr = System.nanoTime();
        HessianAccumulator h = reduce(group, groupIndex, partitions, partials);
        h.flush(); // (no-op for reduced host sums) the shards below only read h
        phases.time("group.read_and_reduce", tr);
        Backend be = ctx.backend(); // on the task's thread: the GPU binding reads its TaskContext
        long tf = System.nanoTime();
        InverseFactor f = ctx.recipe().prune().method() == PruneMethod.SPARSEGPT
                ? InverseFactor.computeResident(be, h, ctx.recipe().prune().dampening()) : null;
        double factorSeconds = f == null ? 0 : (System.nanoTime() - tf) / 1e9;
        phases.time("group.factor", tf);
        List<Integer> mine = new ArrayList<>();
        for (int i = 0; i < tasks.size(); i++) {
            if (tasks.get(i).group().equals(group)) {
                mine.add(i);
            }
        }
        Solved[] solved = new Solved[mine.size()];
        try {
            FileSystem fs;
            try {
                fs = staging.fileSystem(ctx.hadoop().get());
            } catch (IOException e) {
                throw new UncheckedIOException("cannot open the file system of the staging directory " + staging.dir(), e);
            }
            GroupStats gs = new GroupStats(h, f);
            solveAll(mine.size(), Math.min(threads, mine.size()), k -> {
                int i = mine.get(k);
                Tuple2<List<ShardRecord>, ShardMetrics> r = ShardSolver.solve(ctx, be, fs, staging, gs, tasks.get(i),
                        phases);
                solved[k] = new Solved(i, r._1, r._2);
            });
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
        return new Result(summary, List.of(solved));
    }

    /**
     * A group task's estimated work in floating-point operations, to balance the group tasks over the
     * executors ({@link GroupPartials#balance}): for {@code R} rows over all the group's row shards and
     * {@code n} inputs, the SparseGPT solve's updates (≈ 2·R·n², Frantar &amp; Alistarh 2023, Algorithm 1)
     * plus the reconstruction-error metric's two {@code R × n × n} products (4·R·n²), plus, for SparseGPT,
     * the factor of the {@code n × n} Hessian (Cholesky, inverse and the inverse's Cholesky: ≈ n³). Only the
     * ratios matter.
     *
     * @param tasks every row-shard task of the layer (those of other groups are skipped)
     * @param group the group's name
     * @param sparseGpt whether the group is factored (SparseGPT) or not (magnitude, Wanda)
     * @return the estimate, ≥ 0 (0 for a group without shards)
     */
    static double estimatedCost(List<SolveTask> tasks, String group, boolean sparseGpt) {
        double rows = 0;
        double n = 0;
        for (SolveTask t : tasks) {
            if (t.group().equals(group)) {
                rows += t.rowCount();
                n = t.cols();
            }
        }
        return rows == 0 ? 0 : 6 * rows * n * n + (sparseGpt ? n * n * n : 0);
    }

    /** One shard's work, by its position in the group's queue. */
    @FunctionalInterface
    interface ShardWork {
        /**
         * @param k position in the queue, 0-based
         */
        void solve(int k);
    }

    /**
     * Runs {@code work.solve(k)} for {@code k = 0 … count − 1}, taken in order from one queue by the calling
     * thread and {@code threads − 1} helpers of {@link #HELPERS}; returns when every shard taken has finished
     * (no helper still runs). After a failure (or an interrupt of the calling thread) no further shard is
     * taken; the first failure is thrown with the later ones suppressed.
     *
     * @param count shards
     * @param threads most shards at once, ≥ 1
     * @param work the shard's solve
     * @throws IllegalStateException when the calling thread was interrupted (its flag is set again)
     */
    static void solveAll(int count, int threads, ShardWork work) {
        java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.atomic.AtomicReference<Throwable> first = new java.util.concurrent.atomic.AtomicReference<>();
        java.util.Queue<Throwable> later = new java.util.concurrent.ConcurrentLinkedQueue<>();
        Runnable loop = () -> {
            for (int k; first.get() == null && (k = next.getAndIncrement()) < count; ) {
                try {
                    work.solve(k);
                } catch (Throwable t) { // RuntimeException or Error: rethrown on the calling thread below
                    if (!first.compareAndSet(null, t)) {
                        later.add(t);
                    }
                }
            }
        };
        List<java.util.concurrent.Future<?>> helpers = new ArrayList<>();
        boolean interrupted = false;
        try {
            for (int t = 1; t < threads; t++) {
                helpers.add(HELPERS.submit(loop));
            }
        } catch (java.util.concurrent.RejectedExecutionException e) { // (an unbounded queue: not expected)
            first.compareAndSet(null, e);
        }
        loop.run();
        for (java.util.concurrent.Future<?> fu : helpers) {
            while (true) {
                try {
                    fu.get();
                    break;
                } catch (InterruptedException e) {
                    // a killed task: take no further shard, but wait for those in flight (the factor they read
                    // is closed after this returns)
                    interrupted = true;
                    first.compareAndSet(null, new IllegalStateException("interrupted while solving row shards", e));
                } catch (java.util.concurrent.ExecutionException e) { // the loop catches everything: not expected
                    if (!first.compareAndSet(null, e.getCause())) {
                        later.add(e.getCause());
                    }
                    break;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        Throwable t = first.get();
        if (t == null) {
            return;
        }
        for (Throwable o : later) {
            if (o != t) {
                t.addSuppressed(o);
            }
        }
        if (t instanceof RuntimeException re) {
            throw re;
        }
        if (t instanceof Error er) {
            throw er;
        }
        throw new IllegalStateException("row shard solve failed", t);
    }

    /**
     * Sums the group's partials in the fixed order ({@link HessianReduce.TreeOrder} over all
     * calibration partitions), whatever order they arrive in; each is released by the order as soon as
     * it is merged (the partials themselves are not modified: they may be the executor's cached blocks).
     *
     * @param partitions calibration partitions, the partials to expect
     * @throws IllegalStateException when a partial of another group arrives, or partials are missing or repeated
     */
    static HessianAccumulator reduce(String group, int groupIndex, int partitions,
                                     Iterator<Tuple2<Integer, Tuple2<Integer, HessianAccumulator>>> partials) {
        HessianReduce.TreeOrder order = new HessianReduce.TreeOrder(partitions);
        while (partials.hasNext()) {
            Tuple2<Integer, Tuple2<Integer, HessianAccumulator>> p = partials.next();
            if (p._1 != groupIndex) {
                throw new IllegalStateException("the task of calibration group " + groupIndex + " (" + group
                        + ") received a Hessian partial of group " + p._1);
            }
            order.add(p._2._1, p._2._2);
        }
        return order.result();
    }
}
