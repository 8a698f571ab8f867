package io.sparkprune.pipeline.recipe;

import java.util.Locale;

/**
 * Which activations each layer is calibrated on; recipe key {@code prune.pipeline} (CLI {@code --mode}).
 */
public enum PipelineMode {
    /**
     * Layer ℓ is calibrated on the outputs of layers {@code < ℓ} as already pruned, as the SparseGPT
     * reference (arXiv 2301.00774, github.com/IST-DASLab/sparsegpt) proceeds: slower, more
     * accurate. The default.
     */
    SEQUENTIAL,
    /**
     * Every layer is calibrated on the dense model's activations, so all layers can be pruned at
     * once: faster, slightly less accurate.
     */
    INDEPENDENT;

    /** @return the name as written in recipes, e.g. {@code "sequential"} */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }
}
