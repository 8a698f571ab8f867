package io.sparkprune.pipeline.recipe;

import io.sparkprune.pipeline.model.ModelConfig;

import java.util.OptionalInt;

/** Range checks shared by the calibration and evaluation sections. */
final class SampleCounts {

    /** Largest N × L that fits one token array (the sampler's limit). */
    static final long MAX_TOKENS = Integer.MAX_VALUE - 8L;

    private SampleCounts() {
    }

    static void check(String source, String section, int samples, OptionalInt seqLen) {
        if (samples < 1) {
            throw new RecipeException(source, section + ".samples", "must be at least 1, got " + samples
                    + "; the SparseGPT paper uses 128");
        }
        if (seqLen.isPresent()) {
            int l = seqLen.getAsInt();
            if (l < 2) {
                throw new RecipeException(source, section + ".seq_len", "must be at least 2 tokens, got " + l
                        + "; write auto, or e.g. 128 (encoders) or 2048 (decoders)");
            }
            if ((long) samples * l > MAX_TOKENS) {
                throw new RecipeException(source, section + ".seq_len", samples + " samples of " + l + " tokens ("
                        + (long) samples * l + ") exceed " + MAX_TOKENS + " tokens; draw fewer or shorter samples");
            }
        }
    }

    static int fit(int seqLen, int maxPositions, String key, ModelConfig model) {
        if (seqLen > maxPositions) {
            throw new RecipeException(RecipeException.UNSPECIFIED_SOURCE, key, seqLen + " tokens exceed the "
                    + model.modelType() + " model's max_position_embeddings " + maxPositions + "; use at most "
                    + maxPositions + ", or auto");
        }
        return seqLen;
    }
}
