/**
 * Benchmark entry points (not tests): {@link io.sparkprune.calibration.bench.SolverBench} times the
 * inverse factor and the SparseGPT solve on synthetic layers of real model shapes.
 */
package io.sparkprune.calibration.bench;
