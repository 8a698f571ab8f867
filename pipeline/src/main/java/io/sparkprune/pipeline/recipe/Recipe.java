package io.sparkprune.pipeline.recipe;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLGenerator;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.sparkprune.calibration.solver.SolverOptions;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.pipeline.data.SourceOptions;

import java.io.IOException;
import java.io.Serial;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.stream.Collectors;

/**
 * A pruning recipe: what to prune and how ({@link PruneStage}), the calibration data
 * ({@link CalibrationSpec}) and the evaluation data ({@link EvaluationSpec}). Modelled on
 * llm-compressor recipes, in one YAML document with three optional sections:
 * <pre>
 * prune:
 *   method: sparsegpt            # sparsegpt | wanda | magnitude
 *   pattern: "2:4"               # N:M, unstructured:P, block:RxC:P
 *   targets: ['re:.*layers?\.\d+\..+\.weight$']
 *   ignore: ['re:.*lm_head.*', 're:.*embed.*']
 *   dampening: 0.01
 *   block_size: 128
 *   mask_scope: per_row          # per_row | all_rows
 *   quantization: null           # or {bits: 4, group_size: 128, symmetric: false}, or "int4-g128"
 *   pipeline: sequential         # sequential | independent
 *   format: auto                 # hf | sparse | compressed-tensors | a list such as hf,sparse; auto: hf,
 *                                # or compressed-tensors for int4/int8 runs
 *   sparse_codec: none           # none | deflate: how the sparse output stores indices, codes, masks
 * calibration:
 *   source: default              # the bundled English Europarl lines, or a path / glob
 *   format: auto                 # auto | text | jsonl | parquet
 *   field: text
 *   text_mode: lines             # lines | whole_file
 *   samples: 128
 *   seq_len: auto                # or a number of tokens
 *   seed: 0
 *   held_out_fraction: 0.1
 *   hessian_precision: exact     # exact | tf32 (TF32 tensor-core products for H = XᵀX)
 *   forward_precision: fp32      # fp32 | tf32 (products of the linear layers in calibration forwards)
 * evaluation:
 *   source: held_out             # the held-out part of the calibration source, or a path / glob
 *   format: auto
 *   field: text
 *   text_mode: lines
 *   samples: 128
 *   seq_len: auto                # the calibration length
 *   baselines: []                # magnitude, wanda: also scored on the same data
 *   forward_precision: fp32      # fp32 | tf32 (products in the quality check's forward passes)
 * gates:                         # quality limits; each absent one is not checked
 *   max_perplexity_increase: null  # e.g. 0.15 or "15%" (decoders)
 *   min_embedding_cosine: null     # e.g. 0.85 (encoders, mean cosine)
 *   max_layer_error: null          # e.g. 0.2 (every tensor's relative reconstruction error)
 * </pre>
 * Every key is optional (absent keys take the defaults above); unknown keys, wrong types, values out
 * of range, unparsable patterns, regexes or quantization settings are rejected with a
 * {@link RecipeException} naming the source, the key path and the fix. {@code docs/recipes.md}
 * documents every key.
 *
 * <p>Values are parsed once: the pattern into a {@link SparsityPattern}, the quantization into a
 * {@link io.sparkprune.calibration.quant.QuantizationSpec}, the name patterns into compiled regexes.
 * A recipe is immutable; {@link #withOverrides(Map)} applies command-line flags, and
 * {@link #toYaml()} writes the resolved recipe, which {@link #parse} reads back to an equal recipe.
 * Java serialization (Spark closures) writes that YAML and parses it again on reading.
 *
 * @param prune the pruning modifier
 * @param calibration calibration data
 * @param evaluation evaluation data
 * @param gates quality gates ({@link GatesSpec#NONE} for none)
 */
