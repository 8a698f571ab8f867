package io.sparkprune.calibration.hessian;

import java.util.Locale;

/**
 * How {@link HessianAccumulator#add} computes {@code Σ xᵀx}; recipe key
 * {@code calibration.hessian_precision} (CLI {@code --hessian-precision}).
 */
public enum HessianPrecision {
    /**
     * Products and sums in fp64 ({@link io.sparkprune.kernels.Backend#syrkPackedUpper}): the sum of
     * the fp32 activations' exact products, up to fp64 rounding. The default.
     */
    EXACT,
    /**
     * TF32 tensor-core products ({@link io.sparkprune.kernels.Backend#syrkPackedUpperTf32}): operands
     * rounded to 10 mantissa bits, fp32 sums over chunks of 256 tokens, fp64 across chunks; relative
     * error of order 1e-4 in H, several times faster on GPUs with tensor cores.
     */
    TF32;

    /** @return the name as written in recipes, e.g. {@code "exact"} */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }
}
