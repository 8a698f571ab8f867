package io.sparkprune.pipeline.recipe;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.sparkprune.kernels.InvalidInputException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every kind of bad recipe gives a typed error naming the file, the key path and the fix. */
class RecipeErrorsTest {

    @TempDir
    Path tmp;

    private RecipeException fails(String yaml) {
        RecipeException e = catchThrowableOfType(RecipeException.class, () -> Recipe.parse(yaml, "bad.yaml"));
        assertThat(e).as("expected a RecipeException for:\n" + yaml).isNotNull();
        assertThat(e).isInstanceOf(InvalidInputException.class);
        assertThat(e.source()).isEqualTo("bad.yaml");
        assertThat(e.getMessage()).startsWith("bad.yaml: " + (e.keyPath().isEmpty() ? "" : e.keyPath() + ": "));
        return e;
    }

    private void failsAt(String yaml, String keyPath, String... fragments) {
        RecipeException e = fails(yaml);
        assertThat(e.keyPath()).as(e.getMessage()).isEqualTo(keyPath);
        for (String f : fragments) {
            assertThat(e.getMessage()).contains(f);
        }
    }

    @Test
    void unknownKeysAreRejectedAtEveryLevelWithThePathAndTheAllowedKeys() {
        failsAt("prune: {}\nsparsity: {}\n", "sparsity", "unknown key", "allowed keys here: prune, calibration, evaluation");
        failsAt("prune:\n  patern: \"2:4\"\n", "prune.patern", "unknown key (did you mean pattern?)",
                "allowed keys here: method, pattern, targets, ignore, dampening, block_size, mask_scope, quantization, pipeline");
        failsAt("prune:\n  quantization:\n    bits: 4\n    groupsize: 128\n", "prune.quantization.groupsize",
                "did you mean group_size?", "allowed keys here: bits, group_size, symmetric");
        failsAt("calibration:\n  nsamples: 128\n", "calibration.nsamples", "allowed keys here: source, format, field, "
                + "text_mode, samples, seq_len, seed, held_out_fraction, hessian_precision, forward_precision");
        failsAt("evaluation:\n  seed: 1\n", "evaluation.seed", "allowed keys here: source, format, field, text_mode, "
                + "samples, seq_len");
        // llm-compressor's names are not silently accepted either
        failsAt("prune:\n  dampening_frac: 0.01\n", "prune.dampening_frac", "unknown key");
        failsAt("sparsity_stage:\n  sparsity_modifiers: {}\n", "sparsity_stage", "unknown key");
    }

    @Test
    void sectionsMustBeMappings() {
        failsAt("- a\n- b\n", "", "expected a mapping", "see docs/recipes.md");
        failsAt("prune: sparsegpt\n", "prune", "expected a mapping with the keys method, pattern", "the text 'sparsegpt'");
        failsAt("calibration: [1, 2]\n", "calibration", "got a list");
    }

    @Test
    void invalidYamlAndDuplicateKeysNameTheLine() {
        failsAt("prune:\n  pattern: \"2:4\"\n  pattern: \"4:8\"\n", "", "not valid YAML at line 3", "Duplicate field 'pattern'");
        failsAt("prune: {pattern: [\n", "", "not valid YAML");
    }

    @Test
    void badPatternsAreTypedAndNameTheKey() {
        failsAt("prune:\n  pattern: \"2-4\"\n", "prune.pattern", "cannot parse sparsity pattern '2-4'", "accepted forms");
        failsAt("prune:\n  pattern: \"4:2\"\n", "prune.pattern", "N:M sparsity needs 1 <= N < M, got 4:2");
        failsAt("prune:\n  pattern: \"unstructured:1.5\"\n", "prune.pattern", "must be in [0, 1)");
        failsAt("prune:\n  pattern: 0.5\n", "prune.pattern", "expected text, got a number (0.5)");
    }

    @Test
    void badRegexesNameTheListEntry() {
        failsAt("prune:\n  targets: ['re:.*q_proj', 're:.*(k|v_proj']\n", "prune.targets[1]",
                "regex '.*(k|v_proj' does not compile", "Unclosed group");
        failsAt("prune:\n  ignore: ['re:[lm_head']\n", "prune.ignore[0]", "does not compile");
        failsAt("prune:\n  ignore: ['re:']\n", "prune.ignore[0]", "empty regex");
        failsAt("prune:\n  targets: []\n", "prune.targets", "nothing would be pruned");
        failsAt("prune:\n  targets: ['']\n", "prune.targets[0]", "empty name pattern");
        failsAt("prune:\n  targets: [12]\n", "prune.targets[0]", "got a number (12); quote it");
        failsAt("prune:\n  ignore: {a: 1}\n", "prune.ignore", "expected a list of names or re:REGEX entries, got a mapping");
    }

