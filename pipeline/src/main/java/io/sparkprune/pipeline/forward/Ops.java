package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ForwardWorkspace.Matrix;

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

    /**
     * A block's vector parameter (norm weight, bias) as a {@code 1 × n} workspace weight
     * ({@link Weights#weight}: the checkpoint tensor on a resident workspace, widened there).
     */
    static Matrix vector(ForwardWorkspace ws, Weights w, String name) {
        return w.weight(ws, name, 1, Math.toIntExact(w.spec(name).numel()));
    }

    /**
     * A linear layer of a block in a workspace: {@code Y = X·Wᵀ (+ b)}, weights by spec
     * ({@link Weights#weight}: on a resident workspace the checkpoint tensors, widened on the device).
     *
     * @param x {@code rows × in}
     * @return Y, a new {@code rows × out} matrix of the workspace
     */
    static Matrix linear(ForwardWorkspace ws, Weights w, LinearSpec l, Matrix x) {
        Matrix wm = w.weight(ws, l.weight(), l.outFeatures(), l.inFeatures());
        Matrix b = l.bias() ? w.weight(ws, l.biasName(), 1, l.outFeatures()) : null;
        Matrix y = ws.allocate(x.rows(), l.outFeatures());
        ws.linear(x, wm, b, y);
        return y;
    }
}
