package io.sparkprune.pipeline.forward;

import java.util.Arrays;
import java.util.Objects;

/**
 * One parameter a model part needs: its name (relative to the part's prefix, e.g.
 * {@code self_attn.q_proj.weight} inside {@code model.layers.3.}) and its shape as stored by
 * transformers (linear weights {@code [out, in]}).
 *
 * @param name parameter name relative to the prefix
 * @param shape expected shape
 */
public record ParameterSpec(String name, long[] shape) implements java.io.Serializable {

    /**
     * @param name parameter name relative to the prefix
     * @param shape expected shape (copied)
     */
    public ParameterSpec {
        Objects.requireNonNull(name, "name");
        shape = shape.clone();
    }

    /**
     * @param name parameter name
     * @param dims expected dimensions
     * @return the spec
     */
    public static ParameterSpec of(String name, long... dims) {
        return new ParameterSpec(name, dims);
    }

    /** @return a copy of the expected shape */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** @return the number of elements */
    public long numel() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ParameterSpec p && p.name.equals(name) && Arrays.equals(p.shape, shape);
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
        return name + Arrays.toString(shape);
    }
}
