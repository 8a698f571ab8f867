package io.sparkprune.kernels;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class GridMathTest {

    @Test
    void asymmetricGridMatchesHandComputedGptqValues() {
        float[] x = {-1f, 0.5f, 2f};
        float[] g = new float[2];
        GridMath.fit(x, 0, 3, 1, 4, false, g, 0);
        // xmin = -1, xmax = 2, scale = 3/15, zero = round(1 / 0.2) = 5
        assertThat(g[0]).isEqualTo(3f / 15f);
        assertThat(g[1]).isEqualTo(5f);
        // 0.5 / 0.2 = 2.5 rounds half to even -> 2, level 7
        assertThat(GridMath.level(0.5f, g[0], g[1], 15)).isEqualTo(7f);
        assertThat(GridMath.level(2f, g[0], g[1], 15)).isEqualTo(15f);
        assertThat(GridMath.level(3f, g[0], g[1], 15)).isEqualTo(15f); // clamped
        assertThat(GridMath.level(-7f, g[0], g[1], 15)).isEqualTo(0f);  // clamped
        assertThat(GridMath.level(0f, g[0], g[1], 15)).isEqualTo(5f);
        assertThat(GridMath.value(5f, g[0], g[1])).isEqualTo(0f);
    }

    @Test
    void gridAlwaysContainsZeroEvenForAllPositiveValues() {
        float[] x = {0.3f, 0.7f, 1.9f};
        float[] g = new float[2];
        GridMath.fit(x, 0, 3, 1, 4, false, g, 0);
        assertThat(g[1]).isEqualTo(0f); // xmin clamps to 0
        assertThat(GridMath.value(GridMath.level(0f, g[0], g[1], 15), g[0], g[1])).isEqualTo(0f);
    }

    @Test
    void symmetricGridUsesAbsMaxAndMidZero() {
        float[] x = {-1f, 0.5f};
        float[] g = new float[2];
        GridMath.fit(x, 0, 2, 1, 4, true, g, 0);
        assertThat(g[0]).isEqualTo(2f / 15f);
        assertThat(g[1]).isEqualTo(8f);
        // fp32 2/15 is slightly above 2/15, so -1 / scale = -7.4999996 -> -7 -> level 1
        assertThat(GridMath.level(-1f, g[0], g[1], 15)).isEqualTo(1f);
        assertThat(GridMath.level(0.5f, g[0], g[1], 15)).isEqualTo(12f); // 3.75 -> 4
    }

    @Test
    void symmetricTwoBitGridRoundsHalfToEven() {
        float[] x = {-1.5f, 0.5f};
        float[] g = new float[2];
        GridMath.fit(x, 0, 2, 1, 2, true, g, 0);
        assertThat(g[0]).isEqualTo(1f); // 2 * 1.5 / 3, exact
        assertThat(g[1]).isEqualTo(2f);
        assertThat(GridMath.level(-1.5f, g[0], g[1], 3)).isEqualTo(0f); // -1.5 -> -2
        assertThat(GridMath.level(0.5f, g[0], g[1], 3)).isEqualTo(2f);  // 0.5 -> 0
        assertThat(GridMath.level(1.5f, g[0], g[1], 3)).isEqualTo(3f);  // 2 + 2 clamped to 3
    }

    @Test
    void allZeroValuesGetUnitRange() {
        float[] g = new float[2];
        GridMath.fit(new float[4], 0, 4, 1, 8, false, g, 0);
        assertThat(g[0]).isEqualTo(2f / 255f);
        assertThat(g[1]).isEqualTo((float) Math.rint(1f / (2f / 255f)));
    }

    @Test
    void stridedFitReadsEveryStrideElement() {
        float[] x = {5f, -100f, -1f, -100f, 1f};
        float[] g = new float[4];
        GridMath.fit(x, 0, 3, 2, 2, false, g, 2);
        assertThat(g[2]).isEqualTo(6f / 3f);
    }

    @Test
    void bitsOutsideTwoToEightAreRejected() {
        assertThatThrownBy(() -> GridMath.maxq(1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> GridMath.maxq(9)).isInstanceOf(IllegalArgumentException.class);
        assertThat(GridMath.maxq(8)).isEqualTo(255);
    }
}
