package io.sparkprune.kernels;

import java.util.Objects;

/**
 * A row-major fp32 matrix view on a flat array: element {@code (r, c)} lives at
 * {@code data[offset + r * ld + c]}. The view does not own or copy the array; shapes are given
 * by the kernel call that receives it.
 *
 * @param data backing array
 * @param offset index of element (0, 0)
 * @param ld leading dimension (row stride in elements), ≥ the number of columns used
 */
public record FloatView(float[] data, int offset, int ld) {
    /**
     * @throws NullPointerException when {@code data} is null
     * @throws IllegalArgumentException for a negative offset or leading dimension
     */
    public FloatView {
        Objects.requireNonNull(data, "data");
        if (offset < 0 || ld < 0) {
            throw new IllegalArgumentException("offset " + offset + " and ld " + ld + " must be >= 0");
        }
    }

    /**
     * @param r row
     * @param c column
     * @return the array index of element {@code (r, c)}
     */
    public int index(int r, int c) {
        return offset + r * ld + c;
    }

    /**
     * Checks that a {@code rows × cols} window fits in the array.
     *
     * @param what name for the message
     * @param rows rows used
     * @param cols columns used
     * @throws IllegalArgumentException when it does not fit or {@code ld < cols}
     */
    public void checkFits(String what, int rows, int cols) {
        Checks.window(what, data.length, offset, ld, rows, cols);
    }
}
