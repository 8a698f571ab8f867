package io.sparkprune.pipeline.recipe;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.SparsityPatternException;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.HessianPrecision;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.sparsity.MaskScope;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.pipeline.data.DocumentFormat;
import io.sparkprune.pipeline.data.SourceOptions;
import io.sparkprune.pipeline.data.TextMode;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * Reads a recipe from a YAML/JSON tree, strictly: every mapping's keys are checked against the
 * schema ({@link RecipeKeys}), every value's type and range is checked, and each error names the
 * source, the key path and the fix. Scalars may be given as text (command-line overrides are
 * text): {@code "128"} is read as the integer 128 where an integer is expected.
 */
final class RecipeReader {

    private final String source;

    RecipeReader(String source) {
        this.source = source;
    }

    Recipe read(JsonNode root) {
        Section top = new Section(root, "", RecipeKeys.TOP);
        try {
            return new Recipe(prune(top.section(RecipeKeys.PRUNE, RecipeKeys.PRUNE_KEYS)),
                    calibration(top.section(RecipeKeys.CALIBRATION, RecipeKeys.CALIBRATION_KEYS)),
                    evaluation(top.section(RecipeKeys.EVALUATION, RecipeKeys.EVALUATION_KEYS)),
                    gates(top.section(RecipeKeys.GATES, RecipeKeys.GATES_KEYS)));
        } catch (RecipeException e) {
            throw e.source().equals(RecipeException.UNSPECIFIED_SOURCE) ? e.withSource(source) : e;
        }
    }

    private PruneStage prune(Section s) {
        PruneStage d = PruneStage.DEFAULT;
        PruneMethod method = s.choice("method", PruneMethod.class, d.method());
        SparsityPattern pattern = d.pattern();
        if (s.present("pattern")) {
            String text = s.text("pattern", null);
            try {
                pattern = SparsityPattern.parse(text);
            } catch (SparsityPatternException e) {
                throw s.error("pattern", e.getMessage(), e);
            }
        }
        TensorSelector selector = TensorSelector.of(s.texts("targets", d.selector().targets()),
                s.texts("ignore", d.selector().ignore()), source, s.path);
        Dampening dampening = d.dampening();
        if (s.present("dampening")) {
            double v = s.number("dampening", 0.0);
            if (!(v > 0.0)) {
                throw s.error("dampening", "must be > 0, got " + v + "; it is the fraction of the Hessian's mean "
                        + "diagonal added to its diagonal, 0.01 in the SparseGPT paper", null);
            }
            try {
                dampening = Dampening.startingAt(v);
            } catch (CalibrationInputException e) {
                throw s.error("dampening", e.getMessage(), e);
            }
        }
        int blockSize = s.integer("block_size", d.blockSize());
        MaskScope scope = s.choice("mask_scope", MaskScope.class, d.maskScope());
        Optional<QuantizationSpec> quant = quantization(s);
        PipelineMode mode = s.choice("pipeline", PipelineMode.class, d.pipeline());
        List<OutputFormat> formats = d.formats();
        if (s.present("format")) {
            try {
                formats = OutputFormat.parseList(String.join(",", s.texts("format", List.of())));
            } catch (IllegalArgumentException e) {
                throw s.error("format", e.getMessage(), e);
            }
        }
        io.sparkprune.pipeline.formats.sparse.PayloadCodec codec = d.sparseCodec();
        if (s.present("sparse_codec")) {
            try {
                codec = io.sparkprune.pipeline.formats.sparse.PayloadCodec.parse(s.text("sparse_codec", null));
            } catch (io.sparkprune.kernels.InvalidInputException e) {
                throw s.error("sparse_codec", e.getMessage(), e);
            }
        }
        return new PruneStage(method, pattern, selector, dampening, blockSize, scope, quant, mode, formats, codec);
    }

    private Optional<QuantizationSpec> quantization(Section s) {
        JsonNode n = s.get("quantization");
        String path = s.child("quantization");
        if (n == null || n.isNull()) {
            return Optional.empty();
        }
        if (n.isTextual()) {
            return QuantSyntax.parse(n.asText(), source, path);
        }
        if (!n.isObject()) {
            throw new RecipeException(source, path, "expected a mapping {bits, group_size, symmetric} or a compact form "
                    + "such as int4-g128, got " + kind(n) + "; accepted compact forms: " + QuantSyntax.ACCEPTED);
        }
        Section q = new Section(n, path, RecipeKeys.QUANTIZATION_KEYS);
        if (!q.present("bits")) {
            throw q.error("bits", "missing; give the bits per weight (2..8), e.g. bits: 4", null);
        }
        int bits = q.integer("bits", 0);
        int group = 0;
        if (q.present("group_size")) {
            group = q.integer("group_size", 0);
            if (group < 1) {
                throw q.error("group_size", "must be at least 1, got " + group + "; use 32, 64 or 128, or leave it "
                        + "out (or null) for one grid per output row", null);
            }
        }
        boolean symmetric = q.bool("symmetric", false);
        try {
            return Optional.of(new QuantizationSpec(bits, symmetric, group));
        } catch (CalibrationInputException e) {
            throw q.error("bits", e.getMessage(), e);
        }
    }

