package io.sparkprune.pipeline.recipe;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.calibration.quant.QuantizationSpec;

import java.util.Optional;

import org.junit.jupiter.api.Test;

/** The compact quantization syntax of --quant. */
class RecipeQuantSyntaxTest {

    private static Optional<QuantizationSpec> parse(String s) {
        return QuantSyntax.parse(s, "--quant", "prune.quantization");
    }

    @Test
    void documentedExamples() {
        assertThat(parse("int4")).hasValue(new QuantizationSpec(4, false, 0));
        assertThat(parse("int4-g128")).hasValue(new QuantizationSpec(4, false, 128));
        assertThat(parse("int8")).hasValue(new QuantizationSpec(8, false, 0));
        assertThat(parse("int4-sym-g64")).hasValue(new QuantizationSpec(4, true, 64));
        assertThat(parse("int4-g64-sym")).hasValue(new QuantizationSpec(4, true, 64));
        assertThat(parse("int3-asym-g32")).hasValue(new QuantizationSpec(3, false, 32));
        assertThat(parse(" INT2-SYM ")).hasValue(new QuantizationSpec(2, true, 0));
        assertThat(parse("none")).isEmpty();
        assertThat(parse("None")).isEmpty();
    }

    @Test
    void formatIsCanonicalAndReadsBack() {
        for (int bits = 2; bits <= 8; bits++) {
            for (boolean sym : new boolean[] {false, true}) {
                for (int g : new int[] {0, 1, 32, 128, 4096}) {
                    Optional<QuantizationSpec> q = Optional.of(new QuantizationSpec(bits, sym, g));
                    String text = QuantSyntax.format(q);
                    assertThat(parse(text)).as(text).isEqualTo(q);
                }
            }
        }
        assertThat(QuantSyntax.format(Optional.of(new QuantizationSpec(4, false, 128)))).isEqualTo("int4-g128");
        assertThat(QuantSyntax.format(Optional.of(new QuantizationSpec(4, true, 64)))).isEqualTo("int4-sym-g64");
        assertThat(QuantSyntax.format(Optional.of(new QuantizationSpec(8, false, 0)))).isEqualTo("int8");
        assertThat(QuantSyntax.format(Optional.empty())).isEqualTo("none");
    }

    @Test
    void malformedFormsAreRejectedWithTheAcceptedOnes() {
        for (String bad : new String[] {"", "int", "int4g128", "int4-g", "fp8", "int4-sym-asym", "int4-g64-g128",
                "int4-sym-sym", "w4a16", "int4-", "int4-g-128"}) {
            assertThatThrownBy(() -> parse(bad)).as(bad).isInstanceOfSatisfying(RecipeException.class, e -> {
                assertThat(e.source()).isEqualTo("--quant");
                assertThat(e.keyPath()).isEqualTo("prune.quantization");
                assertThat(e.getMessage()).contains("'" + bad + "'");
            });
        }
        assertThatThrownBy(() -> parse("int9")).hasMessageContaining("bits must be 2..8, got 9");
        assertThatThrownBy(() -> parse("int4-g0")).hasMessageContaining("group size 0");
        assertThatThrownBy(() -> parse("fp8")).hasMessageContaining(QuantSyntax.ACCEPTED);
    }
}
