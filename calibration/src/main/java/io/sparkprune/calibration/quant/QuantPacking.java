package io.sparkprune.calibration.quant;

/**
 * Bit-exact packing of signed integer codes into int32 words, compressed-tensors'
 * {@code pack_to_int32}/{@code unpack_from_int32} (format {@code pack-quantized}):
 * <ol>
 *   <li>each code {@code c ∈ [-2^(bits-1), 2^(bits-1) - 1]} becomes the unsigned
 *       {@code c + 2^(bits-1)} (offset binary);
 *   <li>{@code f = 32 / bits} consecutive values along the packed dimension share one word, value
 *       {@code i} of a word in bits {@code [bits·i, bits·i + bits)} (first value in the least
 *       significant bits: for int4, value i in bits 4i..4i+3);
 *   <li>the packed dimension is padded with unsigned 0 to a multiple of {@code f}.
 * </ol>
 * {@link #packRows} packs along each row (a weight {@code rows × cols} becomes
 * {@code rows × ceil(cols / f)}, compressed-tensors' {@code packed_dim=1});
 * {@link #packColumns} packs along each column ({@code ceil(rows / f) × cols},
 * {@code packed_dim=0}, used for zero points). Example: int8 codes {@code [1, 2]} pack to
 * {@code 33409 = 0x00008281}.
 */
public final class QuantPacking {
    private QuantPacking() {
    }

    private static int factor(int bits) {
        if (bits != 2 && bits != 4 && bits != 8) {
            throw new IllegalArgumentException("int32 packing supports 2, 4 and 8 bits, got " + bits);
        }
        return 32 / bits;
    }

    private static int unsigned(byte code, int bits, int index) {
        int half = 1 << (bits - 1);
        if (code < -half || code >= half) {
            throw new IllegalArgumentException("code " + code + " at index " + index + " does not fit in " + bits + " bits");
        }
        return code + half;
    }

    /**
     * @param codes {@code rows × cols} signed codes, row-major
     * @param rows rows
     * @param cols columns
     * @param bits 2, 4 or 8
     * @return {@code rows × ceil(cols / (32/bits))} words, row-major
     * @throws IllegalArgumentException for a code outside the signed range or a length mismatch
     */
    public static int[] packRows(byte[] codes, int rows, int cols, int bits) {
        int f = factor(bits);
        checkLength(codes.length, rows, cols);
        int wpr = (cols + f - 1) / f;
        int[] out = new int[rows * wpr];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int idx = r * cols + c;
                out[r * wpr + c / f] |= unsigned(codes[idx], bits, idx) << (bits * (c % f));
            }
        }
        return out;
    }

    /**
     * Inverse of {@link #packRows}.
     *
     * @param packed {@code rows × ceil(cols / (32/bits))} words
     * @param rows rows
     * @param cols columns of the unpacked matrix (drops the padding)
     * @param bits 2, 4 or 8
     * @return {@code rows × cols} signed codes
     */
    public static byte[] unpackRows(int[] packed, int rows, int cols, int bits) {
        int f = factor(bits);
        int wpr = (cols + f - 1) / f;
        checkLength(packed.length, rows, wpr);
        int mask = (1 << bits) - 1;
        int half = 1 << (bits - 1);
        byte[] out = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[r * cols + c] = (byte) (((packed[r * wpr + c / f] >>> (bits * (c % f))) & mask) - half);
            }
        }
        return out;
    }

    /**
     * @param codes {@code rows × cols} signed codes, row-major
     * @param rows rows
     * @param cols columns
     * @param bits 2, 4 or 8
     * @return {@code ceil(rows / (32/bits)) × cols} words, row-major
     */
    public static int[] packColumns(byte[] codes, int rows, int cols, int bits) {
        int f = factor(bits);
        checkLength(codes.length, rows, cols);
        int[] out = new int[((rows + f - 1) / f) * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int idx = r * cols + c;
                out[(r / f) * cols + c] |= unsigned(codes[idx], bits, idx) << (bits * (r % f));
            }
        }
        return out;
    }

    /**
     * Inverse of {@link #packColumns}.
     *
     * @param packed {@code ceil(rows / (32/bits)) × cols} words
     * @param rows rows of the unpacked matrix (drops the padding)
     * @param cols columns
     * @param bits 2, 4 or 8
     * @return {@code rows × cols} signed codes
     */
    public static byte[] unpackColumns(int[] packed, int rows, int cols, int bits) {
        int f = factor(bits);
        checkLength(packed.length, (rows + f - 1) / f, cols);
        int mask = (1 << bits) - 1;
        int half = 1 << (bits - 1);
        byte[] out = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[r * cols + c] = (byte) (((packed[(r / f) * cols + c] >>> (bits * (r % f))) & mask) - half);
            }
        }
        return out;
    }

    /**
     * Signed zero points (ints) to codes for {@link #packColumns}.
     *
     * @param zeroPoints values in the signed range of {@code bits}
     * @param bits bits per code
     * @return the same values as bytes
     */
    public static byte[] toCodes(int[] zeroPoints, int bits) {
        int half = 1 << (bits - 1);
        byte[] out = new byte[zeroPoints.length];
        for (int i = 0; i < out.length; i++) {
            if (zeroPoints[i] < -half || zeroPoints[i] >= half) {
                throw new IllegalArgumentException("zero point " + zeroPoints[i] + " at " + i + " does not fit in " + bits + " bits");
            }
            out[i] = (byte) zeroPoints[i];
        }
        return out;
    }

    private static void checkLength(int length, int rows, int cols) {
        if (rows < 0 || cols < 0 || length != (long) rows * cols) {
            throw new IllegalArgumentException("expected " + rows + " x " + cols + " elements, got " + length);
        }
    }
}
