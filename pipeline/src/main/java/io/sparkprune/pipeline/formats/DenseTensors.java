package io.sparkprune.pipeline.formats;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * An ordered set of named dense tensors, whatever their storage: a Hugging Face checkpoint, a
 * decompressed sparse or compressed-tensors checkpoint, or tensors in memory (an ONNX import).
 * Writers take this; readers provide it. Tensors are read one at a time, whole.
 */
public interface DenseTensors {

    /** @return where the tensors come from, for messages */
    String source();

    /** @return tensor names in storage order */
    List<String> names();

    /**
     * @param name a name from {@link #names()}
     * @return its element type (dense)
     */
    DType dtype(String name);

    /**
     * @param name a name from {@link #names()}
     * @return its dense shape, outermost first
     */
    long[] shape(String name);

    /**
     * @param name a name from {@link #names()}
     * @return the dense tensor, little-endian row-major
     * @throws io.sparkprune.kernels.InvalidInputException when the stored data is malformed
     */
    HostTensor read(String name);

    /**
     * @param ckpt an open checkpoint (not closed by the view)
     * @return its tensors in checkpoint order
     */
    static DenseTensors of(ShardedCheckpoint ckpt) {
        Objects.requireNonNull(ckpt, "ckpt");
        return new DenseTensors() {
            @Override
            public String source() {
                return ckpt.source();
            }

            @Override
            public List<String> names() {
                return ckpt.tensorNames();
            }

            @Override
            public DType dtype(String name) {
                return ckpt.info(name).dtype();
            }

            @Override
            public long[] shape(String name) {
                return ckpt.info(name).shape();
            }

            @Override
            public HostTensor read(String name) {
                return ckpt.read(name);
            }
        };
    }

    /**
     * @param tensors tensors in order (not copied; must not change while in use)
     * @param source description for messages
     * @return a view of the map
     */
    static DenseTensors of(Map<String, HostTensor> tensors, String source) {
        Objects.requireNonNull(tensors, "tensors");
        List<String> names = List.copyOf(tensors.keySet());
        return new DenseTensors() {
            @Override
            public String source() {
                return source;
            }

            @Override
            public List<String> names() {
                return names;
            }

            @Override
            public DType dtype(String name) {
                return get(name).dtype();
            }

            @Override
            public long[] shape(String name) {
                return get(name).shape();
            }

            @Override
            public HostTensor read(String name) {
                return get(name);
            }

            private HostTensor get(String name) {
                HostTensor t = tensors.get(name);
                if (t == null) {
                    throw new IllegalArgumentException(source + ": no tensor '" + name + "'");
                }
                return t;
            }
        };
    }
}
