package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.Backend;

/** Small compositions of backend kernels shared by the adapters. */
final class Ops {
    private Ops() {
    }

    /**
     * A linear layer {@code Y = X·Wᵀ + b} ({@code torch.nn.functional.linear}): X is
     * {@code rows × in}, W {@code out × in}, Y {@code rows × out}, all row-major and contiguous.
     *
     * @return Y, a new array
     */
    static float[] linear(Backend be, float[] x, int rows, int in, float[] w, float[] bias, int out) {
        float[] y = new float[Math.multiplyExact(rows, out)];
        be.sgemm(false, true, rows, out, in, 1f, x, 0, in, w, 0, in, 0f, y, 0, out);
        if (bias != null) {
            be.addRowVector(rows, out, bias, 0, y, 0, out);
        }
        return y;
    }

    /** Linear layer of a block, weights by spec. */
    static float[] linear(Backend be, Weights w, LinearSpec l, float[] x, int rows) {
        return linear(be, x, rows, l.inFeatures(), w.get(l.weight()), l.bias() ? w.get(l.biasName()) : null, l.outFeatures());
    }
}
