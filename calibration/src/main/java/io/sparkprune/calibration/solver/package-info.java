/**
 * The SparseGPT solver ({@link io.sparkprune.calibration.solver.SparseGptSolver}): one-shot
 * pruning with optional joint quantization, column block by column block, through the kernels of a
 * {@link io.sparkprune.kernels.Backend}.
 */
package io.sparkprune.calibration.solver;
