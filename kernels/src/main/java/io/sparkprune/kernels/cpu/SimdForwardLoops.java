package io.sparkprune.kernels.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link ForwardLoops} on the JDK Vector API ({@code jdk.incubator.vector}); loaded only when the
 * module is present.
 *
 * <p><b>One species per element type.</b> Only {@code FloatVector.SPECIES_PREFERRED} and
 * {@code DoubleVector.SPECIES_PREFERRED} are used, the species of {@link SimdMicrokernels}: a
 * third species (e.g. the half-width float vectors a float→double {@code convertShape} needs)
 * pollutes the type profiles of the Vector API's shared methods, and C2 then compiles the sgemm
 * microkernel with boxed vectors, ten times slower, for the rest of the JVM's life. So fp32 ↔ fp64
 * conversions go through a per-thread fp64 scratch array with plain loops (which C2 vectorises on
 * its own), and the transcendental work runs on fp64 vectors over that scratch.
 *
 * <p>GELU evaluates the three rational approximations of W. J. Cody's CALERF (Math. Comp. 23
 * (1969) 631–637; coefficients as in {@link io.sparkprune.kernels.Erf}) in short passes (one fused
 * expression would exceed C2's inlining budget, {@code NodeCountInliningCutoff}, and box the
 * vectors); unlike {@code Erf} it computes {@code e^{-y²}} as one exponential of the fp64 square
 * (relative error ≤ y²·2⁻⁵³ ≤ 8e-14, invisible after rounding to fp32). Vector {@code EXP} is Intel
 * SVML's (≤ 1 ulp of fp64); elements past the last full vector use {@code Math.exp}.
 */
final class SimdForwardLoops extends ForwardLoops {
    private static final VectorSpecies<Double> DS = DoubleVector.SPECIES_PREFERRED;
    private static final int VL = DS.length();
    /** fp32 lanes of the attention products. */
    private static final VectorSpecies<Float> FV = FloatVector.SPECIES_PREFERRED;
    /** Elements per pass over the fp64 scratch. */
    private static final int CHUNK = 512;

    private static final double INV_SQRT2 = 0.70710678118654752440;
    private static final double SQRPI = 5.6418958354775628695e-1;
    /** erfc(y) = 0 in fp64 from here on (CALERF's XBIG). */
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

    /** Per-thread fp64 scratch: 3 × {@value #CHUNK}. */
    private final ThreadLocal<double[]> scratch = ThreadLocal.withInitial(() -> new double[3 * CHUNK]);

    @Override
    String name() {
        return "simd" + DS.vectorBitSize();
    }

    /** {@code e[i] ← exp(e[i])} for {@code i < len}, vectors then {@code Math.exp}. */
    private static void expInPlace(double[] e, int from, int len) {
        int i = 0;
        for (; i + VL <= len; i += VL) {
            DoubleVector.fromArray(DS, e, from + i).lanewise(VectorOperators.EXP).intoArray(e, from + i);
        }
        for (; i < len; i++) {
            e[from + i] = Math.exp(e[from + i]);
        }
    }

    // ------------------------------------------------------------------ GELU

    /**
     * GELU in chunks: scratch a = x/√2 (slot 0) and -a² (slot 2); e^{-a²} in place; the mid-range
     * rational into slot 1; the large-argument one where |a| &gt; 4; then erfc(-a) with the
     * small-range rational into slot 1; finally {@code x ← fp32(0.5·x·erfc(-a))}.
     */
    @Override
    void gelu(float[] x, int off, int n) {
        double[] buf = scratch.get();
        for (int c0 = 0; c0 < n; c0 += CHUNK) {
            int len = Math.min(CHUNK, n - c0);
            int base = off + c0;
            for (int i = 0; i < len; i++) {
                double a = x[base + i] * INV_SQRT2;
                buf[i] = a;
                buf[2 * CHUNK + i] = -(a * a);
            }
            expInPlace(buf, 2 * CHUNK, len);
            int vecEnd = len - len % VL;
            passMid(vecEnd, buf);
            passLarge(vecEnd, buf);
            passCombine(vecEnd, buf);
            for (int i = vecEnd; i < len; i++) {
                buf[CHUNK + i] = io.sparkprune.kernels.Erf.erfc(-buf[i]);
            }
            for (int i = 0; i < len; i++) {
                x[base + i] = (float) (0.5 * x[base + i] * buf[CHUNK + i]);
            }
        }
    }

