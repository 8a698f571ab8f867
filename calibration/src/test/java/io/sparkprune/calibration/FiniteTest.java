package io.sparkprune.calibration;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The branch-free finiteness scan against the per-element definition, at every position and offset. */
class FiniteTest {

    @Test
    void allFiniteAgreesWithThePerElementTest() {
        SplittableRandom r = new SplittableRandom(9);
        float[] specials = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0x7fc12345)};
        for (int len = 0; len <= 37; len++) {
            float[] a = new float[len + 5];
            for (int i = 0; i < a.length; i++) {
                // large finite values too: v - v must stay 0 even at Float.MAX_VALUE
                a[i] = r.nextBoolean() ? (float) r.nextGaussian() : (r.nextBoolean() ? Float.MAX_VALUE : -Float.MIN_VALUE);
            }
            int off = r.nextInt(5);
            assertThat(Finite.allFinite(a, off, len)).as("len %d", len).isTrue();
            for (int bad = 0; bad < len; bad++) {
                for (float s : specials) {
                    float keep = a[off + bad];
                    a[off + bad] = s;
                    assertThat(Finite.allFinite(a, off, len)).as("len %d bad %d value %s", len, bad, s).isFalse();
                    a[off + bad] = keep;
                }
            }
            if (off > 0) {
                a[off - 1] = Float.NaN; // outside the window: ignored
                assertThat(Finite.allFinite(a, off, len)).isTrue();
            }
        }
    }

    @Test
    void checkNamesTheFirstBadElement() {
        float[] a = new float[12];
        a[7] = Float.POSITIVE_INFINITY;
        a[9] = Float.NaN;
        assertThatThrownBy(() -> Finite.check("weight w", a, 4, "fix it")).isInstanceOf(NumericsException.class)
                .hasMessageContaining("Infinity at [1, 3]");
    }

    @Test
    void doubleScanAgreesWithThePerElementTest() {
        SplittableRandom r = new SplittableRandom(10);
        double[] specials = {Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY};
        for (int len = 0; len <= 21; len++) {
            double[] a = new double[len + 3];
            for (int i = 0; i < a.length; i++) {
                a[i] = r.nextBoolean() ? r.nextGaussian() : (r.nextBoolean() ? Double.MAX_VALUE : -Double.MIN_VALUE);
            }
            int off = r.nextInt(3);
            assertThat(Finite.allFinite(a, off, len)).as("len %d", len).isTrue();
            for (int bad = 0; bad < len; bad++) {
                for (double s : specials) {
                    double keep = a[off + bad];
                    a[off + bad] = s;
                    assertThat(Finite.allFinite(a, off, len)).as("len %d bad %d value %s", len, bad, s).isFalse();
                    a[off + bad] = keep;
                }
            }
        }
    }

    @Test
    void checksOfLargeArraysScanSlicesInParallelAndStillNameTheFirstBadElement() {
        int n = 3 * (1 << 20) + 17; // several slices of the parallel scan
        float[] f = new float[n];
        double[] d = new double[n];
        Finite.check("f", f, 1000, "fix");
        Finite.check("d", d, 1000, "fix");
        f[n - 1] = Float.NaN;
        f[2_500_001] = Float.NEGATIVE_INFINITY;
        d[n - 2] = Double.POSITIVE_INFINITY;
        d[1_048_577] = Double.NaN;
        assertThatThrownBy(() -> Finite.check("f", f, 1000, "fix")).isInstanceOf(NumericsException.class)
                .hasMessageContaining("-Infinity at [2500, 1]");
        assertThatThrownBy(() -> Finite.check("d", d, 1000, "fix")).isInstanceOf(NumericsException.class)
                .hasMessageContaining("NaN at [1048, 577]");
    }
}
