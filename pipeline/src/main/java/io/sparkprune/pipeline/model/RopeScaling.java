package io.sparkprune.pipeline.model;

/**
 * Rotary position embedding parameters (Su et al. 2021, "RoFormer", arXiv 2104.09864, §3.4) as
 * Hugging Face transformers configures them: {@code rope_theta} plus an optional scaling rule.
 *
 * <p>Supported {@code rope_type}s: {@code default} (plain RoPE with base θ), {@code linear}
 * (positions divided by {@code factor}) and {@code llama3} (the frequency-dependent rescaling of
 * Llama 3.1: wavelengths above {@code original_max_position_embeddings / low_freq_factor} are
 * divided by {@code factor}, below {@code original_max_position_embeddings / high_freq_factor}
 * kept, and smoothly interpolated in between; transformers {@code _compute_llama3_parameters}).
 *
 * @param ropeType {@code "default"}, {@code "linear"} or {@code "llama3"}
 * @param theta the RoPE base θ (e.g. 10000.0 or 500000.0)
 * @param factor scaling factor (1.0 for default)
 * @param lowFreqFactor llama3 only, else 0
 * @param highFreqFactor llama3 only, else 0
 * @param originalMaxPositionEmbeddings llama3 only, else 0
 */
public record RopeScaling(String ropeType, double theta, double factor, double lowFreqFactor, double highFreqFactor,
                          int originalMaxPositionEmbeddings) {

    /** The supported {@code rope_type} values. */
    public static final java.util.List<String> SUPPORTED_TYPES = java.util.List.of("default", "linear", "llama3");

    /**
     * @param theta RoPE base
     * @return plain RoPE
     */
    public static RopeScaling plain(double theta) {
        return new RopeScaling("default", theta, 1.0, 0, 0, 0);
    }
}