    /** slot 1 = erfc(|a|) by the mid-range rational, e^{-a²}·R(|a|) (CALERF, 0.46875 &lt; y ≤ 4). */
    private static void passMid(int len, double[] buf) {
        for (int i = 0; i < len; i += VL) {
            DoubleVector y = DoubleVector.fromArray(DS, buf, i).abs();
            DoubleVector cn = y.mul(C[8]).add(C[0]).mul(y).add(C[1]).mul(y).add(C[2]).mul(y).add(C[3]).mul(y)
                    .add(C[4]).mul(y).add(C[5]).mul(y).add(C[6]).mul(y).add(C[7]);
            DoubleVector dd = y.add(D[0]).mul(y).add(D[1]).mul(y).add(D[2]).mul(y).add(D[3]).mul(y)
                    .add(D[4]).mul(y).add(D[5]).mul(y).add(D[6]).mul(y).add(D[7]);
            DoubleVector.fromArray(DS, buf, 2 * CHUNK + i).mul(cn).div(dd).intoArray(buf, CHUNK + i);
        }
    }

    /** Where y = |a| &gt; 4: slot 1 = e^{-y²}·(1/√π - w·P(w)/Q(w))/y, w = 1/y²; 0 from XBIG on. */
    private static void passLarge(int len, double[] buf) {
        for (int i = 0; i < len; i += VL) {
            DoubleVector y = DoubleVector.fromArray(DS, buf, i).abs();
            VectorMask<Double> big = y.compare(VectorOperators.GT, 4.0);
            if (!big.anyTrue()) {
                continue;
            }
            DoubleVector w = DoubleVector.broadcast(DS, 1.0).div(y.mul(y));
            DoubleVector qn = w.mul(P[5]).add(P[0]).mul(w).add(P[1]).mul(w).add(P[2]).mul(w).add(P[3]).mul(w).add(P[4]);
            DoubleVector qd = w.add(Q[0]).mul(w).add(Q[1]).mul(w).add(Q[2]).mul(w).add(Q[3]).mul(w).add(Q[4]);
            DoubleVector t = w.mul(qn).div(qd).neg().add(SQRPI);
            DoubleVector large = DoubleVector.fromArray(DS, buf, 2 * CHUNK + i).mul(t).div(y)
                    .blend(0.0, y.compare(VectorOperators.GE, XBIG));
            DoubleVector.fromArray(DS, buf, CHUNK + i).blend(large, big).intoArray(buf, CHUNK + i);
        }
    }

    /** slot 1 = erfc(-a): 2 - erfc(a) for a &gt; 0, erfc(|a|) for a &lt; 0, 1 + a·P(a²)/Q(a²) for |a| ≤ 0.46875. */
    private static void passCombine(int len, double[] buf) {
        for (int i = 0; i < len; i += VL) {
            DoubleVector a = DoubleVector.fromArray(DS, buf, i);
            DoubleVector r = DoubleVector.fromArray(DS, buf, CHUNK + i);
            DoubleVector erfcNeg = r.blend(r.neg().add(2.0), a.compare(VectorOperators.GT, 0.0));
            DoubleVector z = a.mul(a);
            DoubleVector pn = z.mul(A[4]).add(A[0]).mul(z).add(A[1]).mul(z).add(A[2]).mul(z).add(A[3]);
            DoubleVector pd = z.add(B[0]).mul(z).add(B[1]).mul(z).add(B[2]).mul(z).add(B[3]);
            DoubleVector small = a.mul(pn).div(pd).add(1.0);
            erfcNeg.blend(small, a.abs().compare(VectorOperators.LE, 0.46875)).intoArray(buf, CHUNK + i);
        }
    }

    // ------------------------------------------------------------------ SiLU, softmax numerator

    @Override
    void siluMul(float[] g, int gOff, float[] u, int uOff, float[] y, int yOff, int n) {
        double[] buf = scratch.get();
        for (int c0 = 0; c0 < n; c0 += CHUNK) {
            int len = Math.min(CHUNK, n - c0);
            for (int i = 0; i < len; i++) {
                buf[i] = -(double) g[gOff + c0 + i];
            }
            expInPlace(buf, 0, len);
            for (int i = 0; i < len; i++) {
                double a = g[gOff + c0 + i];
                float silu = (float) (a / (1.0 + buf[i]));
                y[yOff + c0 + i] = silu * u[uOff + c0 + i];
            }
        }
    }

    @Override
    double expShift(float[] s, int off, int n, float max) {
        double[] buf = scratch.get();
        double sum = 0.0;
        for (int c0 = 0; c0 < n; c0 += CHUNK) {
            int len = Math.min(CHUNK, n - c0);
            for (int i = 0; i < len; i++) {
                buf[i] = s[off + c0 + i] - max;
            }
            expInPlace(buf, 0, len);
            for (int i = 0; i < len; i++) {
                float e = (float) buf[i];
                s[off + c0 + i] = e;
                sum += e;
            }
        }
        return sum;
    }

