package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.InverseFactor;

/**
 * What the row-shard solves of one calibration group use, built in the group's task on the
 * executor ({@link GroupSolve}) and never sent anywhere: the reduced Hessian (for Wanda's input
 * norms and the reconstruction-error metric) and, for SparseGPT, its inverse factor.
 *
 * @param hessian the group's Hessian over all calibration tokens
 * @param factor U = upper Cholesky factor of (H + λI)⁻¹, or null for methods that need none
 */
record GroupStats(HessianAccumulator hessian, InverseFactor factor) {
}
