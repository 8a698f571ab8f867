package io.sparkprune.calibration.quant;

import java.util.Objects;

/**
 * Integer form of a quantized weight, in compressed-tensors' convention: signed codes
 * {@code c ∈ [-2^(bits-1), 2^(bits-1) - 1]} and signed zero points {@code z}, value
 * {@code scale · (c - z)} (fp32). Symmetric grids have {@code z = 0}. Relative to GPTQ's unsigned
 * levels {@code q ∈ [0, 2^bits - 1]} and zero levels {@code zq}: {@code c = q - 2^(bits-1)},
 * {@code z = zq - 2^(bits-1)}; values are identical. Pruned weights have {@code c = z} (value 0).
 *
 * @param spec the grid specification
 * @param rows out_features
 * @param cols in_features
 * @param codes {@code rows × cols} signed codes, row-major
 * @param scales {@code rows × spec.groups(cols)} grid steps (fp32), row-major
 * @param zeroPoints {@code rows × spec.groups(cols)} signed zero points, row-major
 */
public record QuantizedWeights(QuantizationSpec spec, int rows, int cols, byte[] codes, float[] scales, int[] zeroPoints) {

    /** @throws IllegalArgumentException when an array length does not match the shape */
    public QuantizedWeights {
        Objects.requireNonNull(spec, "spec");
        int g = spec.groups(cols);
        if (codes.length != (long) rows * cols || scales.length != (long) rows * g || zeroPoints.length != (long) rows * g) {
            throw new IllegalArgumentException("quantized weights " + rows + " x " + cols + " with " + g
                    + " groups per row: got " + codes.length + " codes, " + scales.length + " scales, "
                    + zeroPoints.length + " zero points");
        }
    }

    /** @return grids per row */
    public int groups() {
        return spec.groups(cols);
    }

    /**
     * @param r row
     * @param c column
     * @return {@code scale · (code - zero)} in fp32
     */
    public float dequantize(int r, int c) {
        int g = r * groups() + (spec.groupSize() == 0 ? 0 : c / spec.groupSize());
        return scales[g] * (float) (codes[r * cols + c] - zeroPoints[g]);
    }

    /** @return all values, {@code rows × cols} row-major fp32 */
    public float[] dequantize() {
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[r * cols + c] = dequantize(r, c);
            }
        }
        return out;
    }
}
