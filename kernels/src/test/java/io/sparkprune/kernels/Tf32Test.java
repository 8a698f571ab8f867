package io.sparkprune.kernels;

import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@link Tf32#round} against hand-worked bit patterns at every edge (ties, carries, overflow,
 * subnormals, specials) and against an exact decimal reference on random floats.
 */
class Tf32Test {
    private static final long SEED = new Random().nextLong();

    private static int r(int bits) {
        return Tf32.roundBits(bits);
    }

    @Test
    void tf32ValuesAreUnchanged() {
        assertThat(r(0x3f800000)).isEqualTo(0x3f800000);          // 1
        assertThat(r(0x3f802000)).isEqualTo(0x3f802000);          // 1 + 2^-10
        assertThat(r(0xbfffe000)).isEqualTo(0xbfffe000);          // -(2 - 2^-10)
        assertThat(Tf32.round(0.75f)).isEqualTo(0.75f);
    }

    @Test
    void tiesGoAwayFromZeroNotToEven() {
        // 1 + 2^-11 is halfway between 1 (even) and 1 + 2^-10: round-to-nearest-even would give 1
        assertThat(r(0x3f801000)).isEqualTo(0x3f802000);
        assertThat(r(0xbf801000)).isEqualTo(0xbf802000);          // negative: away from zero, larger magnitude
        assertThat(r(0x3f803000)).isEqualTo(0x3f804000);          // tie above an odd value
        assertThat(r(0x3f800fff)).isEqualTo(0x3f800000);          // just below the tie: down
        assertThat(r(0x3f801001)).isEqualTo(0x3f802000);          // just above: up
        assertThat(r(0xbf800fff)).isEqualTo(0xbf800000);
    }

    @Test
    void carryRunsIntoTheExponent() {
        assertThat(r(0x3ffff000)).isEqualTo(0x40000000);          // (2 - 2^-11) ties up to 2
        assertThat(Tf32.round(Math.nextDown(2f))).isEqualTo(2f);
        assertThat(Tf32.round(-Math.nextDown(2f))).isEqualTo(-2f);
        assertThat(r(0x3fffefff)).isEqualTo(0x3fffe000);          // below the tie stays in the binade
    }

    @Test
    void largestFiniteValuesRoundToInfinityOnlyPastTheMidpoint() {
        assertThat(r(0x7f7fe000)).isEqualTo(0x7f7fe000);          // largest finite TF32
        assertThat(r(0x7f7fefff)).isEqualTo(0x7f7fe000);
        assertThat(Tf32.round(Float.MAX_VALUE)).isEqualTo(Float.POSITIVE_INFINITY);
        assertThat(Tf32.round(-Float.MAX_VALUE)).isEqualTo(Float.NEGATIVE_INFINITY);
        assertThat(r(0x7f7ff000)).isEqualTo(0x7f800000);          // the midpoint ties away: infinity
    }

    @Test
    void subnormalsAreRoundedToTenMantissaBits() {
        assertThat(Tf32.round(Float.MIN_VALUE)).isEqualTo(0f);    // 2^-149 → +0
        assertThat(Float.floatToRawIntBits(Tf32.round(-Float.MIN_VALUE))).isEqualTo(0x80000000); // → -0
        assertThat(r(0x00000fff)).isEqualTo(0);
        assertThat(r(0x00001000)).isEqualTo(0x00002000);          // tie → 2^-136, the smallest TF32 subnormal
        assertThat(r(0x80001000)).isEqualTo(0x80002000);
        assertThat(r(0x00123456)).isEqualTo(0x00124000);
        assertThat(r(0x007fffff)).isEqualTo(0x00800000);          // largest subnormal carries to MIN_NORMAL
    }

    @Test
    void zerosInfinitiesAndNanAreUntouched() {
        assertThat(Float.floatToRawIntBits(Tf32.round(0f))).isEqualTo(0);
        assertThat(Float.floatToRawIntBits(Tf32.round(-0f))).isEqualTo(0x80000000);
        assertThat(Tf32.round(Float.POSITIVE_INFINITY)).isEqualTo(Float.POSITIVE_INFINITY);
        assertThat(Tf32.round(Float.NEGATIVE_INFINITY)).isEqualTo(Float.NEGATIVE_INFINITY);
        assertThat(r(0x7fc00000)).isEqualTo(0x7fc00000);
        assertThat(r(0x7f800001)).isEqualTo(0x7f800001);          // payload only in the dropped bits: still NaN
        assertThat(r(0xffc01fff)).isEqualTo(0xffc01fff);
        assertThat(Float.isNaN(Tf32.round(Float.NaN))).isTrue();
    }

    @Test
    void randomFloatsMatchAnExactDecimalReference() {
        SplittableRandom rnd = new SplittableRandom(SEED);
        for (int trial = 0; trial < 50_000; trial++) {
            int bits = rnd.nextInt();
            if ((bits & 0x7f800000) == 0x7f800000) {
                continue;
            }
            float x = Float.intBitsToFloat(bits);
            int got = r(bits);
            assertThat(got & 0x1fff).as("bits %08x seed=%d", bits, SEED).isZero();
            assertThat(Float.floatToRawIntBits(reference(x))).as("bits %08x seed=%d", bits, SEED).isEqualTo(got);
        }
    }

    /**
     * Independent reference: the TF32 grid spacing of |x| is 2^(e-10) for a normal binade [2^e, 2^(e+1))
     * (2^-136 for subnormals); pick the nearer grid neighbour in exact decimal arithmetic, ties away from zero.
     */
    private static float reference(float x) {
        if (x == 0f) {
            return x;
        }
        double a = Math.abs((double) x);
        int e = Math.max(Math.getExponent(x), Float.MIN_EXPONENT);
        BigDecimal ulp = new BigDecimal(Math.scalb(1.0, e - 10));
        BigDecimal v = new BigDecimal(a);
        BigDecimal[] qr = v.divideAndRemainder(ulp);
        BigDecimal down = qr[0].multiply(ulp);
        BigDecimal up = down.add(ulp);
        int cmp = v.subtract(down).compareTo(up.subtract(v));
        BigDecimal pick = cmp < 0 ? down : up;
        double mag = pick.doubleValue();
        float f = mag >= 0x1p128 ? Float.POSITIVE_INFINITY : (float) mag;
        return x < 0 ? -f : f;
    }
}
