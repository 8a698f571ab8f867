package io.sparkprune.kernels.cpu;

import io.sparkprune.kernels.Erf;

/** Plain-Java {@link ForwardLoops}: one element at a time, {@link Math#exp} and {@link Erf}. */
final class ScalarForwardLoops extends ForwardLoops {

    @Override
    String name() {
        return "scalar";
    }

    @Override
    void gelu(float[] x, int off, int n) {
        for (int i = off; i < off + n; i++) {
            x[i] = (float) Erf.gelu(x[i]);
        }
    }

    @Override
    void siluMul(float[] g, int gOff, float[] u, int uOff, float[] y, int yOff, int n) {
        for (int i = 0; i < n; i++) {
            double a = g[gOff + i];
            float silu = (float) (a / (1.0 + Math.exp(-a)));
            y[yOff + i] = silu * u[uOff + i];
        }
    }

    @Override
    void scores(int rows, int nk, int hd, float scale, float[] q, int qOff, int ldq, float[] kt, float[] s) {
        java.util.Arrays.fill(s, 0, rows * nk, 0f);
        for (int i = 0; i < rows; i++) {
            int qi = qOff + i * ldq;
            int si = i * nk;
            for (int d = 0; d < hd; d++) {
                float a = scale * q[qi + d];
                int kd = d * nk;
                for (int j = 0; j < nk; j++) {
                    s[si + j] = Math.fma(a, kt[kd + j], s[si + j]);
                }
            }
        }
    }

    @Override
    void weightedSum(int rows, int hd, int nk, float[] p, float[] v, int vOff, int ldv, float[] o, int oOff, int ldo) {
        for (int i = 0; i < rows; i++) {
            int oi = oOff + i * ldo;
            java.util.Arrays.fill(o, oi, oi + hd, 0f);
            for (int j = 0; j < nk; j++) {
                float a = p[i * nk + j];
                int vj = vOff + j * ldv;
                for (int d = 0; d < hd; d++) {
                    o[oi + d] = Math.fma(a, v[vj + d], o[oi + d]);
                }
            }
        }
    }

    @Override
    double expShift(float[] s, int off, int n, float max) {
        double sum = 0.0;
        for (int i = off; i < off + n; i++) {
            float e = (float) Math.exp(s[i] - max);
            s[i] = e;
            sum += e;
        }
        return sum;
    }
}
