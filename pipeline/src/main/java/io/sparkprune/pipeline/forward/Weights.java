package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.HostTensor;
import java.io.InvalidObjectException;
import java.io.ObjectInputStream;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The parameters of one model part (one transformer block, or the embeddings and head), by name
 * relative to the part's prefix, each with the shape its {@link ParameterSpec} requires. Values are
 * row-major; a linear weight is {@code [out, in]} as transformers stores it. Every value a caller sees
 * is fp32.
 *
 * <p><b>Memory.</b> A parameter {@linkplain #load loaded} from a checkpoint keeps the checkpoint's
 * tensor in its own dtype (a {@link HostTensor}: F32, F16 or BF16 bytes, on the heap or a read-only view
 * of the memory-mapped file; F64 is rounded to fp32 on load) and is widened to an fp32 array lazily,
 * once, when a caller first asks for the array ({@link #get}, {@link #getOrNull}, {@link #asMap}); the
 * array is then kept and shared by every {@link #with} copy. So a bf16 checkpoint's block costs 2 bytes
 * per parameter on the host, plus 4 per parameter only of what was widened. {@link #weight} hands the
 * parameter to a forward workspace: a device-resident workspace (the CUDA backend's) gets the tensor
 * itself and widens it on the device (the host never holds its fp32 array), any other workspace the
 * widened array. Widening is exact (bf16/f16 → fp32), so both give the same fp32 values bit for bit.
 * Parameters given as fp32 arrays ({@link #of}, {@link #with}) are held as those arrays.
 *
 * <p>Instances are immutable in structure: {@link #with(String, float[])} returns a new instance
 * with one array replaced (the way pruned weights are passed to a block), sharing the others. Arrays and
 * tensors are not copied; callers must not modify them (nor a loaded tensor's bytes) while the weights
 * are in use: a backend may keep a device copy keyed by their identity. Thread-safe: concurrent first
 * requests of a parameter's array widen it once.
 */
public final class Weights implements Serializable {
    private static final long serialVersionUID = 2L;

    /**
     * One parameter's values: the checkpoint tensor and/or its fp32 array. Shared (not copied) by the
     * weights {@link #with} derives.
     */
    private static final class Param {
        /** The checkpoint's tensor, F32, F16 or BF16; null when the values were given as fp32. */
        private final HostTensor tensor;
        /** fp32 values, row-major; null until widened from {@link #tensor}. */
        private volatile float[] floats;

        private Param(HostTensor tensor, float[] floats) {
            this.tensor = tensor;
            this.floats = floats;
        }

        /** @return the fp32 values, widened from the tensor on the first call (once, under this lock) */
        float[] floats() {
            float[] f = floats;
            if (f == null) {
                synchronized (this) {
                    f = floats;
                    if (f == null) {
                        f = tensor.toFloatArray();
                        floats = f;
                    }
                }
            }
            return f;
        }

        /** @return host bytes held: the tensor's, plus 4 per value once widened (not counting a shared tensor twice) */
        long hostBytes() {
            float[] f = floats;
            return (tensor != null ? tensor.byteLength() : 0) + (f != null ? 4L * f.length : 0);
        }
    }

    /** What the weights are (source and prefix), for messages. */
    private final String description;
    /** Parameter specs by name, in load order. */
    private final LinkedHashMap<String, ParameterSpec> specs;
    /** Values by name, same keys as {@link #specs}. */
    private final transient LinkedHashMap<String, Param> values;

    private Weights(String description, LinkedHashMap<String, ParameterSpec> specs, LinkedHashMap<String, Param> values) {
        this.description = description;
        this.specs = specs;
        this.values = values;
    }

    /**
     * Reads the parameters {@code prefix + spec.name()} of a source and keeps each in its checkpoint dtype
     * (F32, F16, BF16; F64 is rounded to nearest fp32 at once); the fp32 arrays are widened on first use
     * (see the class comment). The source's tensors are kept, not copied: their bytes must not change. A
     * tensor that is a view of a memory-mapped file has its pages read here (one byte per 4 KiB page), so the
     * disk reads happen in the load, not in the first forward pass.
     *
     * @param source the tensors
     * @param prefix prefix of every name, e.g. {@code "model.layers.3."}
     * @param specs the parameters and their shapes
     * @return the weights
     * @throws ModelWeightsException when a tensor is missing, has another shape or a non-float dtype
     */
    public static Weights load(TensorSource source, String prefix, List<ParameterSpec> specs) {
        LinkedHashMap<String, ParameterSpec> sm = new LinkedHashMap<>();
        LinkedHashMap<String, Param> vm = new LinkedHashMap<>();
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
            if (t.numel() != spec.numel()) {
                throw new ModelWeightsException(source.source() + ": tensor \"" + full + "\" was read as "
                        + t.numel() + " elements but its header says " + Arrays.toString(spec.shape()) + " ("
                        + spec.numel() + "). Fix: re-download or re-convert the checkpoint");
            }
            sm.put(spec.name(), spec);
            if (t.dtype() == DType.F64) {
                vm.put(spec.name(), new Param(null, t.toFloatArray()));
            } else {
                touchPages(t);
                vm.put(spec.name(), new Param(t, null));
            }
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
        LinkedHashMap<String, Param> vm = new LinkedHashMap<>();
        for (ParameterSpec spec : specs) {
            float[] v = values.get(spec.name());
            if (v == null) {
                throw new IllegalArgumentException(description + ": no values for parameter " + spec);
            }
            checkLength(description, spec, v);
            sm.put(spec.name(), spec);
            vm.put(spec.name(), new Param(null, v));
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

    private Param param(String name) {
        Param p = values.get(name);
        if (p == null) {
            throw new IllegalArgumentException(description + ": no parameter \"" + name + "\"; have " + values.keySet());
        }
        return p;
    }

    /**
     * The fp32 values of a parameter, widened from the checkpoint tensor on the first request (then kept:
     * 4 bytes per value on the host from then on).
     *
     * @param name parameter name
     * @return its fp32 values, row-major (not a copy: do not modify)
     * @throws IllegalArgumentException when there is no such parameter
     */
    public float[] get(String name) {
        return param(name).floats();
    }

    /**
     * {@link #get} for an optional parameter.
     *
     * @param name parameter name
     * @return its fp32 values (widened on first request), or null when absent (optional biases)
     */
    public float[] getOrNull(String name) {
        Param p = values.get(name);
        return p == null ? null : p.floats();
    }

    /**
     * @param name parameter name
     * @return the checkpoint tensor it was loaded from, in its own dtype (F32, F16 or BF16), or null when its
     *     values were given as fp32 ({@link #of}, {@link #with}) or rounded from F64; do not modify its bytes
     * @throws IllegalArgumentException when there is no such parameter
     */
    public HostTensor checkpointTensor(String name) {
        return param(name).tensor;
    }

    /**
     * @param name parameter name
     * @return whether its fp32 array exists on the host (widened by a request, or given as fp32)
     * @throws IllegalArgumentException when there is no such parameter
     */
    public boolean isWidened(String name) {
        return param(name).floats != null;
    }

    /**
     * A parameter as a read-only weight of a forward workspace, {@code rows × cols} fp32. On a
     * device-resident workspace ({@link ForwardWorkspace#isResident()}) a parameter that has its
     * checkpoint tensor goes as the tensor ({@link ForwardWorkspace#weight(HostTensor, int, int)}: uploaded in
     * its dtype and widened on the device, no host fp32 array made); otherwise, and on host workspaces, as
     * its fp32 array ({@link #get}: widened on the host once). The values are the same bit for bit.
     *
     * @param ws the workspace
     * @param name parameter name
     * @param rows rows, ≥ 1
     * @param cols columns, ≥ 1; {@code rows·cols} equals the parameter's element count
     * @return the weight
     * @throws IllegalArgumentException when there is no such parameter or the element count differs
     */
    public ForwardWorkspace.Matrix weight(ForwardWorkspace ws, String name, int rows, int cols) {
        Param p = param(name);
        if (ws.isResident() && p.tensor != null) {
            return ws.weight(p.tensor, rows, cols);
        }
        return ws.weight(p.floats(), rows, cols);
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

    /**
     * The fp32 arrays of every parameter. This widens every parameter not yet widened (4 bytes per
     * parameter on the host from then on); a forward pass does not need it.
     *
     * @return the arrays by name, in load order (unmodifiable map; the arrays are not copies)
     */
    public Map<String, float[]> asMap() {
        LinkedHashMap<String, float[]> m = new LinkedHashMap<>();
        values.forEach((k, p) -> m.put(k, p.floats()));
        return Collections.unmodifiableMap(m);
    }

    /**
     * @param name an existing parameter
     * @param newValues replacement, same number of elements (e.g. the pruned weight)
     * @return new weights with that parameter replaced, sharing the other parameters (their tensors and any
     *     arrays already widened, or widened later through either instance)
     * @throws IllegalArgumentException when there is no such parameter or the length differs
     */
    public Weights with(String name, float[] newValues) {
        Objects.requireNonNull(newValues, "newValues");
        ParameterSpec spec = spec(name);
        checkLength(description, spec, newValues);
        LinkedHashMap<String, Param> vm = new LinkedHashMap<>(values);
        vm.put(name, new Param(null, newValues));
        return new Weights(description, specs, vm);
    }

    /** @return the total number of parameters */
    public long numel() {
        long n = 0;
        for (ParameterSpec s : specs.values()) {
            n += s.numel();
        }
        return n;
    }

    /**
     * @return bytes these weights hold on the host: every parameter's checkpoint tensor (heap or mapped
     *     file pages) plus 4 per value of every fp32 array (widened or given); a tensor shared with other
     *     weights is counted here too
     */
    public long hostBytes() {
        long b = 0;
        for (Param p : values.values()) {
            b += p.hostBytes();
        }
        return b;
    }

    /**
     * Reads one byte of every 4 KiB page of a tensor, so that a view of a memory-mapped file is in memory
     * when {@link #load} returns (as it was when load widened everything) rather than when a forward pass
     * uploads or widens it (on the GPU inside the backend's lock, or on the quality check's critical path
     * instead of its background block loads). Nothing is copied; cheap for heap tensors.
     */
    private static void touchPages(HostTensor t) {
        ByteBuffer d = t.data();
        int sum = 0;
        for (int i = 0, n = d.limit(); i < n; i += 4096) {
            sum += d.get(i);
        }
        touched = sum; // a volatile write, so the reads are not optimized away
    }

    /** The sum of the bytes {@link #touchPages} last read (its only use is to keep those reads). */
    @SuppressWarnings("unused")
    private static volatile int touched;

    @Override
    public String toString() {
        return "Weights[" + description + ", " + specs.size() + " tensors]";
    }

    // ---------------------------------------------------------------- serialization (a proxy: tensors are not Serializable)

    private Object writeReplace() {
        return new Serialized(this);
    }

    private void readObject(ObjectInputStream in) throws InvalidObjectException {
        throw new InvalidObjectException("Weights are read through their serialized form");
    }

    /** The serialized form: per parameter its checkpoint tensor's dtype and bytes, or its fp32 array. */
    private static final class Serialized implements Serializable {
        private static final long serialVersionUID = 1L;
        private final String description;
        private final ArrayList<ParameterSpec> specs;
        /** Per parameter: the tensor's dtype name, or null for an fp32 array. */
        private final ArrayList<String> dtypes = new ArrayList<>();
        /** Per parameter: the tensor's shape, or null. */
        private final ArrayList<long[]> shapes = new ArrayList<>();
        /** Per parameter: the tensor's bytes, or null. */
        private final ArrayList<byte[]> bytes = new ArrayList<>();
        /** Per parameter: the fp32 array when there is no tensor, else null. */
        private final ArrayList<float[]> floats = new ArrayList<>();

        Serialized(Weights w) {
            description = w.description;
            specs = new ArrayList<>(w.specs.values());
            for (ParameterSpec s : specs) {
                Param p = w.values.get(s.name());
                if (p.tensor != null) {
                    byte[] b = new byte[Math.toIntExact(p.tensor.byteLength())];
                    p.tensor.data().duplicate().get(0, b);
                    dtypes.add(p.tensor.dtype().name());
                    shapes.add(p.tensor.shape());
                    bytes.add(b);
                    floats.add(null);
                } else {
                    dtypes.add(null);
                    shapes.add(null);
                    bytes.add(null);
                    floats.add(p.floats);
                }
            }
        }

        private Object readResolve() {
            LinkedHashMap<String, ParameterSpec> sm = new LinkedHashMap<>();
            LinkedHashMap<String, Param> vm = new LinkedHashMap<>();
            for (int i = 0; i < specs.size(); i++) {
                ParameterSpec s = specs.get(i);
                sm.put(s.name(), s);
                vm.put(s.name(), dtypes.get(i) == null ? new Param(null, floats.get(i))
                        : new Param(new HostTensor(DType.valueOf(dtypes.get(i)), shapes.get(i), ByteBuffer.wrap(bytes.get(i))),
                                null));
            }
            return new Weights(description, sm, vm);
        }
    }
}
