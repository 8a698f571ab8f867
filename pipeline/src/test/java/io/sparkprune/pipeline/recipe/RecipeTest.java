package io.sparkprune.pipeline.recipe;

import io.sparkprune.calibration.hessian.HessianPrecision;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.solver.SolverOptions;
import io.sparkprune.calibration.sparsity.MaskScope;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.pipeline.data.DocumentFormat;
import io.sparkprune.pipeline.data.SourceOptions;
import io.sparkprune.pipeline.data.TextMode;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelConfigs;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Parsing, defaults, shipped recipes, overrides and the YAML round trip. */
class RecipeTest {

    /** conf/recipes relative to the pipeline module directory (surefire's working directory). */
    static final Path RECIPES = Path.of("..", "conf", "recipes");

    @Test
    void defaultsAreSparseGpt24WithTheDocumentedValues() {
        Recipe r = Recipe.defaults();
        PruneStage p = r.prune();
        assertThat(p.method()).isEqualTo(PruneMethod.SPARSEGPT);
        assertThat(p.pattern()).isEqualTo(new SparsityPattern.NofM(2, 4));
        assertThat(p.selector().targets()).containsExactly("re:.*layers?\\.\\d+\\..+\\.weight$");
        assertThat(p.selector().ignore()).containsExactly("re:.*lm_head.*", "re:.*embed.*");
        assertThat(p.dampening()).isEqualTo(new Dampening(0.01, 10.0, 1.0));
        assertThat(p.blockSize()).isEqualTo(128);
        assertThat(p.maskScope()).isEqualTo(MaskScope.PER_ROW);
        assertThat(p.quantization()).isEmpty();
        assertThat(p.pipeline()).isEqualTo(PipelineMode.SEQUENTIAL);
        assertThat(r.solverOptions()).isEqualTo(new SolverOptions(128, MaskScope.PER_ROW));
        CalibrationSpec c = r.calibration();
        assertThat(c.source()).isEqualTo("default");
        assertThat(c.isDefaultSource()).isTrue();
        assertThat(c.options()).isEqualTo(new SourceOptions(DocumentFormat.AUTO, "text", TextMode.LINES));
        assertThat(c.samples()).isEqualTo(128);
        assertThat(c.seqLen()).isEmpty();
        assertThat(c.seed()).isZero();
        assertThat(c.heldOutFraction()).isEqualTo(0.1);
        assertThat(r.evaluation().usesHeldOut()).isTrue();
        assertThat(r.evaluation().samples()).isEqualTo(128);
        assertThat(r.evaluation().seqLen()).isEmpty();
    }

    @Test
    void emptyDocumentsAndEmptySectionsAreTheDefaults() {
        assertThat(Recipe.parse("", "empty.yaml")).isEqualTo(Recipe.defaults());
        assertThat(Recipe.parse("# nothing but a comment\n", "c.yaml")).isEqualTo(Recipe.defaults());
        assertThat(Recipe.parse("prune:\ncalibration: {}\nevaluation: ~\n", "s.yaml")).isEqualTo(Recipe.defaults());
    }

    @Test
    void absentKeysTakeDefaultsPresentOnesAreParsedOnce() {
        Recipe r = Recipe.parse("""
                prune:
                  pattern: "4:8"
                  dampening: 0.05
                calibration:
                  samples: 32
                  seq_len: 512
                """, "partial.yaml");
        assertThat(r.prune().pattern()).isEqualTo(new SparsityPattern.NofM(4, 8));
        assertThat(r.prune().dampening()).isEqualTo(Dampening.startingAt(0.05));
        assertThat(r.prune().blockSize()).isEqualTo(128);
        assertThat(r.calibration().samples()).isEqualTo(32);
        assertThat(r.calibration().seqLen()).hasValue(512);
        assertThat(r.calibration().source()).isEqualTo("default");
        assertThat(r.evaluation()).isEqualTo(EvaluationSpec.DEFAULT);
    }

