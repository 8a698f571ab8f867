package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.quant.GridCheck;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HalfFloats;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The host passes of a solved row shard ({@link ShardSolver#solve}) fused into one parallel pass over its
 * rows: the values are rounded to the checkpoint's dtype and encoded (the bytes that are staged), the
 * rounded values replace the fp32 ones in place (what the metrics see: the values as written), and in the
 * same pass, while a band of rows is in cache, its zeros, non-finite values, pattern violations
 * ({@link PatternCheck}) and, when quantized, grid violations ({@link GridCheck}) are counted. Every
 * result equals the separate passes it replaces ({@code HostTensor.fromFloats}, {@code toFloatArray}, a
 * byte copy, then one pass per count): the same bytes, the same rounded values (same
 * {@link HalfFloats} conversions), and integer counts, which do not depend on how the rows are split.
 */
final class ShardMeasure {
    private ShardMeasure() {
    }

    /** Elements per parallel chunk (whole rows, or whole tile rows, of at least this many elements). */
    static final int CHUNK_ELEMENTS = 1 << 16;

    private static final VarHandle SHORTS = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle INTS = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    /**
     * What the pass produced.
     *
     * @param bytes the shard in the checkpoint's dtype, little-endian, {@code rows·cols·dtype.byteSize()} bytes
     *     (the safetensors payload written to staging)
     * @param zeros values equal to ±0 as written
     * @param nonFinite NaN or infinite values as written
     * @param patternViolations {@link PatternCheck#violations} of the values as written
     * @param gridViolations {@link GridCheck#violations} of the values as written, or −1 without a grid
     */
    record Encoded(byte[] bytes, long zeros, long nonFinite, long patternViolations, long gridViolations) {
    }

    /**
     * Rounds, encodes and measures a pruned shard (see the class comment).
     *
     * @param dtype the checkpoint's dtype: {@link DType#F32}, {@link DType#F16}, {@link DType#BF16} or
     *     {@link DType#F64} (bytes as {@code HostTensor.fromFloats}: nearest-even rounding for F16/BF16)
     * @param values the pruned shard, {@code rows × cols} row-major fp32; overwritten with the values as
     *     written (rounded to {@code dtype} and widened back to fp32, as {@code HostTensor.toFloatArray})
     * @param dense the shard before pruning, same layout (for the block pattern's check; not modified)
     * @param rows rows of the shard
     * @param cols columns
     * @param pattern the target pattern
     * @param deadColumns {@code cols} flags of dead inputs, or null when there are none
     * @param grid the quantization grids as stored, or null when the run does not quantize
     * @return the bytes and counts
     * @throws IllegalArgumentException when dtype is not a floating-point type, a grid is given with F64, the
     *     arrays do not hold {@code rows·cols} values, or the bytes would exceed one Java array
     */
    static Encoded encode(DType dtype, float[] values, float[] dense, int rows, int cols, SparsityPattern pattern,
                          boolean[] deadColumns, QuantizedWeights grid) {
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16 && dtype != DType.F64) {
            throw new IllegalArgumentException("a pruned shard must be written in a floating-point dtype (F32, F16,"
                    + " BF16, F64), got " + dtype);
        }
        if (grid != null && dtype == DType.F64) {
            throw new IllegalArgumentException("grid check needs a float dtype (F32, BF16, F16), got " + dtype);
        }
        long n = (long) rows * cols;
        if (rows < 0 || cols < 0 || values.length != n || dense.length != n) {
            throw new IllegalArgumentException("expected " + rows + " x " + cols + " values, got " + values.length
                    + " pruned and " + dense.length + " dense");
        }
        long byteLength = n * dtype.byteSize();
        if (byteLength > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("a shard of " + rows + " x " + cols + " " + dtype + " is " + byteLength
                    + " bytes, too large for one array; use smaller row shards");
        }
        byte[] bytes = new byte[(int) byteLength];
        int band = pattern instanceof SparsityPattern.Block b ? b.rows() : 1;
        int perChunk = Math.max(1, CHUNK_ELEMENTS / Math.max(1, cols * band)) * band; // a multiple of the band
        int chunks = (rows + perChunk - 1) / perChunk;
        long[][] counts = new long[chunks][];
        java.util.stream.IntStream ids = java.util.stream.IntStream.range(0, chunks);
        (chunks > 1 ? ids.parallel() : ids).forEach(k -> {
            int r0 = k * perChunk;
            int r1 = Math.min(rows, r0 + perChunk);
            long[] c = new long[4];
            encodeRange(dtype, values, bytes, r0 * cols, r1 * cols, c);
            c[2] = PatternCheck.violations(pattern, dense, values, r0, r1, rows, cols, deadColumns);
            c[3] = grid == null ? 0 : GridCheck.violations(values, grid, dtype, r0, r1);
            counts[k] = c;
        });
        long[] sum = new long[4];
        for (long[] c : counts) {
            for (int j = 0; j < 4; j++) {
                sum[j] += c[j];
            }
        }
        return new Encoded(bytes, sum[0], sum[1], sum[2], grid == null ? -1 : sum[3]);
    }

    /** Encodes elements {@code [from, to)}, rounds them in place and adds their zeros and non-finite to c[0], c[1]. */
    private static void encodeRange(DType dtype, float[] values, byte[] bytes, int from, int to, long[] c) {
        long zeros = 0;
        long nonFinite = 0;
        switch (dtype) {
            case F32 -> {
                for (int i = from; i < to; i++) {
                    float v = values[i];
                    INTS.set(bytes, 4 * i, Float.floatToRawIntBits(v));
                    zeros += v == 0f ? 1 : 0;
                    nonFinite += Float.isFinite(v) ? 0 : 1;
                }
            }
            case BF16 -> {
                for (int i = from; i < to; i++) {
                    short h = HalfFloats.floatToBf16(values[i]);
                    SHORTS.set(bytes, 2 * i, h);
                    float v = HalfFloats.bf16ToFloat(h);
                    values[i] = v;
                    zeros += v == 0f ? 1 : 0;
                    nonFinite += Float.isFinite(v) ? 0 : 1;
                }
            }
            case F16 -> {
                for (int i = from; i < to; i++) {
                    short h = HalfFloats.floatToF16(values[i]);
                    SHORTS.set(bytes, 2 * i, h);
                    float v = HalfFloats.f16ToFloat(h);
                    values[i] = v;
                    zeros += v == 0f ? 1 : 0;
                    nonFinite += Float.isFinite(v) ? 0 : 1;
                }
            }
            case F64 -> {
                for (int i = from; i < to; i++) {
                    double d = values[i];
                    LONGS.set(bytes, 8 * i, Double.doubleToRawLongBits(d));
                    float v = values[i]; // fp64 holds every float exactly: the value is unchanged
                    zeros += v == 0f ? 1 : 0;
                    nonFinite += Float.isFinite(v) ? 0 : 1;
                }
            }
            default -> throw new IllegalStateException("unreachable: " + dtype);
        }
        c[0] += zeros;
        c[1] += nonFinite;
    }

    /**
     * Replaces the values as written by the rows' error {@code w − ŵ} (fp32, element by element), in place,
     * rows in parallel: the left operand of the reconstruction error's first quadratic form
     * ({@link ShardSolver#reconstructionError}).
     *
     * @param dense the shard before pruning w, {@code rows × cols} row-major (not modified)
     * @param written the values as written ŵ, same layout; overwritten with {@code w − ŵ}
     * @param rows rows
     * @param cols columns
     */
    static void subtractFrom(float[] dense, float[] written, int rows, int cols) {
        java.util.stream.IntStream r = java.util.stream.IntStream.range(0, rows);
        (rows >= 64 ? r.parallel() : r).forEach(row -> {
            for (int i = row * cols; i < (row + 1) * cols; i++) {
                written[i] = dense[i] - written[i];
            }
        });
    }
}
