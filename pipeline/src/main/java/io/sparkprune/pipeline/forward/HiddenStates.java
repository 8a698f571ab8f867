package io.sparkprune.pipeline.forward;

import java.io.Serializable;
import java.util.Objects;

/**
 * The activations of a packed batch between transformer blocks: {@code data} is
 * {@code tokens × width} fp32, row-major (row t = token t of the {@link SequenceLayout}). This is
 * the unit a pipeline keeps per batch (a Spark job persists it per partition): plain arrays, no
 * padding. The array is shared, not copied, and never modified once the record holds it: block
 * functions never modify their input, and the CUDA backend keys device copies of block outputs on the
 * array's identity ({@link io.sparkprune.kernels.ForwardWorkspace.Handoff#PIPELINE}), which is only
 * correct while nobody writes into it.
 *
 * @param layout the sequences of the batch
 * @param width features per token (the hidden size)
 * @param data {@code layout.tokens() × width} values
 */
public record HiddenStates(SequenceLayout layout, int width, float[] data) implements Serializable {

    /**
     * @param layout the sequences of the batch
     * @param width features per token
     * @param data {@code layout.tokens() × width} values (not copied)
     * @throws IllegalArgumentException when the array length is not tokens × width
     */
    public HiddenStates {
        Objects.requireNonNull(layout, "layout");
        Objects.requireNonNull(data, "data");
        if (width < 1 || (long) layout.tokens() * width != data.length) {
            throw new IllegalArgumentException("hidden states of " + layout.tokens() + " tokens x " + width
                    + " need " + (long) layout.tokens() * width + " floats, got " + data.length);
        }
    }

    /** @return number of tokens (rows) */
    public int tokens() {
        return layout.tokens();
    }

    /**
     * @param token row index
     * @return a copy of that row
     */
    public float[] row(int token) {
        float[] r = new float[width];
        System.arraycopy(data, token * width, r, 0, width);
        return r;
    }

    /**
     * Java serialization (Spark caches and ships activations serialized) through a proxy that writes
     * the values in bulk ({@link io.sparkprune.kernels.BulkArrays}) rather than element by element.
     *
     * @return the proxy
     */
    private Object writeReplace() {
        return new Proxy(this);
    }

    /** The serialized form of {@link HiddenStates}: layout, width, values in bulk. */
    private static final class Proxy implements Serializable {
        private static final long serialVersionUID = 1L;
        private transient HiddenStates value;

        Proxy(HiddenStates value) {
            this.value = value;
        }

        private void writeObject(java.io.ObjectOutputStream out) throws java.io.IOException {
            out.writeObject(value.layout());
            out.writeInt(value.width());
            io.sparkprune.kernels.BulkArrays.writeFloats(out, value.data());
        }

        private void readObject(java.io.ObjectInputStream in) throws java.io.IOException, ClassNotFoundException {
            SequenceLayout layout = (SequenceLayout) in.readObject();
            int width = in.readInt();
            float[] data = io.sparkprune.kernels.BulkArrays.readFloats(in, (long) layout.tokens() * width);
            try {
                value = new HiddenStates(layout, width, data);
            } catch (IllegalArgumentException e) {
                throw new java.io.InvalidObjectException(e.getMessage());
            }
        }

        private Object readResolve() {
            return value;
        }
    }
}
