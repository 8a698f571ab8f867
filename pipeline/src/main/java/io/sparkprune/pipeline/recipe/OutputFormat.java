package io.sparkprune.pipeline.recipe;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A checkpoint format the prune job writes; recipe key {@code prune.format} (CLI {@code --format}),
 * docs/formats.md describes each.
 */
public enum OutputFormat {
    /** Dense Hugging Face safetensors in the original dtype with exact zeros, config.json with {@code sparsity_config}. */
    HF("hf"),
    /** SparkPrune's compressed {@code sparse} format (kept values or codes + indices). */
    SPARSE("sparse"),
    /** compressed-tensors {@code pack-quantized} (quantized runs only). */
    COMPRESSED_TENSORS("compressed-tensors");

    private final String id;

    OutputFormat(String id) {
        this.id = id;
    }

    /** @return the name as written in recipes and on the command line: {@code hf}, {@code sparse}, {@code compressed-tensors} */
    public String id() {
        return id;
    }

    /** The accepted values, for messages. */
    public static final String ACCEPTED = "hf, sparse, compressed-tensors, auto, or a comma-separated list such as hf,sparse";

    /**
     * @param text {@code auto} (or blank), one format id, or a comma-separated list of distinct ids;
     *     case-insensitive, blanks ignored
     * @return the formats in the order given; empty for {@code auto}
     * @throws IllegalArgumentException for an unknown or repeated id, naming it and {@link #ACCEPTED}
     */
    public static List<OutputFormat> parseList(String text) {
        String s = text == null ? "" : text.strip().toLowerCase(Locale.ROOT).replace(" ", "");
        if (s.isEmpty() || s.equals("auto")) {
            return List.of();
        }
        List<OutputFormat> out = new ArrayList<>();
        for (String part : s.split(",", -1)) {
            OutputFormat f = null;
            for (OutputFormat c : values()) {
                if (c.id.equals(part) || c.name().toLowerCase(Locale.ROOT).equals(part)) {
                    f = c;
                }
            }
            if (f == null) {
                throw new IllegalArgumentException("unknown format '" + part + "'; accepted: " + ACCEPTED);
            }
            if (out.contains(f)) {
                throw new IllegalArgumentException("format '" + part + "' is listed twice; list each format once");
            }
            out.add(f);
        }
        return List.copyOf(out);
    }

    /**
     * @param formats formats in order
     * @return their ids joined by commas, {@code auto} when empty
     */
    public static String join(List<OutputFormat> formats) {
        return formats.isEmpty() ? "auto" : String.join(",", formats.stream().map(OutputFormat::id).toList());
    }
}
