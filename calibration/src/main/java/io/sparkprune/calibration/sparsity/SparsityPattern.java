package io.sparkprune.calibration.sparsity;

import io.sparkprune.calibration.SparsityPatternException;

import java.util.Locale;
import java.util.regex.Matcher;

/**
 * Which weights may be zeroed. Weights are {@code rows × cols} = {@code out_features × in_features};
 * patterns constrain the entries of each row along the input dimension. Parse user text once with
 * {@link #parse(String)}; never pass patterns around as magic integers.
 *
 * <ul>
 *   <li>{@link Unstructured}{@code (p)}: a fraction {@code p} of the entries is zeroed, anywhere.
 *   <li>{@link NofM}{@code (n, m)}: NVIDIA's convention, at most {@code n} non-zeros in every
 *       {@code m} consecutive inputs of a row ({@code 2:4} keeps 2 of 4; {@code 4:8} keeps 4 of 8).
 *   <li>{@link Block}{@code (r, c, p)}: SparkPrune's extension, whole {@code r × c} tiles (r output
 *       rows, c input columns, aligned to multiples of r and c) are zeroed, a fraction {@code p} of
 *       the tiles.
 * </ul>
 * How each solver chooses the entries is documented on the solver
 * ({@code io.sparkprune.calibration.solver.SparseGptSolver}) and the baselines.
 */
public sealed interface SparsityPattern permits SparsityPattern.Unstructured, SparsityPattern.NofM, SparsityPattern.Block {

    /** @return the canonical text form, accepted by {@link #parse(String)} */
    String spec();

    /** @return the fraction of zeros the pattern targets, in [0, 1) */
    double sparsity();

    /**
     * Checks that a {@code rows × cols} weight (or row shard) can carry this pattern when solved in
     * column blocks of {@code blockSize}.
     *
     * @param tensor tensor name for the message
     * @param rows out_features of the weight or shard
     * @param cols in_features
     * @param blockSize the solver's column block (lazy batch) size
     * @throws SparsityPatternException naming the tensor, the shape and the fix
     */
    void checkShape(String tensor, int rows, int cols, int blockSize);

    /**
     * Unstructured sparsity.
     *
     * @param sparsity fraction of zeros, {@code 0 ≤ p < 1}
     */
    record Unstructured(double sparsity) implements SparsityPattern {
        /** @throws SparsityPatternException when p is outside [0, 1) */
        public Unstructured {
            if (!(sparsity >= 0.0 && sparsity < 1.0)) {
                throw new SparsityPatternException("unstructured sparsity must be in [0, 1), got " + sparsity
                        + "; write e.g. unstructured:0.5 for 50% zeros");
            }
        }

        @Override
        public String spec() {
            return "unstructured:" + trim(sparsity);
        }

        @Override
        public void checkShape(String tensor, int rows, int cols, int blockSize) {
            // any shape
        }
    }

    /**
     * N:M semi-structured sparsity: at most {@code n} non-zeros in every {@code m} consecutive inputs.
     *
     * @param n non-zeros kept per group, {@code 1 ≤ n < m}
     * @param m group length along the input dimension
     */
    record NofM(int n, int m) implements SparsityPattern {
        /** @throws SparsityPatternException unless {@code 1 ≤ n < m} */
        public NofM {
            if (n < 1 || m <= n) {
                throw new SparsityPatternException("N:M sparsity needs 1 <= N < M, got " + n + ":" + m
                        + "; N is the number of non-zeros kept in every M inputs, e.g. 2:4 or 4:8");
            }
        }

        @Override
        public String spec() {
            return n + ":" + m;
        }

        @Override
        public double sparsity() {
            return 1.0 - (double) n / m;
        }

