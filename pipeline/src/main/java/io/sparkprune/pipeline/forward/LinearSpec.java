package io.sparkprune.pipeline.forward;

import java.util.Objects;

/**
 * A linear layer of a transformer block, a pruning target: {@code y = x·Wᵀ + b} with W of
 * {@code outFeatures × inFeatures} (the {@code torch.nn.Linear} layout).
 *
 * @param name module name relative to the block prefix, e.g. {@code self_attn.q_proj}; the weight is
 *     {@code name + ".weight"}, the bias {@code name + ".bias"}
 * @param outFeatures rows of W
 * @param inFeatures columns of W
 * @param bias whether the layer has a bias
 */
public record LinearSpec(String name, int outFeatures, int inFeatures, boolean bias) implements java.io.Serializable {

    /**
     * @param name module name relative to the block prefix
     * @param outFeatures rows of W
     * @param inFeatures columns of W
     * @param bias whether the layer has a bias
     * @throws IllegalArgumentException for a non-positive feature count
     */
    public LinearSpec {
        Objects.requireNonNull(name, "name");
        if (outFeatures < 1 || inFeatures < 1) {
            throw new IllegalArgumentException("linear " + name + " needs positive features, got " + outFeatures + " x " + inFeatures);
        }
    }

    /** @return the weight's parameter name, {@code name + ".weight"} */
    public String weight() {
        return name + ".weight";
    }

    /** @return the bias's parameter name, {@code name + ".bias"} (present only when {@link #bias()}) */
    public String biasName() {
        return name + ".bias";
    }
}
