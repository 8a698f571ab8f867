package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.sparsity.SparsityPattern;

/** Verifies a pruned row shard against its pattern, independently of the solver that made it. */
final class PatternCheck {
    private PatternCheck() {
    }

    /**
     * Counts pattern violations in a pruned shard.
     * <ul>
     *   <li>N:M: a group of M consecutive inputs of a row holding more than N non-zeros.</li>
     *   <li>Block r × c: a tile that holds both a pruned entry (non-zero in the dense weights, zero
     *       now) and a non-zero entry. Entries that were already zero, and the columns of dead
     *       inputs (H_jj = 0, which SparseGPT zeroes before pruning), do not count as pruned, so a
     *       kept tile may contain them.</li>
     *   <li>Unstructured: no structure to violate; 0.</li>
     * </ul>
     *
     * @param pattern the target pattern
     * @param dense the shard before pruning, {@code rows × cols} row-major
     * @param pruned the shard as written, same layout
     * @param rows rows of the shard (a multiple of the tile height for block patterns)
     * @param cols columns (a multiple of M, or of the tile width)
     * @param deadColumns {@code cols} flags of dead inputs, or null when there are none
     * @return number of violating groups or tiles
     */
    static long violations(SparsityPattern pattern, float[] dense, float[] pruned, int rows, int cols,
                           boolean[] deadColumns) {
        if (pattern instanceof SparsityPattern.NofM) {
            return rowsOf(rows).mapToLong(r -> violations(pattern, dense, pruned, r, r + 1, rows, cols, deadColumns))
                    .sum();
        }
        if (pattern instanceof SparsityPattern.Block b) {
            return rowsOf((rows + b.rows() - 1) / b.rows()).mapToLong(tileRow -> violations(pattern, dense, pruned,
                    tileRow * b.rows(), Math.min(rows, (tileRow + 1) * b.rows()), rows, cols, deadColumns)).sum();
        }
        return 0;
    }

    /**
     * {@link #violations(SparsityPattern, float[], float[], int, int, boolean[])} restricted to the groups or
     * tiles of rows {@code [rowStart, rowEnd)}, on the calling thread: the counts of a partition of the rows
     * into such ranges add up to the whole shard's count. For a block pattern of tile height h,
     * {@code rowStart} must be a multiple of h and {@code rowEnd} a multiple of h or {@code rows}, so that
     * every tile counted lies entirely inside the range.
     *
     * @param pattern the target pattern
     * @param dense the shard before pruning, {@code rows × cols} row-major
     * @param pruned the shard as written, same layout (only rows {@code [rowStart, rowEnd)} are read)
     * @param rowStart first row, {@code 0 ≤ rowStart ≤ rowEnd}
     * @param rowEnd end of the range (exclusive), {@code ≤ rows}
     * @param rows rows of the whole shard
     * @param cols columns
     * @param deadColumns {@code cols} flags of dead inputs, or null when there are none
     * @return number of violating groups or tiles in the range
     * @throws IllegalArgumentException when the range is out of bounds or not aligned to the tile height
     */
    static long violations(SparsityPattern pattern, float[] dense, float[] pruned, int rowStart, int rowEnd,
                           int rows, int cols, boolean[] deadColumns) {
        if (rowStart < 0 || rowEnd < rowStart || rowEnd > rows) {
            throw new IllegalArgumentException("rows [" + rowStart + ", " + rowEnd + ") outside [0, " + rows + ")");
        }
        if (pattern instanceof SparsityPattern.NofM nm) {
            long bad = 0;
            for (int r = rowStart; r < rowEnd; r++) {
                for (int g = 0; g + nm.m() <= cols; g += nm.m()) {
                    int nonZeros = 0;
                    for (int j = 0; j < nm.m(); j++) {
                        if (pruned[r * cols + g + j] != 0f) {
                            nonZeros++;
                        }
                    }
                    if (nonZeros > nm.n()) {
                        bad++;
                    }
                }
            }
            return bad;
        }
        if (pattern instanceof SparsityPattern.Block b) {
            if (rowStart % b.rows() != 0 || (rowEnd % b.rows() != 0 && rowEnd != rows)) {
                throw new IllegalArgumentException("rows [" + rowStart + ", " + rowEnd + ") are not aligned to the "
                        + b.rows() + "-row tiles of " + pattern);
            }
            long bad = 0;
            for (int r0 = rowStart; r0 < rowEnd; r0 += b.rows()) {
                for (int c0 = 0; c0 < cols; c0 += b.cols()) {
                    boolean prunedEntry = false;
                    boolean nonZero = false;
                    for (int r = r0; r < Math.min(rows, r0 + b.rows()); r++) {
                        for (int c = c0; c < Math.min(cols, c0 + b.cols()); c++) {
                            int i = r * cols + c;
                            if (pruned[i] != 0f) {
                                nonZero = true;
                            } else if (dense[i] != 0f && (deadColumns == null || !deadColumns[c])) {
                                prunedEntry = true;
                            }
                        }
                    }
                    if (prunedEntry && nonZero) {
                        bad++;
                    }
                }
            }
            return bad;
        }
        return 0;
    }

    /** Row (or tile-row) indices, in parallel for shards large enough to gain from it. */
    private static java.util.stream.IntStream rowsOf(int n) {
        java.util.stream.IntStream r = java.util.stream.IntStream.range(0, n);
        return n >= 256 ? r.parallel() : r;
    }
}
