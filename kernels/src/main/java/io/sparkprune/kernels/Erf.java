package io.sparkprune.kernels;

/**
 * The error function and its complement in double precision, for the exact (erf) form of GELU.
 * Java's {@link Math} has no erf.
 *
 * <p>Source: W. J. Cody, "Rational Chebyshev approximations for the error function",
 * Mathematics of Computation 23 (1969), pp. 631–637, as implemented in Cody's SPECFUN routine
 * {@code CALERF} (netlib {@code specfun/erf}): three rational approximations, on
 * {@code |x| ≤ 0.46875} (erf), {@code 0.46875 < |x| ≤ 4} (erfc·e^{x²}) and {@code |x| > 4}
 * (asymptotic erfc·e^{x²}·x), with the coefficients of CALERF's double-precision tables, and
 * CALERF's split {@code e^{-x²} = e^{-y²}·e^{-(x-y)(x+y)}} with {@code y = trunc(16x)/16}, which
 * avoids the rounding error of squaring x. Cody gives a maximal relative error below 1e-16 for the
 * approximations themselves; with double rounding the result is within a few ulps (the tests check
 * 2e-16 absolute against series evaluated in {@code BigDecimal}). The often-quoted
 * Abramowitz–Stegun 7.1.26 formula (error 1.5e-7) is not accurate enough for fp32 parity and is
 * not used.
 *
 * <p>Special values: {@code erf(±0) = ±0}, {@code erf(±∞) = ±1}, {@code erf(NaN) = NaN}.
 */
public final class Erf {
    /** 1/√π. */
    private static final double SQRPI = 5.6418958354775628695e-1;
    private static final double THRESH = 0.46875;
    /** Below this, x² underflows to nothing that matters: erf(x) = x·(2/√π) to double precision. */
    private static final double XSMALL = 1.11e-16;
    /** erfc(x) underflows (to 0) for x ≥ XBIG. */
    private static final double XBIG = 26.543;

    private static final double[] A = {3.16112374387056560e00, 1.13864154151050156e02,
        3.77485237685302021e02, 3.20937758913846947e03, 1.85777706184603153e-1};
    private static final double[] B = {2.36012909523441209e01, 2.44024637934444173e02,
        1.28261652607737228e03, 2.84423683343917062e03};
    private static final double[] C = {5.64188496988670089e-1, 8.88314979438837594e00,
        6.61191906371416295e01, 2.98635138197400131e02, 8.81952221241769090e02,
        1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
        2.15311535474403846e-8};
    private static final double[] D = {1.57449261107098347e01, 1.17693950891312499e02,
        5.37181101862009858e02, 1.62138957456669019e03, 3.29079923573345963e03,
        4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03};
    private static final double[] P = {3.05326634961232344e-1, 3.60344899949804439e-1,
        1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4,
        1.63153871373020978e-2};
    private static final double[] Q = {2.56852019228982242e00, 1.87295284992346047e00,
        5.27905102951428412e-1, 6.05183413124413191e-2, 2.33520497626869185e-3};

    private Erf() {
    }

    /**
     * The error function {@code erf(x) = (2/√π) ∫₀ˣ e^{-t²} dt}.
     *
     * @param x argument
     * @return erf(x) in [-1, 1]
     */
    public static double erf(double x) {
        double y = Math.abs(x);
        if (Double.isNaN(x)) {
            return x;
        }
        if (y <= THRESH) {
            return x * small(y);
        }
        double r = y <= 4.0 ? mid(y) : large(y);
        r = (0.5 - r) + 0.5;
        return x < 0 ? -r : r;
    }

    /**
     * The complementary error function {@code erfc(x) = 1 - erf(x)}, accurate also where erf(x)
     * is close to 1.
     *
     * @param x argument
     * @return erfc(x) in [0, 2]
     */
    public static double erfc(double x) {
        double y = Math.abs(x);
        if (Double.isNaN(x)) {
            return x;
        }
        if (y <= THRESH) {
            return 1.0 - x * small(y);
        }
        double r = y <= 4.0 ? mid(y) : large(y);
        return x < 0 ? 2.0 - r : r;
    }

    /**
     * The Gaussian error linear unit in its exact form (Hendrycks &amp; Gimpel 2016, arXiv 1606.08415,
     * §2): {@code GELU(x) = x·Φ(x) = 0.5·x·(1 + erf(x/√2))}, as {@code torch.nn.functional.gelu}
     * with {@code approximate='none'} and BERT's {@code "gelu"} activation. Evaluated as
     * {@code 0.5·x·erfc(-x/√2)}, which equals the above and keeps full relative accuracy for very
     * negative x, where {@code 1 + erf} cancels.
     *
     * @param x argument
     * @return GELU(x)
     */
    public static double gelu(double x) {
        return 0.5 * x * erfc(-x * 0.70710678118654752440);
    }

    /** erf(y)/y for 0 ≤ y ≤ 0.46875. */
    private static double small(double y) {
        double ysq = y > XSMALL ? y * y : 0.0;
        double xnum = A[4] * ysq;
        double xden = ysq;
        for (int i = 0; i < 3; i++) {
            xnum = (xnum + A[i]) * ysq;
            xden = (xden + B[i]) * ysq;
        }
        return (xnum + A[3]) / (xden + B[3]);
    }

    /** erfc(y) for 0.46875 &lt; y ≤ 4. */
    private static double mid(double y) {
        double xnum = C[8] * y;
        double xden = y;
        for (int i = 0; i < 7; i++) {
            xnum = (xnum + C[i]) * y;
            xden = (xden + D[i]) * y;
        }
        double r = (xnum + C[7]) / (xden + D[7]);
        return expMinusSquare(y) * r;
    }

    /** erfc(y) for y &gt; 4. */
    private static double large(double y) {
        if (y >= XBIG) {
            return 0.0;
        }
        double ysq = 1.0 / (y * y);
        double xnum = P[5] * ysq;
        double xden = ysq;
        for (int i = 0; i < 4; i++) {
            xnum = (xnum + P[i]) * ysq;
            xden = (xden + Q[i]) * ysq;
        }
        double r = ysq * (xnum + P[4]) / (xden + Q[4]);
        r = (SQRPI - r) / y;
        return expMinusSquare(y) * r;
    }

    /** e^{-y²}, split as in CALERF to avoid the rounding error of y². */
    private static double expMinusSquare(double y) {
        double ysq = Math.floor(y * 16.0) / 16.0;
        double del = (y - ysq) * (y + ysq);
        return Math.exp(-ysq * ysq) * Math.exp(-del);
    }
}