        @Override
        public void checkShape(String tensor, int rows, int cols, int blockSize) {
            if (cols % m != 0) {
                throw new SparsityPatternException(spec() + " pruning needs in_features divisible by " + m + ", got "
                        + cols + " for " + tensor + "; exclude this tensor from pruning (ignore) or use unstructured sparsity");
            }
            if (blockSize % m != 0) {
                throw new SparsityPatternException(spec() + " pruning needs a solver block size divisible by " + m
                        + ", got " + blockSize + " for " + tensor + "; use block_size 128");
            }
        }
    }

    /**
     * Block sparsity: whole aligned {@code rows × cols} tiles are zeroed.
     *
     * @param rows tile height (output rows), ≥ 1
     * @param cols tile width (input columns), ≥ 1
     * @param sparsity fraction of tiles zeroed, {@code 0 ≤ p < 1}
     */
    record Block(int rows, int cols, double sparsity) implements SparsityPattern {
        /** @throws SparsityPatternException for non-positive tile sides or p outside [0, 1) */
        public Block {
            if (rows < 1 || cols < 1) {
                throw new SparsityPatternException("block sparsity needs positive tile sides, got " + rows + "x" + cols
                        + "; write e.g. block:16x16:0.5");
            }
            if (!(sparsity >= 0.0 && sparsity < 1.0)) {
                throw new SparsityPatternException("block sparsity must be in [0, 1), got " + sparsity
                        + "; write e.g. block:16x16:0.5");
            }
        }

        @Override
        public String spec() {
            return "block:" + rows + "x" + cols + ":" + trim(sparsity);
        }

        @Override
        public void checkShape(String tensor, int outRows, int inCols, int blockSize) {
            if (outRows % rows != 0) {
                throw new SparsityPatternException(spec() + " pruning needs out_features divisible by " + rows + ", got "
                        + outRows + " for " + tensor + " (row shards must also start and end on multiples of "
                        + rows + "); choose a tile height that divides " + outRows);
            }
            if (inCols % cols != 0) {
                throw new SparsityPatternException(spec() + " pruning needs in_features divisible by " + cols + ", got "
                        + inCols + " for " + tensor + "; choose a tile width that divides " + inCols);
            }
            if (blockSize % cols != 0) {
                throw new SparsityPatternException(spec() + " pruning needs a solver block size divisible by " + cols
                        + ", got " + blockSize + " for " + tensor + "; use a tile width that divides 128");
            }
        }
    }

    /**
     * Parses {@code "N:M"} (e.g. {@code "2:4"}, {@code "4:8"}), {@code "unstructured:P"} (e.g.
     * {@code "unstructured:0.5"}) or {@code "block:RxC:P"} (e.g. {@code "block:16x16:0.5"});
     * case-insensitive, surrounding blanks ignored.
     *
     * @param spec the text
     * @return the pattern
     * @throws SparsityPatternException for anything else, quoting the text and the accepted forms
     */
    static SparsityPattern parse(String spec) {
        if (spec == null) {
            throw new SparsityPatternException("missing sparsity pattern; " + PatternSyntax.ACCEPTED);
        }
        String s = spec.trim().toLowerCase(Locale.ROOT);
        Matcher nm = PatternSyntax.NM.matcher(s);
        if (nm.matches()) {
            return new NofM(PatternSyntax.parseInt(nm.group(1)), PatternSyntax.parseInt(nm.group(2)));
        }
        Matcher un = PatternSyntax.UNSTRUCTURED.matcher(s);
        if (un.matches()) {
            return new Unstructured(PatternSyntax.parseFraction(un.group(1), spec));
        }
        Matcher bl = PatternSyntax.BLOCK.matcher(s);
        if (bl.matches()) {
            return new Block(PatternSyntax.parseInt(bl.group(1)), PatternSyntax.parseInt(bl.group(2)),
                    PatternSyntax.parseFraction(bl.group(3), spec));
        }
        throw new SparsityPatternException("cannot parse sparsity pattern '" + spec + "'; " + PatternSyntax.ACCEPTED);
    }

    private static String trim(double p) {
        String s = Double.toString(p);
        return s.endsWith(".0") ? s.substring(0, s.length() - 2) : s;
    }
}
