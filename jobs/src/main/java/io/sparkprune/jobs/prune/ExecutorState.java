package io.sparkprune.jobs.prune;

import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.cpu.CpuBackend;
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
    private static Backend backend;
    private static int backendThreads;

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
     * @param threads threads per kernel call; ≤ 0 for all cores
     * @return the JVM's CPU backend
     */
    static synchronized Backend backend(int threads) {
        int t = threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
        if (backend == null || backendThreads != t) {
            backend = CpuBackend.create(t);
            backendThreads = t;
        }
        return backend;
    }

    /**
     * Global weights (embeddings, final norm, head) of a checkpoint, cached.
     *
     * @param uri checkpoint
     * @param conf Hadoop configuration
     * @param adapter the model's adapter
     * @return fp32 weights
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
     * @return fp32 weights
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
}
