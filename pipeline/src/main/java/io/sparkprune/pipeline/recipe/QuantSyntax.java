package io.sparkprune.pipeline.recipe;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.quant.QuantizationSpec;

import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The compact text form of a joint quantization setting, accepted by the CLI flag {@code --quant}
 * and in recipes as {@code quantization: "int4-g128"}.
 *
 * <p>Grammar (case-insensitive, blanks around the text ignored):
 * <pre>
 *   none | int&lt;B&gt;[-sym|-asym][-g&lt;G&gt;]      (the two suffixes in either order)
 * </pre>
 * {@code B} is the number of bits (2..8); {@code -sym} selects a symmetric grid, {@code -asym} (the
 * default, as in the SparseGPT and GPTQ references) an asymmetric one with a fitted zero point;
 * {@code -g<G>} one grid per {@code G} consecutive inputs of a row, and without it one grid per
 * output row (per channel). Examples: {@code int4} (4 bits, asymmetric, per channel),
 * {@code int4-g128}, {@code int8}, {@code int4-sym-g64}; {@code none} means no quantization.
 */
public final class QuantSyntax {

    /** The accepted forms, quoted in error messages. */
    public static final String ACCEPTED = "none, or int<bits>[-sym|-asym][-g<group>] with bits 2..8, e.g. int4, "
            + "int4-g128, int8, int4-sym-g64";

    private static final Pattern FORM = Pattern.compile("int(\\d{1,3})((?:-(?:sym|asym|g\\d{1,9}))*)");
    private static final Pattern SUFFIX = Pattern.compile("-(sym|asym|g(\\d{1,9}))");

    private QuantSyntax() {
    }

    /**
     * Parses the compact form.
     *
     * @param text e.g. {@code "int4-g128"} or {@code "none"}
     * @param source where the text came from, for the message (a recipe file, a command-line flag)
     * @param keyPath the recipe key it sets, for the message, e.g. {@code prune.quantization}
     * @return the specification, or empty for {@code none}
     * @throws RecipeException naming source, key, the text and {@link #ACCEPTED} when it does not
     *     parse or a value is out of range (bits outside 2..8, group 0, a suffix repeated)
     */
    public static Optional<QuantizationSpec> parse(String text, String source, String keyPath) {
        String s = text.strip().toLowerCase(Locale.ROOT);
        if (s.equals("none")) {
            return Optional.empty();
        }
        Matcher m = FORM.matcher(s);
        if (!m.matches()) {
            throw new RecipeException(source, keyPath, "cannot parse quantization '" + text + "'; accepted: " + ACCEPTED);
        }
        int bits = Integer.parseInt(m.group(1));
        Boolean symmetric = null;
        Integer group = null;
        Matcher suffix = SUFFIX.matcher(m.group(2));
        while (suffix.find()) {
            String part = suffix.group(1);
            if (part.startsWith("g")) {
                if (group != null) {
                    throw new RecipeException(source, keyPath, "quantization '" + text + "' gives the group size twice; "
                            + "accepted: " + ACCEPTED);
                }
                group = Integer.parseInt(suffix.group(2));
                if (group < 1) {
                    throw new RecipeException(source, keyPath, "quantization '" + text + "' has group size " + group
                            + "; a group holds at least 1 input: use e.g. -g128, or leave -g out for per-channel grids");
                }
            } else {
                if (symmetric != null) {
                    throw new RecipeException(source, keyPath, "quantization '" + text + "' gives -sym/-asym twice; "
                            + "accepted: " + ACCEPTED);
                }
                symmetric = part.equals("sym");
            }
        }
        try {
            return Optional.of(new QuantizationSpec(bits, symmetric != null && symmetric, group == null ? 0 : group));
        } catch (CalibrationInputException e) {
            throw new RecipeException(source, keyPath, e.getMessage() + " (in '" + text + "')", e);
        }
    }

    /**
     * The canonical compact form, which {@link #parse} reads back to an equal specification.
     *
     * @param spec the specification, or empty
     * @return e.g. {@code "int4-g128"}, {@code "int4-sym"}, {@code "none"}
     */
    public static String format(Optional<QuantizationSpec> spec) {
        if (spec.isEmpty()) {
            return "none";
        }
        QuantizationSpec q = spec.get();
        return "int" + q.bits() + (q.symmetric() ? "-sym" : "") + (q.groupSize() == 0 ? "" : "-g" + q.groupSize());
    }
}
