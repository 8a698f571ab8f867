package io.sparkprune.jobs.prune;

import io.sparkprune.kernels.Backend;
import io.sparkprune.jobs.gpu.GpuBinding;
import io.sparkprune.kernels.Backends;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.TensorSource;
import io.sparkprune.pipeline.forward.Weights;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.util.HashMap;
import java.util.Map;

/**
 * Per-JVM state of an executor (or of the driver in local mode), shared by the tasks running in
 * it: open checkpoints (memory maps or Hadoop streams), one compute backend, and the most recently
 * used global and block weights, so the tasks of one stage load a block once per executor rather
 * than once per task.
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
     * A block's weights from a source described by {@code key}, cached; at most a few blocks are
     * kept (the dense and the pruned version of the current layer).
     *
     * @param key identifies the weights (source and layer)
     * @param loader loads them on a miss
     * @return the weights, in the checkpoint's dtype (fp32 arrays widened on first use, {@link Weights})
     */
    static synchronized Weights blockWeights(String key, java.util.function.Supplier<Weights> loader) {
        Weights w = WEIGHTS.get(key);
        if (w == null) {
            if (WEIGHTS.keySet().stream().filter(k -> k.startsWith("block|")).count() >= 3) {
                WEIGHTS.keySet().removeIf(k -> k.startsWith("block|"));
            }
            w = loader.get();
            WEIGHTS.put(key, w);
        }
        return w;
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
    static synchronized void clear() {
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
