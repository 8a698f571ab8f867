package io.sparkprune.pipeline.formats;

import io.sparkprune.kernels.InvalidInputException;

/**
 * A tensor declared to follow an N:M pattern has a group of {@code m} consecutive inputs of a row
 * with more than {@code n} stored entries (entries whose bits are not all zero; {@code -0.0} counts,
 * so that decompression is bit-exact). The sparse writer refuses such a tensor instead of dropping
 * values.
 */
public final class PatternViolationException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    private final String tensor;
    private final long row;
    private final long group;

    /**
     * @param tensor tensor name
     * @param row row index (output feature)
     * @param group group index along the row (columns {@code group·m .. group·m + m - 1})
     * @param message the full message: what is wrong and the fix
     */
    public PatternViolationException(String tensor, long row, long group, String message) {
        super(message);
        this.tensor = tensor;
        this.row = row;
        this.group = group;
    }

    /** @return the offending tensor's name */
    public String tensor() {
        return tensor;
    }

    /** @return the row of the first offending group */
    public long row() {
        return row;
    }

    /** @return the index of the first offending group within its row */
    public long group() {
        return group;
    }
}
