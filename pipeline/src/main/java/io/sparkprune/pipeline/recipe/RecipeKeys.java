package io.sparkprune.pipeline.recipe;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The recipe schema's key names, the dotted paths {@link Recipe#withOverrides(Map)} accepts, and the
 * command-line flag that sets each of them. {@code docs/recipes.md} documents every key.
 */
public final class RecipeKeys {

    /** Top-level section: the pruning modifier. */
    public static final String PRUNE = "prune";
    /** Top-level section: calibration data. */
    public static final String CALIBRATION = "calibration";
    /** Top-level section: evaluation data. */
    public static final String EVALUATION = "evaluation";

    /** Top-level section: quality gates of scheduled runs. */
    public static final String GATES = "gates";

    /** Keys of the top level, in document order. */
    public static final List<String> TOP = List.of(PRUNE, CALIBRATION, EVALUATION, GATES);
    /** Keys of {@code prune}, in document order. */
    public static final List<String> PRUNE_KEYS = List.of("method", "pattern", "targets", "ignore", "dampening",
            "block_size", "mask_scope", "quantization", "pipeline", "format", "sparse_codec");
    /** Keys of {@code prune.quantization} in its mapping form. */
    public static final List<String> QUANTIZATION_KEYS = List.of("bits", "group_size", "symmetric");
    /** Keys of {@code calibration}, in document order. */
    public static final List<String> CALIBRATION_KEYS = List.of("source", "format", "field", "text_mode", "samples",
            "seq_len", "seed", "held_out_fraction", "hessian_precision",
            "forward_precision");
    /** Keys of {@code evaluation}, in document order. */
    public static final List<String> EVALUATION_KEYS = List.of("source", "format", "field", "text_mode", "samples",
            "seq_len", "baselines", "forward_precision");
    /** Keys of {@code gates}, in document order. */
    public static final List<String> GATES_KEYS = List.of("max_perplexity_increase", "min_embedding_cosine",
            "max_layer_error");

    /**
     * The command-line flag for each overridable key path, in the order of {@code sparkprune prune --help}.
     * A flag's value is the key's value as text (e.g. {@code --quant int4-g128}, {@code --seq-len auto}).
     */
    public static final Map<String, String> CLI_FLAGS = flags();

    private RecipeKeys() {
    }

    private static Map<String, String> flags() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("--method", "prune.method");
        m.put("--pattern", "prune.pattern");
        m.put("--dampening", "prune.dampening");
        m.put("--block-size", "prune.block_size");
        m.put("--mask-scope", "prune.mask_scope");
        m.put("--quant", "prune.quantization");
        m.put("--mode", "prune.pipeline");
        m.put("--format", "prune.format");
        m.put("--sparse-codec", "prune.sparse_codec");
        m.put("--calib", "calibration.source");
        m.put("--calib-format", "calibration.format");
        m.put("--calib-field", "calibration.field");
        m.put("--samples", "calibration.samples");
        m.put("--seq-len", "calibration.seq_len");
        m.put("--seed", "calibration.seed");
        m.put("--held-out", "calibration.held_out_fraction");
        m.put("--hessian-precision", "calibration.hessian_precision");
        m.put("--forward-precision", "calibration.forward_precision");
        m.put("--eval", "evaluation.source");
        m.put("--eval-format", "evaluation.format");
        m.put("--eval-field", "evaluation.field");
        m.put("--eval-samples", "evaluation.samples");
        m.put("--eval-seq-len", "evaluation.seq_len");
        m.put("--baselines", "evaluation.baselines");
        m.put("--eval-forward-precision", "evaluation.forward_precision");
        m.put("--max-perplexity-increase", "gates.max_perplexity_increase");
        m.put("--min-embedding-cosine", "gates.min_embedding_cosine");
        m.put("--max-layer-error", "gates.max_layer_error");
        return java.util.Collections.unmodifiableMap(m);
    }

    /**
     * @return every dotted key path {@link Recipe#withOverrides(Map)} accepts: each key of the four
     *     sections ({@code prune.quantization} takes the compact form, its sub-keys are not separate paths)
     */
    public static List<String> overridablePaths() {
        List<String> out = new ArrayList<>();
        PRUNE_KEYS.forEach(k -> out.add(PRUNE + "." + k));
        CALIBRATION_KEYS.forEach(k -> out.add(CALIBRATION + "." + k));
        EVALUATION_KEYS.forEach(k -> out.add(EVALUATION + "." + k));
        GATES_KEYS.forEach(k -> out.add(GATES + "." + k));
        return List.copyOf(out);
    }
}
