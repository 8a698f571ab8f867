package io.sparkprune.pipeline.formats.sparse;

import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.formats.PatternViolationException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Encoders and decoders of the three sparse layouts, on raw element bytes: a dense
 * {@code rows × cols} matrix is {@code byte[rows·cols·e]} (little-endian elements of {@code e}
 * bytes, row-major). An entry is stored iff its {@code e} bytes are not all zero. See
 * {@code docs/formats.md} for the layouts; every decoder validates its input and throws
 * {@link FormatException} naming the tensor instead of reading out of range.
 */
final class SparseCodecs {
    private SparseCodecs() {
    }

    static boolean stored(byte[] d, int elem, int e) {
        int o = elem * e;
        for (int k = 0; k < e; k++) {
            if (d[o + k] != 0) {
                return true;
            }
        }
        return false;
    }

    /** @return whether the element is a floating-point -0.0 (sign bit only) */
    static boolean negativeZero(byte[] d, int elem, int e) {
        int o = elem * e;
        for (int k = 0; k < e - 1; k++) {
            if (d[o + k] != 0) {
                return false;
            }
        }
        return d[o + e - 1] == (byte) 0x80;
    }

    // ---------------------------------------------------------------- N:M

    /** @return bytes of one row of packed indices: {@code ceil(cols/m · n · bits / 8)} */
    static long nmIndexRowBytes(long cols, SparseEncoding.NofM nm) {
        long k = cols / nm.m() * nm.n();
        return (k * nm.indexBits() + 7) / 8;
    }

