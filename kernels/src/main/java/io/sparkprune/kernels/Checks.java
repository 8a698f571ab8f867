package io.sparkprune.kernels;

/**
 * Argument checks shared by the backends. A failed check is a programming error in the caller
 * (shapes are validated against user input long before a kernel runs), so it throws
 * {@link IllegalArgumentException}, never {@link InvalidInputException}.
 */
public final class Checks {
    private Checks() {
    }

    /**
     * Checks that a row-major {@code rows × cols} window with row stride {@code ld} starting at
     * {@code offset} lies inside an array of {@code length} elements.
     *
     * @param what operand name for the message
     * @param length array length
     * @param offset index of element (0, 0)
     * @param ld row stride
     * @param rows rows used, ≥ 0
     * @param cols columns used, ≥ 0
     * @throws IllegalArgumentException when it does not fit
     */
    public static void window(String what, int length, int offset, int ld, int rows, int cols) {
        if (rows < 0 || cols < 0 || offset < 0) {
            throw new IllegalArgumentException(what + ": negative size or offset (rows " + rows + ", cols " + cols
                    + ", offset " + offset + ")");
        }
        if (rows == 0 || cols == 0) {
            return;
        }
        if (ld < cols) {
            throw new IllegalArgumentException(what + ": leading dimension " + ld + " < columns " + cols);
        }
        long last = (long) offset + (long) (rows - 1) * ld + cols - 1;
        if (last >= length) {
            throw new IllegalArgumentException(what + ": " + rows + " x " + cols + " window at offset " + offset
                    + " with ld " + ld + " needs index " + last + " but the array has " + length + " elements");
        }
    }
}
