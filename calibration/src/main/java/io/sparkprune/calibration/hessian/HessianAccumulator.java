package io.sparkprune.calibration.hessian;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.Finite;
import io.sparkprune.kernels.Backend;

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
 * fp64 across chunks). The precision only governs {@link #add}; the stored sum, {@link #merge} and
 * the serialized form are the same for both, and {@link #fromBytes} yields an {@code EXACT}
 * accumulator (partials are merged, never added to, after they are deserialized).
 *
 * <p>Wanda's input norms are the square roots of S's diagonal: {@code ‖X_j‖₂ = sqrt(S_jj)}.
 *
 * <p>Serialization: {@link Serializable} (Java/Kryo in Spark), and {@link #toBytes()}/
 * {@link #fromBytes(byte[])} for an explicit little-endian layout. Not thread-safe; use one per task.
 */
public final class HessianAccumulator implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final int MAGIC = 0x53504853; // "SPHS"
    private static final int VERSION = 1;

    private final String name;
    private final int features;
    private final double[] sum; // packed upper triangle of Σ xᵀx, fp64
    private final HessianPrecision precision;
    private long count;

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

    /** @return input rows (tokens) accumulated so far */
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
     */
    public void add(Backend backend, float[] x, int offset, int tokens, int ld) {
        for (int t = 0; t < tokens; t++) {
            int row = offset + t * ld;
            for (int j = 0; j < features; j++) {
                float v = x[row + j];
                if (Float.isNaN(v) || Float.isInfinite(v)) {
                    throw new io.sparkprune.calibration.NumericsException("calibration activations for " + name
                            + " have " + v + " at row " + (count + t) + ", feature " + j
                            + "; the forward pass overflowed or the model has non-finite weights: run calibration in"
                            + " fp32 and check the checkpoint");
                }
            }
        }
        if (precision == HessianPrecision.TF32) {
            backend.syrkPackedUpperTf32(features, tokens, x, offset, ld, sum);
        } else {
            backend.syrkPackedUpper(features, tokens, x, offset, ld, sum);
        }
        count += tokens;
    }

    /**
     * Adds another accumulator's sum and count into this one.
     *
     * @param other partial over other rows of the same input
     * @return this
     * @throws CalibrationInputException when the feature counts differ
     */
    public HessianAccumulator merge(HessianAccumulator other) {
        if (other.features != features) {
            throw new CalibrationInputException("cannot merge Hessian partials of " + other.features + " features ("
                    + other.name + ") into " + features + " features (" + name
                    + "); partials of one group must come from the same input");
        }
        for (int i = 0; i < sum.length; i++) {
            sum[i] += other.sum[i];
        }
        count += other.count;
        return this;
    }

    /**
     * @return {@code H = (2/n) Σ xᵀx}, full symmetric {@code features × features}, row-major fp64
     * @throws CalibrationInputException when no rows were added
     */
    public double[] hessian() {
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
     */
    public void copyHessianTo(double[] out) {
        requireRows();
        int n = features;
        if (out.length != (long) n * n) {
            throw new IllegalArgumentException("need " + (long) n * n + " elements, got " + out.length);
        }
        double s = 2.0 / count;
        int p = 0;
        for (int i = 0; i < n; i++) {
            for (int j = i; j < n; j++, p++) {
                double v = sum[p] * s;
                out[i * n + j] = v;
                out[j * n + i] = v;
            }
        }
    }

    /**
     * @return {@code ‖X_j‖₂ = sqrt(Σ_t x_tj²)} for every feature j (Wanda's input norms), fp64
     */
    public double[] inputNorms() {
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
     * Explicit serialization: little-endian {@code int magic "SPHS", int version 1, int features,
     * long count, int nameBytes, UTF-8 name, double[features·(features+1)/2] packed sum}.
     *
     * @return the bytes
     */
    public byte[] toBytes() {
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
