package io.sparkprune.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import org.junit.jupiter.api.Test;

/**
 * {@link Erf} against reference values computed here independently, in {@code BigDecimal} with 130
 * significant digits: the Maclaurin series {@code erf(x) = (2/√π) Σ (-1)ⁿ x^{2n+1} / (n! (2n+1))}
 * (Abramowitz &amp; Stegun 7.1.5), summed until terms fall below 1e-125, with π from Machin's
 * formula {@code π = 16 atan(1/5) - 4 atan(1/239)}. The series' cancellation (terms up to about
 * e^{x²}) costs at most 35 digits for |x| ≤ 9, so the reference is exact to far below double
 * precision, also for {@code erfc = 1 - erf} in the tail.
 */
class ErfTest {
    private static final MathContext MC = new MathContext(130, RoundingMode.HALF_EVEN);
    private static final BigDecimal TWO_OVER_SQRT_PI = BigDecimal.valueOf(2).divide(pi().sqrt(MC), MC);

    private static BigDecimal atanInv(int n) {
        BigDecimal x = BigDecimal.ONE.divide(BigDecimal.valueOf(n), MC);
        BigDecimal x2 = x.multiply(x, MC);
        BigDecimal term = x;
        BigDecimal sum = BigDecimal.ZERO;
        BigDecimal eps = new BigDecimal("1e-128");
        for (int k = 0; term.abs().compareTo(eps) > 0; k++) {
            BigDecimal t = term.divide(BigDecimal.valueOf(2L * k + 1), MC);
            sum = (k % 2 == 0) ? sum.add(t, MC) : sum.subtract(t, MC);
            term = term.multiply(x2, MC);
        }
        return sum;
    }

    private static BigDecimal pi() {
        return atanInv(5).multiply(BigDecimal.valueOf(16), MC).subtract(atanInv(239).multiply(BigDecimal.valueOf(4), MC), MC);
    }

    /** erf(x) by the Maclaurin series, 130 digits. */
    static BigDecimal erfRef(double xd) {
        return erfRef(new BigDecimal(xd));
    }

    /** erf(x) by the Maclaurin series, 130 digits. */
    static BigDecimal erfRef(BigDecimal x) {
        BigDecimal x2 = x.multiply(x, MC);
        BigDecimal power = x;        // x^{2n+1}
        BigDecimal fact = BigDecimal.ONE; // n!
        BigDecimal sum = BigDecimal.ZERO;
        BigDecimal eps = new BigDecimal("1e-125");
        for (int n = 0; ; n++) {
            if (n > 0) {
                power = power.multiply(x2, MC);
                fact = fact.multiply(BigDecimal.valueOf(n), MC);
            }
            BigDecimal term = power.divide(fact.multiply(BigDecimal.valueOf(2L * n + 1), MC), MC);
            sum = (n % 2 == 0) ? sum.add(term, MC) : sum.subtract(term, MC);
            if (n > 10 && term.abs().compareTo(eps) < 0) {
                break;
            }
        }
        return sum.multiply(TWO_OVER_SQRT_PI, MC);
    }

    private static double[] grid() {
        java.util.List<Double> xs = new java.util.ArrayList<>();
        for (double x = -6.0; x <= 6.0; x += 0.0371) {
            xs.add(x);
        }
        // interval edges of Cody's approximations, and tiny arguments
        for (double x : new double[] {0.46875, Math.nextUp(0.46875), 4.0, Math.nextUp(4.0), 1e-300, 1e-17, 1e-10,
            -1e-5, 0.1, 0.5, 1.0, 2.0, 3.5, 5.0, 7.5, 8.9, 26.0}) {
            xs.add(x);
            xs.add(-x);
        }
        return xs.stream().mapToDouble(Double::doubleValue).toArray();
    }

    @Test
    void erfMatchesSeriesToAFewUlps() {
        double worst = 0;
        for (double x : grid()) {
            if (Math.abs(x) > 9) {
                continue;
            }
            double ref = erfRef(x).doubleValue();
            double got = Erf.erf(x);
            double ulps = Math.abs(got - ref) / Math.ulp(ref);
            worst = Math.max(worst, ulps);
            assertThat(ulps).as("erf(%s) = %s, reference %s", x, got, ref).isLessThanOrEqualTo(4.0);
        }
        assertThat(worst).isLessThanOrEqualTo(4.0);
    }

    @Test
    void erfcMatchesSeriesInTheTail() {
        for (double x : grid()) {
            if (Math.abs(x) > 9) {
                continue;
            }
            double ref = BigDecimal.ONE.subtract(erfRef(x), MC).doubleValue();
            double got = Erf.erfc(x);
            double rel = Math.abs(got - ref) / ref;
            assertThat(rel).as("erfc(%s) = %s, reference %s", x, got, ref).isLessThanOrEqualTo(2e-15);
        }
    }

    @Test
    void specialValues() {
        assertThat(Erf.erf(0.0)).isEqualTo(0.0);
        assertThat(1.0 / Erf.erf(-0.0)).isEqualTo(Double.NEGATIVE_INFINITY);
        assertThat(Erf.erf(Double.POSITIVE_INFINITY)).isEqualTo(1.0);
        assertThat(Erf.erf(Double.NEGATIVE_INFINITY)).isEqualTo(-1.0);
        assertThat(Erf.erf(30.0)).isEqualTo(1.0);
        assertThat(Erf.erfc(30.0)).isEqualTo(0.0);
        assertThat(Erf.erfc(-30.0)).isEqualTo(2.0);
        assertThat(Erf.erf(Double.NaN)).isNaN();
        assertThat(Erf.erfc(Double.NaN)).isNaN();
    }

    @Test
    void geluMatchesDefinition() {
        BigDecimal half = new BigDecimal("0.5");
        BigDecimal invSqrt2 = BigDecimal.ONE.divide(BigDecimal.valueOf(2).sqrt(MC), MC);
        for (double x = -8.0; x <= 8.0; x += 0.173) {
            BigDecimal arg = new BigDecimal(x).multiply(invSqrt2, MC);
            // reference: 0.5 x (1 + erf(x/√2)), all in 130 digits
            BigDecimal ref = half.multiply(new BigDecimal(x), MC).multiply(BigDecimal.ONE.add(erfRef(arg), MC), MC);
            double got = Erf.gelu(x);
            // the argument x/√2 is rounded to double inside gelu: relative sensitivity ≈ x² times its rounding error (≤ 1 ulp)
            double tol = (4 + 2 * x * x) * Math.ulp(Math.abs(ref.doubleValue()));
            assertThat(Math.abs(got - ref.doubleValue())).as("gelu(%s) = %s, reference %s", x, got, ref.doubleValue())
                    .isLessThanOrEqualTo(tol);
        }
    }
}
