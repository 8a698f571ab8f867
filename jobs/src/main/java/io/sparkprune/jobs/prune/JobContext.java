package io.sparkprune.jobs.prune;

import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ResidentForward;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.ModelWeightsException;
import io.sparkprune.pipeline.forward.TensorSource;
import io.sparkprune.pipeline.forward.Weights;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Everything a task needs, shipped once per stage: where the dense checkpoint is, its config.json
 * (parsed again on the executor), the recipe, the Hadoop configuration and the CPU thread count.
 * The heavy things (checkpoints, weights, backend) are opened on the executor through
 * {@link ExecutorState}; nothing here is large.
 *
 * @param modelUri the dense checkpoint directory (local path or Hadoop URI)
 * @param configJson its config.json bytes
 * @param recipe the resolved recipe
 * @param hadoop Hadoop configuration
 * @param backendChoice {@code auto}, {@code cpu} or {@code cuda} ({@code spark.sparkprune.backend})
 * @param threads CPU threads per kernel call, ≤ 0 for all cores
 * @param deviceCacheBytes budget of the backend's device activation cache
 *     ({@code spark.sparkprune.activations.deviceCacheBytes}): bytes ≥ 0 (0 = off), or
 *     {@link ResidentForward#ACTIVATION_CACHE_AUTO}
 */
record JobContext(String modelUri, byte[] configJson, Recipe recipe, HadoopConf hadoop, String backendChoice, int threads,
                  long deviceCacheBytes) implements Serializable {

    /** @return the model's adapter (the config is re-parsed; cheap) */
    ModelAdapter adapter() {
        return ModelAdapter.of(ModelConfigs.parse(configJson, modelUri + "/config.json"));
    }

    /**
     * @return this JVM's backend; on a {@link ResidentForward} one (CUDA) with its activation cache's budget
     *     set to {@link #deviceCacheBytes}
     */
    Backend backend() {
        Backend be = ExecutorState.backend(backendChoice, threads);
        if (be instanceof ResidentForward r) {
            r.activationCacheBytes(deviceCacheBytes);
        }
        return be;
    }

    /**
     * What the prune job's forward pass between blocks does with the device activation cache: keep its
     * outputs and take its inputs over ({@link ForwardWorkspace.Handoff#PIPELINE}) when the cache is on and
     * the activations are persisted deserialized (the next passes then get the very arrays it returned;
     * a serialized level gives them fresh copies, which could never hit), else nothing.
     *
     * @param storage the activations' storage level
     * @return the handoff of the forward pass's workspace
     */
    ForwardWorkspace.Handoff forwardHandoff(org.apache.spark.storage.StorageLevel storage) {
        return deviceCacheBytes != 0 && storage.deserialized() ? ForwardWorkspace.Handoff.PIPELINE
                : ForwardWorkspace.Handoff.NONE;
    }

    /** @return the dense checkpoint, opened once per JVM */
    ShardedCheckpoint checkpoint() {
        return ExecutorState.checkpoint(modelUri, hadoop);
    }

    /** @return the dense checkpoint's tensors */
    TensorSource denseSource() {
        return TensorSource.of(checkpoint());
    }

    /**
     * @param adapter the model's adapter
     * @return its global weights, cached per JVM
     */
    Weights globalWeights(ModelAdapter adapter) {
        return ExecutorState.globalWeights(modelUri, hadoop, adapter);
    }

    /**
     * @param adapter the model's adapter
     * @param layer block index
     * @return the dense weights of a block, cached per JVM
     */
    Weights denseBlock(ModelAdapter adapter, int layer) {
        return ExecutorState.blockWeights(denseKey(layer), () -> adapter.loadBlock(denseSource(), layer));
    }

    /** @return the {@link ExecutorState} cache key of a dense block */
    private String denseKey(int layer) {
        return "block|dense|" + modelUri + "|" + layer;
    }

    /**
     * Starts loading {@link #denseBlock} of {@code layer} in the background (no-op when it is cached or
     * loading, or when {@code layer} is past the last block), so the next layer's Hessian task finds it.
     *
     * @param adapter the model's adapter
     * @param layer block index
     */
    void prefetchDenseBlock(ModelAdapter adapter, int layer) {
        if (layer < adapter.numLayers()) {
            ExecutorState.prefetchBlock(denseKey(layer), () -> adapter.loadBlock(denseSource(), layer));
        }
    }

    /**
     * The weights of a block with its pruned tensors read from the committed staging shards.
     *
     * @param adapter the model's adapter
     * @param layer block index
     * @param stagingDir the layer's staging directory
     * @param shards the layer's committed shards by tensor, each list in shard order
     * @return the weights, pruned tensors as written (in the checkpoint's dtype; fp32 arrays widened on first use)
     */
    Weights prunedBlock(ModelAdapter adapter, int layer, String stagingDir, Map<String, List<ShardRecord>> shards) {
        return ExecutorState.blockWeights("block|pruned|" + stagingDir + "|" + layer,
                () -> adapter.loadBlock(stagedSource(stagingDir, shards), layer));
    }

    /**
     * The dense tensors with the staged ones laid over them.
     *
     * @param stagingDir directory holding the shard files
     * @param shards staged shards by tensor name
     * @return a tensor source
     */
    TensorSource stagedSource(String stagingDir, Map<String, List<ShardRecord>> shards) {
        TensorSource dense = denseSource();
        return TensorSource.overlay(dense, modelUri + " with pruned tensors from " + stagingDir, name -> {
            List<ShardRecord> list = shards.get(name);
            return list == null ? null : readStaged(stagingDir, name, checkpoint().info(name).dtype(), dense.shape(name), list);
        });
    }

    /**
     * The pruned model as committed: the dense tensors with every committed tensor's staged shards
     * laid over them, from each shard's layer directory. The bytes are those that the output
     * assembly copies into the pruned checkpoint (it checks each shard's size and SHA-256 as it
     * copies), so the quality check can run on them while the assembly writes. A one-shard tensor
     * on a local file system is memory-mapped (read-only; the heap holds none of it, as when reading
     * the assembled output), any other is read into the heap as {@link #stagedSource} does.
     *
     * @param shards every committed tensor's shards, in order (all from one layer per tensor)
     * @param stagingDir the run's staging directory (a Hadoop path), which holds one directory per layer
     * @return a tensor source
     * @throws ModelWeightsException (on read) when a staged shard's size differs from its record
     */
    TensorSource committedSource(Map<String, List<ShardRecord>> shards, String stagingDir) {
        TensorSource dense = denseSource();
        return TensorSource.overlay(dense, modelUri + " with the committed pruned tensors", name -> {
            List<ShardRecord> list = shards.get(name);
            if (list == null) {
                return null;
            }
            DType dtype = checkpoint().info(name).dtype();
            String dir = new Path(stagingDir, io.sparkprune.jobs.commit.ShardNames.layerDir(list.get(0).layer())).toString();
            HostTensor mapped = list.size() == 1 ? mapLocal(dir, name, dtype, dense.shape(name), list.get(0)) : null;
            return mapped != null ? mapped : readStaged(dir, name, dtype, dense.shape(name), list);
        });
    }

    /** A one-shard tensor's staged file memory-mapped when it is on a local file system, else null. */
    private HostTensor mapLocal(String stagingDir, String name, DType dtype, long[] shape, ShardRecord r) {
        Path file = new Path(new Path(stagingDir), r.file());
        try {
            FileSystem fs = file.getFileSystem(hadoop.get());
            if (!"file".equals(fs.getScheme())) {
                return null;
            }
            java.nio.file.Path local = java.nio.file.Paths.get(fs.makeQualified(file).toUri());
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(local,
                    java.nio.file.StandardOpenOption.READ)) {
                long size = ch.size();
                long expected = HostTensor.numel(shape) * dtype.byteSize();
                if (size != r.bytes() || size != expected) {
                    throw new ModelWeightsException(name + ": staged shard " + r.file() + " has " + size
                            + " bytes, its commit record says " + r.bytes() + " and the tensor needs " + expected
                            + "; delete the output and run again");
                }
                if (size > Integer.MAX_VALUE - 8) {
                    return null; // one mapping holds at most 2 GiB: readStaged says so in its own error
                }
                return new HostTensor(dtype, shape, ch.map(java.nio.channels.FileChannel.MapMode.READ_ONLY, 0, size));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot map staged shard " + file + " of " + name, e);
        }
    }

    private HostTensor readStaged(String stagingDir, String name, DType dtype, long[] shape, List<ShardRecord> list) {
        long total = HostTensor.numel(shape) * dtype.byteSize();
        if (total > Integer.MAX_VALUE - 8) {
            throw new ModelWeightsException(name + ": " + total + " bytes is too large for one array");
        }
        List<byte[]> parts = new java.util.ArrayList<>(list.size());
        long held = 0;
        try {
            Path dir = new Path(stagingDir);
            FileSystem fs = dir.getFileSystem(hadoop.get());
            for (ShardRecord r : list) {
                Path file = new Path(dir, r.file());
                // this executor's group task may have handed the committed bytes over (same file and SHA-256)
                byte[] b = ExecutorState.takeStagedShard(file.toString(), r.sha256());
                if (b == null || b.length != r.bytes()) {
                    try (InputStream in = fs.open(file)) {
                        b = in.readAllBytes();
                    }
                    if (b.length != r.bytes()) {
                        throw new ModelWeightsException(name + ": staged shard " + r.file() + " has " + b.length
                                + " bytes, its commit record says " + r.bytes() + "; delete the output and run again");
                    }
                }
                parts.add(b);
                held += b.length;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read staged shards of " + name + " from " + stagingDir, e);
        }
        if (held != total) {
            throw new ModelWeightsException(name + ": staged shards hold " + held + " bytes, expected " + total);
        }
        if (parts.size() == 1) {
            return new HostTensor(dtype, shape, ByteBuffer.wrap(parts.get(0))); // one shard (the CUDA default): no copy
        }
        ByteBuffer buf = ByteBuffer.allocate((int) total);
        parts.forEach(buf::put);
        buf.flip();
        return new HostTensor(dtype, shape, buf);
    }
}
