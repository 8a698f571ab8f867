package io.sparkprune.pipeline.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** The report's {@code summary} object, computed from its per-tensor entries. */
public final class TensorSummary {
    private TensorSummary() {
    }

    /**
     * @param tensors the report's {@code tensors} entries
     * @return {@code target_tensors} (count), {@code target_elements} (Σ elements),
     *     {@code target_sparsity} (Σ zeros / Σ elements, 0 when there are none) and
     *     {@code all_patterns_verified} (every entry has {@code pattern_verified} and {@code all_finite} true,
     *     and no entry has {@code quantization_grid_verified} false) and, when some entry has
     *     {@code quantization_grid_verified}, {@code all_quantization_grids_verified}
     */
    public static ObjectNode of(Iterable<? extends JsonNode> tensors) {
        long elements = 0;
        long zeros = 0;
        int n = 0;
        boolean verified = true;
        boolean grids = true;
        boolean quantized = false;
        for (JsonNode t : tensors) {
            if (t.hasNonNull("quantization_grid_verified")) {
                quantized = true;
                grids &= t.get("quantization_grid_verified").asBoolean();
            }
            elements += t.get("elements").asLong();
            zeros += t.get("zeros").asLong();
            verified &= t.get("pattern_verified").asBoolean() && t.get("all_finite").asBoolean();
            n++;
        }
        ObjectNode s = JsonNodeFactory.instance.objectNode();
        s.put("target_tensors", n);
        s.put("target_elements", elements);
        s.put("target_sparsity", elements == 0 ? 0 : (double) zeros / elements);
        s.put("all_patterns_verified", verified && grids);
        if (quantized) {
            s.put("all_quantization_grids_verified", grids);
        }
        return s;
    }
}
