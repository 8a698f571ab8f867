package io.sparkprune.jobs.prune;

import io.sparkprune.kernels.Backend;
import io.sparkprune.jobs.gpu.GpuBinding;
import io.sparkprune.kernels.Backends;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.TensorSource;
import io.sparkprune.pipeline.forward.Weights;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;

/**
 * Per-JVM state of an executor (or of the driver in local mode), shared by the tasks running in
 * it: open checkpoints (memory maps or Hadoop streams), one compute backend, and the most recently
 * used global and block weights, so the tasks of one stage load a block once per executor rather
 * than once per task (and the next layer's dense block is prefetched meanwhile), and the staged
 * shards its group tasks just wrote, for the forward pass that reads them next.
 *
 * <p>Everything here is a cache of immutable data keyed by where it came from; it is never the
 * source of truth, so a lost executor loses nothing.
 */
final class ExecutorState {
    private static final Map<String, ShardedCheckpoint> CHECKPOINTS = new HashMap<>();
    private static final Map<String, Weights> WEIGHTS = new HashMap<>();
    private static final Map<String, io.sparkprune.pipeline.forward.TransformerModel> MODELS = new HashMap<>();
    private static Backend backend;
    private static String backendKey;

    private ExecutorState() {
    }

    /**
     * @param uri checkpoint directory (local path or Hadoop URI)
     * @param conf the job's Hadoop configuration
     * @return the checkpoint, opened once per JVM
     */
    static synchronized ShardedCheckpoint checkpoint(String uri, HadoopConf conf) {
        return CHECKPOINTS.computeIfAbsent(uri, u -> ShardedCheckpoint.open(u, conf.get()));
    }

    /**
     * The JVM's compute backend: {@code cpu}, {@code cuda} or {@code auto} (CUDA when a device is
     * usable, else the CPU with one warning). The CUDA device is the task's GPU address in
     * standalone/YARN/Kubernetes, or {@code spark.sparkprune.gpu.device} in local mode
     * ({@link GpuBinding#forTask()}).
     *
     * @param choice {@code auto}, {@code cpu} or {@code cuda}
     * @param threads CPU threads per kernel call; ≤ 0 for {@link #defaultThreads()}
     * @return the backend, created once per (choice, device, threads)
     */
    static synchronized Backend backend(String choice, int threads) {
        int t = threads > 0 ? threads : defaultThreads();
        int device = choice.equals("cpu") ? 0 : GpuBinding.forTask().device();
        String key = choice + "|" + device + "|" + t;
        if (backend == null || !key.equals(backendKey)) {
            backend = Backends.create(choice, device, t);
            backendKey = key;
        }
        return backend;
    }

    /**
     * Global weights (embeddings, final norm, head) of a checkpoint, cached.
     *
     * @param uri checkpoint
     * @param conf Hadoop configuration
     * @param adapter the model's adapter
     * @return the weights, in the checkpoint's dtype (fp32 arrays widened on first use, {@link Weights})
     */
    static synchronized Weights globalWeights(String uri, HadoopConf conf, ModelAdapter adapter) {
        return WEIGHTS.computeIfAbsent("global|" + uri,
                k -> adapter.loadGlobal(TensorSource.of(checkpoint(uri, conf))));
    }

