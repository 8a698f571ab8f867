package io.sparkprune.calibration.sparsity;

import java.io.Serializable;
import java.util.Arrays;

/**
 * A {@code rows × cols} bit matrix; bit set = the weight was pruned by the pattern. Each row starts
 * on a fresh 64-bit word so that different rows can be written by different threads.
 * Writers must not share a row across threads.
 */
public final class BitMask implements Serializable {
    private static final long serialVersionUID = 1L;
    private final int rows;
    private final int cols;
    private final int wordsPerRow;
    private final long[] words; // (rows, wordsPerRow), bit c % 64 of word c / 64

    /**
     * @param rows rows, ≥ 0
     * @param cols columns, ≥ 0
     * @throws IllegalArgumentException for negative sizes or more than 2^31 words
     */
    public BitMask(int rows, int cols) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException("negative mask shape " + rows + " x " + cols);
        }
        this.rows = rows;
        this.cols = cols;
        this.wordsPerRow = (cols + 63) >>> 6;
        long n = (long) rows * wordsPerRow;
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("mask " + rows + " x " + cols + " is too large");
        }
        this.words = new long[(int) n];
    }

    private BitMask(int rows, int cols, long[] words) {
        this.rows = rows;
        this.cols = cols;
        this.wordsPerRow = (cols + 63) >>> 6;
        this.words = words;
    }

    /**
     * The mask over given words, without a copy: the caller hands the array over and must not change it
     * afterwards. The layout is this class's (and the resident solve's, {@code ResidentSolver.SolveJob#mask}):
     * {@code rows × wordsPerRow} words row-major, {@code wordsPerRow = ceil(cols / 64)}, column c of row r
     * at bit {@code c % 64} of word {@code r·wordsPerRow + c / 64}.
     *
     * @param rows rows, ≥ 0
     * @param cols columns, ≥ 0
     * @param words exactly {@code rows · ceil(cols / 64)} words; the bits beyond {@code cols} in each row's
     *     last word must be 0
     * @return the mask, backed by {@code words}
     * @throws IllegalArgumentException for negative sizes, a length other than {@code rows · ceil(cols / 64)},
     *     or a bit set beyond column {@code cols - 1}; the message names the shape (and the row)
     */
    public static BitMask ofWords(int rows, int cols, long[] words) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException("negative mask shape " + rows + " x " + cols);
        }
        int wpr = (cols + 63) >>> 6;
        long n = (long) rows * wpr;
        if (words.length != n) {
            throw new IllegalArgumentException("a " + rows + " x " + cols + " bit mask needs rows * ceil(cols / 64) = "
                    + n + " words, got " + words.length);
        }
        int tail = cols & 63;
        if (tail != 0) {
            long stray = -1L << tail; // bits of the columns past cols in the last word of a row
            for (int r = 0; r < rows; r++) {
                long w = words[r * wpr + wpr - 1];
                if ((w & stray) != 0) {
                    throw new IllegalArgumentException("bit mask of " + rows + " x " + cols + ": row " + r
                            + " has bits set beyond column " + (cols - 1) + " (at column "
                            + ((wpr - 1) * 64 + Long.numberOfTrailingZeros(w & stray)) + "); the words do not hold a "
                            + cols + "-column mask");
                }
            }
        }
        return new BitMask(rows, cols, words);
    }

    /**
     * The mask of a byte matrix: bit {@code (r, c)} set where {@code bytes[r·cols + c] != 0} (the
     * kernels' byte mask layout). Rows are packed in parallel for large masks.
     *
     * @param bytes {@code rows × cols} bytes, row-major
     * @param rows rows, ≥ 0
     * @param cols columns, ≥ 0
     * @return the mask
     * @throws IllegalArgumentException when {@code bytes.length != rows·cols}
     */
    public static BitMask fromBytes(byte[] bytes, int rows, int cols) {
        if (bytes.length != (long) rows * cols) {
            throw new IllegalArgumentException("mask bytes: " + bytes.length + " for " + rows + " x " + cols);
        }
        BitMask m = new BitMask(rows, cols);
        java.util.stream.IntStream rs = java.util.stream.IntStream.range(0, rows);
        ((long) rows * cols > (1 << 20) ? rs.parallel() : rs).forEach(r -> {
            int o = r * cols;
            int w0 = r * m.wordsPerRow;
            for (int c0 = 0; c0 < cols; c0 += 64) {
                int end = Math.min(cols, c0 + 64);
                long word = 0;
                for (int c = c0; c < end; c++) {
                    if (bytes[o + c] != 0) {
                        word |= 1L << c;
                    }
                }
                m.words[w0 + (c0 >>> 6)] = word;
            }
        });
        return m;
    }

    /** @return rows */
    public int rows() {
        return rows;
    }

    /** @return columns */
    public int cols() {
        return cols;
    }

    /**
     * @param r row
     * @param c column
     * @return whether {@code (r, c)} is pruned
     */
    public boolean get(int r, int c) {
        check(r, c);
        return (words[r * wordsPerRow + (c >>> 6)] & (1L << c)) != 0;
    }

    /**
     * Marks {@code (r, c)} pruned.
     *
     * @param r row
     * @param c column
     */
    public void set(int r, int c) {
        check(r, c);
        words[r * wordsPerRow + (c >>> 6)] |= 1L << c;
    }

    private void check(int r, int c) {
        if (r < 0 || r >= rows || c < 0 || c >= cols) {
            throw new IndexOutOfBoundsException("(" + r + ", " + c + ") outside mask " + rows + " x " + cols);
        }
    }

    /**
     * @param r row
     * @param c0 first column
     * @param c1 end column (exclusive)
     * @return pruned entries in {@code row r, columns [c0, c1)}
     */
    public int count(int r, int c0, int c1) {
        int n = 0;
        for (int c = c0; c < c1; c++) {
            if (get(r, c)) {
                n++;
            }
        }
        return n;
    }

    /**
     * @param r row
     * @return pruned entries in row r
     */
    public int countRow(int r) {
        int n = 0;
        for (int k = 0; k < wordsPerRow; k++) {
            n += Long.bitCount(words[r * wordsPerRow + k]);
        }
        return n;
    }

    /** @return pruned entries in the whole mask */
    public long count() {
        long n = 0;
        for (long w : words) {
            n += Long.bitCount(w);
        }
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BitMask m && m.rows == rows && m.cols == cols && Arrays.equals(m.words, words);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * rows + cols) + Arrays.hashCode(words);
    }

    @Override
    public String toString() {
        return "BitMask[" + rows + " x " + cols + ", " + count() + " pruned]";
    }
}
