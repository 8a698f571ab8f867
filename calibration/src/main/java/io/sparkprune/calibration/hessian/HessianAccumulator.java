package io.sparkprune.calibration.hessian;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.Finite;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ResidentHessian;

import java.io.IOException;
import java.io.ObjectOutputStream;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Running Hessian of a linear layer's inputs, {@code H = (2/n) Σ xᵀx} over all n input rows (tokens)
 * seen (SparseGPT §3, the layer-wise squared error {@code ‖WX - ŴX‖²} has Hessian {@code 2XXᵀ}),
 * for {@code features} = in_features. One accumulator serves every linear that reads the same input
 * (q/k/v; gate/up).
 *
 * <p>Storage: the exact sum {@code S = Σ xᵀx} in fp64 (products and sums in fp64), upper triangle
 * packed by rows ({@code features·(features+1)/2} doubles, so 4096 inputs take 64 MiB), plus the row
 * count n. Because the state is a plain sum, {@link #merge} of partial accumulators over disjoint
 * rows equals one accumulator over all rows up to fp64 rounding, in any order: Spark sums the
 * executors' partials with {@code treeAggregate}. {@link #hessian()} scales by {@code 2/n} at the end.
 * The reference scales by the number of sequences instead of tokens; the solver's output does not
 * depend on the scale of H (dampening is relative), only its reported loss does.
 *
 * <p>Precision ({@link HessianPrecision}): {@code EXACT} adds batches with
 * {@link Backend#syrkPackedUpper} (fp64 products and sums), {@code TF32} with
 * {@link Backend#syrkPackedUpperTf32} (TF32 operands, fp32 sums per 256-token chunk of each batch,
 * fp64 across chunks). The precision governs {@link #add} and the width of the sums in Java serialization (below); the
 * stored sum, {@link #merge} and {@link #toBytes()} are the same for both, and {@link #fromBytes}
 * yields an {@code EXACT} accumulator (partials are merged, never added to, after they are
 * deserialized).
 *
 * <p>Wanda's input norms are the square roots of S's diagonal: {@code ‖X_j‖₂ = sqrt(S_jj)}.
 *
 * <p>Device-resident sum: when {@link #add} is given a backend that implements {@link ResidentHessian}
 * (the CUDA backend), the batches are summed into a partial sum kept by that backend (in device
 * memory) instead of into the host array, so a batch moves only its rows, not the whole packed sum.
 * The partial is folded into the host sum (added, then its memory released) by {@link #flush()},
 * which every reader calls first: {@link #merge} (on both sides, except that an fp32 partial's sums
 * from the wire are added without widening them), {@link #hessian()},
 * {@link #copyHessianTo}, {@link #inputNorms()}, {@link #toBytes()} and Java serialization. The handle
 * is transient and never serialized. Call {@link #flush()} when a partition's batches are done so the
 * device memory is released promptly, and {@link #discard()} in a failure path ({@code finally}).
 * {@link #count()} is exact at all times. With any other backend the batches go straight into the
 * host sum through {@link Backend#syrkPackedUpper}.
 *
 * <p>Serialization: {@link Serializable} (Java serialization; with Kryo, call {@link #flush()} first
 * or ship {@link #toBytes()}), and {@link #toBytes()}/{@link #fromBytes(byte[])} for an explicit
 * little-endian layout. Java serialization is how Spark shuffles the partials, and a {@code TF32}
 * accumulator writes its sums there rounded to fp32 (half the bytes: 0.34 instead of 0.69 GB per
 * calibration partition of a 7B layer), read back widened to fp64: rounding a sum to fp32 changes it
 * by at most 2⁻²⁴ of its value, far below the TF32 operands' own rounding (2⁻¹¹ of every product),
 * and the merge of the partials stays in fp64 (a deserialized fp32 partial keeps its fp32 sums until
 * they are needed: {@link #merge} adds them as they are into the receiving fp64 sums, anything else
 * widens them first; {@link #settleForExchange()} puts a finished partial in that same fp32 form in
 * memory, for partials that Spark keeps in an executor's block store rather than shuffling them).
 * When a sum's magnitude exceeds fp32's range, that
 * accumulator is written in fp64 instead (never an infinity). {@code EXACT} accumulators, and
 * {@link #toBytes()} always, keep every fp64 bit. Not thread-safe; use one per task.
 */
public final class HessianAccumulator implements Serializable {
    private static final long serialVersionUID = 2L; // 2: TF32 partials' sums on the wire in fp32
    private static final int MAGIC = 0x53504853; // "SPHS"
    private static final int VERSION = 1;

    private final String name;
    private final int features;
    // packed upper triangle of Σ xᵀx, fp64 (without the device partial); transient: written in bulk by
    // writeObject (io.sparkprune.kernels.BulkArrays), not element by element
    private transient double[] sum;
    /**
     * The sums as a TF32 partial arrived through Java serialization, still fp32 ({@code sum} is null
     * until they are needed): {@link #merge} adds them straight into the other side's fp64 sums, and
     * anything else widens them first ({@link #flush()}), so a group task that merges n partials
     * allocates one fp64 array instead of n.
     */
    private transient float[] wire;
    private final HessianPrecision precision;
    private long count; // rows in sum plus rows in the device partial
    /** Partial sum resident on {@link #deviceOwner}'s device, not yet folded into {@link #sum}; or null. */
    private transient ResidentHessian.Accumulator device;
    private transient Backend deviceOwner;
    /** Set when a device partial was lost (a failed device update, fold or {@link #discard()}). */
    private transient String lost;

    /**
     * @param name what the accumulator describes, for messages, e.g.
     *     {@code "model.layers.3 q_proj/k_proj/v_proj input"}
     * @param features in_features, ≥ 1 and ≤ 65535 (packed triangle in one array)
     * @throws CalibrationInputException when features is out of range
     */
    public HessianAccumulator(String name, int features) {
        this(name, features, HessianPrecision.EXACT);
    }

    /**
     * @param name what the accumulator describes, for messages, e.g.
     *     {@code "model.layers.3 q_proj/k_proj/v_proj input"}
     * @param features in_features, ≥ 1 and ≤ 65535 (packed triangle in one array)
     * @param precision how {@link #add} computes the products
     * @throws CalibrationInputException when features is out of range
     */
    public HessianAccumulator(String name, int features, HessianPrecision precision) {
        this.precision = java.util.Objects.requireNonNull(precision, "precision");
        if (features < 1 || (long) features * (features + 1) / 2 > Integer.MAX_VALUE - 8) {
            throw new CalibrationInputException("Hessian of " + name + ": in_features must be 1..65535, got " + features);
        }
        this.name = name;
        this.features = features;
        this.sum = new double[features * (features + 1) / 2];
    }

    /** @return the name given at construction */
    public String name() {
        return name;
    }

    /** @return in_features */
    public int features() {
        return features;
    }

    /** @return how {@link #add} computes the products */
    public HessianPrecision precision() {
        return precision;
    }

    /** @return input rows (tokens) accumulated so far (including rows in a device partial not yet flushed) */
    public long count() {
        return count;
    }

    /**
     * Adds a batch of input rows.
     *
     * @param backend computes {@code S += xᵀx}
     * @param x {@code tokens × features} activations, row-major fp32
     * @param tokens rows in the batch, ≥ 0
     * @throws CalibrationInputException when {@code x.length != tokens · features}
     * @throws io.sparkprune.calibration.NumericsException when x holds NaN or infinity
     */
    public void add(Backend backend, float[] x, int tokens) {
        if ((long) tokens * features != x.length) {
            throw new CalibrationInputException("Hessian of " + name + ": a batch of " + tokens + " rows x " + features
                    + " features needs " + (long) tokens * features + " values, got " + x.length);
        }
        add(backend, x, 0, tokens, features);
    }

    /**
     * Adds rows {@code x[offset + t·ld .. + features)} for {@code t < tokens}.
     *
     * @param backend computes {@code S += xᵀx}, in this accumulator's {@link #precision()}
     * @param x activations, row-major fp32
     * @param offset index of row 0's first feature
     * @param tokens rows, ≥ 0
     * @param ld row stride, ≥ features
     * @throws io.sparkprune.calibration.NumericsException when the rows hold NaN or infinity
     * @throws IllegalStateException when an earlier device partial was lost ({@link #discard()}, or a
     *     failed device update)
     * @throws RuntimeException the backend's error when the device update fails; the device partial is
     *     then released and lost, and the accumulator refuses further use
     */
    public void add(Backend backend, float[] x, int offset, int tokens, int ld) {
        requireIntact();
        for (int t = 0; t < tokens; t++) {
            int row = offset + t * ld;
            if (io.sparkprune.calibration.Finite.allFinite(x, row, features)) {
                continue;
            }
            for (int j = 0; j < features; j++) {
                float v = x[row + j];
                if (Float.isNaN(v) || Float.isInfinite(v)) {
                    throw nonFinite(v, t, j);
                }
            }
        }
        if (backend instanceof ResidentHessian resident) {
            if (tokens == 0) {
                return;
            }
            ResidentHessian.Accumulator d = device(backend, resident);
            try {
                if (precision == HessianPrecision.TF32) {
                    d.addTf32(tokens, x, offset, ld);
                } else {
                    d.add(tokens, x, offset, ld);
                }
            } catch (RuntimeException | Error e) {
                loseDevice("the device update of a batch of " + tokens + " rows failed (" + e + ")", e);
                throw e;
            }
        } else if (precision == HessianPrecision.TF32) {
            widenWire();
            backend.syrkPackedUpperTf32(features, tokens, x, offset, ld, sum);
        } else {
            widenWire();
            backend.syrkPackedUpper(features, tokens, x, offset, ld, sum);
        }
        count += tokens;
    }

    /**
     * Adds the rows of a forward workspace's matrix (a block's calibration input). When the workspace
     * is resident ({@link ForwardWorkspace#isResident()}) and the backend keeps Hessians resident
     * ({@link ResidentHessian}), the rows never leave the device: they are checked for non-finite values
     * there ({@link ForwardWorkspace#firstNonFinite}) and added into the device partial
     * ({@link ResidentHessian.Accumulator#add(ForwardWorkspace.Matrix, boolean)}); otherwise this is
     * {@link #add(Backend, float[], int, int, int)} on the matrix's host values. The arithmetic, and so
     * the sum, is the same either way.
     *
     * @param backend computes {@code S += xᵀx}; the workspace's backend
     * @param workspace the workspace that holds x
     * @param x {@code tokens × features} activations
     * @throws CalibrationInputException when x does not have {@link #features()} columns
     * @throws io.sparkprune.calibration.NumericsException when x holds NaN or infinity
     * @throws IllegalStateException when an earlier device partial was lost
     * @throws RuntimeException the backend's error when the device update fails (the device partial is
     *     then lost, as in the host-array form)
     */
    public void add(Backend backend, ForwardWorkspace workspace, ForwardWorkspace.Matrix x) {
        requireIntact();
        if (x.cols() != features) {
            throw new CalibrationInputException("Hessian of " + name + ": a batch of " + x.rows() + " rows x " + x.cols()
                    + " features was given to an accumulator of " + features + " features");
        }
        if (!(workspace.isResident() && backend instanceof ResidentHessian resident)) {
            add(backend, workspace.download(x), 0, x.rows(), features);
            return;
        }
        long bad = workspace.firstNonFinite(x);
        if (bad >= 0) {
            float v = workspace.download(x)[(int) bad];
            throw nonFinite(v, (int) (bad / features), (int) (bad % features));
        }
        if (x.rows() == 0) {
            return;
        }
        ResidentHessian.Accumulator d = device(backend, resident);
        try {
            d.add(x, precision == HessianPrecision.TF32);
        } catch (RuntimeException | Error e) {
            loseDevice("the device update of a batch of " + x.rows() + " rows failed (" + e + ")", e);
            throw e;
        }
        count += x.rows();
    }

    private io.sparkprune.calibration.NumericsException nonFinite(float v, int t, int j) {
        return new io.sparkprune.calibration.NumericsException("calibration activations for " + name + " have " + v
                + " at row " + (count + t) + ", feature " + j + "; the forward pass overflowed or the model has"
                + " non-finite weights: run calibration in fp32 and check the checkpoint");
    }

    /** The device partial on {@code backend}, opened on first use (another backend's partial is folded first). */
    private ResidentHessian.Accumulator device(Backend backend, ResidentHessian resident) {
        if (device != null && deviceOwner != backend) {
            flush(); // batches from another backend: fold that one's partial first
        }
        if (device == null) {
            device = resident.openHessian(features, name);
            deviceOwner = backend;
        }
        return device;
    }

    /**
     * Folds the device-resident partial sum, if any, into the host sum and releases its device memory.
     * Idempotent and cheap when there is none. Readers call it themselves; call it explicitly when a
     * partition's batches are done, so device memory is not held until the accumulator is read.
     *
     * @throws IllegalStateException when the device partial was lost earlier
     * @throws RuntimeException the backend's error when the download fails; the partial is then
     *     released and lost, and the accumulator refuses further use
     */
    public void flush() {
        requireIntact();
        widenWire();
        if (device == null) {
            return;
        }
        ResidentHessian.Accumulator d = device;
        try {
            d.addTo(sum);
        } catch (RuntimeException | Error e) {
            loseDevice("folding the device partial into the host sum failed (" + e + ")", e);
            throw e;
        }
        device = null;
        deviceOwner = null;
        d.close();
    }

    /**
     * Releases the device-resident partial sum without folding it in, for failure paths
     * ({@code finally} after the accumulation). No-op after {@link #flush()} or when no device partial
     * exists. If a partial existed, its rows are lost and the accumulator refuses further use
     * ({@link IllegalStateException}), since its count would no longer match its sum.
     */
    public void discard() {
        if (device != null) {
            loseDevice("discard() released the device partial before it was flushed", null);
        }
    }

    /** @return whether a device-resident partial sum is held (not yet folded into the host sum) */
    public boolean hasDevicePartial() {
        return device != null;
    }

    private void loseDevice(String why, Throwable cause) {
        ResidentHessian.Accumulator d = device;
        device = null;
        deviceOwner = null;
        lost = why;
        if (d != null) {
            try {
                d.close();
            } catch (RuntimeException e) {
                if (cause != null) {
                    cause.addSuppressed(e);
                }
            }
        }
    }

    private void requireIntact() {
        if (lost != null) {
            throw new IllegalStateException("Hessian of " + name + " lost its device-resident partial sum: " + lost
                    + "; its count and sum no longer agree, so recompute this partition's Hessian");
        }
    }

    /**
     * Adds another accumulator's sum and count into this one.
     *
     * @param other partial over other rows of the same input
     * @return this
     * @throws CalibrationInputException when the feature counts differ
     * @throws IllegalStateException when a device partial was lost ({@link #discard()} or a failed device update)
     */
    public HessianAccumulator merge(HessianAccumulator other) {
        if (other.features != features) {
            throw new CalibrationInputException("cannot merge Hessian partials of " + other.features + " features ("
                    + other.name + ") into " + features + " features (" + name
                    + "); partials of one group must come from the same input");
        }
        flush();
        double[] a = sum;
        other.requireIntact();
        if (other.wire != null && other.device == null) {
            float[] b = other.wire; // a partial that arrived in fp32: added as it is, never widened into an array
            slices(a.length).forEach(k -> {
                for (int i = k * SLICE, end = Math.min(a.length, i + SLICE); i < end; i++) {
                    a[i] += b[i];
                }
            });
        } else {
            other.flush();
            double[] b = other.sum;
            slices(a.length).forEach(k -> {
                for (int i = k * SLICE, end = Math.min(a.length, i + SLICE); i < end; i++) {
                    a[i] += b[i];
                }
            });
        }
        count += other.count;
        return this;
    }

    /**
     * Settles a finished partial in the form in which it crosses executors: a {@code TF32}
     * accumulator whose sums all fit fp32's range keeps them rounded to fp32 (half the memory; the
     * fp64 array is released), exactly what its Java serialization would carry. So a partial read
     * from an executor's memory and the same partial fetched from another executor hold the same
     * values, and a reduce over them gives the same bits wherever each was read. Folds a device
     * partial first. A no-op for {@code EXACT} accumulators, for sums outside fp32's range (they stay
     * fp64, as on the wire) and when already settled. Later reads widen the sums again
     * ({@link #flush()}), except {@link #merge} as the added side and serialization, which use them as
     * they are.
     *
     * @return this accumulator
     * @throws IllegalStateException when a device partial was lost ({@link #discard()} or a failed device update)
     */
    public HessianAccumulator settleForExchange() {
        requireIntact();
        if (wire != null || precision != HessianPrecision.TF32) {
            return this;
        }
        flush();
        double[] a = sum;
        if (!fitsFloat(a)) {
            return this;
        }
        float[] w = new float[a.length];
        slices(a.length).forEach(k -> {
            for (int i = k * SLICE, end = Math.min(a.length, i + SLICE); i < end; i++) {
                w[i] = (float) a[i];
            }
        });
        wire = w;
        sum = null;
        return this;
    }

    /** Elements per slice of the parallel passes over large sums (60M for n = 11008). */
    private static final int SLICE = 1 << 20;

    /** Slice indices over {@code length} elements, parallel when there are more than two slices. */
    private static java.util.stream.IntStream slices(int length) {
        java.util.stream.IntStream s = java.util.stream.IntStream.range(0, (length + SLICE - 1) / SLICE);
        return length > 2 * SLICE ? s.parallel() : s;
    }

    /** Widens sums that arrived in fp32 ({@link #wire}) into {@link #sum}, by slices in parallel. */
    private void widenWire() {
        float[] w = wire;
        if (w == null) {
            return;
        }
        double[] a = new double[w.length];
        slices(a.length).forEach(k -> {
            for (int i = k * SLICE, end = Math.min(a.length, i + SLICE); i < end; i++) {
                a[i] = w[i];
            }
        });
        sum = a;
        wire = null;
    }

    /**
     * @return {@code H = (2/n) Σ xᵀx}, full symmetric {@code features × features}, row-major fp64
     * @throws CalibrationInputException when no rows were added
     * @throws IllegalStateException when a device partial was lost ({@link #discard()} or a failed device update)
     */
    public double[] hessian() {
        flush();
        requireRows();
        double[] h = new double[features * features];
        copyHessianTo(h);
        return h;
    }

    /**
     * Writes {@code H = (2/n) Σ xᵀx} into a caller's array without allocating.
     *
     * @param out {@code features × features} row-major fp64, overwritten
     * @throws CalibrationInputException when no rows were added
     * @throws IllegalStateException when a device partial was lost ({@link #discard()} or a failed device update)
     */
    public void copyHessianTo(double[] out) {
        int n = denseTarget(out.length);
        fillUpper(n, (idx, v) -> out[idx] = v);
        mirrorLower(n, (i, j) -> out[i * n + j] = out[j * n + i]);
    }

    /**
     * Writes the upper triangle of {@code H = (2/n) Σ xᵀx}, diagonal included, into a caller's array;
     * the strict lower triangle is left as it is. For consumers that read only the upper triangle
     * (the inverse factor: {@code Backend#inverseCholeskyUpper}, {@code DampedFactorizer}), so the
     * transposed copy of {@link #copyHessianTo(double[])} is not made.
     *
     * @param out {@code features × features} row-major fp64; elements {@code (i, j ≥ i)} overwritten
     * @throws CalibrationInputException when no rows were added
     * @throws IllegalStateException when a device partial was lost ({@link #discard()} or a failed device update)
     */
    public void copyUpperTo(double[] out) {
        int n = denseTarget(out.length);
        fillUpper(n, (idx, v) -> out[idx] = v);
    }

    /**
     * {@link #copyHessianTo(double[])} rounded to fp32 ({@code (float)} of each fp64 element): the
     * dense H for fp32 kernels (e.g. the reconstruction-error product), filled in parallel.
     *
     * @param out {@code n × n} row-major, overwritten
     * @throws IllegalStateException when no rows were added, or a device partial was lost
     * @throws IllegalArgumentException when {@code out.length != n²}
     */
    public void copyHessianTo(float[] out) {
        int n = denseTarget(out.length);
        fillUpper(n, (idx, v) -> out[idx] = (float) v);
        mirrorLower(n, (i, j) -> out[i * n + j] = out[j * n + i]);
    }

    /**
     * The packed sum itself, for {@link InverseFactor#computeResident}: {@code S = Σ xᵀx}, upper triangle
     * packed by rows ({@code features·(features+1)/2} fp64, element {@code (i, j ≥ i)} at
     * {@code i·n − i(i−1)/2 + (j − i)}), the device partial folded in first; H = {@link #hessianScale()}·S.
     * The array is shared: read it, do not modify it.
     *
     * @throws CalibrationInputException when no rows were added
     * @throws IllegalStateException when a device partial was lost
     */
    double[] packedSumShared() {
        flush();
        requireRows();
        return sum;
    }

    /** @return the factor {@code 2 / count} turning the sum into H (as {@link #copyHessianTo} applies it) */
    double hessianScale() {
        return 2.0 / count;
    }

    /** Folds the device partial, checks rows were added and that a dense copy has n² elements; returns n. */
    private int denseTarget(long length) {
        flush();
        requireRows();
        int n = features;
        if (length != (long) n * n) {
            throw new IllegalArgumentException("need " + (long) n * n + " elements, got " + length);
        }
        return n;
    }

    /** Stores one element of a dense copy. */
    @FunctionalInterface
    private interface ElementWrite {
        void put(int index, double value);
    }

    /** Writes {@code H[i][j] = (2/count)·S[i][j]} for {@code j ≥ i} (row-major index {@code i·n + j}), rows in parallel. */
    private void fillUpper(int n, ElementWrite w) {
        double s = 2.0 / count;
        rowsOf(n).forEach(i -> {
            long p = (long) i * n - (long) i * (i - 1) / 2;
            int o = i * n;
            for (int j = i; j < n; j++, p++) {
                w.put(o + j, sum[(int) p] * s);
            }
        });
    }

    /** Copies one element of a square matrix, {@code (j, i) → (i, j)}. */
    @FunctionalInterface
    private interface ElementCopy {
        void accept(int i, int j);
    }

    /** Rows 0..n-1, in parallel when the matrix is large. */
    private static java.util.stream.IntStream rowsOf(int n) {
        java.util.stream.IntStream r = java.util.stream.IntStream.range(0, n);
        return n >= 512 ? r.parallel() : r;
    }

    /** Calls {@code copy(i, j)} for every {@code j < i}, in 64 × 64 tiles (cache-friendly transpose), tile rows in parallel. */
    private static void mirrorLower(int n, ElementCopy copy) {
        int b = 64;
        rowsOf((n + b - 1) / b).forEach(bi -> {
            int i0 = bi * b;
            int i1 = Math.min(n, i0 + b);
            for (int j0 = 0; j0 < i1; j0 += b) {
                int j1 = Math.min(n, j0 + b);
                for (int i = i0; i < i1; i++) {
                    for (int j = j0; j < Math.min(j1, i); j++) {
                        copy.accept(i, j);
                    }
                }
            }
        });
    }

    /**
     * @return {@code ‖X_j‖₂ = sqrt(Σ_t x_tj²)} for every feature j (Wanda's input norms), fp64
     * @throws IllegalStateException when a device partial was lost ({@link #discard()} or a failed device update)
     */
    public double[] inputNorms() {
        flush();
        double[] out = new double[features];
        for (int i = 0; i < features; i++) {
            out[i] = Math.sqrt(sum[diagonalIndex(i)]);
        }
        return out;
    }

    private int diagonalIndex(int i) {
        return (int) ((long) i * features - (long) i * (i - 1) / 2);
    }

    private void requireRows() {
        if (count == 0) {
            throw new CalibrationInputException("Hessian of " + name + " has no calibration rows; the calibration"
                    + " data produced no tokens for this layer (check num_samples and the dataset)");
        }
    }

    /**
     * Java serialization: folds the device partial first (the handle itself is transient), then the
     * fields, a flag saying whether the sums follow in fp32 ({@code TF32} accumulators whose sums all
     * fit fp32's range, see the class comment) or fp64, and the packed sum in bulk
     * ({@link io.sparkprune.kernels.BulkArrays}).
     */
    private void writeObject(ObjectOutputStream out) throws IOException {
        requireIntact();
        if (wire != null) { // settled or deserialized fp32 sums: written as they are, not widened
            out.defaultWriteObject();
            out.writeBoolean(true);
            io.sparkprune.kernels.BulkArrays.writeFloats(out, wire);
            return;
        }
        flush();
        out.defaultWriteObject();
        boolean fp32 = precision == HessianPrecision.TF32 && fitsFloat(sum);
        out.writeBoolean(fp32);
        if (fp32) {
            io.sparkprune.kernels.BulkArrays.writeDoublesAsFloats(out, sum);
        } else {
            io.sparkprune.kernels.BulkArrays.writeDoubles(out, sum);
        }
    }

    /** @return whether every value rounds to a finite fp32 (|v| ≤ Float.MAX_VALUE, no NaN) */
    static boolean fitsFloat(double[] a) {
        return slices(a.length).allMatch(k -> {
            for (int i = k * SLICE, end = Math.min(a.length, i + SLICE); i < end; i++) {
                if (!(Math.abs(a[i]) <= Float.MAX_VALUE)) {
                    return false;
                }
            }
            return true;
        });
    }

    private void readObject(java.io.ObjectInputStream in) throws IOException, ClassNotFoundException {
        in.defaultReadObject();
        long packed = (long) features * (features + 1) / 2;
        if (in.readBoolean()) {
            wire = io.sparkprune.kernels.BulkArrays.readFloats(in, packed); // widened when needed, see #wire
        } else {
            sum = io.sparkprune.kernels.BulkArrays.readDoubles(in, packed);
        }
        int length = wire != null ? wire.length : sum.length;
        if (length != packed) {
            throw new java.io.InvalidObjectException("Hessian of " + name + ": " + length + " packed sums for "
                    + features + " features");
        }
    }

    /**
     * Explicit serialization: little-endian {@code int magic "SPHS", int version 1, int features,
     * long count, int nameBytes, UTF-8 name, double[features·(features+1)/2] packed sum}.
     *
     * @return the bytes
     * @throws IllegalStateException when a device partial was lost ({@link #discard()} or a failed device update)
     */
    public byte[] toBytes() {
        flush();
        byte[] nm = name.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(4 + 4 + 4 + 8 + 4 + nm.length + 8 * sum.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(MAGIC).putInt(VERSION).putInt(features).putLong(count).putInt(nm.length).put(nm);
        b.asDoubleBuffer().put(sum);
        return b.array();
    }

    /**
     * Inverse of {@link #toBytes()}.
     *
     * @param bytes serialized accumulator
     * @return the accumulator
     * @throws CalibrationInputException when the bytes are not a serialized accumulator
     */
    public static HessianAccumulator fromBytes(byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (bytes.length < 24 || b.getInt() != MAGIC) {
            throw new CalibrationInputException("not a serialized Hessian accumulator (bad magic, " + bytes.length + " bytes)");
        }
        int version = b.getInt();
        if (version != VERSION) {
            throw new CalibrationInputException("serialized Hessian accumulator has version " + version
                    + ", this build reads " + VERSION + "; use the same SparkPrune version on all executors");
        }
        int features = b.getInt();
        long count = b.getLong();
        int nameLength = b.getInt();
        if (nameLength < 0 || nameLength > b.remaining()) {
            throw new CalibrationInputException("serialized Hessian accumulator is truncated (name of " + nameLength + " bytes)");
        }
        byte[] nm = new byte[nameLength];
        b.get(nm);
        HessianAccumulator h = new HessianAccumulator(new String(nm, StandardCharsets.UTF_8), features);
        if (b.remaining() != 8L * h.sum.length) {
            throw new CalibrationInputException("serialized Hessian accumulator of " + features + " features needs "
                    + 8L * h.sum.length + " bytes of sums, has " + b.remaining());
        }
        b.asDoubleBuffer().get(h.sum);
        h.count = count;
        Finite.check("serialized Hessian sum of " + h.name, h.sum, 1, "the partial is corrupt; recompute it");
        return h;
    }
}
