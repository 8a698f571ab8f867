/**
 * Calibration algorithms: Hessian accumulation, the SparseGPT solver with joint quantization,
 * sparsity patterns, quantization grids and packing, and the magnitude and Wanda baselines. Heavy
 * math goes through {@link io.sparkprune.kernels.Backend}. This package holds the typed errors
 * shared by the sub-packages.
 */
package io.sparkprune.calibration;
