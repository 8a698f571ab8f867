package io.sparkprune.kernels.cpu;

import io.sparkprune.kernels.Erf;

/** Plain-Java {@link Elementwise}: one element at a time, {@link Math#exp} and {@link Erf}. */
final class ScalarElementwise extends Elementwise {

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
