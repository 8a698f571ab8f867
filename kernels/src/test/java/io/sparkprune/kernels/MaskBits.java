package io.sparkprune.kernels;

/**
 * Test reference for the bit layout of {@link ResidentSolver.SolveJob#mask()}: rows of
 * {@code ceil(cols / 64)} 64-bit words, column c of row r at bit {@code c % 64} of word
 * {@code r·wpr + c / 64}. Written bit by bit, independently of the code under test.
 */
public final class MaskBits {
    private MaskBits() {
    }

    /**
     * @param bytes {@code rows × cols} row-major bytes, non-zero = pruned
     * @param rows rows
     * @param cols columns
     * @return the words
     */
    public static long[] pack(byte[] bytes, int rows, int cols) {
        int wpr = (cols + 63) / 64;
        long[] words = new long[rows * wpr];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                if (bytes[r * cols + c] != 0) {
                    words[r * wpr + c / 64] |= 1L << (c % 64);
                }
            }
        }
        return words;
    }

    /**
     * @param words {@code rows × ceil(cols / 64)} words
     * @param rows rows
     * @param cols columns
     * @return {@code rows × cols} bytes, 1 = pruned
     * @throws AssertionError when a bit beyond {@code cols} is set in a row's last word, or the array
     *     has another length than {@code rows · ceil(cols / 64)}
     */
    public static byte[] unpack(long[] words, int rows, int cols) {
        int wpr = (cols + 63) / 64;
        if (words.length != rows * wpr) {
            throw new AssertionError(words.length + " mask words for " + rows + " x " + cols);
        }
        byte[] bytes = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int b = 0; b < wpr * 64; b++) {
                boolean set = ((words[r * wpr + b / 64] >>> (b % 64)) & 1L) != 0;
                if (b < cols) {
                    bytes[r * cols + b] = (byte) (set ? 1 : 0);
                } else if (set) {
                    throw new AssertionError("bit of column " + b + " set beyond " + cols + " columns in row " + r);
                }
            }
        }
        return bytes;
    }
}