    private CalibrationSpec calibration(Section s) {
        CalibrationSpec d = CalibrationSpec.DEFAULT;
        return new CalibrationSpec(s.text("source", d.source()), sourceOptions(s, d.options()),
                s.integer("samples", d.samples()), s.intOrAuto("seq_len", d.seqLen()), s.longValue("seed", d.seed()),
                s.number("held_out_fraction", d.heldOutFraction()),
                s.choice("hessian_precision", HessianPrecision.class, d.hessianPrecision()),
                s.choice("forward_precision", ForwardPrecision.class, d.forwardPrecision()));
    }

    private EvaluationSpec evaluation(Section s) {
        EvaluationSpec d = EvaluationSpec.DEFAULT;
        return new EvaluationSpec(s.text("source", d.source()), sourceOptions(s, d.options()),
                s.integer("samples", d.samples()), s.intOrAuto("seq_len", d.seqLen()), baselines(s),
                s.choice("forward_precision", ForwardPrecision.class, d.forwardPrecision()));
    }

    /** {@code baselines}: a list of method names, or one text of comma-separated names (the CLI form); none is empty. */
    private List<PruneMethod> baselines(Section s) {
        List<String> names = new ArrayList<>();
        for (String t : s.texts("baselines", List.of())) {
            for (String part : t.split(",")) {
                if (!part.isBlank()) {
                    names.add(part.strip().toLowerCase(Locale.ROOT));
                }
            }
        }
        if (names.size() == 1 && names.get(0).equals("none")) {
            return List.of();
        }
        List<PruneMethod> out = new ArrayList<>();
        for (String n : names) {
            if (!n.equals("magnitude") && !n.equals("wanda")) {
                throw s.error("baselines", "unknown baseline '" + n + "'; accepted: magnitude, wanda (a list, or "
                        + "comma-separated text such as magnitude,wanda), or none", null);
            }
            out.add(PruneMethod.valueOf(n.toUpperCase(Locale.ROOT)));
        }
        return out; // EvaluationSpec rejects duplicates, naming the key path
    }

    private GatesSpec gates(Section s) {
        return new GatesSpec(s.fraction("max_perplexity_increase"), s.fraction("min_embedding_cosine"),
                s.fraction("max_layer_error"));
    }

    private SourceOptions sourceOptions(Section s, SourceOptions d) {
        String field = s.text("field", d.field());
        if (field.isBlank()) {
            throw s.error("field", "is empty; name the JSON field or Parquet column holding the text, e.g. text", null);
        }
        return new SourceOptions(s.choice("format", DocumentFormat.class, d.format()), field,
                s.choice("text_mode", TextMode.class, d.textMode()));
    }

    static String kind(JsonNode n) {
        if (n.isObject()) {
            return "a mapping";
        }
        if (n.isArray()) {
            return "a list";
        }
        if (n.isBoolean()) {
            return "a boolean (" + n.asText() + ")";
        }
        if (n.isNumber()) {
            return "a number (" + n.asText() + ")";
        }
        if (n.isNull()) {
            return "null";
        }
        return "the text '" + n.asText() + "'";
    }

    /** One mapping of the document, with its key path; unknown keys are rejected on construction. */
    final class Section {
        final String path;
        private final ObjectNode node;

        Section(JsonNode n, String path, List<String> allowed) {
            this.path = path;
            if (n == null || n.isMissingNode() || n.isNull()) {
                this.node = JsonNodeFactory.instance.objectNode();
            } else if (n instanceof ObjectNode o) {
                this.node = o;
            } else {
                throw new RecipeException(source, path, "expected a mapping with the keys " + String.join(", ", allowed)
                        + ", got " + kind(n) + (path.isEmpty() ? "; a recipe is a YAML mapping, see docs/recipes.md" : ""));
            }
            for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
                String key = it.next();
                if (!allowed.contains(key)) {
                    String hint = closest(key, allowed);
                    throw new RecipeException(source, child(key), "unknown key" + (hint == null ? "" : " (did you mean "
                            + hint + "?)") + "; allowed keys here: " + String.join(", ", allowed));
                }
            }
        }

        Section section(String key, List<String> allowed) {
            return new Section(node.get(key), child(key), allowed);
        }

        String child(String key) {
            return path.isEmpty() ? key : path + "." + key;
        }

        JsonNode get(String key) {
            return node.get(key);
        }

        boolean present(String key) {
            JsonNode n = node.get(key);
            return n != null && !n.isNull();
        }

        RecipeException error(String key, String problem, Throwable cause) {
            return new RecipeException(source, child(key), problem, cause);
        }

        private RecipeException typeError(String key, String expected, JsonNode got) {
            return error(key, "expected " + expected + ", got " + kind(got), null);
        }