public record Recipe(PruneStage prune, CalibrationSpec calibration, EvaluationSpec evaluation, GatesSpec gates)
        implements Serializable {

    /** Source named in errors raised by {@link #withOverrides(Map)}. */
    public static final String OVERRIDE_SOURCE = "command-line overrides";

    private static final YAMLMapper MAPPER = YAMLMapper.builder()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .disable(YAMLGenerator.Feature.WRITE_DOC_START_MARKER)
            .enable(YAMLGenerator.Feature.INDENT_ARRAYS_WITH_INDICATOR)
            .build();

    /**
     * @throws RecipeException (key {@code evaluation.source}) when evaluation uses the held-out split
     *     but {@code calibration.held_out_fraction} is 0, so nothing is held out
     */
    public Recipe {
        Objects.requireNonNull(prune, "prune");
        Objects.requireNonNull(calibration, "calibration");
        Objects.requireNonNull(evaluation, "evaluation");
        Objects.requireNonNull(gates, "gates");
        if (evaluation.usesHeldOut() && calibration.heldOutFraction() == 0.0) {
            throw new RecipeException(RecipeException.UNSPECIFIED_SOURCE, "evaluation.source", "is "
                    + EvaluationSpec.HELD_OUT_SOURCE + " but calibration.held_out_fraction is 0, so nothing is held out; "
                    + "set held_out_fraction > 0 (e.g. 0.1) or give evaluation data (--eval)");
        }
    }

    /**
     * A recipe without quality gates.
     *
     * @param prune the pruning modifier
     * @param calibration calibration data
     * @param evaluation evaluation data
     * @throws RecipeException as the canonical constructor
     */
    public Recipe(PruneStage prune, CalibrationSpec calibration, EvaluationSpec evaluation) {
        this(prune, calibration, evaluation, GatesSpec.NONE);
    }

    /** @return SparseGPT 2:4 on the default targets with the default calibration and evaluation data, no gates */
    public static Recipe defaults() {
        return new Recipe(PruneStage.DEFAULT, CalibrationSpec.DEFAULT, EvaluationSpec.DEFAULT);
    }

    /**
     * @param newGates the quality gates
     * @return this recipe with other gates (they do not change what the job computes)
     */
    public Recipe withGates(GatesSpec newGates) {
        return new Recipe(prune, calibration, evaluation, newGates);
    }

    /**
     * Reads a recipe file.
     *
     * @param file a YAML (or JSON) file
     * @return the validated recipe
     * @throws RecipeException naming the file when it cannot be read, is not valid YAML, or any
     *     value is invalid (then also naming the key path)
     */
    public static Recipe read(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new RecipeException(file.toString(), "", "no such recipe file; the shipped recipes are in "
                    + "conf/recipes/ (2of4.yaml, 4of8.yaml, unstructured50.yaml, 2of4-int4-g128.yaml, block16x16-50.yaml)", e);
        } catch (IOException e) {
            throw new RecipeException(file.toString(), "", "cannot read the recipe (" + e + "); check the path and "
                    + "its permissions, and that it is UTF-8 text", e);
        }
        return parse(text, file.toString());
    }

    /**
     * Parses recipe text. An empty document is the default recipe.
     *
     * @param yaml the YAML (or JSON) text
     * @param source where it came from, named in errors (a file path, a resource name)
     * @return the validated recipe
     * @throws RecipeException naming the source (and the key path) when the text is not valid YAML,
     *     holds a duplicate or unknown key, or a value is invalid
     */
    public static Recipe parse(String yaml, String source) {
        Objects.requireNonNull(yaml, "yaml");
        Objects.requireNonNull(source, "source");
        JsonNode root;
        try {
            root = MAPPER.readTree(yaml);
        } catch (JsonProcessingException e) {
            String where = e.getLocation() == null ? ""
                    : " at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr();
            throw new RecipeException(source, "", "not valid YAML" + where + ": " + e.getOriginalMessage()
                    + "; fix the syntax (docs/recipes.md has examples)", e);
        }
        return fromTree(root, source);
    }

    /**
     * Reads a recipe from an already parsed YAML/JSON tree (e.g. the {@code recipe} object of a
     * {@code report.json}).
     *
     * @param root the document; null or missing means the default recipe
     * @param source where it came from, named in errors
     * @return the validated recipe
     * @throws RecipeException naming the source and the key path of the first invalid value
     */
    public static Recipe fromTree(JsonNode root, String source) {
        return new RecipeReader(source).read(root);
    }

    /**
     * This recipe with some keys replaced, as the CLI does for its flags ({@link RecipeKeys#CLI_FLAGS}
     * maps each flag to its key path). Values are text and read as in a recipe file: numbers and
     * booleans from their text, {@code prune.quantization} in the compact form of {@link QuantSyntax}
     * (e.g. {@code int4-g128}, {@code none}), {@code seq_len} as {@code auto} or a number,
     * {@code prune.targets} / {@code prune.ignore} as a single entry. All overrides are applied
     * together, then the whole recipe is validated again.
     *
     * @param overrides dotted key path ({@link RecipeKeys#overridablePaths()}) → value text, e.g.
     *     {@code "prune.pattern" → "4:8"}, {@code "calibration.samples" → "64"}
     * @return the new recipe; this one is unchanged
     * @throws RecipeException with source {@value #OVERRIDE_SOURCE} and the key path, for an unknown
     *     path or an invalid value
     */
    public Recipe withOverrides(Map<String, String> overrides) {
        Objects.requireNonNull(overrides, "overrides");
        if (overrides.isEmpty()) {
            return this;
        }
        List<String> paths = RecipeKeys.overridablePaths();
        ObjectNode tree = toTree();
        for (Map.Entry<String, String> e : overrides.entrySet()) {
            String path = Objects.requireNonNull(e.getKey(), "override key");
            String value = Objects.requireNonNull(e.getValue(), () -> "value of override " + path);
            if (!paths.contains(path)) {
                String hint = RecipeReader.closest(path, paths);
                throw new RecipeException(OVERRIDE_SOURCE, path, "not a recipe key" + (hint == null ? "" : " (did you "
                        + "mean " + hint + "?)") + "; overridable keys: " + String.join(", ", paths));
            }
            int dot = path.indexOf('.');
            ((ObjectNode) tree.get(path.substring(0, dot))).put(path.substring(dot + 1), value);
        }
        String described = overrides.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue())
                .collect(Collectors.joining(", ", OVERRIDE_SOURCE + " [", "]"));
        return fromTree(tree, described);
    }

    /**
     * @param tensorName full tensor name as in the checkpoint, e.g. {@code model.layers.0.mlp.up_proj.weight}
     * @return true when {@code prune.targets} select it and {@code prune.ignore} does not (the caller
     *     also checks that it is a 2-D weight)
     */
    public boolean isTarget(String tensorName) {
        return prune.isTarget(tensorName);
    }

    /** @return the SparseGPT solver settings (block size, mask scope) */
    public SolverOptions solverOptions() {
        return prune.solverOptions();
    }

    /**
     * The resolved recipe as a tree with every key explicit, in document order (for report.json).
     *
     * @return a fresh mutable tree that {@link #fromTree} reads back to an equal recipe
     */
    public ObjectNode toTree() {
        JsonNodeFactory f = JsonNodeFactory.instance;
        ObjectNode root = f.objectNode();
        ObjectNode p = root.putObject(RecipeKeys.PRUNE);
        p.put("method", prune.method().id());
        p.put("pattern", prune.pattern().spec());
        prune.selector().targets().forEach(p.putArray("targets")::add);
        prune.selector().ignore().forEach(p.putArray("ignore")::add);
        p.put("dampening", prune.dampening().initial());
        p.put("block_size", prune.blockSize());
        p.put("mask_scope", prune.maskScope().name().toLowerCase(Locale.ROOT));
        if (prune.quantization().isPresent()) {
            ObjectNode q = p.putObject("quantization");
            q.put("bits", prune.quantization().get().bits());
            int g = prune.quantization().get().groupSize();
            if (g == 0) {
                q.putNull("group_size");
            } else {
                q.put("group_size", g);
            }
            q.put("symmetric", prune.quantization().get().symmetric());
        } else {
            p.putNull("quantization");
        }
        p.put("pipeline", prune.pipeline().id());
        p.put("format", OutputFormat.join(prune.formats()));
        p.put("sparse_codec", prune.sparseCodec().id());
        ObjectNode c = root.putObject(RecipeKeys.CALIBRATION);
        c.put("source", calibration.source());
        putOptions(c, calibration.options());
        c.put("samples", calibration.samples());
        putSeqLen(c, calibration.seqLen());
        c.put("seed", calibration.seed());
        c.put("held_out_fraction", calibration.heldOutFraction());
        c.put("hessian_precision", calibration.hessianPrecision().id());
        c.put("forward_precision", calibration.forwardPrecision().id());
        ObjectNode e = root.putObject(RecipeKeys.EVALUATION);
        e.put("source", evaluation.source());
        putOptions(e, evaluation.options());
        e.put("samples", evaluation.samples());
        putSeqLen(e, evaluation.seqLen());
        com.fasterxml.jackson.databind.node.ArrayNode bl = e.putArray("baselines");
        evaluation.baselines().forEach(b -> bl.add(b.id()));
        e.put("forward_precision", evaluation.forwardPrecision().id());
        ObjectNode g = root.putObject(RecipeKeys.GATES);
        putOptional(g, "max_perplexity_increase", gates.maxPerplexityIncrease());
        putOptional(g, "min_embedding_cosine", gates.minEmbeddingCosine());
        putOptional(g, "max_layer_error", gates.maxLayerError());
        return root;
    }

    private static void putOptions(ObjectNode n, SourceOptions o) {
        n.put("format", o.format().name().toLowerCase(Locale.ROOT));
        n.put("field", o.field());
        n.put("text_mode", o.textMode().name().toLowerCase(Locale.ROOT));
    }

    private static void putOptional(ObjectNode n, String key, OptionalDouble v) {
        if (v.isPresent()) {
            n.put(key, v.getAsDouble());
        } else {
            n.putNull(key);
        }
    }

    private static void putSeqLen(ObjectNode n, OptionalInt seqLen) {
        if (seqLen.isPresent()) {
            n.put("seq_len", seqLen.getAsInt());
        } else {
            n.put("seq_len", "auto");
        }
    }

    /** @return the resolved recipe as YAML, every key explicit; {@link #parse} reads it back to an equal recipe */
    public String toYaml() {
        try {
            return MAPPER.writeValueAsString(toTree());
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a recipe tree always serializes", e);
        }
    }

    /**
     * @return one line for logs, e.g. {@code "sparsegpt 2:4, no quantization, sequential, dampening 0.01,
     *     block 128, per_row masks; calibration: 128 x auto tokens from default (seed 0, 0.1 held out,
     *     exact Hessians); evaluation: held_out"}
     */
    public String summary() {
        return prune.method().id() + " " + prune.pattern().spec() + ", "
                + prune.quantization().map(q -> q.describe() + " quantization").orElse("no quantization") + ", "
                + prune.pipeline().id() + ", dampening " + prune.dampening().initial() + ", block " + prune.blockSize()
                + ", " + prune.maskScope().name().toLowerCase(Locale.ROOT) + " masks; calibration: "
                + calibration.samples() + " x " + seqLenText(calibration.seqLen()) + " tokens from "
                + calibration.source() + " (seed " + calibration.seed() + ", " + calibration.heldOutFraction()
                + " held out, " + calibration.hessianPrecision().id() + " Hessians); evaluation: " + evaluation.source();
    }

    @Serial
    private Object writeReplace() {
        return new SerializedRecipe(toYaml(), false);
    }

    private static String seqLenText(OptionalInt seqLen) {
        return seqLen.isPresent() ? Integer.toString(seqLen.getAsInt()) : "auto";
    }
}