    // ------------------------------------------------------------------ attention products

    @Override
    void scores(int rows, int nk, int hd, float scale, float[] q, int qOff, int ldq, float[] kt, float[] s) {
        final int fl = FV.length();
        final int vecEnd = nk - nk % fl;
        java.util.Arrays.fill(s, 0, rows * nk, 0f);
        for (int i = 0; i < rows; i++) {
            int qi = qOff + i * ldq;
            int si = i * nk;
            int j = 0;
            for (; j + 4 * fl <= vecEnd; j += 4 * fl) {
                FloatVector a0 = FloatVector.zero(FV);
                FloatVector a1 = FloatVector.zero(FV);
                FloatVector a2 = FloatVector.zero(FV);
                FloatVector a3 = FloatVector.zero(FV);
                for (int d = 0; d < hd; d++) {
                    FloatVector qd = FloatVector.broadcast(FV, scale * q[qi + d]);
                    int k0 = d * nk + j;
                    a0 = FloatVector.fromArray(FV, kt, k0).fma(qd, a0);
                    a1 = FloatVector.fromArray(FV, kt, k0 + fl).fma(qd, a1);
                    a2 = FloatVector.fromArray(FV, kt, k0 + 2 * fl).fma(qd, a2);
                    a3 = FloatVector.fromArray(FV, kt, k0 + 3 * fl).fma(qd, a3);
                }
                a0.intoArray(s, si + j);
                a1.intoArray(s, si + j + fl);
                a2.intoArray(s, si + j + 2 * fl);
                a3.intoArray(s, si + j + 3 * fl);
            }
            for (; j < vecEnd; j += fl) {
                FloatVector acc = FloatVector.zero(FV);
                for (int d = 0; d < hd; d++) {
                    acc = FloatVector.fromArray(FV, kt, d * nk + j).fma(FloatVector.broadcast(FV, scale * q[qi + d]), acc);
                }
                acc.intoArray(s, si + j);
            }
            for (int d = 0; d < hd; d++) {
                float a = scale * q[qi + d];
                int kd = d * nk;
                for (int t = vecEnd; t < nk; t++) {
                    s[si + t] = Math.fma(a, kt[kd + t], s[si + t]);
                }
            }
        }
    }

    @Override
    void weightedSum(int rows, int hd, int nk, float[] p, float[] v, int vOff, int ldv, float[] o, int oOff, int ldo) {
        final int fl = FV.length();
        final int vecEnd = hd - hd % fl;
        for (int i = 0; i < rows; i++) {
            int oi = oOff + i * ldo;
            int pi = i * nk;
            int d = 0;
            for (; d + 4 * fl <= vecEnd; d += 4 * fl) {
                FloatVector a0 = FloatVector.zero(FV);
                FloatVector a1 = FloatVector.zero(FV);
                FloatVector a2 = FloatVector.zero(FV);
                FloatVector a3 = FloatVector.zero(FV);
                for (int j = 0; j < nk; j++) {
                    FloatVector pj = FloatVector.broadcast(FV, p[pi + j]);
                    int v0 = vOff + j * ldv + d;
                    a0 = FloatVector.fromArray(FV, v, v0).fma(pj, a0);
                    a1 = FloatVector.fromArray(FV, v, v0 + fl).fma(pj, a1);
                    a2 = FloatVector.fromArray(FV, v, v0 + 2 * fl).fma(pj, a2);
                    a3 = FloatVector.fromArray(FV, v, v0 + 3 * fl).fma(pj, a3);
                }
                a0.intoArray(o, oi + d);
                a1.intoArray(o, oi + d + fl);
                a2.intoArray(o, oi + d + 2 * fl);
                a3.intoArray(o, oi + d + 3 * fl);
            }
            for (; d < vecEnd; d += fl) {
                FloatVector acc = FloatVector.zero(FV);
                for (int j = 0; j < nk; j++) {
                    acc = FloatVector.fromArray(FV, v, vOff + j * ldv + d).fma(FloatVector.broadcast(FV, p[pi + j]), acc);
                }
                acc.intoArray(o, oi + d);
            }
            for (d = vecEnd; d < hd; d++) {
                float acc = 0f;
                for (int j = 0; j < nk; j++) {
                    acc = Math.fma(p[pi + j], v[vOff + j * ldv + d], acc);
                }
                o[oi + d] = acc;
            }
        }
    }

}