    @Test
    void everyShippedRecipeIsPresentAndParses() throws IOException {
        List<String> names;
        try (Stream<Path> files = Files.list(RECIPES)) {
            names = files.map(f -> f.getFileName().toString()).sorted().toList();
        }
        assertThat(names).containsExactly("2of4-int4-g128.yaml", "2of4.yaml", "4of8.yaml", "block16x16-50.yaml",
                "unstructured50.yaml");
        for (String n : names) {
            Recipe r = Recipe.read(RECIPES.resolve(n));
            assertThat(r.calibration().isDefaultSource()).as(n).isTrue();
            assertThat(r.evaluation().usesHeldOut()).as(n).isTrue();
            assertThat(r.prune().method()).as(n).isEqualTo(PruneMethod.SPARSEGPT);
            assertThat(Recipe.parse(r.toYaml(), n + " (round trip)")).as(n).isEqualTo(r);
        }
    }

    @Test
    void shippedRecipesSayWhatTheirNamesSay() {
        Recipe defaults = Recipe.defaults();
        assertThat(Recipe.read(RECIPES.resolve("2of4.yaml"))).isEqualTo(defaults);
        assertThat(Recipe.read(RECIPES.resolve("4of8.yaml")))
                .isEqualTo(new Recipe(withPattern(defaults.prune(), new SparsityPattern.NofM(4, 8)),
                        defaults.calibration(), defaults.evaluation()));
        assertThat(Recipe.read(RECIPES.resolve("unstructured50.yaml")).prune())
                .isEqualTo(withPattern(defaults.prune(), new SparsityPattern.Unstructured(0.5)));
        assertThat(Recipe.read(RECIPES.resolve("block16x16-50.yaml")).prune())
                .isEqualTo(withPattern(defaults.prune(), new SparsityPattern.Block(16, 16, 0.5)));
        PruneStage q = Recipe.read(RECIPES.resolve("2of4-int4-g128.yaml")).prune();
        assertThat(q.pattern()).isEqualTo(new SparsityPattern.NofM(2, 4));
        assertThat(q.quantization()).hasValue(new QuantizationSpec(4, false, 128));
    }

    private static PruneStage withPattern(PruneStage p, SparsityPattern pattern) {
        return new PruneStage(p.method(), pattern, p.selector(), p.dampening(), p.blockSize(), p.maskScope(),
                p.quantization(), p.pipeline());
    }

    @Test
    void everyKeyIsReadFromTheFile() {
        Recipe r = Recipe.parse("""
                prune:
                  method: WANDA
                  pattern: "unstructured:0.6"
                  targets: 're:.*mlp\\..*'
                  ignore: []
                  dampening: 0.1
                  block_size: 64
                  mask_scope: all_rows
                  pipeline: independent
                calibration:
                  source: "s3a://bucket/c4/part-*.json.gz"
                  format: jsonl
                  field: content
                  text_mode: whole_file
                  samples: 16
                  seq_len: 1024
                  seed: -7
                  held_out_fraction: 0.25
                  hessian_precision: TF32
                evaluation:
                  source: eval/*.parquet
                  format: parquet
                  field: body
                  text_mode: lines
                  samples: 8
                  seq_len: 4096
                """, "all.yaml");
        PruneStage p = r.prune();
        assertThat(p.method()).isEqualTo(PruneMethod.WANDA);
        assertThat(p.pattern()).isEqualTo(new SparsityPattern.Unstructured(0.6));
        assertThat(p.selector().targets()).containsExactly("re:.*mlp\\..*");
        assertThat(p.selector().ignore()).isEmpty();
        assertThat(p.dampening().initial()).isEqualTo(0.1);
        assertThat(p.blockSize()).isEqualTo(64);
        assertThat(p.maskScope()).isEqualTo(MaskScope.ALL_ROWS);
        assertThat(p.pipeline()).isEqualTo(PipelineMode.INDEPENDENT);
        assertThat(r.calibration()).isEqualTo(new CalibrationSpec("s3a://bucket/c4/part-*.json.gz",
                new SourceOptions(DocumentFormat.JSONL, "content", TextMode.WHOLE_FILE), 16, OptionalInt.of(1024), -7L, 0.25,
                HessianPrecision.TF32));
        assertThat(r.evaluation()).isEqualTo(new EvaluationSpec("eval/*.parquet",
                new SourceOptions(DocumentFormat.PARQUET, "body", TextMode.LINES), 8, OptionalInt.of(4096)));
        assertThat(r.evaluation().usesHeldOut()).isFalse();
        assertThat(Recipe.parse(r.toYaml(), "round trip")).isEqualTo(r);
    }

