package io.sparkprune.pipeline.formats.sparse;

import io.sparkprune.kernels.DType;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.recipe.TensorSelector;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * The {@code sparse} format's payload arrays for a dense {@code rows × cols} matrix held as raw
 * little-endian element bytes ({@code byte[rows·cols·e]}, row-major, {@code e} = dtype bytes), for
 * other containers of the same records (the Parquet shards). The arrays are byte for byte the
 * components that {@link SparseWriter} stores for a tensor of that shape (docs/formats.md,
 * "sparse", Components), in the same order: {@link #componentNames}. Encoding a row range of a
 * tensor gives the components of that range as a tensor of its own: N:M and bitmask rows are
 * independent, BSR needs the range to start and end on a tile row; {@code row_ptr} starts at 0.
 */
public final class SparsePayloads {
    private SparsePayloads() {
    }

    /**
     * @param encoding an encoding
     * @return the component suffixes in storage order: dense {@code [values]} (the tensor itself),
     *     N:M {@code [values, indices]}, BSR {@code [values, col_indices, row_ptr]}, bitmask
     *     {@code [mask, values, row_ptr]}
     */
    public static List<String> componentNames(SparseEncoding encoding) {
        if (encoding instanceof SparseEncoding.NofM) {
            return List.of("values", "indices");
        }
        if (encoding instanceof SparseEncoding.Bsr) {
            return List.of("values", "col_indices", "row_ptr");
        }
        if (encoding instanceof SparseEncoding.Bitmask) {
            return List.of("mask", "values", "row_ptr");
        }
        return List.of("values");
    }

    /**
     * The encoding {@link SparseWriter} would store a tensor with, chosen on the given data: dense
     * unless the tensor is a 2-D floating-point target; then the forced encoding (checked against
     * the data) or the automatic choice (2:4, 4:8, else the smaller of BSR and bitmask, else dense).
     *
     * @param source label for messages (file or directory)
     * @param name tensor name (for the selector and messages)
     * @param dtype element type
     * @param shape shape of the data ({@code [rows, cols]} for a candidate)
     * @param dense the data, {@code rows·cols·e} bytes, little-endian row-major
     * @param targets which tensors may be compressed
     * @param forced the encoding forced on every target, or empty for automatic detection
     * @return the encoding
     * @throws io.sparkprune.pipeline.formats.PatternViolationException when the data is not N:M under a forced N:M
     * @throws FormatException when a forced encoding does not tile the shape
     */
    public static SparseEncoding choose(String source, String name, DType dtype, long[] shape, byte[] dense,
                                        TensorSelector targets, Optional<SparseEncoding> forced) {
        if (!SparseWriter.compressible(name, dtype, shape, targets, forced)) {
            return new SparseEncoding.Dense();
        }
        return SparseWriter.choose(source, name, dtype, shape, dense, forced).entry().encoding();
    }

    /**
     * @param tensor tensor name for messages
     * @param encoding how to store it; for N:M {@code cols mod m = 0}, for BSR the tile divides the shape
     * @param dense the matrix, {@code rows·cols·e} bytes
     * @param rows rows
     * @param cols columns (elements per row)
     * @param dtype element type ({@code e} = its byte size)
     * @return the components in {@link #componentNames} order; dense returns {@code dense} itself
     * @throws io.sparkprune.pipeline.formats.PatternViolationException when a group holds more than N stored entries
     * @throws FormatException when the encoding does not fit the shape
     */
    public static byte[][] encode(String tensor, SparseEncoding encoding, byte[] dense, int rows, int cols, DType dtype) {
        Objects.requireNonNull(encoding, "encoding");
        int e = dtype.byteSize();
        if ((long) rows * cols * e != dense.length) {
            throw new IllegalArgumentException(tensor + ": " + dense.length + " bytes for " + rows + " x " + cols + " "
                    + dtype);
        }
        checkShape(tensor, encoding, rows, cols);
        if (encoding instanceof SparseEncoding.NofM nm) {
            return SparseCodecs.nmEncode(tensor, dense, rows, cols, e, nm);
        }
        if (encoding instanceof SparseEncoding.Bsr b) {
            return SparseCodecs.bsrEncode(dense, rows, cols, e, b);
        }
        if (encoding instanceof SparseEncoding.Bitmask) {
            return SparseCodecs.bitmaskEncode(dense, rows, cols, e);
        }
        return new byte[][] {dense};
    }

    /**
     * Inverse of {@link #encode}: checks the component count and every component's length against
     * the shape, then decodes with the same checks as {@link SparseCheckpoint#read} (indices in
     * range and increasing, row pointers consistent, zero padding bits).
     *
     * @param where label for messages: file, tensor and row range
     * @param encoding how it is stored
     * @param payload the components in {@link #componentNames} order
     * @param rows rows
     * @param cols columns
     * @param dtype element type
     * @return the dense matrix bytes
     * @throws FormatException for a wrong component count or length, or inconsistent contents
     */
    public static byte[] decode(String where, SparseEncoding encoding, byte[][] payload, int rows, int cols, DType dtype) {
        List<String> names = componentNames(encoding);
        if (payload.length != names.size()) {
            throw new FormatException(where, encoding.spec() + " needs " + names.size() + " payload arrays " + names
                    + ", got " + payload.length + ". The file is corrupt: re-create it");
        }
        checkShape(where, encoding, rows, cols);
        int e = dtype.byteSize();
        long denseBytes = (long) rows * cols * e;
        if (encoding instanceof SparseEncoding.NofM nm) {
            length(where, "values", payload[0], (long) rows * (cols / nm.m() * nm.n()) * e);
            length(where, "indices", payload[1], rows * SparseCodecs.nmIndexRowBytes(cols, nm));
            return SparseCodecs.nmDecode(where, payload[0], payload[1], rows, cols, e, nm);
        }
        if (encoding instanceof SparseEncoding.Bsr b) {
            if (payload[1].length % 4 != 0) {
                throw new FormatException(where, "col_indices has " + payload[1].length + " bytes, not a multiple of 4 "
                        + "(I32). The file is corrupt: re-create it");
            }
            long nnzb = payload[1].length / 4;
            length(where, "values", payload[0], nnzb * b.rows() * b.cols() * e);
            length(where, "row_ptr", payload[2], 8L * (rows / b.rows() + 1));
            return SparseCodecs.bsrDecode(where, payload[0], payload[1], payload[2], rows, cols, e, b);
        }
        if (encoding instanceof SparseEncoding.Bitmask) {
            length(where, "mask", payload[0], rows * SparseCodecs.maskRowBytes(cols));
            if (payload[1].length % e != 0 || payload[1].length > denseBytes) {
                throw new FormatException(where, "values has " + payload[1].length + " bytes: not a multiple of " + e
                        + " (" + dtype + ") or more than the dense " + denseBytes + ". The file is corrupt: re-create it");
            }
            length(where, "row_ptr", payload[2], 8L * (rows + 1));
            return SparseCodecs.bitmaskDecode(where, payload[0], payload[1], payload[2], rows, cols, e);
        }
        length(where, "values", payload[0], denseBytes);
        return payload[0];
    }

    private static void checkShape(String where, SparseEncoding encoding, int rows, int cols) {
        if (rows < 0 || cols < 0) {
            throw new FormatException(where, "negative shape " + rows + " x " + cols + ". The file is corrupt: re-create it");
        }
        if (encoding instanceof SparseEncoding.NofM nm && cols % nm.m() != 0) {
            throw new FormatException(where, nm.spec() + " needs a column count divisible by " + nm.m() + ", got " + cols
                    + "; store the tensor with another pattern");
        }
        if (encoding instanceof SparseEncoding.Bsr b && (rows % b.rows() != 0 || cols % b.cols() != 0)) {
            throw new FormatException(where, b.spec() + " tiles do not tile " + rows + " x " + cols
                    + "; row ranges of a block tensor must start and end on a tile row");
        }
    }

    private static void length(String where, String component, byte[] b, long expected) {
        if (b.length != expected) {
            throw new FormatException(where, component + " has " + b.length + " bytes, expected " + expected
                    + " for this encoding and shape. The file is corrupt or truncated: re-create it");
        }
    }
}
