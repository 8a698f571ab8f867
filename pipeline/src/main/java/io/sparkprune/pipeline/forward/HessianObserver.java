package io.sparkprune.pipeline.forward;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardWorkspace;
import java.util.Map;

/**
 * The calibration observer: adds each observed group input {@code X} ({@code tokens × in_features}
 * fp32) to that group's {@link HessianAccumulator} ({@code S += XᵀX}); groups without an accumulator
 * are ignored. A matrix of a resident workspace is added where it lives
 * ({@link HessianAccumulator#add(Backend, ForwardWorkspace, ForwardWorkspace.Matrix)}), so on the GPU
 * the activations never come back to the host.
 */
public final class HessianObserver implements LinearObserver {
    private final Backend backend;
    private final Map<String, HessianAccumulator> accumulators;

    /**
     * @param backend the kernels of the Hessian updates (the block's backend)
     * @param accumulators by calibration group name; read when a group is observed (not copied)
     */
    public HessianObserver(Backend backend, Map<String, HessianAccumulator> accumulators) {
        this.backend = backend;
        this.accumulators = accumulators;
    }

    @Override
    public void observe(int layer, CalibrationGroup group, float[] x, int rows, int cols) {
        HessianAccumulator h = accumulators.get(group.name());
        if (h != null) {
            h.add(backend, x, 0, rows, cols);
        }
    }

    @Override
    public void observe(int layer, CalibrationGroup group, ForwardWorkspace workspace, ForwardWorkspace.Matrix x) {
        HessianAccumulator h = accumulators.get(group.name());
        if (h != null) {
            h.add(backend, workspace, x);
        }
    }
}