    /**
     * Checks that every group holds at most n stored entries.
     *
     * @throws PatternViolationException naming the tensor, row and group of the first violation
     */
    static void nmCheck(String tensor, byte[] d, int rows, int cols, int e, SparseEncoding.NofM nm) {
        int m = nm.m();
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < cols / m; g++) {
                int count = 0;
                int negZeros = 0;
                for (int j = 0; j < m; j++) {
                    int el = r * cols + g * m + j;
                    if (stored(d, el, e)) {
                        count++;
                        if (negativeZero(d, el, e)) {
                            negZeros++;
                        }
                    }
                }
                if (count > nm.n()) {
                    throw new PatternViolationException(tensor, r, g, "tensor '" + tensor + "' is stored as "
                            + nm.spec() + " but row " + r + ", group " + g + " (columns " + (g * m) + ".." + (g * m + m - 1)
                            + ") has " + count + " non-zero entries, more than " + nm.n()
                            + (negZeros > 0 ? " (" + negZeros + " of them -0.0, which is stored to keep every bit; write "
                            + "+0.0 in pruned positions)" : "")
                            + "; prune the tensor to " + nm.spec() + ", store it with --pattern unstructured, or leave it "
                            + "out of the targets (--ignore)");
                }
            }
        }
    }

    /**
     * @return {values: rows × (cols/m·n) elements, indices: rows × indexRowBytes bytes}
     * @throws PatternViolationException when a group holds more than n stored entries
     */
    static byte[][] nmEncode(String tensor, byte[] d, int rows, int cols, int e, SparseEncoding.NofM nm) {
        nmCheck(tensor, d, rows, cols, e, nm);
        int n = nm.n();
        int m = nm.m();
        int bits = nm.indexBits();
        int groups = cols / m;
        int rowBytes = (int) nmIndexRowBytes(cols, nm);
        byte[] values = new byte[rows * groups * n * e];
        byte[] indices = new byte[rows * rowBytes];
        int[] slots = new int[n];
        for (int r = 0; r < rows; r++) {
            long bit = (long) r * rowBytes * 8;
            for (int g = 0; g < groups; g++) {
                int base = r * cols + g * m;
                // stored entries first, then the lowest unstored positions as +0 padding; then ascending
                int k = 0;
                boolean[] used = new boolean[m];
                for (int j = 0; j < m; j++) {
                    if (stored(d, base + j, e)) {
                        slots[k++] = j;
                        used[j] = true;
                    }
                }
                for (int j = 0; j < m && k < n; j++) {
                    if (!used[j]) {
                        slots[k++] = j;
                        used[j] = true;
                    }
                }
                k = 0;
                for (int j = 0; j < m; j++) {
                    if (used[j]) {
                        slots[k++] = j;
                    }
                }
                for (int s = 0; s < n; s++) {
                    int out = (r * groups + g) * n + s;
                    System.arraycopy(d, (base + slots[s]) * e, values, out * e, e);
                    for (int b = 0; b < bits; b++, bit++) {
                        if (((slots[s] >>> b) & 1) != 0) {
                            indices[(int) (bit >>> 3)] |= (byte) (1 << (bit & 7));
                        }
                    }
                }
            }
        }
        return new byte[][] {values, indices};
    }

    /** Inverse of {@link #nmEncode}; validates indices (in range, strictly increasing per group, zero padding bits). */
    static byte[] nmDecode(String where, byte[] values, byte[] indices, int rows, int cols, int e,
                           SparseEncoding.NofM nm) {
        int n = nm.n();
        int m = nm.m();
        int bits = nm.indexBits();
        int groups = cols / m;
        int rowBytes = (int) nmIndexRowBytes(cols, nm);
        byte[] d = new byte[rows * cols * e];
        for (int r = 0; r < rows; r++) {
            long bit = (long) r * rowBytes * 8;
            for (int g = 0; g < groups; g++) {
                int prev = -1;
                for (int s = 0; s < n; s++) {
                    int idx = 0;
                    for (int b = 0; b < bits; b++, bit++) {
                        idx |= ((indices[(int) (bit >>> 3)] >>> (bit & 7)) & 1) << b;
                    }
                    if (idx >= m || idx <= prev) {
                        throw new FormatException(where, "row " + r + ", group " + g + ", slot " + s + ": in-group index "
                                + idx + " after " + prev + "; indices must be < " + m + " and strictly increasing within "
                                + "a group. The file is corrupt: re-create it with sparkprune convert --to sparse");
                    }
                    prev = idx;
                    int in = (r * groups + g) * n + s;
                    System.arraycopy(values, in * e, d, (r * cols + g * m + idx) * e, e);
                }
            }
            long end = (long) (r + 1) * rowBytes * 8;
            for (; bit < end; bit++) {
                if (((indices[(int) (bit >>> 3)] >>> (bit & 7)) & 1) != 0) {
                    throw new FormatException(where, "row " + r + ": padding bit " + (bit - (long) r * rowBytes * 8)
                            + " of the index row is set; padding bits must be 0. The file is corrupt: re-create it");
                }
            }
        }
        return d;
    }

    // ---------------------------------------------------------------- BSR

    static boolean tileStored(byte[] d, int cols, int e, int tr, int tc, SparseEncoding.Bsr b) {
        for (int i = 0; i < b.rows(); i++) {
            for (int j = 0; j < b.cols(); j++) {
                if (stored(d, (tr * b.rows() + i) * cols + tc * b.cols() + j, e)) {
                    return true;
                }
            }
        }
        return false;
    }

    /** @return the number of tiles holding a stored entry */
    static long bsrCount(byte[] d, int rows, int cols, int e, SparseEncoding.Bsr b) {
        long nnzb = 0;
        for (int tr = 0; tr < rows / b.rows(); tr++) {
            for (int tc = 0; tc < cols / b.cols(); tc++) {
                if (tileStored(d, cols, e, tr, tc, b)) {
                    nnzb++;
                }
            }
        }
        return nnzb;
    }

    /** @return {values: nnzb × br × bc elements, col_indices: nnzb I32, row_ptr: rows/br + 1 I64} */
    static byte[][] bsrEncode(byte[] d, int rows, int cols, int e, SparseEncoding.Bsr b) {
        int nnzb = (int) bsrCount(d, rows, cols, e, b);
        int tileRows = rows / b.rows();
        int tileElems = b.rows() * b.cols();
        byte[] values = new byte[nnzb * tileElems * e];
        ByteBuffer colIdx = ByteBuffer.allocate(4 * nnzb).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer rowPtr = ByteBuffer.allocate(8 * (tileRows + 1)).order(ByteOrder.LITTLE_ENDIAN);
        int k = 0;
        rowPtr.putLong(0);
        for (int tr = 0; tr < tileRows; tr++) {
            for (int tc = 0; tc < cols / b.cols(); tc++) {
                if (!tileStored(d, cols, e, tr, tc, b)) {
                    continue;
                }
                for (int i = 0; i < b.rows(); i++) {
                    System.arraycopy(d, ((tr * b.rows() + i) * cols + tc * b.cols()) * e, values,
                            (k * tileElems + i * b.cols()) * e, b.cols() * e);
                }
                colIdx.putInt(tc);
                k++;
            }
            rowPtr.putLong(k);
        }
        return new byte[][] {values, colIdx.array(), rowPtr.array()};
    }

    /** Inverse of {@link #bsrEncode}; validates row pointers and column indices. */
    static byte[] bsrDecode(String where, byte[] values, byte[] colIdxBytes, byte[] rowPtrBytes, int rows, int cols,
                            int e, SparseEncoding.Bsr b) {
        int tileRows = rows / b.rows();
        int tileCols = cols / b.cols();
        int tileElems = b.rows() * b.cols();
        long nnzb = colIdxBytes.length / 4;
        ByteBuffer ci = ByteBuffer.wrap(colIdxBytes).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer rp = ByteBuffer.wrap(rowPtrBytes).order(ByteOrder.LITTLE_ENDIAN);
        if (rp.getLong(0) != 0 || rp.getLong(8 * tileRows) != nnzb) {
            throw new FormatException(where, "row_ptr must start at 0 and end at the number of tiles " + nnzb + ", got "
                    + rp.getLong(0) + " .. " + rp.getLong(8 * tileRows) + ". The file is corrupt: re-create it");
        }
        byte[] d = new byte[rows * cols * e];
        for (int tr = 0; tr < tileRows; tr++) {
            long a = rp.getLong(8 * tr);
            long z = rp.getLong(8 * (tr + 1));
            if (z < a || z > nnzb) {
                throw new FormatException(where, "row_ptr[" + (tr + 1) + "] = " + z + " is below row_ptr[" + tr + "] = " + a
                        + " or above " + nnzb + "; row pointers must be non-decreasing. The file is corrupt: re-create it");
            }
            int prev = -1;
            for (long k = a; k < z; k++) {
                int tc = ci.getInt((int) (4 * k));
                if (tc <= prev || tc >= tileCols) {
                    throw new FormatException(where, "col_indices[" + k + "] = " + tc + " in tile row " + tr
                            + "; tile columns must be < " + tileCols + " and strictly increasing within a tile row. "
                            + "The file is corrupt: re-create it");
                }
                prev = tc;
                for (int i = 0; i < b.rows(); i++) {
                    System.arraycopy(values, (int) ((k * tileElems + (long) i * b.cols()) * e), d,
                            ((tr * b.rows() + i) * cols + tc * b.cols()) * e, b.cols() * e);
                }
            }
        }
        return d;
    }

    // ---------------------------------------------------------------- bitmask

    /** @return bytes of one mask row: {@code ceil(cols / 8)} */
    static long maskRowBytes(long cols) {
        return (cols + 7) / 8;
    }

    /** @return stored entries */
    static long bitmaskCount(byte[] d, int rows, int cols, int e) {
        long nnz = 0;
        for (int i = 0; i < rows * cols; i++) {
            if (stored(d, i, e)) {
                nnz++;
            }
        }
        return nnz;
    }

    /** @return {mask: rows × ceil(cols/8) U8, values: nnz elements, row_ptr: rows + 1 I64} */
    static byte[][] bitmaskEncode(byte[] d, int rows, int cols, int e) {
        int nnz = (int) bitmaskCount(d, rows, cols, e);
        int mrb = (int) maskRowBytes(cols);
        byte[] mask = new byte[rows * mrb];
        byte[] values = new byte[nnz * e];
        ByteBuffer rowPtr = ByteBuffer.allocate(8 * (rows + 1)).order(ByteOrder.LITTLE_ENDIAN);
        int k = 0;
        rowPtr.putLong(0);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int el = r * cols + c;
                if (stored(d, el, e)) {
                    mask[r * mrb + (c >>> 3)] |= (byte) (1 << (c & 7));
                    System.arraycopy(d, el * e, values, k * e, e);
                    k++;
                }
            }
            rowPtr.putLong(k);
        }
        return new byte[][] {mask, values, rowPtr.array()};
    }

    /** Inverse of {@link #bitmaskEncode}; validates row pointers against the mask's row counts and padding bits. */
    static byte[] bitmaskDecode(String where, byte[] mask, byte[] values, byte[] rowPtrBytes, int rows, int cols, int e) {
        int mrb = (int) maskRowBytes(cols);
        long nnz = values.length / e;
        ByteBuffer rp = ByteBuffer.wrap(rowPtrBytes).order(ByteOrder.LITTLE_ENDIAN);
        byte[] d = new byte[rows * cols * e];
        long k = 0;
        for (int r = 0; r < rows; r++) {
            if (rp.getLong(8 * r) != k) {
                throw new FormatException(where, "row_ptr[" + r + "] = " + rp.getLong(8 * r) + " but the mask has " + k
                        + " set bits before row " + r + ". The file is corrupt: re-create it");
            }
            for (int c = 0; c < mrb * 8; c++) {
                if (((mask[r * mrb + (c >>> 3)] >>> (c & 7)) & 1) == 0) {
                    continue;
                }
                if (c >= cols) {
                    throw new FormatException(where, "row " + r + ": mask padding bit " + c + " is set; bits past column "
                            + (cols - 1) + " must be 0. The file is corrupt: re-create it");
                }
                if (k >= nnz) {
                    throw new FormatException(where, "the mask has more set bits than the " + nnz + " stored values. "
                            + "The file is corrupt: re-create it");
                }
                System.arraycopy(values, (int) (k * e), d, (r * cols + c) * e, e);
                k++;
            }
        }
        if (k != nnz || rp.getLong(8 * rows) != nnz) {
            throw new FormatException(where, "the mask has " + k + " set bits, row_ptr ends at " + rp.getLong(8 * rows)
                    + ", and there are " + nnz + " values; all three must agree. The file is corrupt: re-create it");
        }
        return d;
    }
}