    @Test
    void quantizationMappingAndCompactFormsAgree() {
        String[][] cases = {
                {"{bits: 4, group_size: 128, symmetric: false}", "int4-g128"},
                {"{bits: 4, group_size: 128}", "int4-asym-g128"},
                {"{bits: 8}", "int8"},
                {"{bits: 8, group_size: null, symmetric: true}", "int8-sym"},
                {"{bits: 4, symmetric: true, group_size: 64}", "int4-sym-g64"},
                {"{bits: 3, group_size: 32}", "INT3-G32"},
        };
        for (String[] c : cases) {
            Recipe mapping = Recipe.parse("prune:\n  quantization: " + c[0] + "\n", "m.yaml");
            Recipe compact = Recipe.parse("prune:\n  quantization: " + c[1] + "\n", "c.yaml");
            assertThat(mapping).as(c[0]).isEqualTo(compact);
            assertThat(mapping.prune().quantization()).isPresent();
            assertThat(Recipe.parse(mapping.toYaml(), "round trip")).isEqualTo(mapping);
        }
        assertThat(Recipe.parse("prune:\n  quantization: {bits: 4, group_size: 128, symmetric: false}\n", "m.yaml")
                .prune().quantization()).hasValue(QuantizationSpec.grouped(4, false, 128));
        assertThat(Recipe.parse("prune:\n  quantization: {bits: 8, symmetric: true}\n", "m.yaml")
                .prune().quantization()).hasValue(QuantizationSpec.perChannel(8, true));
        assertThat(Recipe.parse("prune:\n  quantization: none\n", "n.yaml")).isEqualTo(Recipe.defaults());
        assertThat(Recipe.parse("prune:\n  quantization: null\n", "n.yaml")).isEqualTo(Recipe.defaults());
    }

    @Test
    void toYamlWritesEveryKeyExplicitly() {
        String yaml = Recipe.defaults().toYaml();
        for (String k : RecipeKeys.overridablePaths()) {
            String leaf = k.substring(k.indexOf('.') + 1);
            assertThat(yaml).as(k).contains(leaf + ":");
        }
        assertThat(yaml).contains("pattern: \"2:4\"").contains("seq_len: \"auto\"").contains("quantization: null")
                .doesNotStartWith("---");
        assertThat(Recipe.defaults().toTree().get("calibration").get("source").asText()).isEqualTo("default");
    }

