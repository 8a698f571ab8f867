package io.sparkprune.pipeline.forward;

import java.io.Serializable;
import java.util.Objects;

/**
 * The activations of a packed batch between transformer blocks: {@code data} is
 * {@code tokens × width} fp32, row-major (row t = token t of the {@link SequenceLayout}). This is
 * the unit a pipeline keeps per batch (a Spark job persists it per partition): plain arrays, no
 * padding. The array is shared, not copied; block functions never modify their input.
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
}
