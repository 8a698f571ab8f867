package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.HostTensor;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The fp32 parameters of one model part (one transformer block, or the embeddings and head), by
 * name relative to the part's prefix, each with the shape its {@link ParameterSpec} requires.
 * Arrays are row-major; a linear weight is {@code [out, in]} as transformers stores it.
 *
 * <p>Instances are immutable in structure: {@link #with(String, float[])} returns a new instance
 * with one array replaced (the way pruned weights are passed to a block), sharing the others. The
 * arrays themselves are not copied; callers must not modify an array while a forward pass reads it.
 */
public final class Weights implements Serializable {
    private static final long serialVersionUID = 1L;

    /** What the weights are (source and prefix), for messages. */
    private final String description;
    /** Parameter specs by name, in load order. */
    private final LinkedHashMap<String, ParameterSpec> specs;
    /** fp32 values by name, same keys as {@link #specs}. */
    private final LinkedHashMap<String, float[]> values;

    private Weights(String description, LinkedHashMap<String, ParameterSpec> specs, LinkedHashMap<String, float[]> values) {
        this.description = description;
        this.specs = specs;
        this.values = values;
    }

    /**
     * Reads and widens the parameters {@code prefix + spec.name()} of a source to fp32 (F32, F16,
     * BF16 exactly; F64 rounded to nearest).
     *
     * @param source the tensors
     * @param prefix prefix of every name, e.g. {@code "model.layers.3."}
     * @param specs the parameters and their shapes
     * @return the weights
     * @throws ModelWeightsException when a tensor is missing, has another shape or a non-float dtype
     */
    public static Weights load(TensorSource source, String prefix, List<ParameterSpec> specs) {
        LinkedHashMap<String, ParameterSpec> sm = new LinkedHashMap<>();
        LinkedHashMap<String, float[]> vm = new LinkedHashMap<>();
        for (ParameterSpec spec : specs) {
            String full = prefix + spec.name();
            if (!source.contains(full)) {
                throw new ModelWeightsException(source.source() + ": tensor \"" + full + "\" " + Arrays.toString(spec.shape())
                        + " is missing; the config.json describes a model that has it. Fix: use the checkpoint that"
                        + " belongs to this config.json");
            }
            long[] shape = source.shape(full);
            if (!Arrays.equals(shape, spec.shape())) {
                throw new ModelWeightsException(source.source() + ": tensor \"" + full + "\" has shape "
                        + Arrays.toString(shape) + " but the config.json implies " + Arrays.toString(spec.shape())
                        + ". Fix: use the checkpoint that belongs to this config.json");
            }
            HostTensor t = source.read(full);
            if (!t.dtype().isFloatingPoint()) {
                throw new ModelWeightsException(source.source() + ": tensor \"" + full + "\" has dtype " + t.dtype()
                        + "; model weights must be F32, F16 or BF16 (quantized checkpoints are not supported as input)");
            }
            sm.put(spec.name(), spec);
            vm.put(spec.name(), t.toFloatArray());
        }
        return new Weights(source.source() + (prefix.isEmpty() ? "" : " " + prefix), sm, vm);
    }

    /**
     * Wraps arrays already in fp32.
     *
     * @param description what the weights are, for messages
     * @param specs the parameters and their shapes
     * @param values arrays by name, one per spec, of {@code numel(shape)} floats
     * @return the weights (the arrays are not copied)
     * @throws IllegalArgumentException when an array is missing or has the wrong length
     */
    public static Weights of(String description, List<ParameterSpec> specs, Map<String, float[]> values) {
        LinkedHashMap<String, ParameterSpec> sm = new LinkedHashMap<>();
        LinkedHashMap<String, float[]> vm = new LinkedHashMap<>();
        for (ParameterSpec spec : specs) {
            float[] v = values.get(spec.name());
            if (v == null) {
                throw new IllegalArgumentException(description + ": no values for parameter " + spec);
            }
            checkLength(description, spec, v);
            sm.put(spec.name(), spec);
            vm.put(spec.name(), v);
        }
        return new Weights(description, sm, vm);
    }

    private static void checkLength(String description, ParameterSpec spec, float[] v) {
        if (v.length != spec.numel()) {
            throw new IllegalArgumentException(description + ": parameter " + spec + " needs " + spec.numel()
                    + " floats, got " + v.length);
        }
    }

    /** @return what the weights are (source and prefix), for messages */
    public String description() {
        return description;
    }

    /**
     * @param name parameter name
     * @return whether the weights hold it
     */
    public boolean has(String name) {
        return values.containsKey(name);
    }

    /**
     * @param name parameter name
     * @return its values (not a copy)
     * @throws IllegalArgumentException when there is no such parameter
     */
    public float[] get(String name) {
        float[] v = values.get(name);
        if (v == null) {
            throw new IllegalArgumentException(description + ": no parameter \"" + name + "\"; have " + values.keySet());
        }
        return v;
    }

    /**
     * @param name parameter name
     * @return its values, or null when absent (optional biases)
     */
    public float[] getOrNull(String name) {
        return values.get(name);
    }

    /**
     * @param name parameter name
     * @return its spec
     * @throws IllegalArgumentException when there is no such parameter
     */
    public ParameterSpec spec(String name) {
        ParameterSpec s = specs.get(name);
        if (s == null) {
            throw new IllegalArgumentException(description + ": no parameter \"" + name + "\"; have " + specs.keySet());
        }
        return s;
    }

    /** @return the parameter specs in load order */
    public List<ParameterSpec> specs() {
        return Collections.unmodifiableList(new ArrayList<>(specs.values()));
    }

    /** @return the arrays by name, in load order (unmodifiable map; the arrays are not copies) */
    public Map<String, float[]> asMap() {
        return Collections.unmodifiableMap(values);
    }

    /**
     * @param name an existing parameter
     * @param newValues replacement, same number of elements (e.g. the pruned weight)
     * @return new weights with that parameter replaced, sharing the other arrays
     * @throws IllegalArgumentException when there is no such parameter or the length differs
     */
    public Weights with(String name, float[] newValues) {
        Objects.requireNonNull(newValues, "newValues");
        ParameterSpec spec = spec(name);
        checkLength(description, spec, newValues);
        LinkedHashMap<String, float[]> vm = new LinkedHashMap<>(values);
        vm.put(name, newValues);
        return new Weights(description, specs, vm);
    }

    /** @return the total number of parameters */
    public long numel() {
        long n = 0;
        for (float[] v : values.values()) {
            n += v.length;
        }
        return n;
    }

    @Override
    public String toString() {
        return "Weights[" + description + ", " + specs.size() + " tensors]";
    }
}
