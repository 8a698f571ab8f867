package io.sparkprune.pipeline.forward;

import java.util.List;
import java.util.Objects;

/**
 * Linear layers of a block that read the same input, and therefore share one Hessian
 * {@code H = 2XᵀX} in SparseGPT (Frantar &amp; Alistarh 2023, arXiv 2301.00774, §3): e.g. a Llama
 * block's {@code q_proj}, {@code k_proj} and {@code v_proj} all read the normalised hidden states.
 *
 * @param name short stable key, e.g. {@code "qkv"}, {@code "gate_up"}
 * @param linears the member layers, in block order
 * @param inFeatures their common input width (columns of the observed input)
 */
public record CalibrationGroup(String name, List<LinearSpec> linears, int inFeatures) implements java.io.Serializable {

    /**
     * Checks that every member reads {@code inFeatures} inputs.
     *
     * @param name short stable key
     * @param linears the member layers (copied)
     * @param inFeatures their common input width
     * @throws IllegalArgumentException for no members or a member of another input width
     */
    public CalibrationGroup {
        Objects.requireNonNull(name, "name");
        linears = List.copyOf(linears);
        if (linears.isEmpty()) {
            throw new IllegalArgumentException("calibration group " + name + " has no linears");
        }
        for (LinearSpec l : linears) {
            if (l.inFeatures() != inFeatures) {
                throw new IllegalArgumentException("calibration group " + name + ": " + l.name() + " reads "
                        + l.inFeatures() + " features, the group " + inFeatures);
            }
        }
    }
}
