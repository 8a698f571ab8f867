package io.sparkprune.pipeline.model;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Parses and validates Hugging Face {@code config.json} files.
 *
 * <p>Key names and defaults follow transformers: {@code num_key_value_heads} defaults to
 * {@code num_attention_heads}; {@code head_dim} to hidden / heads; RoPE comes either from the
 * transformers-5 {@code rope_parameters} object ({@code rope_type}, {@code rope_theta}, scaling
 * keys) or from the older top-level {@code rope_theta} (default 10000) plus {@code rope_scaling}
 * (whose type key is {@code rope_type} or the legacy {@code type}); the dtype from {@code dtype}
 * (transformers 5) or {@code torch_dtype}.
 */
public final class ModelConfigs {
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION).build();

    private ModelConfigs() {
    }

    /**
     * Reads {@code config.json} from a file, or from {@code dir/config.json} when given a directory.
     *
     * @param path the file or the checkpoint directory
     * @return the validated config
     * @throws ModelConfigException when the file is missing, unreadable or invalid
     */
    public static ModelConfig read(Path path) {
        Path file = Files.isDirectory(path) ? path.resolve("config.json") : path;
        if (!Files.isRegularFile(file)) {
            throw new ModelConfigException(file + ": no config.json found; a Hugging Face checkpoint directory needs one "
                    + "(for an ONNX export, run `sparkprune convert --from onnx` first)");
        }
        try {
            return parse(Files.readAllBytes(file), file.toString());
        } catch (IOException e) {
            throw new ModelConfigException(file + ": cannot read config.json: " + e.getMessage(), e);
        }
    }

    /**
     * Parses config.json content.
     *
     * @param json UTF-8 JSON bytes
     * @param source file name for error messages
     * @return a {@link LlamaConfig} or {@link BertConfig}
     * @throws ModelConfigException on malformed JSON, a missing or ill-typed key, an inconsistent
     *     shape (e.g. hidden not divisible by heads) or an unsupported {@code model_type}
     */
    public static ModelConfig parse(byte[] json, String source) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new ModelConfigException(source + ": malformed JSON in config.json: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new ModelConfigException(source + ": cannot read config.json: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelConfigException(source + ": config.json must hold a JSON object");
        }
        Reader r = new Reader(root, source);
        String modelType = r.string("model_type", null);
        if (modelType == null) {
            throw new ModelConfigException(source + ": config.json has no \"model_type\"; supported model types are "
                    + ModelFamily.supportedModelTypes());
        }
        if (ModelFamily.LLAMA.modelTypes().contains(modelType)) {
            return llama(r, modelType);
        }
        if (ModelFamily.BERT.modelTypes().contains(modelType)) {
            return bert(r);
        }
        throw new ModelConfigException(source + ": unsupported model_type \"" + modelType + "\"; supported model types are "
                + ModelFamily.supportedModelTypes());
    }

    private static LlamaConfig llama(Reader r, String modelType) {
        int hidden = r.positiveInt("hidden_size");
        int heads = r.positiveInt("num_attention_heads");
        int kvHeads = r.has("num_key_value_heads") ? r.positiveInt("num_key_value_heads") : heads;
        if (heads % kvHeads != 0) {
            throw r.error("num_attention_heads (" + heads + ") must be a multiple of num_key_value_heads (" + kvHeads + ")");
        }
        int headDim;
        if (r.has("head_dim")) {
            headDim = r.positiveInt("head_dim");
        } else {
            if (hidden % heads != 0) {
                throw r.error("hidden_size (" + hidden + ") is not divisible by num_attention_heads (" + heads
                        + "); set \"head_dim\" explicitly");
            }
            headDim = hidden / heads;
        }
        if (headDim % 2 != 0) {
            throw r.error("head_dim (" + headDim + ") must be even for rotary embeddings");
        }
        String act = r.string("hidden_act", "silu");
        if (!act.equals("silu")) {
            throw r.error("unsupported hidden_act \"" + act + "\" for " + modelType + "; supported: [silu] (SwiGLU MLP)");
        }
        boolean attentionBias = r.bool("attention_bias", false);
        boolean qwen2 = modelType.equals("qwen2");
        int slidingWindow = 0;
        boolean slidingEnabled = qwen2 ? r.bool("use_sliding_window", false) : true;
        if (slidingEnabled && r.has("sliding_window") && !r.node("sliding_window").isNull()) {
            slidingWindow = r.positiveInt("sliding_window");
        }
        return new LlamaConfig(modelType, hidden, r.positiveInt("intermediate_size"), r.positiveInt("num_hidden_layers"),
                heads, kvHeads, headDim, r.positiveInt("vocab_size"), r.positiveIntOr("max_position_embeddings", 2048),
                r.positiveDouble("rms_norm_eps", 1e-6), rope(r), r.bool("tie_word_embeddings", false),
                qwen2 || attentionBias, !qwen2 && attentionBias, r.bool("mlp_bias", false), slidingWindow, dtype(r));
    }

    private static RopeScaling rope(Reader r) {
        double topLevelTheta = r.positiveDouble("rope_theta", 10000.0);
        JsonNode params = r.node("rope_parameters");
        JsonNode p;
        String where;
        if (params != null && !params.isNull()) {
            p = params;
            where = "rope_parameters";
        } else {
            p = r.node("rope_scaling");
            where = "rope_scaling";
            if (p == null || p.isNull()) {
                return RopeScaling.plain(topLevelTheta);
            }
        }
        if (!p.isObject()) {
            throw r.error("\"" + where + "\" must be an object or null, got " + p);
        }
        Reader s = r.sub(p, where);
        double theta = s.positiveDouble("rope_theta", topLevelTheta);
        String type = s.string("rope_type", s.string("type", "default"));
        switch (type) {
            case "default":
                return RopeScaling.plain(theta);
            case "linear":
                return new RopeScaling("linear", theta, s.positiveDouble("factor", Double.NaN), 0, 0, 0);
            case "llama3": {
                double factor = s.positiveDouble("factor", Double.NaN);
                double low = s.positiveDouble("low_freq_factor", Double.NaN);
                double high = s.positiveDouble("high_freq_factor", Double.NaN);
                if (!(high > low)) {
                    throw s.error("llama3 RoPE needs high_freq_factor > low_freq_factor, got " + high + " and " + low);
                }
                return new RopeScaling("llama3", theta, factor, low, high, s.positiveInt("original_max_position_embeddings"));
            }
            default:
                throw s.error("unsupported rope_type \"" + type + "\"; supported: " + RopeScaling.SUPPORTED_TYPES);
        }
    }

    private static BertConfig bert(Reader r) {
        int hidden = r.positiveInt("hidden_size");
        int heads = r.positiveInt("num_attention_heads");
        if (hidden % heads != 0) {
            throw r.error("hidden_size (" + hidden + ") is not divisible by num_attention_heads (" + heads + ")");
        }
        String act = r.string("hidden_act", "gelu");
        if (!act.equals("gelu")) {
            throw r.error("unsupported hidden_act \"" + act + "\" for bert; supported: [gelu] (the erf form)");
        }
        String posType = r.string("position_embedding_type", "absolute");
        if (!posType.equals("absolute")) {
            throw r.error("unsupported position_embedding_type \"" + posType + "\"; supported: [absolute]");
        }
        return new BertConfig(hidden, r.positiveInt("num_hidden_layers"), heads, r.positiveInt("intermediate_size"),
                r.positiveInt("vocab_size"), r.positiveIntOr("max_position_embeddings", 512),
                r.positiveIntOr("type_vocab_size", 2), r.positiveDouble("layer_norm_eps", 1e-12), act,
                r.nonNegativeIntOr("pad_token_id", 0), dtype(r));
    }

    private static String dtype(Reader r) {
        return r.string("dtype", r.string("torch_dtype", null));
    }

    /** Typed accessors that name the file and key in every error. */
    private static final class Reader {
        private final JsonNode obj;
        private final String source;
        private final String prefix;

        Reader(JsonNode obj, String source) {
            this(obj, source, "");
        }

        private Reader(JsonNode obj, String source, String prefix) {
            this.obj = obj;
            this.source = source;
            this.prefix = prefix;
        }

        Reader sub(JsonNode child, String key) {
            return new Reader(child, source, prefix + key + ".");
        }

        ModelConfigException error(String msg) {
            return new ModelConfigException(source + ": " + msg);
        }

        boolean has(String key) {
            return obj.has(key);
        }

        JsonNode node(String key) {
            return obj.get(key);
        }

        String string(String key, String dflt) {
            JsonNode n = obj.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (!n.isTextual()) {
                throw error("\"" + prefix + key + "\" must be a string, got " + n);
            }
            return n.asText();
        }

        boolean bool(String key, boolean dflt) {
            JsonNode n = obj.get(key);
            if (n == null || n.isNull()) {
                return dflt;
            }
            if (!n.isBoolean()) {
                throw error("\"" + prefix + key + "\" must be true or false, got " + n);
            }
            return n.asBoolean();
        }

        int positiveInt(String key) {
            JsonNode n = obj.get(key);
            if (n == null || n.isNull()) {
                throw error("missing required key \"" + prefix + key + "\" (a positive integer)");
            }
            return checkInt(key, n, 1);
        }

        int positiveIntOr(String key, int dflt) {
            JsonNode n = obj.get(key);
            return n == null || n.isNull() ? dflt : checkInt(key, n, 1);
        }

        int nonNegativeIntOr(String key, int dflt) {
            JsonNode n = obj.get(key);
            return n == null || n.isNull() ? dflt : checkInt(key, n, 0);
        }

        private int checkInt(String key, JsonNode n, int min) {
            if (!n.isIntegralNumber() || !n.canConvertToInt() || n.asInt() < min) {
                throw error("\"" + prefix + key + "\" must be an integer >= " + min + ", got " + n);
            }
            return n.asInt();
        }

        double positiveDouble(String key, double dflt) {
            JsonNode n = obj.get(key);
            if (n == null || n.isNull()) {
                if (Double.isNaN(dflt)) {
                    throw error("missing required key \"" + prefix + key + "\" (a positive number)");
                }
                return dflt;
            }
            if (!n.isNumber() || !(n.asDouble() > 0) || Double.isInfinite(n.asDouble())) {
                throw error("\"" + prefix + key + "\" must be a positive finite number, got " + n);
            }
            return n.asDouble();
        }
    }
}