    @Test
    void overridesReplaceKeysAndRevalidate() {
        Recipe base = Recipe.read(RECIPES.resolve("2of4.yaml"));
        Map<String, String> o = new LinkedHashMap<>();
        o.put("prune.pattern", "4:8");
        o.put("prune.method", "magnitude");
        o.put("prune.pipeline", "independent");
        o.put("prune.dampening", "0.02");
        o.put("prune.mask_scope", "ALL_ROWS");
        o.put("calibration.samples", "64");
        o.put("calibration.seq_len", "512");
        o.put("calibration.seed", "42");
        o.put("calibration.hessian_precision", "tf32");
        o.put("calibration.source", "data/*.jsonl");
        o.put("evaluation.source", "eval.txt");
        o.put("prune.ignore", "lm_head");
        Recipe r = base.withOverrides(o);
        assertThat(r.prune().pattern()).isEqualTo(new SparsityPattern.NofM(4, 8));
        assertThat(r.prune().method()).isEqualTo(PruneMethod.MAGNITUDE);
        assertThat(r.prune().pipeline()).isEqualTo(PipelineMode.INDEPENDENT);
        assertThat(r.prune().dampening().initial()).isEqualTo(0.02);
        assertThat(r.prune().maskScope()).isEqualTo(MaskScope.ALL_ROWS);
        assertThat(r.prune().selector().ignore()).containsExactly("lm_head");
        assertThat(r.prune().selector().targets()).isEqualTo(base.prune().selector().targets());
        assertThat(r.calibration().samples()).isEqualTo(64);
        assertThat(r.calibration().seqLen()).hasValue(512);
        assertThat(r.calibration().seed()).isEqualTo(42L);
        assertThat(r.calibration().source()).isEqualTo("data/*.jsonl");
        assertThat(r.calibration().heldOutFraction()).isEqualTo(0.1);
        assertThat(r.calibration().hessianPrecision()).isEqualTo(HessianPrecision.TF32);
        assertThat(r.toTree().path("calibration").path("hessian_precision").asText()).isEqualTo("tf32");
        assertThat(base.calibration().hessianPrecision()).isEqualTo(HessianPrecision.EXACT);
        assertThat(base.toTree().path("calibration").path("hessian_precision").asText()).isEqualTo("exact");
        assertThat(r.evaluation().source()).isEqualTo("eval.txt");
        assertThat(base).isEqualTo(Recipe.defaults());
        assertThat(base.withOverrides(Map.of())).isSameAs(base);
    }

    @Test
    void forwardPrecisionDefaultsToFp32AndReadsTf32FromTheFileAndTheOverride() {
        Recipe base = Recipe.defaults();
        assertThat(base.calibration().forwardPrecision()).isEqualTo(ForwardPrecision.FP32);
        assertThat(base.toTree().path("calibration").path("forward_precision").asText()).isEqualTo("fp32");
        // absent from a file (or from a report.json recipe written before the key existed): fp32
        assertThat(Recipe.parse("calibration:\n  samples: 16\n", "absent.yaml").calibration().forwardPrecision())
                .isEqualTo(ForwardPrecision.FP32);

        Recipe fromFile = Recipe.parse("calibration:\n  forward_precision: TF32\n", "tf32.yaml");
        assertThat(fromFile.calibration().forwardPrecision()).isEqualTo(ForwardPrecision.TF32);
        assertThat(fromFile.calibration().hessianPrecision()).isEqualTo(CalibrationSpec.DEFAULT_HESSIAN_PRECISION);
        assertThat(fromFile.toTree().path("calibration").path("forward_precision").asText()).isEqualTo("tf32");
        assertThat(fromFile).isNotEqualTo(base);
        assertThat(Recipe.parse(fromFile.toYaml(), "round trip")).isEqualTo(fromFile);
        assertThat(Recipe.fromTree(fromFile.toTree(), "tree")).isEqualTo(fromFile);

        Recipe viaFlag = base.withOverrides(Map.of(RecipeKeys.CLI_FLAGS.get("--forward-precision"), "tf32"));
        assertThat(viaFlag).isEqualTo(fromFile);
        assertThat(viaFlag.withOverrides(Map.of("calibration.forward_precision", "fp32"))).isEqualTo(base);
        // independent of the Hessian precision
        Recipe both = base.withOverrides(Map.of("calibration.forward_precision", "tf32",
                "calibration.hessian_precision", "tf32"));
        assertThat(both.calibration()).isEqualTo(new CalibrationSpec(CalibrationSpec.DEFAULT_SOURCE,
                SourceOptions.defaults(), 128, OptionalInt.empty(), 0L, 0.1, HessianPrecision.TF32,
                ForwardPrecision.TF32));
        assertThatThrownBy(() -> base.withOverrides(Map.of("calibration.forward_precision", "fp16")))
                .isInstanceOfSatisfying(RecipeException.class, e -> {
                    assertThat(e.keyPath()).isEqualTo("calibration.forward_precision");
                    assertThat(e.source()).isEqualTo("command-line overrides [calibration.forward_precision=fp16]");
                    assertThat(e).hasMessageContaining("unknown value 'fp16'; allowed: fp32, tf32");
                });
    }

