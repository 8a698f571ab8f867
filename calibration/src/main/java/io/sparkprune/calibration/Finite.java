package io.sparkprune.calibration;

/**
 * Finite-value checks that report the first bad element of a row-major matrix by position.
 */
public final class Finite {
    private Finite() {
    }

    /**
     * @param what the tensor's role and name, e.g. {@code "weight model.layers.0.mlp.up_proj"}
     * @param data row-major values
     * @param cols row length, &gt; 0
     * @param fix the sentence telling the user what to do
     * @throws NumericsException at the first NaN or infinity
     */
    public static void check(String what, float[] data, int cols, String fix) {
        for (int i = 0; i < data.length; i++) {
            float v = data[i];
            if (Float.isNaN(v) || Float.isInfinite(v)) {
                throw new NumericsException(what + " has " + v + " at [" + (i / cols) + ", " + (i % cols) + "]; " + fix);
            }
        }
    }

    /**
     * @param what the tensor's role and name
     * @param data row-major values
     * @param cols row length, &gt; 0
     * @param fix the sentence telling the user what to do
     * @throws NumericsException at the first NaN or infinity
     */
    public static void check(String what, double[] data, int cols, String fix) {
        for (int i = 0; i < data.length; i++) {
            double v = data[i];
            if (Double.isNaN(v) || Double.isInfinite(v)) {
                throw new NumericsException(what + " has " + v + " at [" + (i / cols) + ", " + (i % cols) + "]; " + fix);
            }
        }
    }
}
