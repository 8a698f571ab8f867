package io.sparkprune.jobs.prune;

import java.io.Serializable;

/**
 * What the driver needs of one calibration group's reduced Hessian and inverse factor, sent back by
 * the group's task ({@link GroupSolve}) instead of the Hessian itself: the fields of report.json
 * that {@link LayerMetrics#summarise} reads, and Wanda's input norms for the quality check's
 * baseline. A few numbers and at most {@code features} doubles; never the Hessian or the factor.
 *
 * @param group calibration group name
 * @param calibrationTokens rows summed into the Hessian ({@code HessianAccumulator#count()})
 * @param factored whether an inverse factor was computed (SparseGPT); the next two fields are
 *     meaningful only then
 * @param dampening the dampening λ that made H + λI positive definite
 *     ({@code InverseFactor#dampening()}), NaN when not factored
 * @param deadInputs inputs whose Hessian diagonal was zero ({@code InverseFactor#deadCount()}), 0
 *     when not factored
 * @param inputNorms Wanda's input norms √(Σ_t x_tj²), one per input feature (fp64), or null when
 *     no Wanda baseline was asked for
 * @param factorSeconds executor wall seconds spent computing the inverse factor (0 when not factored)
 */
record GroupSummary(String group, long calibrationTokens, boolean factored, double dampening, int deadInputs,
                    double[] inputNorms, double factorSeconds) implements Serializable {
}
