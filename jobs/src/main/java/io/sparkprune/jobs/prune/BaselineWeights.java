package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.baseline.MagnitudePruner;
import io.sparkprune.calibration.baseline.WandaPruner;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.forward.TensorSource;
import io.sparkprune.pipeline.recipe.PruneMethod;
import java.io.Serializable;
import java.util.List;
import java.util.Map;

/**
 * The weights of a baseline model for the quality check ({@code evaluation.baselines},
 * docs/report.md): the dense checkpoint with every target tensor pruned by
 * {@link MagnitudePruner} or {@link WandaPruner} at the run's pattern, as a whole tensor, on the
 * executor that loads it, then rounded to the checkpoint's dtype as a written checkpoint would be.
 * Nothing is written and nothing passes through the driver but the Wanda input norms.
 *
 * <p>Wanda's norms {@code ‖X_j‖₂} are the square roots of the diagonal of the job's own Hessian
 * sums Σ xᵀx ({@link io.sparkprune.calibration.hessian.HessianAccumulator#inputNorms()}), i.e. over
 * the same calibration tokens SparseGPT used for the layer: in sequential mode the inputs of the
 * SparseGPT-pruned preceding layers, in independent mode those of the dense model.
 *
 * @param method {@link PruneMethod#MAGNITUDE} or {@link PruneMethod#WANDA}
 * @param pattern the run's pattern, as its spec text ({@link SparsityPattern#spec()}; parsed on the executor)
 * @param targets the pruned tensors (checkpoint names)
 * @param inputNorms for Wanda: tensor name → its {@code cols} input norms; unused for magnitude
 */
record BaselineWeights(PruneMethod method, String pattern, List<String> targets,
                       Map<String, double[]> inputNorms) implements Serializable {

    /**
     * @param name a target tensor's name
     * @param dense its dense values, {@code rows × cols} row-major fp32
     * @param rows out_features
     * @param cols in_features
     * @return the baseline's pruned copy, fp32
     * @throws IllegalStateException when Wanda has no norms for the tensor
     */
    float[] prune(String name, float[] dense, int rows, int cols) {
        SparsityPattern pattern = SparsityPattern.parse(this.pattern);
        return switch (method) {
            case MAGNITUDE -> MagnitudePruner.prune(name, dense, rows, cols, pattern).weights();
            case WANDA -> {
                double[] n = inputNorms.get(name);
                if (n == null) {
                    throw new IllegalStateException("no Wanda input norms for " + name);
                }
                yield WandaPruner.prune(name, dense, rows, cols, n, pattern).weights();
            }
            default -> throw new IllegalStateException("not a baseline: " + method);
        };
    }

    /**
     * @param dense the dense checkpoint's tensors
     * @return the same tensors with the targets pruned by this baseline (pruned on each read)
     */
    TensorSource over(TensorSource dense) {
        java.util.Set<String> t = new java.util.HashSet<>(targets);
        return TensorSource.overlay(dense, dense.source() + " with " + method.id() + " " + pattern + " baseline weights",
                name -> {
                    if (!t.contains(name)) {
                        return null;
                    }
                    HostTensor d = dense.read(name);
                    long[] s = d.shape();
                    return HostTensor.fromFloats(d.dtype(), s, prune(name, d.toFloatArray(), (int) s[0], (int) s[1]));
                });
    }
}
