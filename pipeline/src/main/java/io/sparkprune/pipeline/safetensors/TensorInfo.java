package io.sparkprune.pipeline.safetensors;

import io.sparkprune.kernels.DType;
import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor entry of a safetensors header: name, dtype, shape and its byte range inside the data
 * section. The data is row-major (C order), little-endian.
 *
 * <p>Offsets are relative to the start of the data section, as in the file; use
 * {@link #fileOffset(long)} with {@link SafetensorsHeader#dataSectionOffset()} for the absolute
 * position in the file.
 *
 * <p>"Row" here means one index of the outermost dimension: for a 2-D weight of shape
 * {@code [rows, cols]} (e.g. a linear layer's {@code [out_features, in_features]}) a row is
 * {@code cols} elements; for shape {@code [d0, d1, ..., dk]} a row is {@code d1 * ... * dk}
 * elements.
 *
 * @param name tensor name, e.g. {@code "model.layers.0.self_attn.q_proj.weight"}
 * @param dtype element type
 * @param shape dimensions, outermost first, each ≥ 0; {@code []} is a scalar of one element
 * @param dataBegin first byte, relative to the data section start, ≥ 0
 * @param dataEnd one past the last byte, relative to the data section start;
 *     {@code dataEnd - dataBegin == numel * dtype.byteSize()}
 */
public record TensorInfo(String name, DType dtype, long[] shape, long dataBegin, long dataEnd) {

    /**
     * @param name tensor name
     * @param dtype element type
     * @param shape dimensions, each ≥ 0 (copied)
     * @param dataBegin first byte, relative to the data section
     * @param dataEnd one past the last byte, relative to the data section
     * @throws IllegalArgumentException on a negative dimension, an element count whose byte size
     *     overflows {@code long}, negative or reversed offsets, or a byte range that does not match
     *     dtype × shape
     */
    public TensorInfo {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        shape = shape.clone();
        long bytes = byteLengthOf(dtype, shape); // validates dims and overflow
        if (dataBegin < 0 || dataEnd < dataBegin) {
            throw new IllegalArgumentException("tensor '" + name + "': invalid data_offsets [" + dataBegin + ", "
                    + dataEnd + "]");
        }
        if (dataEnd - dataBegin != bytes) {
            throw new IllegalArgumentException("tensor '" + name + "': data_offsets [" + dataBegin + ", " + dataEnd
                    + "] hold " + (dataEnd - dataBegin) + " bytes but " + dtype + " " + Arrays.toString(shape)
                    + " needs " + bytes);
        }
    }

    /**
     * Byte size of a tensor, overflow-safe. The product of the non-zero dimensions must fit in a
     * {@code long} (so every partial product does too), and so must the byte count.
     *
     * @param dtype element type
     * @param shape dimensions, each ≥ 0
     * @return {@code numel(shape) * dtype.byteSize()}
     * @throws IllegalArgumentException on a negative dimension or overflow
     */
    public static long byteLengthOf(DType dtype, long[] shape) {
        long nonZeroProduct = 1;
        boolean zero = false;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension " + d + " in shape " + Arrays.toString(shape));
            }
            if (d == 0) {
                zero = true;
                continue;
            }
            try {
                nonZeroProduct = Math.multiplyExact(nonZeroProduct, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape)
                        + " has more elements than a 64-bit count holds");
            }
        }
        long bytes;
        try {
            bytes = Math.multiplyExact(nonZeroProduct, (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(dtype + " " + Arrays.toString(shape)
                    + " has more bytes than a 64-bit count holds");
        }
        return zero ? 0 : bytes;
    }

    /** @return a copy of the dimensions, outermost first */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** @return the number of dimensions (0 for a scalar) */
    public int rank() {
        return shape.length;
    }

    /** @return the number of elements (1 for a scalar) */
    public long numel() {
        return byteLength() / dtype.byteSize();
    }

    /** @return the payload size in bytes, {@code dataEnd - dataBegin} */
    public long byteLength() {
        return dataEnd - dataBegin;
    }

    /**
     * @return the outermost dimension {@code shape[0]}: the row count of a 2-D weight
     * @throws IllegalStateException for a scalar
     */
    public long rows() {
        requireRows();
        return shape[0];
    }

    /**
     * @return elements per row, {@code shape[1] * ... * shape[rank-1]} (1 for a 1-D tensor): the
     *     column count of a 2-D weight
     * @throws IllegalStateException for a scalar
     */
    public long cols() {
        requireRows();
        long n = 1;
        for (int i = 1; i < shape.length; i++) {
            n *= shape[i]; // cannot overflow: validated in the constructor (non-zero product fits)
            if (n == 0) {
                return 0;
            }
        }
        return n;
    }

    /**
     * @return bytes per row, {@code cols() * dtype.byteSize()}
     * @throws IllegalStateException for a scalar
     */
    public long rowBytes() {
        return cols() * dtype.byteSize();
    }

    /**
     * Absolute position of the first byte in the file.
     *
     * @param dataSectionOffset where the data section starts, {@code 8 + headerLength}
     *     ({@link SafetensorsHeader#dataSectionOffset()})
     * @return {@code dataSectionOffset + dataBegin}
     * @throws ArithmeticException on overflow
     */
    public long fileOffset(long dataSectionOffset) {
        return Math.addExact(dataSectionOffset, dataBegin);
    }

    private void requireRows() {
        if (shape.length == 0) {
            throw new IllegalStateException("tensor '" + name + "' is a scalar (shape []); it has no rows");
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t && t.name.equals(name) && t.dtype == dtype && Arrays.equals(t.shape, shape)
                && t.dataBegin == dataBegin && t.dataEnd == dataEnd;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, dtype, Arrays.hashCode(shape), dataBegin, dataEnd);
    }

    @Override
    public String toString() {
        return "TensorInfo[" + name + " " + dtype + " " + Arrays.toString(shape) + " @" + dataBegin + ".." + dataEnd
                + "]";
    }
}
