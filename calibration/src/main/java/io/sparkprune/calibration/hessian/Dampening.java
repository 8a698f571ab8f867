package io.sparkprune.calibration.hessian;

import io.sparkprune.calibration.CalibrationInputException;

import java.util.ArrayList;
import java.util.List;

/**
 * Relative dampening of the Hessian before factoring: {@code λ = d · mean(diag H)} is added to the
 * diagonal (SparseGPT/GPTQ "percdamp"). If the Cholesky factorization fails, the solver retries
 * with {@code d × factor}, as long as {@code d ≤ max}.
 *
 * @param initial first d, &gt; 0 (0.01 in the paper)
 * @param factor growth per retry, &gt; 1
 * @param max largest d tried, ≥ initial
 */
public record Dampening(double initial, double factor, double max) {
    /** d = 0.01, then 0.1, then 1.0. */
    public static final Dampening DEFAULT = new Dampening(0.01, 10.0, 1.0);

    /** @throws CalibrationInputException for values outside the ranges above */
    public Dampening {
        if (!(initial > 0.0) || !(factor > 1.0) || !(max >= initial) || Double.isInfinite(max)) {
            throw new CalibrationInputException("dampening needs initial > 0, factor > 1 and initial <= max < infinity, got "
                    + initial + ", " + factor + ", " + max + "; the default is 0.01, x10, up to 1.0");
        }
    }

    /**
     * @param initial first d
     * @return the default growth and cap with another starting value, cap raised to {@code initial}
     *     if needed
     */
    public static Dampening startingAt(double initial) {
        return new Dampening(initial, DEFAULT.factor, Math.max(DEFAULT.max, initial));
    }

    /** @return the relative dampenings to try, in order */
    public List<Double> schedule() {
        List<Double> out = new ArrayList<>();
        for (double d = initial; d <= max * (1 + 1e-9); d *= factor) {
            out.add(d);
        }
        return out;
    }
}
