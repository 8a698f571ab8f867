package io.sparkprune.pipeline.report;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.pipeline.recipe.GatesSpec;
import io.sparkprune.pipeline.recipe.Recipe;
import java.util.List;
import java.util.Map;
import java.util.OptionalDouble;
import org.junit.jupiter.api.Test;

/** Gate decisions against values computed here from the same synthetic report. */
class QualityGatesTest {

    private static GatesSpec gates(String yaml) {
        return Recipe.parse("gates:\n" + yaml, "test").gates();
    }

    private static double maxError(JsonNode r) {
        double m = 0;
        for (JsonNode t : r.get("tensors")) {
            m = Math.max(m, t.get("relative_reconstruction_error").asDouble());
        }
        return m;
    }

    @Test
    void layerErrorGateComparesTheWorstTensor() {
        ObjectNode r = Reports.encoder(3, 1);
        double worst = maxError(r);
        List<QualityGates.GateResult> pass = QualityGates.apply(r, gates("  max_layer_error: " + (worst + 1e-9) + "\n"));
        assertThat(pass).singleElement().satisfies(g -> {
            assertThat(g.value()).isEqualTo(worst);
            assertThat(g.passed()).isTrue();
        });
        assertThat(r.get("passed").asBoolean()).isTrue();
        QualityGates.apply(r, gates("  max_layer_error: " + (worst - 1e-9) + "\n"));
        assertThat(r.get("passed").asBoolean()).isFalse();
        assertThat(r.at("/gates/0/name").asText()).isEqualTo("max_layer_error");
        assertThat(r.at("/gates/0/passed").asBoolean()).isFalse();
        assertThat(r.at("/gates/0/limit").asDouble()).isEqualTo(worst - 1e-9);
    }

    @Test
    void cosineGateUsesTheMeanAndFailsBelowTheLimit() {
        ObjectNode r = Reports.encoder(1, 2);
        assertThat(QualityGates.evaluate(gates("  min_embedding_cosine: 0.91\n"), r).get(0).passed()).isTrue();
        assertThat(QualityGates.evaluate(gates("  min_embedding_cosine: 0.92\n"), r).get(0).passed()).isFalse();
    }

    @Test
    void aGateThatCannotBeMeasuredFails() {
        ObjectNode r = Reports.encoder(1, 3);
        QualityGates.GateResult g = QualityGates.evaluate(gates("  max_perplexity_increase: 15%\n"), r).get(0);
        assertThat(g.passed()).isFalse();
        assertThat(g.value()).isNull();
        assertThat(g.detail()).contains("not measured").contains("embedding_cosine");
        ObjectNode q = r.putObject("quality");
        q.put("metric", "embedding_cosine");
        q.put("error", "too few sentences");
        assertThat(QualityGates.evaluate(gates("  min_embedding_cosine: 0.5\n"), r).get(0).detail())
                .contains("too few sentences");
    }

    @Test
    void perplexityGateIsRelative() {
        ObjectNode r = Reports.encoder(1, 4);
        ObjectNode q = r.putObject("quality");
        q.put("perplexity_dense", 20.0);
        q.put("perplexity_pruned", 23.0);
        q.put("perplexity_increase", 23.0 / 20.0 - 1);
        assertThat(QualityGates.evaluate(gates("  max_perplexity_increase: 16%\n"), r).get(0).passed()).isTrue();
        assertThat(QualityGates.evaluate(gates("  max_perplexity_increase: 0.14\n"), r).get(0).passed()).isFalse();
    }

    @Test
    void noGatesPassAndNaNFails() {
        ObjectNode r = Reports.encoder(1, 5);
        assertThat(QualityGates.apply(r, GatesSpec.NONE)).isEmpty();
        assertThat(r.get("passed").asBoolean()).isTrue();
        assertThat(r.get("gates")).isEmpty();
        ((ObjectNode) r.get("tensors").get(2)).put("relative_reconstruction_error", Double.NaN);
        QualityGates.apply(r, new GatesSpec(OptionalDouble.empty(), OptionalDouble.empty(), OptionalDouble.of(10)));
        assertThat(r.get("passed").asBoolean()).isFalse();
        assertThat(Map.of("d", r.at("/gates/0/detail").asText())).containsValue(r.at("/tensors/2/tensor").asText()
                + " has a NaN error");
    }
}
