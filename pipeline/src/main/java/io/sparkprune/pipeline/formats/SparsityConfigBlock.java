package io.sparkprune.pipeline.formats;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The {@code sparsity_config} block of config.json, with the fields of compressed-tensors'
 * {@code SparsityCompressionConfig} ({@code compressed_tensors/config/base.py}): {@code format}
 * ({@code "dense"}: weights stored uncompressed, with exact zeros), {@code sparsity_structure}
 * ({@code "2:4"}, {@code "4:8"}, {@code "unstructured"}, or SparkPrune's {@code "block:RxC"}),
 * {@code targets}, {@code ignore} and {@code global_sparsity} (fraction of zeros over the targets).
 *
 * <p>Placement: for a dense {@code hf} output the block goes at the top level of config.json,
 * where transformers keeps unknown keys as config attributes and loads the model unchanged without
 * the compressed-tensors package. compressed-tensors itself nests the block inside
 * {@code quantization_config} ({@code ModelCompressor.update_config}); the compressed-tensors
 * writer of this package puts it there.
 */
public final class SparsityConfigBlock {

    /** The config.json key. */
    public static final String KEY = "sparsity_config";

    static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private SparsityConfigBlock() {
    }

    /**
     * @param pattern the pattern pruned with (only its structure is recorded, not its target fraction)
     * @return {@code "N:M"}, {@code "unstructured"} or {@code "block:RxC"}
     */
    public static String structure(SparsityPattern pattern) {
        if (pattern instanceof SparsityPattern.NofM nm) {
            return nm.n() + ":" + nm.m();
        }
        if (pattern instanceof SparsityPattern.Block b) {
            return "block:" + b.rows() + "x" + b.cols();
        }
        return "unstructured";
    }

    /**
     * @param structure {@code sparsity_structure}, e.g. {@code "2:4"}
     * @param targets names or {@code re:} patterns of the pruned tensors (llm-compressor style)
     * @param ignore names or patterns excluded from the targets
     * @param globalSparsity measured fraction of zeros over the targeted weights, in [0, 1]
     * @return the block: {@code {"format": "dense", "global_sparsity": p, "ignore": [...],
     *     "sparsity_structure": s, "targets": [...]}}
     * @throws IllegalArgumentException for a sparsity outside [0, 1] or NaN
     */
    public static ObjectNode build(String structure, List<String> targets, List<String> ignore, double globalSparsity) {
        if (!(globalSparsity >= 0 && globalSparsity <= 1)) {
            throw new IllegalArgumentException("global sparsity must be in [0, 1], got " + globalSparsity);
        }
        ObjectNode b = JSON.createObjectNode();
        b.put("format", "dense");
        b.put("global_sparsity", globalSparsity);
        ArrayNode ig = b.putArray("ignore");
        ignore.forEach(ig::add);
        b.put("registry_requires_subclass", false);
        b.put("sparsity_structure", structure);
        ArrayNode t = b.putArray("targets");
        targets.forEach(t::add);
        return b;
    }

    /**
     * Adds (or replaces) the top-level {@code sparsity_config} block of a config.json.
     *
     * @param configJson config.json bytes (UTF-8 JSON object)
     * @param block the block from {@link #build}
     * @param source file name for messages
     * @return the new config.json, pretty-printed, other keys unchanged and in their order, ending in a newline
     * @throws FormatException when the config is not a JSON object
     */
    public static byte[] addTo(byte[] configJson, ObjectNode block, String source) {
        ObjectNode root = parseObject(configJson, source);
        root.set(KEY, block);
        return toBytes(root);
    }

    static ObjectNode parseObject(byte[] json, String source) {
        JsonNode n;
        try {
            n = JSON.readTree(json);
        } catch (java.io.IOException e) {
            throw new FormatException(source, "not valid JSON (" + e.getMessage() + "); fix or regenerate "
                    + "config.json", e);
        }
        if (n == null || !n.isObject()) {
            throw new FormatException(source, "config.json must hold a JSON object; fix or regenerate it");
        }
        return (ObjectNode) n;
    }

    static byte[] toBytes(JsonNode root) {
        try {
            return (JSON.writeValueAsString(root) + "\n").getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
