package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.baseline.MagnitudePruner;
import io.sparkprune.calibration.baseline.WandaPruner;
import io.sparkprune.calibration.quant.GridCheck;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.calibration.solver.PruneResult;
import io.sparkprune.calibration.solver.SparseGptSolver;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.jobs.commit.LayerStaging;
import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.ResidentFactorizer;
import io.sparkprune.pipeline.recipe.PruneStage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import org.apache.hadoop.fs.FileSystem;
import scala.Tuple2;

/**
 * The task body of the solve stage: reads a row shard of a weight from the checkpoint by byte
 * range, prunes it with the recipe's method, rounds it to the checkpoint's dtype, measures it
 * (zeros, pattern, finiteness, reconstruction error, SparseGPT's per-row losses and, when quantized,
 * whether every written value is on its grid: {@link GridCheck}) and writes it to the layer's
 * staging directory. A quantized solve also stages the shard's integer codes, scales and zero points
 * as the pseudo-tensors {@code <tensor>#codes}, {@code #scales}, {@code #zero_points} (committed and
 * resumed like the values), which the compressed-tensors and sparse writers read back.
 *
 * <p>The result depends only on the shard's rows, its group's Hessian and factor (reduced and
 * computed in a fixed order by the group's task, {@link GroupSolve}), and the recipe — not on which executor or attempt runs it — so a retried task writes the same bytes
 * ({@link LayerStaging#writeShard} checks this).
 */
final class ShardSolver {
    private ShardSolver() {
    }

    /** Suffix of the staged pseudo-tensor holding a quantized weight's codes: I8, rows × cols. */
    static final String CODES = "#codes";
    /** Suffix of the staged pseudo-tensor holding its scales: F32 (dtype-rounded), rows × groups. */
    static final String SCALES = "#scales";
    /** Suffix of the staged pseudo-tensor holding its zero points: I32, rows × groups. */
    static final String ZERO_POINTS = "#zero_points";

    /**
     * @param name a staged tensor name
     * @return true for the pseudo-tensors of quantization codes and grids (not checkpoint tensors)
     */
    static boolean isQuantPart(String name) {
        return name.endsWith(CODES) || name.endsWith(SCALES) || name.endsWith(ZERO_POINTS);
    }

    /**
     * Helper threads that write the staged files while the reconstruction error is computed (daemon;
     * idle ones end after a minute; one per shard being solved at once, so a few).
     */
    private static final java.util.concurrent.ExecutorService WRITERS;

    static {
        java.util.concurrent.ThreadPoolExecutor p = new java.util.concurrent.ThreadPoolExecutor(0, Integer.MAX_VALUE,
                60, java.util.concurrent.TimeUnit.SECONDS, new java.util.concurrent.SynchronousQueue<>(), r -> {
                    Thread t = new Thread(r, "sparkprune-shard-write");
                    t.setDaemon(true);
                    return t;
                });
        WRITERS = p;
    }

