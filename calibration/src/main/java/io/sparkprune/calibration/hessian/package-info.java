/**
 * Second-order statistics of a layer's inputs: the running Hessian
 * ({@link io.sparkprune.calibration.hessian.HessianAccumulator}, mergeable and serializable for
 * Spark's tree aggregation) and SparseGPT's inverse factor
 * ({@link io.sparkprune.calibration.hessian.InverseFactor}) with dampening retries.
 */
package io.sparkprune.calibration.hessian;
