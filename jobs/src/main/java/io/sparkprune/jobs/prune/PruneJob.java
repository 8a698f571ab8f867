package io.sparkprune.jobs.prune;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.HessianPrecision;
import io.sparkprune.jobs.SparkFailures;
import io.sparkprune.jobs.commit.CommitLog;
import io.sparkprune.jobs.commit.LayerStaging;
import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.jobs.conf.SparkPruneConf;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.forward.CalibrationGroup;
import io.sparkprune.pipeline.forward.HiddenStates;
import io.sparkprune.pipeline.forward.HessianObserver;
import io.sparkprune.pipeline.forward.LinearObserver;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.forward.Weights;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.formats.SparsityConfigBlock;
import io.sparkprune.pipeline.recipe.OutputFormat;
import io.sparkprune.pipeline.recipe.PipelineMode;
import io.sparkprune.pipeline.recipe.PruneMethod;
import io.sparkprune.pipeline.recipe.GatesSpec;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.report.ReportFormat;
import io.sparkprune.pipeline.report.TensorSummary;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.ShuffleDependency;
import org.apache.spark.SparkException;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.storage.StorageLevel;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple2;

/**
 * The driver of {@code sparkprune prune}: layer-sequential SparseGPT on Spark (Frantar &amp;
 * Alistarh 2023, arXiv 2301.00774, §3; the reference's {@code llama_sequential}), following the
 * plan in docs/architecture.md. Per block ℓ:
 * <ol>
 *   <li><b>Hessians.</b> Each calibration partition runs block ℓ (dense weights, read by the
 *       executor from the checkpoint) on its persisted activations with an observer that adds every
 *       calibration group's input to a partial {@link HessianAccumulator}; each partial goes into a
 *       shuffle keyed by its group (one reduce partition per group).</li>
 *   <li><b>Group tasks,</b> one per calibration group, on the executors ({@link GroupSolve}): sum the
 *       group's partials in {@link HessianReduce}'s fixed order, compute the inverse factor
 *       (SparseGPT: dead inputs, dampening retry), and solve every row shard of the group's weights
 *       ({@link ShardSolver}: read the rows by byte range, prune, write to the layer's staging
 *       directory). The driver gets the shard records, their measurements and a small
 *       {@link GroupSummary} per group.</li>
 *   <li><b>Commit</b> the layer: shard records and metrics, then the {@code _COMMITTED} marker
 *       ({@link CommitLog}).</li>
 *   <li><b>Advance.</b> The activations of block ℓ+1 are block ℓ's outputs with the pruned weights
 *       read back from staging (sequential mode) or with the dense weights (independent mode);
 *       they stay persisted on the executors and are never collected.</li>
 * </ol>
 * The output checkpoint is assembled from the committed shards and the untouched tensors while
 * the layers run (each layer's tensors once committed; on a local output), the quality check runs on
 * held-out data after the last layer, and the report is written ({@code report.json},
 * {@code metrics.parquet}, {@code report.html}; docs/report.md) with the recipe's quality gates.
 *
 * <p>The driver holds metadata, token ids, and per layer the shard records and measurements;
 * never Hessians, inverse factors, weights or activations. {@code --resume} replays the forward
 * pass over the committed layers (with their committed weights) and continues at the first
 * uncommitted one; since every stage is deterministic, the output equals an uninterrupted run's.
 */
