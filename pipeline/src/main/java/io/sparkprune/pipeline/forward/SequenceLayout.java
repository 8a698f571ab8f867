package io.sparkprune.pipeline.forward;

import java.io.Serializable;
import java.util.Arrays;

/**
 * How a packed batch of sequences lies in the rows of an activation matrix: sequence {@code s}
 * occupies rows {@code [start(s), start(s) + length(s))}, the sequences back to back from row 0, no
 * padding. The position of a token (for position embeddings and RoPE) is its index within its
 * sequence, 0-based. Immutable.
 */
public final class SequenceLayout implements Serializable {
    private static final long serialVersionUID = 1L;

    /** {@code sequences + 1} row offsets, {@code starts[0] = 0}, non-decreasing. */
    private final int[] starts;

    private SequenceLayout(int[] starts) {
        this.starts = starts;
    }

    /**
     * @param lengths tokens of each sequence, each ≥ 1
     * @return the packed layout
     * @throws IllegalArgumentException for an empty sequence or more than {@code Integer.MAX_VALUE} tokens
     */
    public static SequenceLayout ofLengths(int... lengths) {
        int[] st = new int[lengths.length + 1];
        for (int s = 0; s < lengths.length; s++) {
            if (lengths[s] < 1) {
                throw new IllegalArgumentException("sequence " + s + " has length " + lengths[s] + "; every sequence needs >= 1 token");
            }
            st[s + 1] = Math.addExact(st[s], lengths[s]);
        }
        return new SequenceLayout(st);
    }

    /**
     * @param sequences number of sequences, ≥ 0
     * @param length tokens per sequence, ≥ 1
     * @return {@code sequences} sequences of equal length
     */
    public static SequenceLayout uniform(int sequences, int length) {
        int[] l = new int[sequences];
        Arrays.fill(l, length);
        return ofLengths(l);
    }

    /** @return number of sequences */
    public int sequences() {
        return starts.length - 1;
    }

    /** @return total tokens (rows) */
    public int tokens() {
        return starts[starts.length - 1];
    }

    /**
     * @param s sequence index
     * @return its first row
     */
    public int start(int s) {
        return starts[s];
    }

    /**
     * @param s sequence index
     * @return its number of tokens
     */
    public int length(int s) {
        return starts[s + 1] - starts[s];
    }

    /** @return the longest sequence's length (0 for no sequences) */
    public int maxLength() {
        int m = 0;
        for (int s = 0; s < sequences(); s++) {
            m = Math.max(m, length(s));
        }
        return m;
    }

    /** @return {@code sequences + 1} row offsets (a copy) */
    public int[] starts() {
        return starts.clone();
    }

    /** @return the offsets without copying; callers must not modify them */
    int[] startsView() {
        return starts;
    }

    /** @return per token (row), its position within its sequence */
    public int[] positions() {
        int[] p = new int[tokens()];
        for (int s = 0; s < sequences(); s++) {
            for (int i = 0; i < length(s); i++) {
                p[starts[s] + i] = i;
            }
        }
        return p;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SequenceLayout l && Arrays.equals(l.starts, starts);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(starts);
    }

    @Override
    public String toString() {
        return "SequenceLayout[" + sequences() + " sequences, " + tokens() + " tokens]";
    }
}
