package io.sparkprune.calibration.quant;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.kernels.GridMath;

/**
 * A uniform integer weight grid for joint pruning and quantization (SparseGPT Eq. 7, GPTQ):
 * {@code bits} per weight, symmetric or asymmetric ({@link GridMath} gives the exact arithmetic),
 * one grid per output row ({@code groupSize == 0}, "per channel") or per {@code groupSize}
 * consecutive inputs of a row (typically 32, 64 or 128).
 *
 * <p>When grids are fitted: per channel, once on the dense weight before pruning (as the
 * SparseGPT reference does); per group, when the solver reaches the group's first column, on the
 * weights as updated so far (as GPTQ does).
 *
 * @param bits bits per weight, 2..8
 * @param symmetric symmetric grid (zero point 0 in signed codes) or asymmetric (fitted zero point)
 * @param groupSize 0 = per output row; otherwise the group length along in_features, ≥ 1
 */
public record QuantizationSpec(int bits, boolean symmetric, int groupSize) {

    /** @throws CalibrationInputException for bits outside 2..8 or a negative group size */
    public QuantizationSpec {
        if (bits < 2 || bits > 8) {
            throw new CalibrationInputException("quantization bits must be 2..8, got " + bits + "; use 4 or 8");
        }
        if (groupSize < 0) {
            throw new CalibrationInputException("quantization group size must be 0 (per channel) or positive, got "
                    + groupSize + "; use 0, 32, 64 or 128");
        }
    }

    /**
     * @param bits bits per weight, 2..8
     * @param symmetric symmetric grid
     * @return one grid per output row
     */
    public static QuantizationSpec perChannel(int bits, boolean symmetric) {
        return new QuantizationSpec(bits, symmetric, 0);
    }

    /**
     * @param bits bits per weight, 2..8
     * @param symmetric symmetric grid
     * @param groupSize inputs per grid, ≥ 1 (32, 64 or 128 usually)
     * @return one grid per {@code groupSize} inputs of each row
     */
    public static QuantizationSpec grouped(int bits, boolean symmetric, int groupSize) {
        if (groupSize < 1) {
            throw new CalibrationInputException("quantization group size must be positive, got " + groupSize
                    + "; use 32, 64 or 128, or perChannel");
        }
        return new QuantizationSpec(bits, symmetric, groupSize);
    }

    /** @return the highest unsigned level, {@code 2^bits - 1} */
    public int maxq() {
        return GridMath.maxq(bits);
    }

    /** @return the smallest signed code, {@code -2^(bits-1)} */
    public int minCode() {
        return -(1 << (bits - 1));
    }

    /** @return the largest signed code, {@code 2^(bits-1) - 1} */
    public int maxCode() {
        return (1 << (bits - 1)) - 1;
    }

    /**
     * @param cols in_features
     * @return grids per row: 1 per channel, else {@code cols / groupSize}
     */
    public int groups(int cols) {
        return groupSize == 0 ? 1 : cols / groupSize;
    }

    /**
     * @param tensor tensor name for the message
     * @param cols in_features
     * @param blockSize the solver's column block size
     * @throws CalibrationInputException when groups do not tile the columns or straddle blocks
     */
    public void checkShape(String tensor, int cols, int blockSize) {
        if (groupSize == 0) {
            return;
        }
        if (cols % groupSize != 0) {
            throw new CalibrationInputException("quantization group size " + groupSize
                    + " needs in_features divisible by " + groupSize + ", got " + cols + " for " + tensor
                    + "; use a group size that divides " + cols + " or per-channel quantization");
        }
        if (blockSize % groupSize != 0) {
            throw new CalibrationInputException("quantization group size " + groupSize
                    + " must divide the solver block size " + blockSize + " for " + tensor
                    + "; use group size 32, 64 or 128 with block size 128");
        }
    }

    /** @return e.g. {@code "int4 asymmetric per-channel"} or {@code "int4 symmetric group 128"} */
    public String describe() {
        return "int" + bits + (symmetric ? " symmetric " : " asymmetric ")
                + (groupSize == 0 ? "per-channel" : "group " + groupSize);
    }
}
