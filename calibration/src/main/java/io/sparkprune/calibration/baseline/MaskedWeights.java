package io.sparkprune.calibration.baseline;

import io.sparkprune.calibration.sparsity.BitMask;

/**
 * A baseline's output: the weight with pruned entries set to 0 (other entries unchanged).
 *
 * @param tensor the weight's name
 * @param rows out_features
 * @param cols in_features
 * @param weights {@code rows × cols} row-major fp32
 * @param mask entries pruned
 */
public record MaskedWeights(String tensor, int rows, int cols, float[] weights, BitMask mask) {
}