    @Test
    void evaluationForwardPrecisionDefaultsToFp32AndIsIndependentOfTheCalibrationOne() {
        Recipe base = Recipe.defaults();
        assertThat(base.evaluation().forwardPrecision()).isEqualTo(ForwardPrecision.FP32);
        assertThat(base.toTree().path("evaluation").path("forward_precision").asText()).isEqualTo("fp32");
        Recipe fromFile = Recipe.parse("evaluation:\n  forward_precision: tf32\n", "eval-tf32.yaml");
        assertThat(fromFile.evaluation().forwardPrecision()).isEqualTo(ForwardPrecision.TF32);
        assertThat(fromFile.calibration().forwardPrecision()).isEqualTo(ForwardPrecision.FP32);
        assertThat(Recipe.parse(fromFile.toYaml(), "round trip")).isEqualTo(fromFile);
        Recipe viaFlag = base.withOverrides(Map.of(RecipeKeys.CLI_FLAGS.get("--eval-forward-precision"), "tf32"));
        assertThat(viaFlag).isEqualTo(fromFile);
        assertThatThrownBy(() -> base.withOverrides(Map.of("evaluation.forward_precision", "bf16")))
                .isInstanceOfSatisfying(RecipeException.class, e -> {
                    assertThat(e.keyPath()).isEqualTo("evaluation.forward_precision");
                    assertThat(e).hasMessageContaining("unknown value 'bf16'; allowed: fp32, tf32");
                });
    }

    @Test
    void quantOverrideTakesTheCompactFormAndNoneRemovesIt() {
        Recipe q = Recipe.defaults().withOverrides(Map.of("prune.quantization", "int4-sym-g64"));
        assertThat(q.prune().quantization()).hasValue(new QuantizationSpec(4, true, 64));
        Recipe back = q.withOverrides(Map.of("prune.quantization", "none", "calibration.seq_len", "auto"));
        assertThat(back).isEqualTo(Recipe.defaults());
        Recipe fromFile = Recipe.read(RECIPES.resolve("2of4-int4-g128.yaml"));
        assertThat(fromFile.withOverrides(Map.of("prune.quantization", "int8")).prune().quantization())
                .hasValue(QuantizationSpec.perChannel(8, false));
    }

    @Test
    void overridesAreValidatedTogetherSoDependentKeysCanChangeAtOnce() {
        Map<String, String> both = new LinkedHashMap<>();
        both.put("prune.pattern", "block:16x48:0.5");
        both.put("prune.block_size", "96");
        Recipe r = Recipe.defaults().withOverrides(both);
        assertThat(r.prune().pattern()).isEqualTo(new SparsityPattern.Block(16, 48, 0.5));
        assertThat(r.prune().blockSize()).isEqualTo(96);
        assertThatThrownBy(() -> Recipe.defaults().withOverrides(Map.of("prune.pattern", "block:16x48:0.5")))
                .isInstanceOfSatisfying(RecipeException.class, e -> {
                    assertThat(e.keyPath()).isEqualTo("prune.block_size");
                    assertThat(e.source()).isEqualTo("command-line overrides [prune.pattern=block:16x48:0.5]");
                    assertThat(e).hasMessageContaining("multiple of the tile width 48");
                });
    }

    @Test
    void cliFlagsMapToOverridablePaths() {
        assertThat(RecipeKeys.overridablePaths()).containsAll(RecipeKeys.CLI_FLAGS.values());
        assertThat(RecipeKeys.CLI_FLAGS).containsEntry("--forward-precision", "calibration.forward_precision")
                .containsEntry("--hessian-precision", "calibration.hessian_precision");
        assertThat(RecipeKeys.CLI_FLAGS).containsEntry("--pattern", "prune.pattern").containsEntry("--quant",
                "prune.quantization").containsEntry("--mode", "prune.pipeline").containsEntry("--seq-len",
                "calibration.seq_len").containsEntry("--eval", "evaluation.source");
        Map<String, String> viaFlags = new LinkedHashMap<>();
        Map<String, String> flags = Map.of("--pattern", "4:8", "--quant", "int4-g128", "--samples", "16", "--seed", "3",
                "--mode", "independent", "--method", "sparsegpt", "--dampening", "0.03", "--seq-len", "64");
        flags.forEach((flag, v) -> viaFlags.put(RecipeKeys.CLI_FLAGS.get(flag), v));
        Recipe r = Recipe.defaults().withOverrides(viaFlags);
        assertThat(r.prune().quantization()).hasValue(new QuantizationSpec(4, false, 128));
        assertThat(r.calibration().seqLen()).hasValue(64);
        assertThat(r.calibration().seed()).isEqualTo(3L);
    }

