package io.sparkprune.pipeline.recipe;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Recipe key {@code prune.format} / {@code --format}: parsing, the auto default, and the typed errors. */
class OutputFormatRecipeTest {

    @Test
    void autoIsHfUnquantizedAndCompressedTensorsForInt4() {
        Recipe plain = Recipe.defaults();
        assertThat(plain.prune().formats()).isEmpty();
        assertThat(plain.prune().outputFormats()).containsExactly(OutputFormat.HF);
        Recipe q = plain.withOverrides(Map.of("prune.quantization", "int4-g128"));
        assertThat(q.prune().outputFormats()).containsExactly(OutputFormat.COMPRESSED_TENSORS);
        Recipe q3 = plain.withOverrides(Map.of("prune.quantization", "int3"));
        assertThat(q3.prune().outputFormats()).containsExactly(OutputFormat.HF);
    }

    @Test
    void cliFlagAndYamlListGiveTheFormatsInOrderAndRoundTrip() {
        assertThat(RecipeKeys.CLI_FLAGS).containsEntry("--format", "prune.format");
        Recipe r = Recipe.defaults().withOverrides(Map.of("prune.format", "sparse, HF"));
        assertThat(r.prune().formats()).containsExactly(OutputFormat.SPARSE, OutputFormat.HF);
        assertThat(Recipe.parse(r.toYaml(), "x")).isEqualTo(r);
        Recipe y = Recipe.parse("prune:\n  quantization: int8\n  format: [compressed-tensors, sparse]\n", "y.yaml");
        assertThat(y.prune().outputFormats()).containsExactly(OutputFormat.COMPRESSED_TENSORS, OutputFormat.SPARSE);
        assertThat(Recipe.parse("prune:\n  format: auto\n", "z").prune().formats()).isEmpty();
    }

    @Test
    void compressedTensorsWithoutQuantizationIsATypedErrorWithTheFix() {
        assertThatThrownBy(() -> Recipe.defaults().withOverrides(Map.of("prune.format", "compressed-tensors")))
                .isInstanceOf(RecipeException.class)
                .hasMessageContaining("prune.format").hasMessageContaining("does not quantize")
                .hasMessageContaining("--quant int4-g128");
        assertThatThrownBy(() -> Recipe.parse("prune:\n  quantization: int3\n  format: compressed-tensors\n", "r.yaml"))
                .isInstanceOf(RecipeException.class).hasMessageContaining("r.yaml").hasMessageContaining("4- or 8-bit");
        assertThatThrownBy(() -> Recipe.parse("prune:\n  format: onnx\n", "r.yaml"))
                .isInstanceOf(RecipeException.class).hasMessageContaining("unknown format 'onnx'")
                .hasMessageContaining("hf, sparse, compressed-tensors");
        assertThatThrownBy(() -> Recipe.parse("prune:\n  format: hf,hf\n", "r.yaml"))
                .isInstanceOf(RecipeException.class).hasMessageContaining("twice");
        assertThat(OutputFormat.parseList("hf,sparse")).isEqualTo(List.of(OutputFormat.HF, OutputFormat.SPARSE));
    }
}
