package io.sparkprune.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import java.math.BigDecimal;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Checks the hand-written half-precision conversions against independent references: exhaustive
 * enumeration of all 65,536 patterns, the IEEE 754 binary16 definition evaluated in BigDecimal,
 * and a brute-force nearest-value search with ties-to-even.
 */
class HalfFloatsTest {

    /** binary16 value by the IEEE 754 definition, computed exactly in BigDecimal. */
    private static BigDecimal f16ByDefinition(int h) {
        int exp = (h >>> 10) & 0x1f;
        int mant = h & 0x3ff;
        BigDecimal v = exp == 0
                ? new BigDecimal(mant).multiply(pow2(-24))
                : new BigDecimal(1024 + mant).multiply(pow2(exp - 25));
        return (h & 0x8000) != 0 ? v.negate() : v;
    }

    private static BigDecimal pow2(int e) {
        return e >= 0 ? new BigDecimal(2).pow(e) : BigDecimal.ONE.divide(new BigDecimal(2).pow(-e));
    }

    @Test
    void everyFiniteF16WidensToItsExactValue() {
        for (int h = 0; h < 0x10000; h++) {
            if (((h >>> 10) & 0x1f) == 0x1f) {
                continue;
            }
            float f = HalfFloats.f16ToFloat((short) h);
            assertThat(new BigDecimal(f).compareTo(f16ByDefinition(h))).as("f16 0x%04x", h).isZero();
            if (f == 0f) {
                assertThat(Float.floatToRawIntBits(f) >>> 31).isEqualTo(h >>> 15);
            }
        }
    }

    @Test
    void f16SpecialsAndRoundTripOfAllPatterns() {
        assertThat(HalfFloats.f16ToFloat((short) 0x7c00)).isEqualTo(Float.POSITIVE_INFINITY);
        assertThat(HalfFloats.f16ToFloat((short) 0xfc00)).isEqualTo(Float.NEGATIVE_INFINITY);
        assertThat(HalfFloats.f16ToFloat((short) 0x7e00)).isNaN();
        for (int h = 0; h < 0x10000; h++) {
            float f = HalfFloats.f16ToFloat((short) h);
            short back = HalfFloats.floatToF16(f);
            if (Float.isNaN(f)) {
                assertThat(HalfFloats.f16ToFloat(back)).isNaN();
            } else {
                assertThat(back & 0xffff).as("round trip of 0x%04x", h).isEqualTo(h);
            }
        }
    }

    @Test
    void everyBf16RoundTripsAndWidensExactly() {
        for (int h = 0; h < 0x10000; h++) {
            float f = HalfFloats.bf16ToFloat((short) h);
            assertThat(Float.floatToRawIntBits(f)).isEqualTo(h << 16);
            short back = HalfFloats.floatToBf16(f);
            if (Float.isNaN(f)) {
                assertThat(HalfFloats.bf16ToFloat(back)).isNaN();
            } else {
                assertThat(back & 0xffff).isEqualTo(h);
            }
        }
    }

    /**
     * Reference rounding: among all finite patterns of a 16-bit format, pick the nearest value to
     * x (in exact arithmetic); on a tie take the even pattern; beyond the largest finite value by
     * half an ulp or more, infinity.
     */
    private static int nearestByBruteForce(float x, boolean bf16, int[] sortedPositivePatterns, BigDecimal[] values,
                                           BigDecimal overflowAt) {
        BigDecimal ax = new BigDecimal(Math.abs(x));
        int sign = Float.floatToRawIntBits(x) < 0 ? 0x8000 : 0;
        if (ax.compareTo(overflowAt) >= 0) {
            return sign | (bf16 ? 0x7f80 : 0x7c00);
        }
        int lo = 0;
        int hi = values.length - 1;
        while (lo < hi) { // first value >= ax
            int mid = (lo + hi) >>> 1;
            if (values[mid].compareTo(ax) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        int best = lo;
        if (lo > 0) {
            int c = ax.subtract(values[lo - 1]).compareTo(values[lo].subtract(ax));
            if (c < 0 || (c == 0 && (sortedPositivePatterns[lo - 1] & 1) == 0)) {
                best = lo - 1;
            }
        }
        return sign | sortedPositivePatterns[best];
    }

    @Test
    void roundingMatchesBruteForceNearestEven() {
        for (boolean bf16 : new boolean[] {false, true}) {
            int maxFinite = bf16 ? 0x7f7f : 0x7bff;
            int[] patterns = new int[maxFinite + 1];
            BigDecimal[] values = new BigDecimal[maxFinite + 1];
            for (int h = 0; h <= maxFinite; h++) {
                patterns[h] = h;
                values[h] = bf16 ? new BigDecimal(HalfFloats.bf16ToFloat((short) h)) : f16ByDefinition(h);
            }
            // overflow threshold: max finite + half an ulp (ulp of the top binade)
            BigDecimal ulp = values[maxFinite].subtract(values[maxFinite - 1]);
            BigDecimal overflowAt = values[maxFinite].add(ulp.divide(new BigDecimal(2)));
            long seed = System.nanoTime();
            SplittableRandom rnd = new SplittableRandom(seed);
            for (int i = 0; i < 20_000; i++) {
                float x;
                switch (i % 4) {
                    case 0 -> x = Float.intBitsToFloat(rnd.nextInt()); // any pattern
                    case 1 -> { // exact ties: a representable value plus half an ulp (f16 normal range)
                        int h = rnd.nextInt(1, maxFinite);
                        float a = bf16 ? HalfFloats.bf16ToFloat((short) h) : HalfFloats.f16ToFloat((short) h);
                        float b = bf16 ? HalfFloats.bf16ToFloat((short) (h + 1)) : HalfFloats.f16ToFloat((short) (h + 1));
                        x = (float) (((double) a + (double) b) / 2);
                    }
                    case 2 -> x = (float) (rnd.nextDouble(-1, 1) * Math.pow(2, rnd.nextInt(-30, 20)));
                    default -> x = (float) rnd.nextDouble(-70000, 70000);
                }
                if (Float.isNaN(x) || Float.isInfinite(x)) {
                    continue;
                }
                int got = (bf16 ? HalfFloats.floatToBf16(x) : HalfFloats.floatToF16(x)) & 0xffff;
                int want = nearestByBruteForce(x, bf16, patterns, values, overflowAt);
                assertThat(got).as("%s of %s (bits 0x%08x), seed %d", bf16 ? "bf16" : "f16", x,
                        Float.floatToRawIntBits(x), seed).isEqualTo(want);
            }
        }
    }
}
