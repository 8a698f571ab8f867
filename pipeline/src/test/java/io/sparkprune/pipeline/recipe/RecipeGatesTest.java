package io.sparkprune.pipeline.recipe;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.OptionalDouble;
import org.junit.jupiter.api.Test;

/** The optional {@code gates} section: parsing, percentages, overrides from the CLI flags, errors, round trip. */
class RecipeGatesTest {

    @Test
    void gatesAreParsedFromNumbersAndPercentages() {
        Recipe r = Recipe.parse("gates:\n  max_perplexity_increase: 15%\n  min_embedding_cosine: 0.85\n"
                + "  max_layer_error: \"0.2\"\n", "g.yaml");
        assertThat(r.gates().maxPerplexityIncrease().getAsDouble()).isCloseTo(0.15, org.assertj.core.data.Offset.offset(1e-15));
        assertThat(r.gates().minEmbeddingCosine()).hasValue(0.85);
        assertThat(r.gates().maxLayerError()).hasValue(0.2);
        assertThat(Recipe.parse(r.toYaml(), "round trip")).isEqualTo(r);
        assertThat(r.withGates(GatesSpec.NONE)).isEqualTo(Recipe.defaults());
    }

    @Test
    void absentGatesAreNoneAndWrittenAsNull() {
        assertThat(Recipe.defaults().gates().isEmpty()).isTrue();
        assertThat(Recipe.parse("gates: {}\n", "e.yaml")).isEqualTo(Recipe.defaults());
        assertThat(Recipe.defaults().toYaml()).contains("gates:").contains("max_layer_error: null");
    }

    @Test
    void cliFlagsSetTheGates() {
        Map<String, String> viaFlags = new LinkedHashMap<>();
        Map.of("--max-perplexity-increase", "10%", "--min-embedding-cosine", "0.9", "--max-layer-error", "0.3")
                .forEach((flag, v) -> viaFlags.put(RecipeKeys.CLI_FLAGS.get(flag), v));
        GatesSpec g = Recipe.defaults().withOverrides(viaFlags).gates();
        assertThat(g).isEqualTo(new GatesSpec(OptionalDouble.of(0.1), OptionalDouble.of(0.9), OptionalDouble.of(0.3)));
    }

    @Test
    void badGatesAreRejectedWithTheKeyPath() {
        assertThatThrownBy(() -> Recipe.parse("gates:\n  max_layer_eror: 0.2\n", "b.yaml"))
                .isInstanceOfSatisfying(RecipeException.class, e -> {
                    assertThat(e.keyPath()).isEqualTo("gates.max_layer_eror");
                    assertThat(e).hasMessageContaining("did you mean max_layer_error?");
                });
        assertThatThrownBy(() -> Recipe.parse("gates:\n  min_embedding_cosine: 1.5\n", "b.yaml"))
                .isInstanceOfSatisfying(RecipeException.class, e -> {
                    assertThat(e.keyPath()).isEqualTo("gates.min_embedding_cosine");
                    assertThat(e.source()).isEqualTo("b.yaml");
                });
        assertThatThrownBy(() -> Recipe.parse("gates:\n  max_perplexity_increase: -5%\n", "b.yaml"))
                .isInstanceOf(RecipeException.class).hasMessageContaining("gates.max_perplexity_increase: must be ≥ 0");
        assertThatThrownBy(() -> Recipe.defaults().withOverrides(Map.of("gates.max_perplexity_increase", "lots%")))
                .isInstanceOf(RecipeException.class).hasMessageContaining("expected a number or a percentage");
    }
}