    /**
     * Most block weights kept (the pruned block of the layer before, the dense block, the next one
     * prefetched, one spare); blocks still loading are never dropped, so more may be held for a while.
     */
    static final int MAX_BLOCKS = 4;
    /** Block weights by key, loaded or loading, oldest first. Guarded by the class lock (the loads run outside it). */
    private static final LinkedHashMap<String, CompletableFuture<Weights>> BLOCKS = new LinkedHashMap<>();
    private static final java.util.concurrent.ExecutorService PREFETCH = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "sparkprune-block-prefetch");
        t.setDaemon(true);
        return t;
    });
    /** Staged shard bytes handed from the group task that wrote them to the forward pass that reads them. */
    private static final LinkedHashMap<String, byte[]> STAGED = new LinkedHashMap<>();
    private static long stagedBytes;
    /** Most bytes of staged shards kept for {@link #takeStagedShard} (2 GiB: five 7B blocks in bf16). */
    static final long MAX_STAGED_BYTES = 2L << 30;

    /**
     * A block's weights from a source described by {@code key}, cached; at most {@link #MAX_BLOCKS}
     * blocks are kept (oldest dropped first). The loader runs on the calling thread outside the cache's
     * lock, so loads of different blocks (a task's and a {@link #prefetchBlock prefetch}) run at once;
     * callers asking for a block that is being loaded wait for that load. A failed load is forgotten
     * (the next call loads again) and rethrown to every waiter.
     *
     * @param key identifies the weights (source and layer)
     * @param loader loads them on a miss
     * @return the weights, in the checkpoint's dtype (fp32 arrays widened on first use, {@link Weights})
     * @throws RuntimeException the loader's exception
     */
    static Weights blockWeights(String key, java.util.function.Supplier<Weights> loader) {
        CompletableFuture<Weights> mine = new CompletableFuture<>();
        CompletableFuture<Weights> f = claim(key, mine);
        if (f == mine) {
            load(key, mine, loader);
        }
        try {
            return f.join();
        } catch (java.util.concurrent.CompletionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : e;
        }
    }

    /**
     * Starts loading a block on a background daemon thread unless it is cached or loading, so that a
     * later {@link #blockWeights} with the same key finds it (e.g. the next layer's dense block while
     * this layer's Hessian pass runs). A failed prefetch is forgotten quietly: the later call loads
     * again and reports the failure itself.
     *
     * @param key identifies the weights (source and layer)
     * @param loader loads them
     */
    static void prefetchBlock(String key, java.util.function.Supplier<Weights> loader) {
        CompletableFuture<Weights> mine = new CompletableFuture<>();
        if (claim(key, mine) == mine) {
            PREFETCH.execute(() -> load(key, mine, loader));
        }
    }

    private static synchronized CompletableFuture<Weights> claim(String key, CompletableFuture<Weights> mine) {
        CompletableFuture<Weights> f = BLOCKS.get(key);
        if (f != null) {
            return f;
        }
        // drop the oldest loaded blocks; a block still loading stays (dropping it would load it twice)
        java.util.Iterator<CompletableFuture<Weights>> it = BLOCKS.values().iterator();
        int excess = BLOCKS.size() - MAX_BLOCKS + 1;
        while (excess > 0 && it.hasNext()) {
            if (it.next().isDone()) {
                it.remove();
                excess--;
            }
        }
        BLOCKS.put(key, mine);
        return mine;
    }

    private static void load(String key, CompletableFuture<Weights> f, java.util.function.Supplier<Weights> loader) {
        try {
            f.complete(loader.get());
        } catch (RuntimeException | Error e) {
            synchronized (ExecutorState.class) {
                BLOCKS.remove(key, f);
            }
            f.completeExceptionally(e);
        }
    }

    /**
     * Keeps a staged shard's bytes, just written by this executor's group task, for the forward pass
     * that reads the pruned block next ({@link #takeStagedShard}), so it need not read the file back.
     * The key carries the file's SHA-256 from its commit record, so only the committed content is
     * ever handed over. At most {@link #MAX_STAGED_BYTES} are kept (oldest dropped first).
     *
     * @param file the shard file's path
     * @param sha256 its SHA-256 (the {@code ShardRecord}'s)
     * @param bytes its content (kept, not copied: the caller must not modify it)
     */
    static void offerStagedShard(String file, String sha256, byte[] bytes) {
        offerStagedShard(file, sha256, bytes, MAX_STAGED_BYTES);
    }

    /** {@link #offerStagedShard(String, String, byte[])} with another cap (tests). */
    static synchronized void offerStagedShard(String file, String sha256, byte[] bytes, long maxBytes) {
        if (bytes.length > maxBytes) {
            return;
        }
        byte[] old = STAGED.put(file + "|" + sha256, bytes);
        stagedBytes += bytes.length - (old == null ? 0 : old.length);
        java.util.Iterator<byte[]> it = STAGED.values().iterator();
        while (stagedBytes > maxBytes && it.hasNext()) {
            stagedBytes -= it.next().length;
            it.remove();
        }
    }

    /**
     * Takes (and forgets) the bytes {@link #offerStagedShard} kept for a shard file with this SHA-256.
     *
     * @param file the shard file's path
     * @param sha256 the SHA-256 its commit record names
     * @return the bytes, or null when this executor does not hold them (read the file)
     */
    static synchronized byte[] takeStagedShard(String file, String sha256) {
        byte[] b = STAGED.remove(file + "|" + sha256);
        if (b != null) {
            stagedBytes -= b.length;
        }
        return b;
    }

    /**
     * A whole model for the quality check, cached per checkpoint (it loads each block once, on first use);
     * at most two are kept (the dense and the pruned model).
     *
     * @param uri checkpoint directory
     * @param conf Hadoop configuration
     * @param config the model's config
     * @param threads backend threads
     * @return the model
     */
    static synchronized io.sparkprune.pipeline.forward.TransformerModel model(String uri, HadoopConf conf,
            io.sparkprune.pipeline.model.ModelConfig config, String choice, int threads) {
        io.sparkprune.pipeline.forward.TransformerModel m = MODELS.get(uri);
        if (m == null) {
            if (MODELS.size() >= 2) {
                dropModels();
            }
            m = io.sparkprune.pipeline.forward.TransformerModel.of(config, TensorSource.of(checkpoint(uri, conf)),
                    backend(choice, threads));
            MODELS.put(uri, m);
        }
        return m;
    }

    /**
     * A whole model over any tensor source (the quality check's baselines), cached under {@code key}
     * with the checkpoints' models (at most two kept).
     *
     * @param key identifies the weights, e.g. {@code baseline|wanda|<dense uri>}
     * @param config the model's config
     * @param source opens the model's tensors on a miss
     * @param choice backend choice
     * @param threads backend threads
     * @return the model
     */
    static synchronized io.sparkprune.pipeline.forward.TransformerModel model(String key,
            io.sparkprune.pipeline.model.ModelConfig config, java.util.function.Supplier<TensorSource> source,
            String choice, int threads) {
        io.sparkprune.pipeline.forward.TransformerModel m = MODELS.get(key);
        if (m == null) {
            if (MODELS.size() >= 2) {
                dropModels();
            }
            m = io.sparkprune.pipeline.forward.TransformerModel.of(config, source.get(), backend(choice, threads));
            MODELS.put(key, m);
        }
        return m;
    }

    /**
     * Forgets every cached checkpoint, weight and model. Called when a job starts: in local mode
     * the executors share the driver's JVM, and a new job may find files at the same paths
     * rewritten. (Cluster executors are started per application, so they begin empty.)
     */
    static void clear() {
        java.util.List<CompletableFuture<Weights>> loading;
        synchronized (ExecutorState.class) {
            loading = new java.util.ArrayList<>(BLOCKS.values());
            BLOCKS.clear();
        }
        // a block prefetch still running reads (and may open) a checkpoint: let it end before they close
        for (CompletableFuture<Weights> f : loading) {
            f.handle((w, e) -> null).join();
        }
        clearCaches();
    }

    private static synchronized void clearCaches() {
        dropModels(); // before their checkpoints close: no background block load reads a closed one
        for (ShardedCheckpoint c : CHECKPOINTS.values()) {
            try {
                c.close();
            } catch (RuntimeException ignored) {
                // a checkpoint that fails to close holds nothing we need
            }
        }
        CHECKPOINTS.clear();
        WEIGHTS.clear();
        STAGED.clear();
        stagedBytes = 0;
    }

    /** Forgets the cached models, stopping their background block loads (their checkpoints stay open). */
    private static void dropModels() {
        for (io.sparkprune.pipeline.forward.TransformerModel m : MODELS.values()) {
            m.close(); // a model made with TransformerModel.of owns no checkpoint: this only stops its prefetch
        }
        MODELS.clear();
    }

    /**
     * Threads per kernel call when {@code spark.sparkprune.threads} is 0: {@code spark.executor.cores /
     * spark.task.cpus} of this executor, at most the machine's processors; all processors when the
     * executor cores are not set (local mode) or outside Spark.
     *
     * @return ≥ 1
     */
    static int defaultThreads() {
        int cores = Runtime.getRuntime().availableProcessors();
        org.apache.spark.SparkEnv env = org.apache.spark.SparkEnv.get();
        if (env == null || !env.conf().contains("spark.executor.cores")) {
            return cores;
        }
        int perTask = env.conf().getInt("spark.executor.cores", cores) / Math.max(1, env.conf().getInt("spark.task.cpus", 1));
        return Math.max(1, Math.min(cores, perTask));
    }
}