public final class PruneJob {
    private static final Logger LOG = LoggerFactory.getLogger(PruneJob.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Token budget of one calibration batch. */
    static final int TOKENS_PER_BATCH = 4096; // the CPU default of spark.sparkprune.calibration.batchTokens

    /**
     * What to prune and where.
     *
     * @param model checkpoint directory (local path or Hadoop URI), an {@code .onnx} file, or {@code default}
     * @param output output directory (local path or Hadoop URI)
     * @param recipe the resolved recipe
     * @param resume continue a killed run from its first uncommitted layer
     */
    public record Request(String model, String output, Recipe recipe, boolean resume) {
    }

    /**
     * @param outputDir the output directory
     * @param report the report that was written to {@code report.json}
     */
    public record Outcome(String outputDir, ObjectNode report) {
    }

    private PruneJob() {
    }

    /**
     * Logs at {@code DEBUG}, once per task and pass, what a workspace did with the backend's device
     * activation cache (uploads from the cache or from host arrays, outputs kept; bytes); nothing for a
     * workspace without one.
     */
    private static void logCacheTraffic(ForwardWorkspace ws, String what) {
        if (LOG.isDebugEnabled()) {
            String s = ws.activationCacheSummary();
            if (!s.isEmpty()) {
                LOG.debug("{}: activation cache {}", what, s);
            }
        }
    }

    /**
     * Runs the job.
     *
     * @param spark the session (local or cluster)
     * @param req what to prune
     * @return where the output is, and the report
     * @throws InvalidInputException on bad input (model, recipe, data, an existing output without --resume), also
     *     when an executor task met it (e.g. non-finite calibration activations): the task's typed error, not Spark's
     */
    public static Outcome run(SparkSession spark, Request req) {
        Run run = null;
        try {
            run = new Run(spark, req);
            return run.execute();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (Exception e) { // Spark actions throw the checked SparkException undeclared
            // an executor's typed error (e.g. non-finite calibration activations) is the user's to see
            throw SparkFailures.rethrow(e);
        } finally {
            if (run != null) {
                run.cancelWarmUp(); // set-up jobs still running: a run that failed first, or late executors'
            }
        }
    }

    /** One execution; holds the driver-side state. */
    private static final class Run {
        private final JavaSparkContext jsc;
        private final Request req;
        private final SparkPruneConf conf;
        private final Configuration hconf;
        private final HadoopConf hadoop;
        private final Path out;
        private final FileSystem fs;
        private final Map<String, Double> stageSeconds = new LinkedHashMap<>();
        private final StorageLevel storage;
        /**
         * Where the partial Hessians wait for their group tasks ({@link GroupPartials}): deserialized in
         * memory (a group task on the same executor reads the object itself), spilled to disk rather
         * than recomputed when the executor's storage memory is full.
         */
        private static final StorageLevel PARTIALS_STORAGE = StorageLevel.MEMORY_AND_DISK();
        /** Wanda baseline: input norms √(Σ x_j²) of each target tensor, from the group tasks' summaries. */
        private final Map<String, double[]> inputNorms = new LinkedHashMap<>();
        /** Executor seconds by phase, summed over the tasks (report: run.executor_seconds). */
        private final ExecutorPhases phases = new ExecutorPhases();
        /** The executors' set-up jobs ({@link #startWarmUp}), as submitted by {@link #warmUpSubmitter}. */
        private final List<java.util.concurrent.Future<org.apache.spark.api.java.JavaFutureAction<Void>>> warmUps =
                new java.util.concurrent.CopyOnWriteArrayList<>();
        /** Executors given a set-up job (executor ids; "any" in local mode). */
        private final java.util.Set<String> warmedExecutors = java.util.concurrent.ConcurrentHashMap.newKeySet();
        /** Submits the set-up jobs (one thread: it carries their job group); null before {@link #startWarmUp}. */
        private java.util.concurrent.ExecutorService warmUpSubmitter;
        /** Sets up executors that register during the run; null before {@link #startWarmUp} and in local mode. */
        private org.apache.spark.scheduler.SparkListener warmUpListener;
        /** The set-up jobs' job group, this run's own (cancelled with its future jobs at the end). */
        private final String warmUpGroup = "warm-up-" + java.util.UUID.randomUUID();
        /** Whether a set-up job still prefetches block 0: only those submitted before the first layer. */
        private volatile boolean warmUpPrefetch;

        Run(SparkSession spark, Request req) throws IOException {
            this.jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            this.req = req;
            this.conf = SparkPruneConf.fromSparkConf(jsc.getConf());
            this.hconf = jsc.hadoopConfiguration();
            this.hadoop = new HadoopConf(hconf);
            this.out = new Path(req.output());
            this.fs = out.getFileSystem(hconf);
            this.storage = StorageLevel.fromString(conf.activationsStorageLevel());
            jsc.sc().register(phases, "sparkprune executor phases");
        }

        Outcome execute() throws IOException {
            Instant start = Instant.now();
            long t0 = System.nanoTime();
            ExecutorState.clear();
            if (!req.resume()) {
                refuseExistingOutput();
            }
            String modelUri = ModelInput.resolve(req.model(), out, fs);
            ShardedCheckpoint ck = ShardedCheckpoint.open(modelUri, hconf);
            byte[] configJson = ck.readSideFile("config.json", 16 << 20).orElseThrow(() -> new InvalidInputException(
                    ck.sideFileLabel("config.json") + ": the checkpoint has no config.json; SparkPrune needs a Hugging Face "
                            + "checkpoint directory (or an ONNX export, which it converts)"));
            ModelConfig config = ModelConfigs.parse(configJson, ck.sideFileLabel("config.json"));
            ModelAdapter adapter = ModelAdapter.of(config);
            byte[] tokenizerJson = ck.readSideFile("tokenizer.json", 256L << 20).orElseThrow(() -> new InvalidInputException(
                    ck.sideFileLabel("tokenizer.json") + ": the checkpoint has no tokenizer.json, which calibration needs; "
                            + "add the model's tokenizer.json to the directory"));
            Recipe recipe = req.recipe();
            List<OutputFormat> formats = recipe.prune().outputFormats();
            OutputAssembler.checkOutput(fs, out, formats);
            JobContext ctx = new JobContext(modelUri, configJson, recipe, hadoop,
                    conf.backend().name().toLowerCase(Locale.ROOT), conf.threads(), conf.activationsDeviceCacheBytes());
            LayerPlan plan = LayerPlan.of(adapter, ck, recipe, conf.rowShardMaxRows());
            if (plan.targetCount() == 0) {
                throw new InvalidInputException("no tensor of " + modelUri + " matches the recipe's targets "
                        + recipe.prune().selector() + "; check prune.targets and prune.ignore");
            }
            startWarmUp(ctx, !req.resume());

            List<int[]> sequences;
            try (HfTokenizer tok = HfTokenizer.fromBytes(tokenizerJson, ck.sideFileLabel("tokenizer.json"))) {
                sequences = CalibrationTokens.sample(recipe.calibration(), config, tok, hconf);
            }
            String dataFingerprint = CalibrationTokens.fingerprint(sequences);
            String modelFingerprint = modelFingerprint(ck, configJson);
            int batchTokens = conf.calibrationBatchTokens();
            String fingerprint = runFingerprint(modelFingerprint, recipe,
                    dataFingerprint + executionSettings(recipe, batchTokens, conf.rowShardMaxRows()));
            stageSeconds.put("prepare", seconds(t0));
            LOG.info("model {} ({}, {} layers, {} target tensors); {} calibration sequences, {} tokens; recipe: {}",
                    modelUri, config.modelType(), adapter.numLayers(), plan.targetCount(), sequences.size(),
                    sequences.stream().mapToInt(s -> s.length).sum(), recipe.summary());

            CommitLog log = CommitLog.open(fs, out, fingerprint, req.resume() ? CommitLog.Mode.RESUME : CommitLog.Mode.FRESH,
                    CommitLog.Verify.SIZES);
            int firstLayer = log.firstUncommittedLayer();
            if (req.resume()) {
                LOG.info("resuming at layer {} ({} layers committed)", firstLayer, firstLayer);
            }

            // the output is assembled while the layers are pruned: the tensors that are not pruned from now
            // on, each layer's pruned tensors once it is committed (those committed before a resume at once)
            java.util.Set<String> prunedNames = new java.util.HashSet<>();
            for (int l = 0; l < adapter.numLayers(); l++) {
                plan.targets(l).forEach(t -> prunedNames.add(t.name()));
            }
            try (OutputAssembler.DenseRun assembly = OutputAssembler.startDense(ck, log, fs, out, prunedNames,
                    DenseAssembly.Settings.defaults())) {
                assembly.commit(log.committedShards());
                awaitWarmUp();
                List<TokenBatch> batches = CalibrationTokens.pack(sequences, batchTokens);
                int partitions = conf.calibrationPartitions() > 0 ? conf.calibrationPartitions() : Math.min(16, batches.size());
                jsc.setJobGroup("calibration", "embed " + sequences.size() + " calibration sequences", false);
                ExecutorPhases ph = phases;
                // the token batches travel once per executor (a broadcast), not inside every task: each
                // partition of every later stage is this RDD's partition, which would otherwise carry its
                // batches (0.5 MB per partition at 64 × 2048 tokens) in each task of the run. Partition p holds
                // batches [p·n/P, (p+1)·n/P), the slices that parallelize(batches, P) would make.
                org.apache.spark.broadcast.Broadcast<List<TokenBatch>> tokens = jsc.broadcast(batches);
                int batchCount = batches.size();
                int slices = partitions;
                List<Integer> partitionIds = new ArrayList<>();
                for (int p = 0; p < slices; p++) {
                    partitionIds.add(p);
                }
                JavaRDD<HiddenStates> hidden = jsc.parallelize(partitionIds, slices).mapPartitions(it -> {
                    long te = System.nanoTime();
                    ModelAdapter a = ctx.adapter();
                    Backend be = ctx.backend();
                    Weights global = ctx.globalWeights(a);
                    List<HiddenStates> res = new ArrayList<>();
                    while (it.hasNext()) {
                        int p = it.next();
                        List<TokenBatch> mine = tokens.value().subList((int) ((long) p * batchCount / slices),
                                (int) ((long) (p + 1) * batchCount / slices));
                        mine.forEach(b -> res.add(a.embed(be, global, b)));
                    }
                    ph.time("calibration.embed", te);
                    return res.iterator();
                }, true).persist(storage);

                SortedShards committed = new SortedShards();
                // the committed layers' forward passes are replayed only when a layer is left to prune: after a
                // run killed past its last commit (assembling or evaluating), nothing reads their outputs
                int replay = firstLayer < adapter.numLayers() ? firstLayer : 0;
                for (int layer = 0; layer < replay; layer++) {
                    long tl = System.nanoTime();
                    committed.put(layer, log);
                    JavaRDD<HiddenStates> next = advance(ctx, hidden, layer, log, committed.get(layer));
                    jsc.setJobGroup("layer-" + layer, "layer " + layer + ": replay the forward pass with its committed weights",
                            false);
                    next.count();
                    hidden.unpersist(false);
                    hidden = next;
                    stageSeconds.merge("resume_replay", seconds(tl), Double::sum);
                }
                List<ObjectNode> tensorMetrics = new ArrayList<>();
                for (int layer = 0; layer < firstLayer; layer++) {
                    tensorMetrics.addAll(readLayerMetrics(log, layer));
                }
                // the quality check's data is read and tokenized on a driver thread while the layers are pruned
                java.util.concurrent.CompletableFuture<QualityEvaluator.Prepared> evalData =
                        new java.util.concurrent.CompletableFuture<>();
                Thread preparer = new Thread(() -> {
                    try {
                        evalData.complete(QualityEvaluator.prepare(ctx, config, tokenizerJson, hconf));
                    } catch (Throwable e) {
                        evalData.completeExceptionally(e);
                    }
                }, "sparkprune-evaluation-data");
                preparer.setDaemon(true);
                preparer.start();
                // Block ℓ's output is not computed in a stage of its own: the RDD is defined (advance) and
                // persisted, and the Hessian stage of block ℓ + 1 computes each partition of it in the same
                // task, right before running block ℓ + 1 on it. Block ℓ's input can go once that stage has
                // materialized block ℓ's output; the last block's output is never computed.
                JavaRDD<HiddenStates> consumed = null;
                for (int layer = firstLayer; layer < adapter.numLayers(); layer++) {
                    long tl = System.nanoTime();
                    Map<String, Double> phasesBefore = phases.value();
                    List<ObjectNode> metrics = pruneLayer(ctx, adapter, plan, hidden, layer, layer > firstLayer, log);
                    if (consumed != null) {
                        consumed.unpersist(false);
                    }
                    committed.put(layer, log);
                    assembly.commit(committed.get(layer));
                    tensorMetrics.addAll(metrics);
                    consumed = hidden;
                    hidden = advance(ctx, hidden, layer, log, committed.get(layer));
                    double secs = seconds(tl);
                    double meanErr = metrics.stream().mapToDouble(m -> m.get("relative_reconstruction_error").asDouble())
                            .average().orElse(0);
                    LOG.info(String.format(Locale.ROOT, "layer %d/%d: %d tensors pruned in %.1f s, mean relative reconstruction error %.4f",
                            layer + 1, adapter.numLayers(), metrics.size(), secs, meanErr));
                    LOG.info("layer {}: executor seconds by phase {}", layer + 1, formatPhases(
                            ExecutorPhases.since(phasesBefore, phases.value())));
                }
                if (consumed != null) {
                    consumed.unpersist(false);
                }
                hidden.unpersist(false);
                tokens.destroy(); // nothing computes the calibration embeddings again

                // the quality check runs on the committed shards (the bytes the assembly copies into the
                // output) on a thread of its own, its Spark jobs on the executors' GPUs, while this thread
                // assembles the output on the driver's CPUs and disk
                List<String> skipped = new ArrayList<>();
                List<BaselineWeights> baselines = baselines(recipe, plan, adapter.numLayers(), firstLayer, skipped);
                QualityEvaluator.ModelRef prunedModel = QualityEvaluator.committedModel(ctx, log.committedShards(),
                        log.stagingDir().toString());
                java.util.concurrent.CompletableFuture<ObjectNode> evaluation = new java.util.concurrent.CompletableFuture<>();
                double[] evaluateSeconds = new double[1];
                // a group of this run's own: cancelling it also refuses the jobs the check has not yet submitted
                String evalGroup = "evaluate-" + java.util.UUID.randomUUID();
                Thread evaluator = new Thread(() -> {
                    long te = System.nanoTime();
                    try {
                        jsc.setJobGroup(evalGroup, "quality check on held-out data", false);
                        QualityEvaluator.Prepared data;
                        try {
                            data = evalData.join();
                        } catch (java.util.concurrent.CompletionException e) {
                            throw e.getCause() != null ? e.getCause() : e; // the reader's own (typed) failure
                        }
                        ObjectNode q = QualityEvaluator.evaluate(jsc, ctx, config, data, prunedModel, baselines);
                        evaluateSeconds[0] = seconds(te);
                        evaluation.complete(q);
                    } catch (Throwable e) {
                        evaluation.completeExceptionally(e);
                    }
                }, "sparkprune-quality-check");
                evaluator.setDaemon(true);
                evaluator.start();

                long ta = System.nanoTime();
                Path dense;
                ObjectNode sparsity;
                ObjectNode quality;
                try {
                    fs.setWriteChecksum(false); // no Hadoop .crc side files in the user's output directory
                    sparsity = sparsityBlock(recipe, tensorMetrics);
                    dense = assembly.finish(sparsity); // its wait: what is left once the last layer is committed
                    stageSeconds.put("assemble", seconds(ta));
                    quality = evaluation.get();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    jsc.sc().cancelJobGroupAndFutureJobs(evalGroup);
                    throw new IllegalStateException("interrupted while waiting for the quality check", e);
                } catch (java.util.concurrent.ExecutionException e) {
                    if (e.getCause() instanceof Error err) {
                        throw err;
                    }
                    throw SparkFailures.rethrow(e.getCause());
                } catch (IOException | RuntimeException | Error e) {
                    // no quality check for an output that was not written: its running and later jobs are cancelled
                    jsc.sc().cancelJobGroupAndFutureJobs(evalGroup);
                    awaitQuietly(evaluator);
                    throw e;
                }
                stageSeconds.put("evaluate", evaluateSeconds[0]); // wall time, overlapping "assemble"
                for (String m : skipped) {
                    ObjectNode b = quality.withArray("baselines").addObject();
                    b.put("method", m);
                    b.put("pattern", recipe.prune().pattern().spec());
                    b.put("error", "not scored: this run resumed at layer " + firstLayer + ", and the input norms of the "
                            + "layers committed before it were not kept; run without --resume to score " + m);
                }

                long tw = System.nanoTime();
                Map<OutputFormat, Path> written = OutputAssembler.publish(fs, out, dense, formats, log, ck, recipe.prune(),
                        configJson, sparsity);
                stageSeconds.merge("assemble", seconds(tw), Double::sum);

                ObjectNode report = report(req, modelUri, config, recipe, sequences, dataFingerprint, modelFingerprint,
                        tensorMetrics, quality, start, t0);
                JobReport.addStorage(report, written, fs);
                JobReport.finish(report, recipe.gates(), fs, out, hconf);
                log.deleteStaging();
                ModelInput.cleanUp(out, fs);
                ck.close();
                return new Outcome(out.toString(), report);
            }
        }

        /**
         * Starts the executors' set-up while the driver prepares the run (tokenizes the calibration text,
         * fingerprints the model, opens the commit log): one small asynchronous Spark job per executor,
         * its one task preferring that executor (process-local), for every executor registered now and,
         * through a listener, every executor that registers later (a late start, dynamic allocation, the
         * replacement of a lost one). Each task creates its JVM's backend ({@link JobContext#backend()}: on
         * the GPU the CUDA context and the kernel modules), loads the global weights and widens the
         * embedding table (one embedding lookup of one token), and starts loading block 0's dense weights
         * ({@link JobContext#prefetchDenseBlock}), work that the first Hessian stage would otherwise do on
         * its critical path. Everything it does is cached per executor JVM and idempotent: a set-up task
         * that lands on another executor (its own busy past {@code spark.locality.wait}) or one that runs
         * beside a layer task costs only its own set-up. In local mode one task runs on the driver's
         * executor. Under GPU scheduling each task takes its share of a GPU like any other. Only the set-up
         * jobs submitted before the first layer prefetch block 0. A failed set-up is logged
         * ({@link #awaitWarmUp}).
         *
         * @param ctx the job's context
         * @param prefetchFirstBlock whether to start loading block 0 (a fresh run; a resumed one starts later)
         */
        private void startWarmUp(JobContext ctx, boolean prefetchFirstBlock) {
            warmUpPrefetch = prefetchFirstBlock;
            warmUpSubmitter = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "sparkprune-warm-up");
                t.setDaemon(true);
                return t;
            });
            if (jsc.sc().isLocal()) {
                warmUpOn(ctx, prefetchFirstBlock, null);
                return;
            }
            warmUpListener = new org.apache.spark.scheduler.SparkListener() {
                @Override
                public void onExecutorAdded(org.apache.spark.scheduler.SparkListenerExecutorAdded added) {
                    warmUpOn(ctx, prefetchFirstBlock, org.apache.spark.scheduler.ExecutorCacheTaskLocation.apply(
                            added.executorInfo().executorHost(), added.executorId()));
                }
            };
            jsc.sc().addSparkListener(warmUpListener);
            scala.jdk.javaapi.CollectionConverters.asJava(jsc.sc().env().blockManager().master().getMemoryStatus())
                    .keySet().forEach(bm -> {
                        if (!bm.isDriver()) {
                            warmUpOn(ctx, prefetchFirstBlock, org.apache.spark.scheduler.ExecutorCacheTaskLocation
                                    .apply(bm.host(), bm.executorId()));
                        }
                    });
        }

