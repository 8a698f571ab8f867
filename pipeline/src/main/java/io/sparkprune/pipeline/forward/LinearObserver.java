package io.sparkprune.pipeline.forward;

/**
 * Sees the input of every calibration group of a block during {@link ModelAdapter#block}: this is
 * how Hessians {@code XᵀX} are collected.
 *
 * <p>Called on the thread that runs the block, once per group and block call, in block order, with
 * {@code x} = the {@code rows × cols} input matrix (fp32, row-major, row stride {@code cols}): one
 * row per real token of the batch (packed: there is no padding to exclude), {@code cols} = the
 * group's in_features. The array is owned by the block: read it during the call, do not modify it
 * or keep it.
 */
@FunctionalInterface
public interface LinearObserver {

    /** Ignores everything. */
    LinearObserver NONE = (layer, group, x, rows, cols) -> { };

    /**
     * @param layer block index
     * @param group the group whose input this is
     * @param x {@code rows × cols} input, row-major
     * @param rows tokens
     * @param cols in_features
     */
    void observe(int layer, CalibrationGroup group, float[] x, int rows, int cols);
}
