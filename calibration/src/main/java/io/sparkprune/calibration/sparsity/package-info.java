/**
 * Sparsity patterns ({@link io.sparkprune.calibration.sparsity.SparsityPattern}), pruning masks
 * ({@link io.sparkprune.calibration.sparsity.BitMask}) and exact smallest-k selection shared by the
 * SparseGPT solver and the baselines.
 */
package io.sparkprune.calibration.sparsity;
