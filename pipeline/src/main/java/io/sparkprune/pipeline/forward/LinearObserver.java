package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.ForwardWorkspace;

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

    /** Ignores everything (and never copies a workspace matrix to the host). */
    LinearObserver NONE = new LinearObserver() {
        @Override
        public void observe(int layer, CalibrationGroup group, float[] x, int rows, int cols) {
        }

        @Override
        public void observe(int layer, CalibrationGroup group, ForwardWorkspace workspace, ForwardWorkspace.Matrix x) {
        }
    };

    /**
     * @param layer block index
     * @param group the group whose input this is
     * @param x {@code rows × cols} input, row-major
     * @param rows tokens
     * @param cols in_features
     */
    void observe(int layer, CalibrationGroup group, float[] x, int rows, int cols);

    /**
     * The same, for a block that runs in a {@link ForwardWorkspace}: x is the workspace's
     * {@code rows × cols} matrix, valid during the call. The default copies it to the host
     * ({@link ForwardWorkspace#download}) and calls the array form; observers that can use the matrix
     * where it lives (e.g. {@link HessianObserver}) override this.
     *
     * @param layer block index
     * @param group the group whose input this is
     * @param workspace the workspace holding x
     * @param x {@code rows × cols} input (tokens × in_features)
     */
    default void observe(int layer, CalibrationGroup group, ForwardWorkspace workspace, ForwardWorkspace.Matrix x) {
        observe(layer, group, workspace.download(x), x.rows(), x.cols());
    }
}