        /**
         * Submits one set-up task preferring {@code executor} (null: anywhere), once per executor, from the
         * set-up thread (which carries the {@code warm-up} job group).
         */
        private void warmUpOn(JobContext ctx, boolean prefetchFirstBlock,
                              org.apache.spark.scheduler.ExecutorCacheTaskLocation executor) {
            String key = executor == null ? "any" : executor.executorId();
            if (!warmedExecutors.add(key)) {
                return;
            }
            ExecutorPhases ph = phases;
            try {
                warmUps.add(warmUpSubmitter.submit(() -> {
                    boolean prefetch = prefetchFirstBlock && warmUpPrefetch; // a late executor: its layer is past 0
                    jsc.setJobGroup(warmUpGroup, "set up executor " + key + ": compute backend, global weights"
                            + (prefetch ? ", block 0" : ""), false);
                    List<scala.Tuple2<Integer, scala.collection.immutable.Seq<String>>> one = List.of(new scala.Tuple2<>(0,
                            scala.jdk.javaapi.CollectionConverters.asScala(executor == null ? List.<String>of()
                                    : List.of(executor.toString())).toList()));
                    JavaRDD<Integer> task = JavaRDD.fromRDD(jsc.sc().makeRDD(
                            scala.jdk.javaapi.CollectionConverters.asScala(one).toList(),
                            scala.reflect.ClassTag$.MODULE$.apply(Integer.class)),
                            scala.reflect.ClassTag$.MODULE$.apply(Integer.class));
                    return task.foreachPartitionAsync(it -> {
                        long tb = System.nanoTime();
                        ModelAdapter a = ctx.adapter();
                        Backend be = ctx.backend();
                        ph.time("warmup.backend", tb);
                        long tg = System.nanoTime();
                        a.embed(be, ctx.globalWeights(a), TokenBatch.of(new int[] {0})); // widens the table
                        ph.time("warmup.global_weights", tg);
                        if (prefetch) {
                            ctx.prefetchDenseBlock(a, 0);
                        }
                    });
                }));
            } catch (java.util.concurrent.RejectedExecutionException e) {
                // the run is over (cancelWarmUp shut the submitter down): nothing left to set up for
            }
        }

