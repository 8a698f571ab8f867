package io.sparkprune.kernels;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;

/**
 * A dense host tensor: dtype, shape and a little-endian byte buffer, row-major (C order).
 *
 * <p>The buffer holds exactly {@code numel(shape) * dtype.byteSize()} bytes from its position to
 * its limit; it may be a slice of a memory-mapped file, so treat it as read-only unless you made
 * it. Shape {@code []} is a scalar (one element).
 *
 * @param dtype element type
 * @param shape dimensions, outermost first; each ≥ 0
 * @param data little-endian element bytes, {@code remaining() == byteLength()}
 */
public record HostTensor(DType dtype, long[] shape, ByteBuffer data) {

    /**
     * @throws IllegalArgumentException when the buffer length does not match dtype × shape
     */
    public HostTensor {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(data, "data");
        shape = shape.clone();
        long expected = numel(shape) * dtype.byteSize();
        if (data.remaining() != expected) {
            throw new IllegalArgumentException("tensor of " + dtype + " " + Arrays.toString(shape)
                    + " needs " + expected + " bytes, buffer has " + data.remaining());
        }
        data = data.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * Number of elements of a shape, with overflow checking.
     *
     * @param shape dimensions, each ≥ 0
     * @return the product of the dimensions (1 for a scalar)
     * @throws IllegalArgumentException on a negative dimension or overflow past {@code Long.MAX_VALUE}
     */
    public static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** @return the number of elements */
    public long numel() {
        return numel(shape);
    }

    /** @return the payload size in bytes */
    public long byteLength() {
        return numel() * dtype.byteSize();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /**
     * Reads all elements as fp32. F16 and BF16 widen exactly; F64 rounds to nearest float.
     *
     * @return a new array of {@link #numel()} floats, row-major
     * @throws IllegalStateException when the dtype is not floating point or there are more than
     *     {@code Integer.MAX_VALUE - 8} elements
     */
    public float[] toFloatArray() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("tensor of " + n + " elements is too large for one float[]; read it in row shards");
        }
        float[] out = new float[(int) n];
        ByteBuffer b = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> b.asFloatBuffer().get(out);
            case F16, BF16 -> {
                // bulk reads of 32768 halves at a time, then a tight widening loop (per-element
                // ByteBuffer.getShort was a measured hot spot when executors read bf16 weights); tensors
                // over 4M elements are widened by slices in parallel (a 7B layer's weights are 200M)
                java.nio.ShortBuffer sb = b.asShortBuffer();
                boolean bf16 = dtype == DType.BF16;
                int slice = 1 << 22;
                int slices = (out.length + slice - 1) / slice;
                java.util.stream.IntStream ids = java.util.stream.IntStream.range(0, slices);
                (slices > 1 ? ids.parallel() : ids).forEach(k -> {
                    int from = k * slice;
                    widenHalves(sb, from, Math.min(out.length, from + slice), bf16, out);
                });
            }
            case F64 -> {
                for (int i = 0; i < out.length; i++) {
                    out[i] = (float) b.getDouble(8 * i);
                }
            }
            default -> throw new IllegalStateException("toFloatArray needs a floating-point tensor, got " + dtype);
        }
        return out;
    }

    /** Widens halves {@code [from, to)} of sb (absolute reads, so slices may run on several threads). */
    private static void widenHalves(java.nio.ShortBuffer sb, int from, int to, boolean bf16, float[] out) {
        short[] chunk = new short[Math.min(to - from, 1 << 15)];
        for (int i = from; i < to; ) {
            int len = Math.min(chunk.length, to - i);
            sb.get(i, chunk, 0, len);
            if (bf16) {
                for (int j = 0; j < len; j++) {
                    out[i + j] = HalfFloats.bf16ToFloat(chunk[j]);
                }
            } else {
                for (int j = 0; j < len; j++) {
                    out[i + j] = HalfFloats.f16ToFloat(chunk[j]);
                }
            }
            i += len;
        }
    }

    /**
     * Encodes fp32 values as a tensor of the given floating-point dtype (nearest-even rounding for
     * F16/BF16).
     *
     * @param dtype F32, F16, BF16 or F64
     * @param shape dimensions; {@code numel(shape) == values.length}
     * @param values row-major values
     * @return a new heap-backed tensor
     * @throws IllegalArgumentException for a non-float dtype or a length mismatch
     */
    public static HostTensor fromFloats(DType dtype, long[] shape, float[] values) {
        if (numel(shape) != values.length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " holds " + numel(shape)
                    + " elements, got " + values.length + " values");
        }
        ByteBuffer b = ByteBuffer.allocate(values.length * dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> b.asFloatBuffer().put(values);
            case F16, BF16 -> {
                // absolute puts into disjoint ranges: large tensors are rounded by slices in parallel
                boolean bf16 = dtype == DType.BF16;
                int slice = 1 << 20;
                java.util.stream.IntStream ids = java.util.stream.IntStream.range(0, (values.length + slice - 1) / slice);
                (values.length > 2 * slice ? ids.parallel() : ids).forEach(k -> {
                    for (int i = k * slice, end = Math.min(values.length, i + slice); i < end; i++) {
                        b.putShort(2 * i, bf16 ? HalfFloats.floatToBf16(values[i]) : HalfFloats.floatToF16(values[i]));
                    }
                });
            }
            case F64 -> {
                for (int i = 0; i < values.length; i++) {
                    b.putDouble(8 * i, values[i]);
                }
            }
            default -> throw new IllegalArgumentException("fromFloats needs a floating-point dtype, got " + dtype);
        }
        return new HostTensor(dtype, shape, b);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof HostTensor t && t.dtype == dtype && Arrays.equals(t.shape, shape) && t.data.equals(data);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * dtype.hashCode() + Arrays.hashCode(shape)) + data.hashCode();
    }

    @Override
    public String toString() {
        return "HostTensor[" + dtype + " " + Arrays.toString(shape) + "]";
    }
}
