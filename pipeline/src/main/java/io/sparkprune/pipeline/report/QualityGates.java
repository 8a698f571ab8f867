package io.sparkprune.pipeline.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.pipeline.recipe.GatesSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Checks a computed report against the recipe's quality gates ({@link GatesSpec}).
 *
 * <ul>
 *   <li>{@code max_perplexity_increase}: {@code quality.perplexity_increase} (pruned / dense − 1 on
 *       the held-out windows) must be ≤ the limit.</li>
 *   <li>{@code min_embedding_cosine}: {@code quality.mean_cosine} (mean over held-out sentences of
 *       the cosine between dense and pruned embedding) must be ≥ the limit.</li>
 *   <li>{@code max_layer_error}: the largest {@code relative_reconstruction_error} over
 *       {@code tensors} must be ≤ the limit.</li>
 * </ul>
 * A gate whose value was not measured (an encoder has no perplexity, a decoder no embedding cosine,
 * the quality check reported an error, a {@code validate} report has no reconstruction errors)
 * fails: a scheduled run must not pass a check it could not make. A NaN value fails too.
 */
public final class QualityGates {

    /**
     * The outcome of one gate.
     *
     * @param name the recipe key, e.g. {@code max_layer_error}
     * @param limit the limit from the recipe (a fraction for the perplexity increase)
     * @param value the measured value, or null when it was not measured
     * @param passed whether the value is within the limit
     * @param detail one line: what was compared, or why nothing was measured
     */
    public record GateResult(String name, double limit, Double value, boolean passed, String detail) {
    }

    private QualityGates() {
    }

    /**
     * @param gates the limits
     * @param report a report tree with {@code quality} and {@code tensors}
     * @return one result per set limit, in the order of the recipe keys
     */
    public static List<GateResult> evaluate(GatesSpec gates, JsonNode report) {
        List<GateResult> out = new ArrayList<>();
        JsonNode q = report.path("quality");
        String qualityError = q.hasNonNull("error") ? "the quality check did not run: " + q.get("error").asText() : null;
        if (gates.maxPerplexityIncrease().isPresent()) {
            double limit = gates.maxPerplexityIncrease().getAsDouble();
            if (q.hasNonNull("perplexity_increase")) {
                double v = q.get("perplexity_increase").asDouble();
                out.add(new GateResult("max_perplexity_increase", limit, v, v <= limit, String.format(Locale.ROOT,
                        "perplexity %.4f -> %.4f (%+.2f%%), limit %+.2f%%", q.path("perplexity_dense").asDouble(),
                        q.path("perplexity_pruned").asDouble(), 100 * v, 100 * limit)));
            } else {
                out.add(unmeasured("max_perplexity_increase", limit, qualityError != null ? qualityError
                        : "no perplexity was measured (metric " + q.path("metric").asText("none")
                        + "; perplexity is measured for decoders)"));
            }
        }
        if (gates.minEmbeddingCosine().isPresent()) {
            double limit = gates.minEmbeddingCosine().getAsDouble();
            if (q.hasNonNull("mean_cosine")) {
                double v = q.get("mean_cosine").asDouble();
                out.add(new GateResult("min_embedding_cosine", limit, v, v >= limit, String.format(Locale.ROOT,
                        "mean cosine dense vs pruned %.4f (min %.4f), limit %.4f", v, q.path("min_cosine").asDouble(), limit)));
            } else {
                out.add(unmeasured("min_embedding_cosine", limit, qualityError != null ? qualityError
                        : "no embedding cosine was measured (metric " + q.path("metric").asText("none")
                        + "; it is measured for encoders)"));
            }
        }
        if (gates.maxLayerError().isPresent()) {
            double limit = gates.maxLayerError().getAsDouble();
            double worst = Double.NEGATIVE_INFINITY;
            String worstName = null;
            boolean nan = false;
            for (JsonNode t : report.path("tensors")) {
                if (t.hasNonNull("relative_reconstruction_error")) {
                    double e = t.get("relative_reconstruction_error").asDouble();
                    if (Double.isNaN(e)) {
                        nan = true;
                        worstName = t.path("tensor").asText();
                    } else if (!nan && e > worst) {
                        worst = e;
                        worstName = t.path("tensor").asText();
                    }
                }
            }
            if (worstName == null) {
                out.add(unmeasured("max_layer_error", limit, "no tensor has a relative reconstruction error (it is "
                        + "measured on the calibration inputs by sparkprune prune)"));
            } else if (nan) {
                out.add(new GateResult("max_layer_error", limit, Double.NaN, false, worstName + " has a NaN error"));
            } else {
                out.add(new GateResult("max_layer_error", limit, worst, worst <= limit, String.format(Locale.ROOT,
                        "largest relative reconstruction error %.4f (%s), limit %.4f", worst, worstName, limit)));
            }
        }
        return out;
    }

    private static GateResult unmeasured(String name, double limit, String why) {
        return new GateResult(name, limit, null, false, "not measured, so failed: " + why);
    }

    /**
     * Evaluates the gates and records them in the report: {@code gates} (one object per result:
     * name, limit, value, passed, detail) and {@code passed} (true when every gate passed, and when
     * there are none).
     *
     * @param report the report tree, changed in place
     * @param gates the limits
     * @return the results
     */
    public static List<GateResult> apply(ObjectNode report, GatesSpec gates) {
        List<GateResult> res = evaluate(gates, report);
        ArrayNode arr = report.putArray("gates");
        boolean all = true;
        for (GateResult r : res) {
            ObjectNode n = arr.addObject();
            n.put("name", r.name());
            n.put("limit", r.limit());
            if (r.value() == null) {
                n.putNull("value");
            } else {
                n.put("value", r.value());
            }
            n.put("passed", r.passed());
            n.put("detail", r.detail());
            all &= r.passed();
        }
        report.put("passed", all);
        return res;
    }
}
