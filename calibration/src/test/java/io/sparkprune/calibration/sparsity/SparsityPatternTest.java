package io.sparkprune.calibration.sparsity;

import io.sparkprune.calibration.SparsityPatternException;
import io.sparkprune.kernels.InvalidInputException;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SparsityPatternTest {

    @Test
    void parsesTheThreeForms() {
        assertThat(SparsityPattern.parse("2:4")).isEqualTo(new SparsityPattern.NofM(2, 4));
        assertThat(SparsityPattern.parse(" 4 : 8 ")).isEqualTo(new SparsityPattern.NofM(4, 8));
        assertThat(SparsityPattern.parse("Unstructured:0.5")).isEqualTo(new SparsityPattern.Unstructured(0.5));
        assertThat(SparsityPattern.parse("block:16x32:0.25")).isEqualTo(new SparsityPattern.Block(16, 32, 0.25));
        assertThat(SparsityPattern.parse("2:4").sparsity()).isEqualTo(0.5);
        assertThat(SparsityPattern.parse("1:4").sparsity()).isEqualTo(0.75);
    }

    @Test
    void specRoundTrips() {
        for (String s : new String[] {"2:4", "4:8", "unstructured:0.5", "unstructured:0.7", "block:16x16:0.5", "block:1x8:0.125"}) {
            assertThat(SparsityPattern.parse(s).spec()).isEqualTo(s);
            assertThat(SparsityPattern.parse(SparsityPattern.parse(s).spec())).isEqualTo(SparsityPattern.parse(s));
        }
    }

    @Test
    void badTextIsATypedErrorListingTheAcceptedForms() {
        for (String s : new String[] {"foo", "2-4", "block:16:0.5", "", "unstructured:abc"}) {
            assertThatThrownBy(() -> SparsityPattern.parse(s)).as(s).isInstanceOf(SparsityPatternException.class)
                    .isInstanceOf(InvalidInputException.class).hasMessageContaining("accepted forms");
        }
        assertThatThrownBy(() -> SparsityPattern.parse("4:2")).isInstanceOf(SparsityPatternException.class)
                .hasMessageContaining("1 <= N < M, got 4:2");
        assertThatThrownBy(() -> SparsityPattern.parse("0:4")).isInstanceOf(SparsityPatternException.class);
        assertThatThrownBy(() -> SparsityPattern.parse("unstructured:1.0")).isInstanceOf(SparsityPatternException.class)
                .hasMessageContaining("[0, 1), got 1.0");
        assertThatThrownBy(() -> SparsityPattern.parse("block:0x4:0.5")).isInstanceOf(SparsityPatternException.class)
                .hasMessageContaining("positive tile sides");
        assertThatThrownBy(() -> SparsityPattern.parse(null)).isInstanceOf(SparsityPatternException.class);
    }

    @Test
    void shapeChecksNameTheTensor() {
        assertThatThrownBy(() -> SparsityPattern.parse("2:4").checkShape("model.layers.3.mlp.down_proj", 4096, 1030, 128))
                .hasMessageStartingWith("2:4 pruning needs in_features divisible by 4, got 1030 for model.layers.3.mlp.down_proj");
        assertThatThrownBy(() -> SparsityPattern.parse("2:3").checkShape("t", 4, 300, 128))
                .hasMessageContaining("block size divisible by 3, got 128 for t");
        SparsityPattern.parse("unstructured:0.5").checkShape("t", 3, 7, 128);
        SparsityPattern.parse("block:4x16:0.5").checkShape("t", 8, 64, 128);
    }
}
