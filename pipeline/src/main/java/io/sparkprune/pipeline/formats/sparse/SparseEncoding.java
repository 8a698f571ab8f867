package io.sparkprune.pipeline.formats.sparse;

import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.InvalidInputException;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How one tensor is stored in the {@code sparse} format. "Stored" entries are those whose bit
 * pattern is not all zeros; an entry equal to {@code +0.0} (all bits zero) is implied by the
 * structure, so decompression restores every bit, {@code -0.0} included.
 */
public sealed interface SparseEncoding
        permits SparseEncoding.Dense, SparseEncoding.NofM, SparseEncoding.Bsr, SparseEncoding.Bitmask {

    /** @return the manifest's {@code encoding} value: {@code dense}, {@code nm}, {@code bsr} or {@code bitmask} */
    String kind();

    /** @return the text form accepted by {@link #parse}: {@code dense}, {@code 2:4}, {@code block:16x16}, {@code unstructured} */
    String spec();

    /** The tensor is stored as it is, under its own name. */
    record Dense() implements SparseEncoding {
        @Override
        public String kind() {
            return "dense";
        }

        @Override
        public String spec() {
            return "dense";
        }
    }

    /**
     * N:M: at most {@code n} stored entries in every {@code m} consecutive columns of a row; stores
     * exactly {@code n} values per group and their in-group indices in {@code ceil(log2 m)} bits.
     *
     * @param n values per group, {@code 1 ≤ n < m}
     * @param m group length, {@code 2 ≤ m ≤ 256}
     */
    record NofM(int n, int m) implements SparseEncoding {
        /** @throws InvalidInputException unless {@code 1 ≤ n < m ≤ 256} */
        public NofM {
            if (n < 1 || m <= n || m > 256) {
                throw new InvalidInputException("N:M storage needs 1 <= N < M <= 256, got " + n + ":" + m
                        + "; use e.g. 2:4 or 4:8");
            }
        }

        /** @return bits per in-group index, {@code ceil(log2 m)}: 2 for m = 4, 3 for m = 8 */
        public int indexBits() {
            return 32 - Integer.numberOfLeadingZeros(m - 1);
        }

        @Override
        public String kind() {
            return "nm";
        }

        @Override
        public String spec() {
            return n + ":" + m;
        }
    }

    /**
     * Block sparse rows: the {@code rows × cols} tiles holding any stored entry, in BSR (scipy's
     * {@code bsr_matrix}: data, indices, indptr).
     *
     * @param rows tile height, ≥ 1
     * @param cols tile width, ≥ 1
     */
    record Bsr(int rows, int cols) implements SparseEncoding {
        /** @throws InvalidInputException for a tile side below 1 */
        public Bsr {
            if (rows < 1 || cols < 1) {
                throw new InvalidInputException("block storage needs positive tile sides, got " + rows + "x" + cols
                        + "; use e.g. block:16x16");
            }
        }

        @Override
        public String kind() {
            return "bsr";
        }

        @Override
        public String spec() {
            return "block:" + rows + "x" + cols;
        }
    }

    /** Unstructured: a bitmask of stored entries plus their values. */
    record Bitmask() implements SparseEncoding {
        @Override
        public String kind() {
            return "bitmask";
        }

        @Override
        public String spec() {
            return "unstructured";
        }
    }

    /**
     * @param pattern a pruning pattern
     * @return the storage for it: N:M for N:M, BSR with the pattern's tile for block, bitmask for unstructured
     */
    static SparseEncoding of(SparsityPattern pattern) {
        if (pattern instanceof SparsityPattern.NofM nm) {
            return new NofM(nm.n(), nm.m());
        }
        if (pattern instanceof SparsityPattern.Block b) {
            return new Bsr(b.rows(), b.cols());
        }
        return new Bitmask();
    }

    /** Grammar of {@link #parse}. */
    Pattern NM = Pattern.compile("(\\d{1,3}):(\\d{1,3})");
    /** Grammar of {@link #parse}. */
    Pattern BLOCK = Pattern.compile("block:(\\d{1,6})x(\\d{1,6})(:[0-9.eE+-]+)?");
    /** Grammar of {@link #parse}. */
    Pattern UNSTRUCTURED = Pattern.compile("unstructured(:[0-9.eE+-]+)?");

    /**
     * Parses {@code N:M} (e.g. {@code 2:4}), {@code block:RxC} (e.g. {@code block:16x16}),
     * {@code unstructured} or {@code dense}; a pruning pattern's trailing {@code :P} fraction
     * ({@code block:16x16:0.5}, {@code unstructured:0.5}) is accepted and ignored.
     * Case-insensitive, blanks around ignored.
     *
     * @param text the text
     * @return the encoding
     * @throws InvalidInputException for anything else, quoting the text and the accepted forms
     */
    static SparseEncoding parse(String text) {
        String s = text == null ? "" : text.trim().toLowerCase(Locale.ROOT).replace(" ", "");
        Matcher m = NM.matcher(s);
        if (m.matches()) {
            return new NofM(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)));
        }
        m = BLOCK.matcher(s);
        if (m.matches()) {
            return new Bsr(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)));
        }
        if (UNSTRUCTURED.matcher(s).matches()) {
            return new Bitmask();
        }
        if (s.equals("dense")) {
            return new Dense();
        }
        throw new InvalidInputException("cannot parse storage pattern '" + text + "'; accepted forms are N:M "
                + "(e.g. 2:4, 4:8), block:RxC (e.g. block:16x16), unstructured and dense");
    }
}
