package io.sparkprune.calibration.sparsity;

/**
 * Over which entries an unstructured (or block) mask is ranked in each column block.
 */
public enum MaskScope {
    /**
     * All rows given to the solver together, as the reference SparseGPT does: each column block is
     * exactly p-sparse, individual rows vary. When a weight is solved in row shards, the ranking is
     * over the shard's rows only, so the result depends on the sharding (and differs from solving
     * the whole matrix at once).
     */
    ALL_ROWS,
    /**
     * Each row separately (each tile row for block sparsity): every row is p-sparse in every column
     * block, and the result does not depend on how the rows are sharded.
     */
    PER_ROW
}