        /**
         * Waits for the set-up jobs submitted so far ({@link #startWarmUp}). A failed set-up (an executor
         * without a usable GPU, unreadable weights) is logged, not thrown: the set-up task prefers one
         * executor, so Spark retries it there, where a layer task would go to another executor; the layer
         * stages meet the same failure, if it persists, and Spark handles it as it handles any task's. Set-up
         * jobs of executors that register later are not waited for (nor prefetch block 0).
         *
         * @throws IllegalStateException when interrupted (the set-up jobs are cancelled)
         */
        private void awaitWarmUp() {
            warmUpPrefetch = false;
            for (java.util.concurrent.Future<org.apache.spark.api.java.JavaFutureAction<Void>> f : List.copyOf(warmUps)) {
                try {
                    f.get().get();
                } catch (InterruptedException e) {
                    cancelWarmUp();
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while the executors were being set up", e);
                } catch (java.util.concurrent.ExecutionException | java.util.concurrent.CancellationException e) {
                    Throwable c = e.getCause() != null ? e.getCause() : e;
                    LOG.warn("an executor's set-up failed (the layer stages will run there or elsewhere as Spark "
                            + "schedules them): {}", c.toString());
                }
            }
        }

        /**
         * Ends the set-up: no further set-up jobs (the listener removed, the submitting thread stopped and
         * waited for), and the run's set-up job group cancelled with its future jobs (a run that failed first,
         * or one that ends while a late executor's set-up runs). Safe to call more than once.
         */
        void cancelWarmUp() {
            if (warmUpListener != null) {
                jsc.sc().removeSparkListener(warmUpListener);
            }
            if (warmUpSubmitter != null) {
                warmUpSubmitter.shutdownNow();
                try {
                    warmUpSubmitter.awaitTermination(10, java.util.concurrent.TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            jsc.sc().cancelJobGroupAndFutureJobs(warmUpGroup);
        }

        /**
         * The recipe's {@code evaluation.baselines} at the run's pattern and targets. Wanda needs the
         * input norms of every target; a resumed run lacks those of the layers committed before
         * it, so Wanda is then listed in {@code skipped} instead.
         */
        private List<BaselineWeights> baselines(Recipe recipe, LayerPlan plan, int layers, int firstLayer,
                                                List<String> skipped) {
            List<String> targets = new ArrayList<>();
            for (int l = 0; l < layers; l++) {
                plan.targets(l).forEach(t -> targets.add(t.name()));
            }
            List<BaselineWeights> out = new ArrayList<>();
            for (PruneMethod m : recipe.evaluation().baselines()) {
                if (m == PruneMethod.WANDA && firstLayer > 0) {
                    skipped.add(m.id());
                    continue;
                }
                out.add(new BaselineWeights(m, recipe.prune().pattern().spec(), targets,
                        m == PruneMethod.WANDA ? new LinkedHashMap<>(inputNorms) : Map.of()));
            }
            return out;
        }

        /**
         * A fresh run must not overwrite an earlier run's output (a finished run leaves no staging
         * area, so {@link CommitLog} alone would not notice it).
         */
        private void refuseExistingOutput() throws IOException {
            if (!fs.exists(out)) {
                return;
            }
            org.apache.hadoop.fs.FileStatus st = fs.getFileStatus(out);
            org.apache.hadoop.fs.FileStatus[] content = st.isDirectory() ? fs.listStatus(out)
                    : new org.apache.hadoop.fs.FileStatus[] {st};
            if (content.length == 0) {
                return;
            }
            List<String> names = new ArrayList<>();
            for (org.apache.hadoop.fs.FileStatus c : content) {
                names.add(c.getPath().getName());
            }
            Collections.sort(names);
            throw new OutputExistsException("output " + out + " already exists and is not an empty directory (it holds "
                    + String.join(", ", names.subList(0, Math.min(6, names.size()))) + (names.size() > 6 ? ", ..." : "")
                    + "); choose a new output directory or delete this one, or pass --resume to continue a killed run "
                    + "that was writing there");
        }

        /**
         * Hessians, group solves and commit of one block. {@code fusedForward}: whether {@code hidden} is
         * still to be computed by the previous block's forward pass inside this block's Hessian stage
         * (false for the first block and for the first block after a resume's replay); it only labels
         * the Spark job.
         */
        private List<ObjectNode> pruneLayer(JobContext ctx, ModelAdapter adapter, LayerPlan plan, JavaRDD<HiddenStates> hidden,
                                            int layer, boolean fusedForward, CommitLog log) throws IOException {
            List<SolveTask> tasks = plan.tasks(layer);
            LayerStaging staging = log.stage(layer);
            if (tasks.isEmpty()) {
                hidden.count(); // no Hessian stage computes this block's input: materialize it here
                log.commit(layer, List.of(), "[]".getBytes(StandardCharsets.UTF_8));
                return List.of();
            }
            long th = System.nanoTime();
            jsc.setJobGroup("layer-" + layer, "layer " + layer + ": Hessians of " + plan.groups(layer)
                    + (fusedForward ? " (and block " + (layer - 1) + "'s forward pass, which computes their input)" : ""), false);
            List<String> groupNames = plan.groups(layer);
            HessianPrecision precision = ctx.recipe().calibration().hessianPrecision();
            ForwardPrecision forward = ctx.recipe().calibration().forwardPrecision();
            boolean norms = ctx.recipe().evaluation().baselines().contains(PruneMethod.WANDA);
            ExecutorPhases ph = phases;
            JavaRDD<HessianAccumulator[]> passes = hidden.mapPartitionsWithIndex((idx, it) -> {
                ph.timeSinceMark("forward.store"); // Spark storing the fused forward's output partition
                ModelAdapter a = ctx.adapter();
                Backend be = ctx.backend();
                long tw = System.nanoTime();
                Weights dense = ctx.denseBlock(a, layer);
                ph.time("hessians.weights", tw);
                ctx.prefetchDenseBlock(a, layer + 1); // loads while this pass runs; the next layer finds it
                Map<String, HessianAccumulator> acc = new LinkedHashMap<>();
                for (CalibrationGroup g : a.calibrationGroups()) {
                    if (groupNames.contains(g.name())) {
                        acc.put(g.name(), new HessianAccumulator(a.layerPrefix(layer) + g.name() + " input", g.inFeatures(),
                                precision));
                    }
                }
                LinearObserver obs = new HessianObserver(be, acc);
                try (ForwardWorkspace ws = ForwardWorkspace.open(be, forward, "layer " + layer + " Hessians, partition "
                        + idx)) {
                    long tf = System.nanoTime();
                    it.forEachRemaining(h -> a.observe(ws, layer, dense, h, obs)); // no block output: not needed
                    ph.time("hessians.forward", tf);
                    logCacheTraffic(ws, "layer " + layer + " Hessians, partition " + idx);
                    long tu = System.nanoTime();
                    for (HessianAccumulator h : acc.values()) {
                        h.flush(); // fold device-resident sums into the host partials, free device memory
                        h.settleForExchange(); // TF32: kept in fp32, as another executor would receive it
                    }
                    ph.time("hessians.flush", tu);
                } finally {
                    for (HessianAccumulator h : acc.values()) {
                        h.discard(); // no-op after flush; releases device memory when the task failed
                    }
                }
                // the partials by group index, left in this executor's block store (GroupPartials)
                HessianAccumulator[] byIndex = new HessianAccumulator[groupNames.size()];
                acc.forEach((g, h) -> byIndex[groupNames.indexOf(g)] = h);
                acc.clear();
                return ph.timeConsumer(List.<HessianAccumulator[]>of(byIndex).iterator(), "hessians.store");
            }, true);
            GroupPartials exchange = new GroupPartials(passes.rdd(), groupNames.size(), PARTIALS_STORAGE);
            List<GroupSolve.Result> results;
            double solveSeconds;
            try {
                exchange.materialize(jsc.sc());
                stageSeconds.merge("hessians", seconds(th), Double::sum);
                double[] costs = new double[groupNames.size()];
                boolean factored = ctx.recipe().prune().method() == PruneMethod.SPARSEGPT;
                for (int g = 0; g < costs.length; g++) {
                    costs[g] = GroupSolve.estimatedCost(tasks, groupNames.get(g), factored);
                }
                String[] placed = exchange.balance(jsc.sc(), costs);
                if (LOG.isDebugEnabled()) {
                    LOG.debug("layer {}: group tasks placed {} for groups {}", layer, java.util.Arrays.toString(placed),
                            groupNames);
                }

                long ts = System.nanoTime();
                int partitions = hidden.getNumPartitions();
                jsc.setJobGroup("layer-" + layer, "layer " + layer + ": reduce, factor and solve " + groupNames.size()
                        + " groups (" + tasks.size() + " row shards)", false);
                results = exchange.byGroup().toJavaRDD().mapPartitionsWithIndex((gi, it) -> Collections.singletonList(
                        GroupSolve.run(ctx, staging, tasks, groupNames.get(gi), gi, partitions,
                                ph.timeCalls(it, "group.read"), norms, ph)).iterator(),
                        false).collect();
                solveSeconds = seconds(ts);
            } finally {
                exchange.release();
            }

            Map<String, GroupSummary> groups = new LinkedHashMap<>();
            ShardMetrics[] byTask = new ShardMetrics[tasks.size()];
            List<List<ShardRecord>> recordsByTask = new ArrayList<>(Collections.nCopies(tasks.size(), null));
            double factorSeconds = 0;
            for (GroupSolve.Result r : results) {
                groups.put(r.summary().group(), r.summary());
                factorSeconds += r.summary().factorSeconds();
                for (GroupSolve.Solved s : r.solved()) {
                    byTask[s.taskIndex()] = s.metrics();
                    recordsByTask.set(s.taskIndex(), s.records());
                }
            }
            List<ShardRecord> records = new ArrayList<>();
            List<ShardMetrics> shardMetrics = new ArrayList<>();
            for (int i = 0; i < tasks.size(); i++) {
                if (byTask[i] == null) {
                    throw new IllegalStateException("layer " + layer + ": row shard " + tasks.get(i).shardIndex() + " of "
                            + tasks.get(i).tensor() + " was not solved by its group's task");
                }
                records.addAll(recordsByTask.get(i));
                shardMetrics.add(byTask[i]);
            }
            // executor seconds summed over the groups' tasks (which may run in parallel), included in "solve"
            stageSeconds.merge("inverse_factors", factorSeconds, Double::sum);
            stageSeconds.merge("solve", solveSeconds, Double::sum);
            if (norms) {
                for (LayerPlan.Target t : plan.targets(layer)) {
                    inputNorms.put(t.name(), groups.get(t.group()).inputNorms());
                }
            }
            List<ObjectNode> metrics = LayerMetrics.summarise(layer, plan, groups, shardMetrics, ctx.recipe());
            ArrayNode arr = JSON.createArrayNode();
            metrics.forEach(arr::add);
            log.commit(layer, records, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(arr));
            return metrics;
        }

        /**
         * Defines block {@code layer}'s output over the calibration partitions, persisted at the job's
         * storage level, without computing it: whichever Spark job uses it first computes it (the next
         * block's Hessian stage, or the caller's {@code count()}). The caller unpersists {@code hidden}
         * once the result has been materialized.
         *
         * <p>On the CUDA backend, with a deserialized storage level, the pass runs in a
         * {@link ForwardWorkspace.Handoff#PIPELINE} workspace ({@link JobContext#forwardHandoff}): each
         * output batch's device copy stays in the executor's activation cache, keyed by the array that
         * the RDD holds, so the next block's Hessian pass copies it on the device and the next forward
         * pass takes it over; this pass takes over its own inputs the same way. The RDD keeps every
         * value (fault tolerance, resume, the CPU backend); a batch not in the cache is uploaded.
         */
        private JavaRDD<HiddenStates> advance(JobContext ctx, JavaRDD<HiddenStates> hidden, int layer, CommitLog log,
                                              Map<String, List<ShardRecord>> shards) {
            boolean sequential = ctx.recipe().prune().pipeline() == PipelineMode.SEQUENTIAL;
            String layerDir = log.layerDir(layer).toString();
            ForwardPrecision forward = ctx.recipe().calibration().forwardPrecision();
            ForwardWorkspace.Handoff handoff = ctx.forwardHandoff(storage);
            ExecutorPhases ph = phases;
            JavaRDD<HiddenStates> next = hidden.mapPartitions(it -> {
                ModelAdapter a = ctx.adapter();
                Backend be = ctx.backend();
                long tw = System.nanoTime();
                Weights w = sequential ? ctx.prunedBlock(a, layer, layerDir, shards) : ctx.denseBlock(a, layer);
                ph.time("forward.weights", tw);
                List<HiddenStates> res = new ArrayList<>();
                long tf = System.nanoTime();
                try (ForwardWorkspace ws = ForwardWorkspace.open(be, forward, "layer " + layer + " forward", handoff)) {
                    it.forEachRemaining(h -> res.add(a.block(ws, layer, w, h, LinearObserver.NONE)));
                    logCacheTraffic(ws, "layer " + layer + " forward, partition "
                            + org.apache.spark.TaskContext.getPartitionId());
                }
                ph.time("forward.compute", tf);
                ph.mark(); // forward.store: until the consuming Hessian task's function starts on this thread
                return res.iterator();
            }, true).persist(storage);
            return next;
        }

        /** Waits for a thread to end, keeping this thread's interrupt (a failure is already being thrown). */
        private static void awaitQuietly(Thread t) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        private List<ObjectNode> readLayerMetrics(CommitLog log, int layer) throws IOException {
            List<ObjectNode> res = new ArrayList<>();
            JSON.readTree(log.readMetrics(layer)).forEach(n -> res.add((ObjectNode) n));
            return res;
        }

        private ObjectNode report(Request req, String modelUri, ModelConfig config, Recipe recipe, List<int[]> sequences,
                                  String dataFingerprint, String modelFingerprint, List<ObjectNode> tensors,
                                  ObjectNode quality, Instant start, long t0) {
            ObjectNode r = JSON.createObjectNode();
            JobReport.addRunFacts(r, ReportFormat.KIND_PRUNE, jsc);
            r.put("model", req.model());
            r.put("model_checkpoint", modelUri);
            r.put("model_type", config.modelType());
            r.put("model_fingerprint_sha256", modelFingerprint);
            r.put("output", out.toString());
            r.set("recipe", recipe.toTree());
            ObjectNode run = (ObjectNode) r.get("run");
            run.put("default_parallelism", jsc.defaultParallelism());
            run.put("backend", ExecutorState.backend(conf.backend().name().toLowerCase(Locale.ROOT), conf.threads()).name());
            run.put("resumed", req.resume());
            run.put("start", start.toString());
            run.put("end", Instant.now().toString());
            run.put("seconds", seconds(t0));
            ObjectNode st = run.putObject("stage_seconds");
            stageSeconds.forEach(st::put);
            ObjectNode ex = run.putObject("executor_seconds");
            phases.value().forEach(ex::put);
            ObjectNode cal = r.putObject("calibration");
            cal.put("sequences", sequences.size());
            cal.put("tokens", sequences.stream().mapToLong(s -> s.length).sum());
            cal.put("max_seq_len", sequences.stream().mapToInt(s -> s.length).max().orElse(0));
            cal.put("tokens_sha256", dataFingerprint);
            ArrayNode ts = r.putArray("tensors");
            tensors.forEach(ts::add);
            r.set("summary", TensorSummary.of(tensors));
            r.set("quality", quality);
            return r;
        }
    }

    /**
     * The run fingerprint that {@code --resume} compares: a SHA-256 over the model's fingerprint, the
     * resolved recipe as YAML (every key that changes the pruned weights, e.g. the pattern, the
     * calibration seed and {@code calibration.hessian_precision}) and the calibration tokens' hash.
     * Gates and output formats do not change what the job computes, so a resume may change them.
     *
     * @param modelFingerprint {@link #modelFingerprint} of the checkpoint
     * @param recipe the run's recipe
     * @param dataFingerprint hash of the calibration token sequences
     * @return 64 hex digits
     */
    static String runFingerprint(String modelFingerprint, Recipe recipe, String dataFingerprint) {
        Recipe computed = new Recipe(recipe.prune().withFormats(List.of()), recipe.calibration(), recipe.evaluation(),
                GatesSpec.NONE);
        return sha256(modelFingerprint + "\n" + computed.toYaml() + "\n" + dataFingerprint);
    }

    /**
     * The Spark settings that change the pruned weights, as text for the run fingerprint: the
     * calibration batch size (the batches fix the order of the Hessian sums) and, with
     * {@code mask_scope: all_rows} (each block's mask ranked over the shard's rows), the row-shard
     * height. With the default per-row scope the row shards do not change any weight, so it is left
     * out (and fingerprints of such runs are as before). With TF32 calibration forwards it also names
     * the TF32 attention (since 2026-11-21 attention's products follow {@code forward_precision} too), so
     * that a {@code --resume} of a TF32 run staged before that change refuses to mix the two.
     *
     * @param recipe the run's recipe
     * @param batchTokens resolved {@code spark.sparkprune.calibration.batchTokens}
     * @param rowShardRows resolved {@code spark.sparkprune.rowShard.maxRows}
     * @return text appended to the calibration data's fingerprint
     */
    static String executionSettings(Recipe recipe, int batchTokens, int rowShardRows) {
        String s = "\nbatch tokens " + batchTokens;
        if (recipe.calibration().forwardPrecision() == ForwardPrecision.TF32) {
            s += "\nattention tf32";
        }
        return recipe.prune().maskScope() == io.sparkprune.calibration.sparsity.MaskScope.ALL_ROWS
                ? s + "\nrow shard rows " + rowShardRows : s;
    }

    /** Committed shards of each layer, by tensor, in shard order. */
    private static final class SortedShards {
        private final Map<Integer, Map<String, List<ShardRecord>>> byLayer = new TreeMap<>();

        void put(int layer, CommitLog log) {
            Map<String, List<ShardRecord>> m = new TreeMap<>();
            for (ShardRecord r : log.marker(layer).shards()) {
                m.computeIfAbsent(r.tensor(), k -> new ArrayList<>()).add(r);
            }
            m.values().forEach(l -> l.sort(java.util.Comparator.comparingInt(ShardRecord::index)));
            byLayer.put(layer, m);
        }

        Map<String, List<ShardRecord>> get(int layer) {
            return byLayer.get(layer);
        }
    }

    /**
     * The {@code sparsity_config} block of the outputs: the recipe's structure, targets and ignore
     * list, and the fraction of exact zeros over the written target tensors.
     */
    static ObjectNode sparsityBlock(Recipe recipe, List<ObjectNode> tensorMetrics) {
        long zeros = 0;
        long elements = 0;
        for (ObjectNode t : tensorMetrics) {
            zeros += t.path("zeros").asLong();
            elements += t.path("elements").asLong();
        }
        return SparsityConfigBlock.build(SparsityConfigBlock.structure(recipe.prune().pattern()),
                recipe.prune().selector().targets(), recipe.prune().selector().ignore(),
                elements == 0 ? 0 : (double) zeros / elements);
    }


    /** @return the phases as {@code name s, ...}, largest first */
    static String formatPhases(Map<String, Double> phases) {
        List<Map.Entry<String, Double>> e = new ArrayList<>(phases.entrySet());
        e.sort((x, y) -> Double.compare(y.getValue(), x.getValue()));
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, Double> x : e) {
            sb.append(sb.length() == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%s %.2f", x.getKey(), x.getValue()));
        }
        return sb.toString();
    }

    static double seconds(long since) {
        return (System.nanoTime() - since) / 1e9;
    }

    /** sha256 over config.json, and every shard's name, length and header — cheap, and changes with any weight layout. */
    static String modelFingerprint(ShardedCheckpoint ck, byte[] configJson) {
        StringBuilder sb = new StringBuilder(new String(configJson, StandardCharsets.UTF_8));
        for (String f : ck.files()) {
            sb.append('\n').append(f).append(' ').append(ck.shard(f).fileLength());
            for (TensorInfo t : ck.shard(f).tensors()) {
                sb.append('\n').append(t);
            }
        }
        return sha256(sb.toString());
    }

    static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