    @Test
    void badQuantizationIsTypedAndNamesTheKey() {
        failsAt("prune:\n  quantization: {bits: 9}\n", "prune.quantization.bits", "bits must be 2..8, got 9");
        failsAt("prune:\n  quantization: {group_size: 128}\n", "prune.quantization.bits", "missing");
        failsAt("prune:\n  quantization: {bits: 4, group_size: 0}\n", "prune.quantization.group_size", "at least 1, got 0");
        failsAt("prune:\n  quantization: {bits: 4, symmetric: maybe}\n", "prune.quantization.symmetric",
                "expected true or false, got the text 'maybe'");
        failsAt("prune:\n  quantization: fp8\n", "prune.quantization", "cannot parse quantization 'fp8'", "int4-g128");
        failsAt("prune:\n  quantization: int4-g0\n", "prune.quantization", "group size 0");
        failsAt("prune:\n  quantization: int1\n", "prune.quantization", "bits must be 2..8, got 1");
        failsAt("prune:\n  quantization: 4\n", "prune.quantization", "expected a mapping {bits, group_size, symmetric}");
        failsAt("prune:\n  quantization: {bits: 4, group_size: 96}\n", "prune.block_size",
                "quantization group size 96 must divide the block size, got block size 128");
        failsAt("prune:\n  method: wanda\n  quantization: int4\n", "prune.quantization",
                "joint quantization needs method sparsegpt, but the method is wanda");
    }

    @Test
    void numericRangesAreChecked() {
        failsAt("prune:\n  dampening: 0\n", "prune.dampening", "must be > 0, got 0.0");
        failsAt("prune:\n  dampening: -0.01\n", "prune.dampening", "must be > 0");
        failsAt("prune:\n  dampening: NaN\n", "prune.dampening", "expected a finite number, got NaN");
        failsAt("prune:\n  dampening: Infinity\n", "prune.dampening", "finite");
        failsAt("prune:\n  block_size: 0\n", "prune.block_size", "must be in 1..65536, got 0");
        failsAt("prune:\n  block_size: 126\n", "prune.block_size", "pattern 2:4 needs a block size that is a multiple of 4, got 126");
        failsAt("prune:\n  pattern: \"4:8\"\n  block_size: 100\n", "prune.block_size", "multiple of 8");
        failsAt("prune:\n  pattern: \"block:16x24:0.5\"\n", "prune.block_size", "multiple of the tile width 24");
        failsAt("calibration:\n  samples: 0\n", "calibration.samples", "must be at least 1, got 0");
        failsAt("calibration:\n  seq_len: 1\n", "calibration.seq_len", "must be at least 2 tokens, got 1");
        failsAt("calibration:\n  samples: 1000000\n  seq_len: 1000000\n", "calibration.seq_len", "exceed");
        failsAt("calibration:\n  held_out_fraction: 1.0\n", "calibration.held_out_fraction", "must be in [0, 1), got 1.0");
        failsAt("calibration:\n  held_out_fraction: -0.1\n", "calibration.held_out_fraction", "must be in [0, 1)");
        failsAt("calibration:\n  held_out_fraction: 0\n", "evaluation.source", "nothing is held out");
        failsAt("evaluation:\n  samples: -3\n", "evaluation.samples", "at least 1");
        failsAt("evaluation:\n  seq_len: 0\n", "evaluation.seq_len", "at least 2");
        failsAt("calibration:\n  samples: 3000000000\n", "calibration.samples", "out of the integer range");
        // the block size is irrelevant to magnitude pruning, so it is not checked against the pattern there
        assertThat(Recipe.parse("prune:\n  method: magnitude\n  block_size: 126\n", "ok.yaml").prune().blockSize())
                .isEqualTo(126);
        // held_out_fraction 0 is fine when evaluation has its own data
        assertThat(Recipe.parse("calibration:\n  held_out_fraction: 0\nevaluation:\n  source: eval.txt\n", "ok.yaml")
                .calibration().heldOutFraction()).isZero();
    }