    @Test
    void roundTripOfANonDefaultRecipe() {
        Recipe r = new Recipe(new PruneStage(PruneMethod.SPARSEGPT, new SparsityPattern.Block(8, 32, 0.75),
                TensorSelector.of(List.of("re:.*mlp.*", "model.layers.0.self_attn.q_proj.weight"), List.of("re:.*\\.0\\..*"),
                        "test", "prune"), Dampening.startingAt(0.5), 256, MaskScope.ALL_ROWS,
                Optional.of(QuantizationSpec.perChannel(3, true)), PipelineMode.INDEPENDENT),
                new CalibrationSpec("corpus.txt.gz", new SourceOptions(DocumentFormat.TEXT, "t", TextMode.WHOLE_FILE), 7,
                        OptionalInt.of(3), Long.MIN_VALUE, 0.0, HessianPrecision.TF32,
                        ForwardPrecision.TF32),
                new EvaluationSpec("e.jsonl", SourceOptions.defaults(), 1, OptionalInt.of(2)));
        String yaml = r.toYaml();
        assertThat(Recipe.parse(yaml, "round trip")).isEqualTo(r);
        assertThat(Recipe.fromTree(r.toTree(), "tree")).isEqualTo(r);
    }

    @Test
    void seqLenAutoFollowsTheModelFamilyAndSource() throws IOException {
        ModelConfig bert = config("all-minilm-l6-v2.json");
        ModelConfig llama = config("llama-3.1-8b.json");
        assertThat(bert.maxPositionEmbeddings()).isEqualTo(512);
        assertThat(llama.maxPositionEmbeddings()).isEqualTo(131072);
        CalibrationSpec auto = CalibrationSpec.DEFAULT;
        assertThat(auto.resolveSeqLen(bert)).isEqualTo(128);
        assertThat(auto.resolveSeqLen(llama)).isEqualTo(256);
        CalibrationSpec user = Recipe.defaults().withOverrides(Map.of("calibration.source", "c4/*.json")).calibration();
        assertThat(user.resolveSeqLen(llama)).isEqualTo(2048);
        CalibrationSpec explicit = Recipe.defaults().withOverrides(Map.of("calibration.seq_len", "384")).calibration();
        assertThat(explicit.resolveSeqLen(bert)).isEqualTo(384);
        assertThat(EvaluationSpec.DEFAULT.resolveSeqLen(bert, 384)).isEqualTo(384);
        CalibrationSpec tooLong = Recipe.defaults().withOverrides(Map.of("calibration.seq_len", "1024")).calibration();
        assertThatThrownBy(() -> tooLong.resolveSeqLen(bert)).isInstanceOfSatisfying(RecipeException.class, e -> {
            assertThat(e.keyPath()).isEqualTo("calibration.seq_len");
            assertThat(e).hasMessageContaining("1024 tokens exceed the bert model's max_position_embeddings 512");
        });
        EvaluationSpec evalTooLong = Recipe.defaults().withOverrides(Map.of("evaluation.seq_len", "513")).evaluation();
        assertThatThrownBy(() -> evalTooLong.resolveSeqLen(bert, 128)).isInstanceOf(RecipeException.class)
                .hasMessageContaining("evaluation.seq_len");
    }