    /**
     * Solves one row shard and stages it.
     *
     * <p>Host passes after the solve: one fused parallel pass rounds the values to the checkpoint's dtype,
     * encodes the staged bytes and counts zeros, non-finite values, pattern and grid violations
     * ({@link ShardMeasure#encode}); the values as written are then turned into {@code w − ŵ} in place for
     * the reconstruction error ({@link #reconstructionError}), so no other {@code rows × cols} array is made.
     * The staged files are written (hashed and synced) on a helper thread meanwhile, and waited for before
     * this returns; a failure of either is thrown after both have ended.
     *
     * <p>Thread-safety: several shards of a group may be solved at once ({@link GroupSolve}); this method
     * uses no TaskContext (the backend and file system come from the caller, resolved on the task's
     * thread) and shares only thread-safe state (see {@link GroupSolve}).
     *
     * @param ctx the job's context
     * @param be the task's backend ({@link JobContext#backend()}, resolved on the task's own thread: the GPU
     *     binding reads Spark's TaskContext)
     * @param fs the staging directory's file system
     * @param staging the layer's staging directory
     * @param gs the reduced Hessian and (SparseGPT) inverse factor of the task's calibration group
     * @param task the row shard
     * @param phases where the executor seconds by phase go ({@code solve.read_weights}, {@code .prune},
     *     {@code .measure}, {@code .error}, {@code .write})
     * @return the staged shard files (the values, and for a quantized solve its codes and grid) and
     *     the shard's measurements
     * @throws java.io.UncheckedIOException when a shard cannot be written
     */
    static Tuple2<List<ShardRecord>, ShardMetrics> solve(JobContext ctx, Backend be, FileSystem fs,
                                                         LayerStaging staging, GroupStats gs, SolveTask task,
                                                         ExecutorPhases phases) {
        PruneStage stage = ctx.recipe().prune();
        SparsityPattern pattern = stage.pattern();
        long tr = System.nanoTime();
        HostTensor shard = ctx.checkpoint().readRows(task.tensor(), task.rowStart(), task.rowCount());
        float[] w = shard.toFloatArray();
        phases.time("solve.read_weights", tr);
        int rows = task.rowCount();
        int cols = task.cols();
        long t0 = System.nanoTime();
        float[] pruned;
        Optional<QuantizedWeights> quant = Optional.empty();
        double loss = 0;
        double dampening = Double.NaN;
        double[] rowLoss = null;
        QuantizedWeights grid = null;
        switch (stage.method()) {
            case SPARSEGPT -> {
                PruneResult r = new SparseGptSolver(be, stage.solverOptions())
                        .prune(task.tensor(), w, rows, cols, gs.factor(), pattern, stage.quantization());
                pruned = r.weights();
                quant = r.quantization().map(q -> gridInDtype(q, task.dtype()));
                if (quant.isPresent()) {
                    // the written values are the codes on the grid as stored (scales in the checkpoint's dtype)
                    pruned = quant.get().dequantize();
                }
                loss = r.totalLoss();
                rowLoss = r.rowLoss();
                dampening = r.dampening();
                grid = quant.orElse(null); // checked against the grid as stored
            }
            case WANDA -> pruned = WandaPruner.prune(task.tensor(), w, rows, cols, gs.hessian().inputNorms(), pattern).weights();
            case MAGNITUDE -> pruned = MagnitudePruner.prune(task.tensor(), w, rows, cols, pattern).weights();
            default -> throw new IllegalStateException("unknown method " + stage.method());
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        phases.time("solve.prune", t0);
        long tm = System.nanoTime();
        // the solver's result array is ours: rounded in place (a copy only if a method handed back its input)
        float[] written = pruned == w ? pruned.clone() : pruned;
        ShardMeasure.Encoded enc = ShardMeasure.encode(task.dtype(), written, w, rows, cols, pattern,
                deadColumns(gs, cols), grid);
        byte[] bytes = enc.bytes();
        phases.time("solve.measure", tm);
        // the staged files are written (hashed, synced) on a helper thread while this one computes the error
        Optional<QuantizedWeights> grids = quant;
        CompletableFuture<List<ShardRecord>> writing = CompletableFuture.supplyAsync(() -> {
            long tw = System.nanoTime();
            List<ShardRecord> written0 = writeStaged(stage, fs, staging, task, bytes, grids);
            phases.time("solve.write", tw);
            return written0;
        }, WRITERS);
        double[] err;
        try {
            long te = System.nanoTime();
            ShardMeasure.subtractFrom(w, written, rows, cols); // written now holds w − ŵ
            err = reconstructionError(be, gs, written, w, rows, cols);
            phases.time("solve.error", te);
        } catch (RuntimeException | Error e) {
            writing.handle((r, x) -> { // no write left running behind a failed shard; its failure kept too
                if (x != null) {
                    e.addSuppressed(x instanceof java.util.concurrent.CompletionException && x.getCause() != null
                            ? x.getCause() : x);
                }
                return null;
            }).join();
            throw e;
        }
        List<ShardRecord> records;
        try {
            records = writing.join();
        } catch (java.util.concurrent.CompletionException e) {
            if (e.getCause() instanceof Error x) {
                throw x;
            }
            throw e.getCause() instanceof RuntimeException r ? r : e;
        }
        return new Tuple2<>(records, new ShardMetrics(task.tensor(), (long) rows * cols, enc.zeros(),
                enc.patternViolations(), enc.nonFinite(), err[0], err[1], loss, seconds, dampening, be.name(), rowLoss,
                enc.gridViolations()));
    }

    /**
     * Writes a solved shard's staged files ({@link LayerStaging#writeShard}): the values, and for a
     * quantized solve its codes, scales and zero points; in sequential mode the values' bytes are also
     * handed to the next forward pass on this executor ({@link ExecutorState#offerStagedShard}).
     *
     * @return the records, values first
     * @throws java.io.UncheckedIOException when a file cannot be written
     */
    private static List<ShardRecord> writeStaged(PruneStage stage, FileSystem fs, LayerStaging staging,
                                                 SolveTask task, byte[] bytes, Optional<QuantizedWeights> quant) {
        List<ShardRecord> records = new ArrayList<>();
        try {
            ShardRecord main = staging.writeShard(fs, task.tensor(), task.shardIndex(), task.shardCount(), bytes);
            records.add(main);
            if (stage.pipeline() == io.sparkprune.pipeline.recipe.PipelineMode.SEQUENTIAL) {
                // the next layer's forward pass on this executor takes these bytes instead of reading the file
                ExecutorState.offerStagedShard(new org.apache.hadoop.fs.Path(staging.path(), main.file()).toString(),
                        main.sha256(), bytes);
            }
            if (quant.isPresent()) {
                QuantizedWeights q = quant.get();
                records.add(staging.writeShard(fs, task.tensor() + CODES, task.shardIndex(), task.shardCount(), q.codes()));
                ByteBuffer sc = ByteBuffer.allocate(4 * q.scales().length).order(ByteOrder.LITTLE_ENDIAN);
                sc.asFloatBuffer().put(q.scales());
                records.add(staging.writeShard(fs, task.tensor() + SCALES, task.shardIndex(), task.shardCount(), sc.array()));
                ByteBuffer zp = ByteBuffer.allocate(4 * q.zeroPoints().length).order(ByteOrder.LITTLE_ENDIAN);
                zp.asIntBuffer().put(q.zeroPoints());
                records.add(staging.writeShard(fs, task.tensor() + ZERO_POINTS, task.shardIndex(), task.shardCount(),
                        zp.array()));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write shard " + task.shardIndex() + " of " + task.tensor(), e);
        }
        return records;
    }

    /**
     * The grid as it is stored: scales rounded to the checkpoint's dtype (compressed-tensors stores
     * {@code weight_scale} in the weight's dtype; the sparse format likewise), codes and zero points
     * unchanged. The values written in every format are then {@code dtype(scale · (c − z))} with
     * this scale, so hf, sparse and compressed-tensors outputs decompress to the same bits.
     */
    static QuantizedWeights gridInDtype(QuantizedWeights q, io.sparkprune.kernels.DType dtype) {
        float[] s = HostTensor.fromFloats(dtype, new long[] {q.scales().length}, q.scales()).toFloatArray();
        return new QuantizedWeights(q.spec(), q.rows(), q.cols(), q.codes(), s, q.zeroPoints());
    }

    private static boolean[] deadColumns(GroupStats gs, int cols) {
        if (gs.factor() == null || gs.factor().deadCount() == 0) {
            return null;
        }
        boolean[] dead = new boolean[cols];
        for (int j = 0; j < cols; j++) {
            dead[j] = gs.factor().isDead(j);
        }
        return dead;
    }

    /**
     * Σ_r (w_r − ŵ_r) H (w_r − ŵ_r)ᵀ and Σ_r w_r H w_rᵀ over the shard's rows, with the undamped
     * Hessian: since H = (2/n) Σ xᵀx over the calibration tokens, their ratio is exactly
     * ‖(W − Ŵ)X‖² / ‖WX‖², the relative squared reconstruction error on the calibration inputs.
     * Each row's quadratic form is {@code Σ_c a[c] · T[c]} with {@code T = a·H} the fp32 product (H rounded
     * to fp32) and the terms and sum in fp64; the two sums add the rows' forms in row order. With a resident
     * factor of this backend ({@link io.sparkprune.calibration.hessian.InverseFactor#residentOn}) the product
     * and the rows' sums use its device copy of H ({@link ResidentFactorizer.Factor#rowQuadratics}, one call
     * per operand); otherwise a {@link ForwardWorkspace} FP32 linear with the executor's dense copy of H
     * ({@link ExecutorCaches}) and the sums on the host. The two operands are passed separately (no stacked
     * {@code 2·rows × cols} copy): every row's product is independent of the other rows (the fp32 products
     * of both backends accumulate each output element in a fixed order over the inner dimension), so the
     * sums are the same bits as one product of the stacked rows.
     *
     * @param be the backend
     * @param gs the group's Hessian and factor
     * @param diff {@code w − ŵ}, {@code rows × cols} row-major fp32 (not modified)
     * @param w the dense weights, same layout (not modified)
     * @param rows rows of the shard
     * @param cols columns (the Hessian's order)
     * @return {numerator, denominator}, fp64
     */
    static double[] reconstructionError(Backend be, GroupStats gs, float[] diff, float[] w, int rows, int cols) {
        double[] qd = new double[rows];
        double[] qw = new double[rows];
        ResidentFactorizer.Factor resident = gs.factor() == null ? null : gs.factor().residentOn(be);
        if (resident != null) {
            // H is already on the device with the group's factor: its fp32 copy is made there, the same
            // (float) values and the same FP32 product as the workspace path below, and the rows' fp64
            // dot products are summed there too (only the rows' sums come back, not the product)
            resident.rowQuadratics(rows, diff, qd);
            resident.rowQuadratics(rows, w, qw);
        } else {
            float[] h = ExecutorCaches.denseHessian(gs.hessian());
            // T = A·Hᵀ = A·H (H is symmetric) in a workspace: on the GPU the dense H is uploaded once per
            // executor (cached by identity with ExecutorCaches' array), not once per row shard
            try (ForwardWorkspace ws = ForwardWorkspace.open(be, ForwardPrecision.FP32, "reconstruction error")) {
                ForwardWorkspace.Matrix hm = ws.weight(h, cols, cols);
                ForwardWorkspace.Matrix tm = ws.allocate(rows, cols);
                rowQuadratics(ws, hm, tm, diff, rows, cols, qd);
                rowQuadratics(ws, hm, tm, w, rows, cols, qw);
            }
        }
        double num = 0;
        double den = 0;
        for (int r = 0; r < rows; r++) {
            num += qd[r];
        }
        for (int r = 0; r < rows; r++) {
            den += qw[r];
        }
        return new double[] {num, den};
    }

    /** {@code q[r] = Σ_c (double) a[r][c] · (double) (a·H)[r][c]}, the product in the workspace into {@code tm}. */
    private static void rowQuadratics(ForwardWorkspace ws, ForwardWorkspace.Matrix hm, ForwardWorkspace.Matrix tm,
                                      float[] a, int rows, int cols, double[] q) {
        ForwardWorkspace.Matrix am = ws.upload(a, rows, cols);
        ws.linear(am, hm, null, tm);
        ws.release(am);
        float[] t = ws.download(tm);
        java.util.stream.IntStream.range(0, rows).parallel().forEach(r -> {
            double s = 0;
            for (int c = 0; c < cols; c++) {
                s += (double) a[r * cols + c] * t[r * cols + c];
            }
            q[r] = s;
        });
    }

    /** Per-JVM cache of the group tasks' Hessians widened to dense fp32 matrices for the error metric. */
    static final class ExecutorCaches {
        private static final java.util.Map<io.sparkprune.calibration.hessian.HessianAccumulator, float[]> DENSE =
                java.util.Collections.synchronizedMap(new java.util.WeakHashMap<>());

        private ExecutorCaches() {
        }

        static float[] denseHessian(io.sparkprune.calibration.hessian.HessianAccumulator acc) {
            return DENSE.computeIfAbsent(acc, a -> {
                float[] f = new float[a.features() * a.features()];
                a.copyHessianTo(f);
                return f;
            });
        }
    }
}