    @Test
    void wrongTypesAndUnknownValuesListTheAllowedOnes() {
        failsAt("prune:\n  method: sparsgpt\n", "prune.method", "unknown value 'sparsgpt'; allowed: sparsegpt, wanda, magnitude");
        failsAt("prune:\n  mask_scope: rows\n", "prune.mask_scope", "allowed: all_rows, per_row");
        failsAt("calibration:\n  hessian_precision: fp16\n", "calibration.hessian_precision",
                "unknown value 'fp16'; allowed: exact, tf32");
        failsAt("calibration:\n  hessian_precision: 32\n", "calibration.hessian_precision", "allowed: exact, tf32");
        failsAt("calibration:\n  forward_precision: bf16\n", "calibration.forward_precision",
                "unknown value 'bf16'; allowed: fp32, tf32");
        failsAt("calibration:\n  forward_precision: exact\n", "calibration.forward_precision",
                "unknown value 'exact'; allowed: fp32, tf32");
        failsAt("calibration:\n  forward_precision: 32\n", "calibration.forward_precision",
                "unknown value a number (32); allowed: fp32, tf32");
        failsAt("prune:\n  pipeline: parallel\n", "prune.pipeline", "allowed: sequential, independent");
        failsAt("prune:\n  pipeline: 3\n", "prune.pipeline", "unknown value a number (3)");
        failsAt("calibration:\n  format: csv\n", "calibration.format", "allowed: auto, text, jsonl, parquet");
        failsAt("calibration:\n  text_mode: file\n", "calibration.text_mode", "allowed: lines, whole_file");
        failsAt("calibration:\n  samples: many\n", "calibration.samples", "expected an integer, got 'many'");
        failsAt("calibration:\n  samples: 12.5\n", "calibration.samples", "expected an integer, got a number (12.5)");
        failsAt("calibration:\n  seed: [1]\n", "calibration.seed", "expected an integer, got a list");
        failsAt("calibration:\n  seq_len: long\n", "calibration.seq_len", "expected auto or a number of tokens");
        failsAt("calibration:\n  source: ''\n", "calibration.source", "is empty", "default");
        failsAt("calibration:\n  field: ' '\n", "calibration.field", "is empty");
        failsAt("evaluation:\n  source: 5\n", "evaluation.source", "expected text, got a number (5)");
    }

    @Test
    void overrideErrorsNameTheOverrideAndTheKey() {
        RecipeException unknown = catchThrowableOfType(RecipeException.class,
                () -> Recipe.defaults().withOverrides(Map.of("prune.patern", "4:8")));
        assertThat(unknown.source()).isEqualTo(Recipe.OVERRIDE_SOURCE);
        assertThat(unknown.keyPath()).isEqualTo("prune.patern");
        assertThat(unknown).hasMessageContaining("did you mean prune.pattern?").hasMessageContaining("calibration.samples");
        RecipeException sub = catchThrowableOfType(RecipeException.class,
                () -> Recipe.defaults().withOverrides(Map.of("prune.quantization.bits", "4")));
        assertThat(sub.keyPath()).isEqualTo("prune.quantization.bits");
        RecipeException bad = catchThrowableOfType(RecipeException.class,
                () -> Recipe.defaults().withOverrides(Map.of("calibration.samples", "lots")));
        assertThat(bad.source()).isEqualTo("command-line overrides [calibration.samples=lots]");
        assertThat(bad.keyPath()).isEqualTo("calibration.samples");
        assertThat(bad).hasMessageContaining("expected an integer, got 'lots'");
        RecipeException quant = catchThrowableOfType(RecipeException.class,
                () -> Recipe.defaults().withOverrides(Map.of("prune.quantization", "int4-g")));
        assertThat(quant.keyPath()).isEqualTo("prune.quantization");
        assertThat(quant).hasMessageContaining("cannot parse quantization 'int4-g'");
    }

    @Test
    void missingAndUnreadableFilesAreTyped() throws IOException {
        Path missing = tmp.resolve("nope.yaml");
        RecipeException e = catchThrowableOfType(RecipeException.class, () -> Recipe.read(missing));
        assertThat(e.source()).isEqualTo(missing.toString());
        assertThat(e).hasMessageContaining("no such recipe file").hasMessageContaining("conf/recipes/");
        Path file = tmp.resolve("typo.yaml");
        Files.writeString(file, "prune:\n  bloc_size: 64\n");
        RecipeException t = catchThrowableOfType(RecipeException.class, () -> Recipe.read(file));
        assertThat(t).hasMessage(file + ": prune.bloc_size: unknown key (did you mean block_size?); allowed keys here: "
                + "method, pattern, targets, ignore, dampening, block_size, mask_scope, quantization, pipeline, format, sparse_codec");
    }
}
