package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.util.Map;
import java.util.Objects;

/**
 * Named tensors a model's weights are read from: a safetensors checkpoint, or tensors held in
 * memory (e.g. an ONNX import). Implementations are safe for concurrent reads.
 */
public interface TensorSource {

    /** @return where the tensors come from, for messages */
    String source();

    /**
     * @param name tensor name
     * @return whether the source holds it
     */
    boolean contains(String name);

    /**
     * @param name tensor name
     * @return its shape, outermost first
     * @throws ModelWeightsException when absent
     */
    long[] shape(String name);

    /**
     * @param name tensor name
     * @return the tensor (any dtype, little-endian)
     * @throws ModelWeightsException when absent
     */
    HostTensor read(String name);

    /**
     * @param checkpoint an open checkpoint (not closed by the source)
     * @return its tensors
     */
    static TensorSource of(ShardedCheckpoint checkpoint) {
        Objects.requireNonNull(checkpoint, "checkpoint");
        return new TensorSource() {
            @Override
            public String source() {
                return checkpoint.source();
            }

            @Override
            public boolean contains(String name) {
                return checkpoint.contains(name);
            }

            @Override
            public long[] shape(String name) {
                return info(name).shape();
            }

            private TensorInfo info(String name) {
                if (!checkpoint.contains(name)) {
                    throw missing(source(), name);
                }
                return checkpoint.info(name);
            }

            @Override
            public HostTensor read(String name) {
                info(name);
                return checkpoint.read(name);
            }

            @Override
            public String toString() {
                return "TensorSource[" + source() + "]";
            }
        };
    }

    /**
     * @param tensors tensors by name (not copied; must not change while in use)
     * @param source description for messages
     * @return a source over the map
     */
    static TensorSource of(Map<String, HostTensor> tensors, String source) {
        Objects.requireNonNull(tensors, "tensors");
        Objects.requireNonNull(source, "source");
        return new TensorSource() {
            @Override
            public String source() {
                return source;
            }

            @Override
            public boolean contains(String name) {
                return tensors.containsKey(name);
            }

            @Override
            public long[] shape(String name) {
                return read(name).shape();
            }

            @Override
            public HostTensor read(String name) {
                HostTensor t = tensors.get(name);
                if (t == null) {
                    throw missing(source, name);
                }
                return t;
            }

            @Override
            public String toString() {
                return "TensorSource[" + source + "]";
            }
        };
    }

    /**
     * A view that prepends {@code prefix} to every name (e.g. {@code "bert."} for a checkpoint
     * whose BERT parameters sit under a module prefix).
     *
     * @param inner the underlying source
     * @param prefix the prefix
     * @return the prefixed view
     */
    static TensorSource withPrefix(TensorSource inner, String prefix) {
        return new TensorSource() {
            @Override
            public String source() {
                return inner.source();
            }

            @Override
            public boolean contains(String name) {
                return inner.contains(prefix + name);
            }

            @Override
            public long[] shape(String name) {
                return inner.shape(prefix + name);
            }

            @Override
            public HostTensor read(String name) {
                return inner.read(prefix + name);
            }
        };
    }

    /**
     * A view of {@code base} with some tensors replaced: {@code over} gives a tensor's replacement (for
     * example a pruned copy), or null to read it from {@code base}. Names and shapes are {@code base}'s;
     * a replacement must have the same shape.
     *
     * @param base the underlying source
     * @param source what the view describes, for messages
     * @param over a tensor's replacement by name, or null; called on every read (it may read {@code base})
     * @return the view
     */
    static TensorSource overlay(TensorSource base, String source, java.util.function.Function<String, HostTensor> over) {
        return new TensorSource() {
            @Override
            public String source() {
                return source;
            }

            @Override
            public boolean contains(String name) {
                return base.contains(name);
            }

            @Override
            public long[] shape(String name) {
                return base.shape(name);
            }

            @Override
            public HostTensor read(String name) {
                HostTensor t = over.apply(name);
                return t != null ? t : base.read(name);
            }
        };
    }

    private static ModelWeightsException missing(String source, String name) {
        return new ModelWeightsException(source + ": tensor \"" + name + "\" is missing; the config.json describes a"
                + " model that has it. Fix: use the checkpoint that belongs to this config.json");
    }
}
