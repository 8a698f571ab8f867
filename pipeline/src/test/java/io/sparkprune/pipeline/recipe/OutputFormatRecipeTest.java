package io.sparkprune.pipeline.recipe;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.pipeline.formats.sparse.PayloadCodec;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Recipe keys {@code prune.format} / {@code --format} and {@code prune.sparse_codec} /
 * {@code --sparse-codec}: parsing, the defaults, and the typed errors.
 */
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

    @Test
    void sparseCodecIsNoneByDefaultDeflateOnRequestAndOnlyWithTheSparseFormat() {
        assertThat(RecipeKeys.CLI_FLAGS).containsEntry("--sparse-codec", "prune.sparse_codec");
        assertThat(Recipe.defaults().prune().sparseCodec()).isEqualTo(PayloadCodec.NONE);
        Recipe r = Recipe.defaults().withOverrides(Map.of("prune.format", "sparse", "prune.sparse_codec", "Deflate"));
        assertThat(r.prune().sparseCodec()).isEqualTo(PayloadCodec.DEFLATE);
        assertThat(r.toYaml()).contains("sparse_codec: \"deflate\"");
        assertThat(Recipe.parse(r.toYaml(), "x")).isEqualTo(r);
        Recipe y = Recipe.parse("prune:\n  format: [hf, sparse]\n  sparse_codec: deflate\n", "y.yaml");
        assertThat(y.prune().sparseCodec()).isEqualTo(PayloadCodec.DEFLATE);
        assertThat(y.prune().withFormats(List.of(OutputFormat.HF)).sparseCodec()).isEqualTo(PayloadCodec.NONE);
        assertThatThrownBy(() -> Recipe.parse("prune:\n  sparse_codec: deflate\n", "r.yaml"))
                .isInstanceOf(RecipeException.class).hasMessageContaining("r.yaml")
                .hasMessageContaining("prune.sparse_codec").hasMessageContaining("--format sparse");
        assertThatThrownBy(() -> Recipe.parse("prune:\n  format: sparse\n  sparse_codec: zstd\n", "r.yaml"))
                .isInstanceOf(RecipeException.class).hasMessageContaining("sparse_codec")
                .hasMessageContaining("unknown sparse payload codec 'zstd'").hasMessageContaining("none or deflate");
    }
}
