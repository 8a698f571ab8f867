package io.sparkprune.jobs.prune;

import java.io.Serializable;

/**
 * Measurements of one solved row shard, summed into per-tensor metrics on the driver.
 *
 * @param tensor tensor name
 * @param elements elements in the shard
 * @param zeros elements equal to ±0 after rounding to the checkpoint's dtype
 * @param patternViolations N:M groups or block tiles that break the pattern (0 when verified)
 * @param nonFinite NaN or infinite values written
 * @param errorNumerator Σ over rows of (w − ŵ) H (w − ŵ)ᵀ, with H the undamped Hessian
 * @param errorDenominator Σ over rows of w H wᵀ
 * @param solverLoss the solver's Σ (w − q)²/U_ii² over the shard (0 for the baselines)
 * @param seconds wall time of the solve
 * @param dampening the dampening that made H + λI positive definite (NaN for the baselines)
 * @param backend name of the kernel backend that solved the shard ({@link io.sparkprune.kernels.Backend#name()})
 * @param rowLoss SparseGPT's loss per row of the shard ({@link io.sparkprune.calibration.solver.PruneResult#rowLoss()},
 *     fp64, {@code rowCount} values in row order), or null for the baselines
 * @param gridViolations written values not on their quantization grid
 *     ({@link io.sparkprune.calibration.quant.GridCheck}), or −1 when the run does not quantize
 */
record ShardMetrics(String tensor, long elements, long zeros, long patternViolations, long nonFinite,
                    double errorNumerator, double errorDenominator, double solverLoss, double seconds, double dampening,
                    String backend, double[] rowLoss, long gridViolations)
        implements Serializable {
}