    private static ModelConfig config(String name) throws IOException {
        try (InputStream in = RecipeTest.class.getResourceAsStream("/configs/" + name)) {
            assertThat(in).as(name).isNotNull();
            return ModelConfigs.parse(in.readAllBytes(), name);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"2of4.yaml", "4of8.yaml", "unstructured50.yaml", "2of4-int4-g128.yaml", "block16x16-50.yaml"})
    void shippedRecipesPassTheirOwnShapeChecksOnTypicalShapes(String name) {
        PruneStage p = Recipe.read(RECIPES.resolve(name)).prune();
        // out x in of Llama-7B-like and MiniLM weights: every shipped pattern must fit them
        int[][] shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {384, 384}, {1536, 384}, {384, 1536}};
        for (int[] s : shapes) {
            p.pattern().checkShape("w", s[0], s[1], p.blockSize());
            p.quantization().ifPresent(q -> q.checkShape("w", s[1], p.blockSize()));
        }
    }

    @Test
    void everyYamlExampleInDocsRecipesMdParses() throws IOException {
        String md = Files.readString(Path.of("..", "docs", "recipes.md"));
        List<String> blocks = new ArrayList<>();
        Matcher m = Pattern.compile("```yaml\\n(.*?)```", Pattern.DOTALL).matcher(md);
        while (m.find()) {
            blocks.add(m.group(1));
        }
        assertThat(blocks).hasSize(4);
        Recipe mlp = Recipe.parse(blocks.get(0), "docs/recipes.md example 1");
        assertThat(mlp.isTarget("model.layers.2.mlp.up_proj.weight")).isTrue();
        assertThat(mlp.isTarget("model.layers.2.self_attn.q_proj.weight")).isFalse();
        assertThat(mlp.calibration().seqLen()).hasValue(2048);
        Recipe quant = Recipe.parse(blocks.get(1), "docs/recipes.md example 2");
        assertThat(quant.prune().quantization()).hasValue(new QuantizationSpec(4, true, 64));
        assertThat(quant.evaluation().options().textMode()).isEqualTo(TextMode.WHOLE_FILE);
        Recipe wanda = Recipe.parse(blocks.get(2), "docs/recipes.md example 3");
        assertThat(wanda.isTarget("model.layers.31.mlp.up_proj.weight")).isFalse();
        assertThat(wanda.isTarget("model.layers.30.mlp.up_proj.weight")).isTrue();
        assertThat(wanda.isTarget("model.layers.3.mlp.up_proj.weight")).isTrue();
        Recipe gates = Recipe.parse(blocks.get(3), "docs/recipes.md example 4");
        assertThat(gates.gates().maxPerplexityIncrease().getAsDouble()).isCloseTo(0.15, org.assertj.core.data.Offset.offset(1e-12));
        assertThat(gates.gates().maxLayerError()).hasValue(0.2);
    }

    @Test
    void javaSerializationCarriesTheRecipeAndTheStage() throws Exception {
        Recipe r = Recipe.read(RECIPES.resolve("2of4-int4-g128.yaml"))
                .withOverrides(Map.of("prune.targets", "re:.*mlp.*", "calibration.seq_len", "64"));
        Recipe back = (Recipe) roundTrip(r);
        assertThat(back).isEqualTo(r).isNotSameAs(r);
        assertThat(back.isTarget("model.layers.0.mlp.up_proj.weight")).isTrue();
        assertThat(back.isTarget("model.layers.0.self_attn.q_proj.weight")).isFalse();
        PruneStage stage = (PruneStage) roundTrip(r.prune());
        assertThat(stage).isEqualTo(r.prune());
        assertThat(stage.quantization()).hasValue(new QuantizationSpec(4, false, 128));
    }

    private static Object roundTrip(Object o) throws IOException, ClassNotFoundException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(o);
        }
        try (ObjectInputStream in = new ObjectInputStream(
                new ByteArrayInputStream(bytes.toByteArray()))) {
            return in.readObject();
        }
    }

    @Test
    void summaryNamesTheMainSettings() {
        assertThat(Recipe.read(RECIPES.resolve("2of4-int4-g128.yaml")).summary())
                .startsWith("sparsegpt 2:4, int4 asymmetric group 128 quantization, sequential, dampening 0.01, block 128")
                .contains("128 x auto tokens from default").contains("exact Hessians");
    }
}
