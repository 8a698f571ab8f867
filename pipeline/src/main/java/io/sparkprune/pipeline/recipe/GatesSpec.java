package io.sparkprune.pipeline.recipe;

import java.util.Objects;
import java.util.OptionalDouble;

/**
 * The {@code gates} section of a recipe: quality limits that a scheduled run must meet. They are
 * checked after the report is computed ({@code io.sparkprune.pipeline.report.QualityGates}); a run
 * that breaks one still writes its outputs and its report, marks the failure there, and the CLI
 * exits with its own exit code (4). Each limit is optional; an absent one is not checked.
 *
 * @param maxPerplexityIncrease the largest allowed relative perplexity increase, pruned / dense − 1,
 *     as a fraction ≥ 0 (0.15, or {@code "15%"} in a recipe); decoders only (key
 *     {@code max_perplexity_increase}, CLI {@code --max-perplexity-increase})
 * @param minEmbeddingCosine the smallest allowed mean cosine similarity between each held-out
 *     sentence's dense and pruned embedding, in [−1, 1]; encoders only (key
 *     {@code min_embedding_cosine}, CLI {@code --min-embedding-cosine})
 * @param maxLayerError the largest allowed relative reconstruction error ‖(W−Ŵ)X‖/‖WX‖ of any
 *     single pruned tensor, ≥ 0 (key {@code max_layer_error}, CLI {@code --max-layer-error})
 */
public record GatesSpec(OptionalDouble maxPerplexityIncrease, OptionalDouble minEmbeddingCosine,
                        OptionalDouble maxLayerError) {

    /** No gate: every run passes. */
    public static final GatesSpec NONE = new GatesSpec(OptionalDouble.empty(), OptionalDouble.empty(), OptionalDouble.empty());

    /**
     * @throws RecipeException (key path under {@code gates}) for a negative perplexity increase or
     *     layer error, or a cosine outside [−1, 1]
     */
    public GatesSpec {
        Objects.requireNonNull(maxPerplexityIncrease, "maxPerplexityIncrease");
        Objects.requireNonNull(minEmbeddingCosine, "minEmbeddingCosine");
        Objects.requireNonNull(maxLayerError, "maxLayerError");
        String src = RecipeException.UNSPECIFIED_SOURCE;
        if (maxPerplexityIncrease.isPresent() && !(maxPerplexityIncrease.getAsDouble() >= 0)) {
            throw new RecipeException(src, "gates.max_perplexity_increase", "must be ≥ 0, got "
                    + maxPerplexityIncrease.getAsDouble() + "; it is the allowed relative increase, e.g. 0.15 or \"15%\"");
        }
        if (minEmbeddingCosine.isPresent() && !(Math.abs(minEmbeddingCosine.getAsDouble()) <= 1)) {
            throw new RecipeException(src, "gates.min_embedding_cosine", "must be between -1 and 1, got "
                    + minEmbeddingCosine.getAsDouble() + "; e.g. 0.85");
        }
        if (maxLayerError.isPresent() && !(maxLayerError.getAsDouble() >= 0)) {
            throw new RecipeException(src, "gates.max_layer_error", "must be ≥ 0, got " + maxLayerError.getAsDouble()
                    + "; it bounds every tensor's relative reconstruction error, e.g. 0.2");
        }
    }

    /** @return true when no limit is set */
    public boolean isEmpty() {
        return maxPerplexityIncrease.isEmpty() && minEmbeddingCosine.isEmpty() && maxLayerError.isEmpty();
    }
}
