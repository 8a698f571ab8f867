package io.sparkprune.calibration.quant;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HalfFloats;

/**
 * Checks that weight values as written are points of their quantization grid: a value v of row r,
 * column c passes when some integer code {@code q ∈ [spec.minCode(), spec.maxCode()]} gives
 * {@code v == round_dtype(scale_g · (q − z_g))} bit for bit, where {@code g} is the grid of (r, c)
 * and the product is computed in fp32 and then rounded to the output dtype (round to nearest even),
 * exactly as {@link QuantizedWeights#dequantize()} followed by the checkpoint writer does. This is
 * the report's per-tensor {@code quantization_grid_verified} (docs/report.md): a value changed after
 * quantization (by a bug, or on disk) is caught, since a grid of b bits has at most 2^b points per group.
 */
public final class GridCheck {
    private GridCheck() {
    }

    /**
     * @param values {@code rows × cols} row-major values as written, widened to fp32
     * @param grid the grids (scales, zero points; the codes are not used)
     * @param dtype the dtype the values were written in: {@link DType#F32}, {@link DType#BF16} or {@link DType#F16}
     * @return how many values are not on their grid (0 when verified); NaN and infinities never are
     * @throws IllegalArgumentException when {@code values.length != rows · cols} or the dtype is not a float type
     */
    public static long violations(float[] values, QuantizedWeights grid, DType dtype) {
        return violations(values, grid, dtype, 0, grid.rows());
    }

    /**
     * {@link #violations(float[], QuantizedWeights, DType)} over rows {@code [rowStart, rowEnd)} only, on the
     * calling thread (the counts of disjoint row ranges add up to the whole matrix's count; callers may
     * check ranges on several threads at once).
     *
     * @param values {@code rows × cols} row-major values as written, widened to fp32 (only the range is read)
     * @param grid the grids (scales, zero points; the codes are not used)
     * @param dtype the dtype the values were written in: {@link DType#F32}, {@link DType#BF16} or {@link DType#F16}
     * @param rowStart first row, {@code 0 ≤ rowStart ≤ rowEnd}
     * @param rowEnd end of the range (exclusive), {@code ≤ rows}
     * @return how many values of the range are not on their grid; NaN and infinities never are
     * @throws IllegalArgumentException when {@code values.length != rows · cols}, the range is out of bounds or
     *     the dtype is not a float type
     */
    public static long violations(float[] values, QuantizedWeights grid, DType dtype, int rowStart, int rowEnd) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("grid check needs a float dtype (F32, BF16, F16), got " + dtype);
        }
        int rows = grid.rows();
        int cols = grid.cols();
        if (values.length != (long) rows * cols) {
            throw new IllegalArgumentException("expected " + rows + " x " + cols + " values, got " + values.length);
        }
        if (rowStart < 0 || rowEnd < rowStart || rowEnd > rows) {
            throw new IllegalArgumentException("rows [" + rowStart + ", " + rowEnd + ") outside [0, " + rows + ")");
        }
        QuantizationSpec spec = grid.spec();
        int groups = grid.groups();
        long bad = 0;
        for (int r = rowStart; r < rowEnd; r++) {
            for (int c = 0; c < cols; c++) {
                int g = r * groups + (spec.groupSize() == 0 ? 0 : c / spec.groupSize());
                if (!onGrid(values[r * cols + c], grid.scales()[g], grid.zeroPoints()[g], spec, dtype)) {
                    bad++;
                }
            }
        }
        return bad;
    }

    /**
     * @param v a value as written
     * @param scale the grid step (fp32)
     * @param zero the signed zero point
     * @param spec the grid's bits
     * @param dtype the written dtype
     * @return true when {@code v} is {@code round_dtype(scale · (q − zero))} for a code q in range
     */
    static boolean onGrid(float v, float scale, int zero, QuantizationSpec spec, DType dtype) {
        if (!Float.isFinite(v)) {
            return false;
        }
        // the nearest code, then its neighbours: rounding to the dtype moves a value by less than a step
        // unless the step is below the dtype's resolution, where several codes may map onto v
        long q0 = scale == 0f || !Float.isFinite(scale) ? zero : Math.round((double) v / scale) + zero;
        for (long q = q0 - 2; q <= q0 + 2; q++) {
            if (q < spec.minCode() || q > spec.maxCode()) {
                continue;
            }
            float x = round(scale * (float) (q - zero), dtype);
            if (Float.floatToRawIntBits(x) == Float.floatToRawIntBits(v) || (x == 0f && v == 0f)) {
                return true;
            }
        }
        return false;
    }

    private static float round(float x, DType dtype) {
        return switch (dtype) {
            case BF16 -> HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(x));
            case F16 -> HalfFloats.f16ToFloat(HalfFloats.floatToF16(x));
            default -> x;
        };
    }
}