        String text(String key, String dflt) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                if (dflt == null) {
                    throw error(key, "missing value", null);
                }
                return dflt;
            }
            if (!n.isTextual()) {
                throw typeError(key, "text", n);
            }
            return n.asText().strip();
        }

        List<String> texts(String key, List<String> dflt) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (n.isTextual()) {
                return List.of(n.asText());
            }
            if (!(n instanceof ArrayNode a)) {
                throw typeError(key, "a list of names or re:REGEX entries", n);
            }
            List<String> out = new ArrayList<>(a.size());
            for (int i = 0; i < a.size(); i++) {
                JsonNode e = a.get(i);
                if (!e.isTextual()) {
                    throw new RecipeException(source, child(key) + "[" + i + "]", "expected a name or re:REGEX text, got "
                            + kind(e) + "; quote it");
                }
                out.add(e.asText());
            }
            return out;
        }

        int integer(String key, int dflt) {
            long v = longValue(key, dflt);
            if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
                throw error(key, v + " is out of the integer range", null);
            }
            return (int) v;
        }

        long longValue(String key, long dflt) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (n.isIntegralNumber()) {
                if (!n.canConvertToLong()) {
                    throw error(key, n.asText() + " is out of the integer range", null);
                }
                return n.longValue();
            }
            if (n.isTextual()) {
                try {
                    return Long.parseLong(n.asText().strip());
                } catch (NumberFormatException e) {
                    throw error(key, "expected an integer, got '" + n.asText() + "'", e);
                }
            }
            throw typeError(key, "an integer", n);
        }

        double number(String key, double dflt) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            double v;
            if (n.isNumber()) {
                v = n.doubleValue();
            } else if (n.isTextual()) {
                try {
                    v = Double.parseDouble(n.asText().strip());
                } catch (NumberFormatException e) {
                    throw error(key, "expected a number, got '" + n.asText() + "'", e);
                }
            } else {
                throw typeError(key, "a number", n);
            }
            if (!Double.isFinite(v)) {
                throw error(key, "expected a finite number, got " + v, null);
            }
            return v;
        }

        /**
         * A number, or text holding a number or a percentage ({@code "15%"} = 0.15); absent or null
         * is empty.
         */
        OptionalDouble fraction(String key) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return OptionalDouble.empty();
            }
            if (n.isTextual() && n.asText().strip().endsWith("%")) {
                String t = n.asText().strip();
                double v;
                try {
                    v = Double.parseDouble(t.substring(0, t.length() - 1).strip());
                } catch (NumberFormatException e) {
                    throw error(key, "expected a number or a percentage such as 15%, got '" + t + "'", e);
                }
                if (!Double.isFinite(v)) {
                    throw error(key, "expected a finite percentage, got '" + t + "'", null);
                }
                return OptionalDouble.of(v / 100.0);
            }
            return OptionalDouble.of(number(key, 0.0));
        }

        boolean bool(String key, boolean dflt) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (n.isBoolean()) {
                return n.booleanValue();
            }
            if (n.isTextual()) {
                String t = n.asText().strip().toLowerCase(Locale.ROOT);
                if (t.equals("true") || t.equals("false")) {
                    return Boolean.parseBoolean(t);
                }
            }
            throw typeError(key, "true or false", n);
        }

        OptionalInt intOrAuto(String key, OptionalInt dflt) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (n.isTextual() && n.asText().strip().equalsIgnoreCase("auto")) {
                return OptionalInt.empty();
            }
            if (n.isTextual() || n.isIntegralNumber()) {
                try {
                    return OptionalInt.of(integer(key, 0));
                } catch (RecipeException e) {
                    throw error(key, "expected auto or a number of tokens, got " + kind(n), e);
                }
            }
            throw typeError(key, "auto or a number of tokens", n);
        }

        <E extends Enum<E>> E choice(String key, Class<E> type, E dflt) {
            JsonNode n = node.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            List<String> ids = new ArrayList<>();
            for (E e : type.getEnumConstants()) {
                ids.add(e.name().toLowerCase(Locale.ROOT));
            }
            if (n.isTextual()) {
                String t = n.asText().strip().toLowerCase(Locale.ROOT);
                for (E e : type.getEnumConstants()) {
                    if (e.name().toLowerCase(Locale.ROOT).equals(t)) {
                        return e;
                    }
                }
            }
            throw error(key, "unknown value " + (n.isTextual() ? "'" + n.asText() + "'" : kind(n)) + "; allowed: "
                    + String.join(", ", ids), null);
        }
    }

    /** @return the allowed key within edit distance 2 of {@code key}, or null */
    static String closest(String key, List<String> allowed) {
        String best = null;
        int bestDistance = 3;
        for (String a : allowed) {
            int d = editDistance(key.toLowerCase(Locale.ROOT), a);
            if (d < bestDistance) {
                bestDistance = d;
                best = a;
            }
        }
        return best;
    }

    private static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }
}
