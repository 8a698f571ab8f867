package io.sparkprune.pipeline.recipe;

import java.util.Locale;

/** How the weights of a target tensor are pruned; recipe key {@code prune.method}. */
public enum PruneMethod {
    /**
     * SparseGPT (Frantar and Alistarh 2023, arXiv 2301.00774, Algorithm 1): mask selection and
     * optimal weight update from the layer's input Hessian, optionally with joint quantization.
     * Uses {@code dampening}, {@code block_size}, {@code mask_scope} and {@code quantization}.
     */
    SPARSEGPT,
    /**
     * Wanda (Sun et al. 2023, arXiv 2306.11695, Eq. 1): {@code |W| · ‖X‖₂} scores per output row,
     * no weight update. Needs calibration activations (their input norms); no quantization.
     */
    WANDA,
    /** Magnitude pruning: the smallest {@code |W|} are zeroed; no calibration data used; no quantization. */
    MAGNITUDE;

    /** @return the name as written in recipes, e.g. {@code "sparsegpt"} */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }
}
