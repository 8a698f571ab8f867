package io.sparkprune.pipeline.onnx;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Hugging Face {@code BertModel} parameter names (as in its state dict / safetensors, without a
 * {@code bert.} prefix) and the rules that map ONNX initializer and node names onto them.
 */
final class BertNames {

    /** Every BertModel parameter name. */
    private static final Pattern PARAMETER = Pattern.compile(
            "embeddings\\.(?:word_embeddings|position_embeddings|token_type_embeddings)\\.weight"
            + "|embeddings\\.LayerNorm\\.(?:weight|bias)"
            + "|encoder\\.layer\\.(\\d+)\\.(?:attention\\.self\\.(?:query|key|value)|attention\\.output\\.dense"
            + "|intermediate\\.dense|output\\.dense)\\.(?:weight|bias)"
            + "|encoder\\.layer\\.(\\d+)\\.(?:attention\\.output|output)\\.LayerNorm\\.(?:weight|bias)"
            + "|pooler\\.dense\\.(?:weight|bias)");

    /** Modules that are {@code torch.nn.Linear} (their weight is out x in). */
    private static final Pattern LINEAR_MODULE = Pattern.compile(
            "encoder\\.layer\\.\\d+\\.(?:attention\\.self\\.(?:query|key|value)|attention\\.output\\.dense"
            + "|intermediate\\.dense|output\\.dense)|pooler\\.dense");

    private static final Pattern LAYER_INDEX = Pattern.compile("^encoder\\.layer\\.(\\d+)\\.");

    static final String WORD_EMBEDDINGS = "embeddings.word_embeddings.weight";
    static final String POSITION_EMBEDDINGS = "embeddings.position_embeddings.weight";
    static final String TOKEN_TYPE_EMBEDDINGS = "embeddings.token_type_embeddings.weight";
    static final String EMBEDDINGS_LN_WEIGHT = "embeddings.LayerNorm.weight";
    static final String EMBEDDINGS_LN_BIAS = "embeddings.LayerNorm.bias";
    static final String POOLER_WEIGHT = "pooler.dense.weight";
    static final String POOLER_BIAS = "pooler.dense.bias";

    /** Linear modules of one encoder layer, in module order; suffixes after {@code encoder.layer.N.}. */
    static final List<String> LAYER_LINEARS = List.of(
            "attention.self.query", "attention.self.key", "attention.self.value",
            "attention.output.dense", "intermediate.dense", "output.dense");

    private BertNames() {
    }

    /**
     * @param name an ONNX initializer name such as {@code bert.encoder.layer.0.output.dense.bias}
     * @return the HF BertModel parameter name it carries once a leading module prefix (such as
     *     {@code bert.} or {@code 0.auto_model.}) is dropped and legacy {@code LayerNorm.gamma/beta}
     *     are renamed {@code weight/bias}; null when it is not a BertModel parameter name
     */
    static String parameterName(String name) {
        String n = name;
        if (n.endsWith("LayerNorm.gamma")) {
            n = n.substring(0, n.length() - "gamma".length()) + "weight";
        } else if (n.endsWith("LayerNorm.beta")) {
            n = n.substring(0, n.length() - "beta".length()) + "bias";
        }
        return firstMatchingSuffix(n, PARAMETER);
    }

    /**
     * @param nodeName an ONNX node name in the torch exporter's scope style, e.g.
     *     {@code /encoder/layer.0/attention/self/query/MatMul} (possibly with a prefix such as
     *     {@code /bert/})
     * @return the Linear module path, e.g. {@code encoder.layer.0.attention.self.query}, or null
     *     when the name does not denote one of BertModel's Linear modules
     */
    static String linearModuleOfNode(String nodeName) {
        String n = nodeName.startsWith("/") ? nodeName.substring(1) : nodeName;
        int last = n.lastIndexOf('/');
        if (last < 0) {
            return null;
        }
        return firstMatchingSuffix(n.substring(0, last).replace('/', '.'), LINEAR_MODULE);
    }

    /** @return true when the HF name is the weight of a Linear module */
    static boolean isLinearWeight(String hfName) {
        return hfName.endsWith(".weight")
                && LINEAR_MODULE.matcher(hfName.substring(0, hfName.length() - ".weight".length())).matches();
    }

    /** @return the encoder layer index of an HF name, or -1 when it is not an encoder-layer parameter */
    static int layerIndex(String hfName) {
        Matcher m = LAYER_INDEX.matcher(hfName);
        if (!m.find()) {
            return -1;
        }
        try {
            return Integer.parseInt(m.group(1));
        } catch (NumberFormatException e) {
            return Integer.MAX_VALUE;
        }
    }

    /**
     * @param layer encoder layer index
     * @return the 16 parameter names of that layer in module order (weight before bias)
     */
    static List<String> layerParameters(int layer) {
        String p = "encoder.layer." + layer + ".";
        return List.of(
                p + "attention.self.query.weight", p + "attention.self.query.bias",
                p + "attention.self.key.weight", p + "attention.self.key.bias",
                p + "attention.self.value.weight", p + "attention.self.value.bias",
                p + "attention.output.dense.weight", p + "attention.output.dense.bias",
                p + "attention.output.LayerNorm.weight", p + "attention.output.LayerNorm.bias",
                p + "intermediate.dense.weight", p + "intermediate.dense.bias",
                p + "output.dense.weight", p + "output.dense.bias",
                p + "output.LayerNorm.weight", p + "output.LayerNorm.bias");
    }

    /** @return the 5 embedding parameter names in module order */
    static List<String> embeddingParameters() {
        return List.of(WORD_EMBEDDINGS, POSITION_EMBEDDINGS, TOKEN_TYPE_EMBEDDINGS, EMBEDDINGS_LN_WEIGHT, EMBEDDINGS_LN_BIAS);
    }

    /** Tries the whole dotted name, then each suffix after a dot, left to right. */
    private static String firstMatchingSuffix(String dotted, Pattern pattern) {
        int from = 0;
        while (true) {
            String suffix = dotted.substring(from);
            if (pattern.matcher(suffix).matches()) {
                return suffix;
            }
            int dot = dotted.indexOf('.', from);
            if (dot < 0) {
                return null;
            }
            from = dot + 1;
        }
    }
}
