package io.sparkprune.calibration;

import java.util.SplittableRandom;

/** Small, independent (naive, fp64) helpers for assertions in tests. */
public final class TestMath {
    private TestMath() {
    }

    /** @return {@code ‖a - b‖_F / ‖b‖_F} in fp64 */
    public static double relFrobenius(float[] a, float[] b) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - b[i];
            num += d * d;
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }

    /** @return fraction of positions where a and b agree on being exactly zero */
    public static double zeroAgreement(float[] a, float[] b) {
        long same = 0;
        for (int i = 0; i < a.length; i++) {
            if ((a[i] == 0f) == (b[i] == 0f)) {
                same++;
            }
        }
        return (double) same / a.length;
    }

    /** @return {@code δ_r · A · δ_rᵀ} for every row r of δ ({@code rows × n}), A {@code n × n} fp64 */
    public static double[] rowQuadraticForms(double[] delta, int rows, int n, double[] a) {
        double[] out = new double[rows];
        double[] t = new double[n];
        for (int r = 0; r < rows; r++) {
            java.util.Arrays.fill(t, 0);
            for (int i = 0; i < n; i++) {
                double di = delta[r * n + i];
                if (di != 0) {
                    for (int j = 0; j < n; j++) {
                        t[j] += di * a[i * n + j];
                    }
                }
            }
            double s = 0;
            for (int j = 0; j < n; j++) {
                s += t[j] * delta[r * n + j];
            }
            out[r] = s;
        }
        return out;
    }

    /** @return {@code ‖(W - Ŵ) Xᵀ‖_F²} for X {@code tokens × n}, i.e. the layer's output error */
    public static double outputError(float[] w, float[] what, int rows, int n, float[] x, int tokens) {
        double s = 0;
        double[] d = new double[n];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < n; j++) {
                d[j] = (double) w[r * n + j] - what[r * n + j];
            }
            for (int t = 0; t < tokens; t++) {
                double y = 0;
                for (int j = 0; j < n; j++) {
                    y += d[j] * x[t * n + j];
                }
                s += y * y;
            }
        }
        return s;
    }

    /** @return {@code tr((W - Ŵ) H (W - Ŵ)ᵀ)} for H {@code n × n} fp32 */
    public static double hessianError(float[] w, float[] what, int rows, int n, float[] h) {
        double[] delta = new double[rows * n];
        for (int i = 0; i < delta.length; i++) {
            delta[i] = (double) w[i] - what[i];
        }
        double[] hd = new double[n * n];
        for (int i = 0; i < hd.length; i++) {
            hd[i] = h[i];
        }
        double s = 0;
        for (double v : rowQuadraticForms(delta, rows, n, hd)) {
            s += v;
        }
        return s;
    }

    /**
     * Activations with LLM-like structure: a few shared latent directions (correlated features),
     * per-feature scales spread over two orders of magnitude, and a handful of outlier features.
     *
     * @return {@code tokens × n} row-major fp32
     */
    public static float[] correlatedActivations(SplittableRandom r, int tokens, int n) {
        int latent = Math.max(2, n / 8);
        double[] mix = new double[latent * n];
        for (int i = 0; i < mix.length; i++) {
            mix[i] = r.nextGaussian();
        }
        double[] scale = new double[n];
        for (int j = 0; j < n; j++) {
            scale[j] = Math.exp(r.nextGaussian() * 0.8) * (r.nextInt(50) == 0 ? 20 : 1);
        }
        float[] x = new float[tokens * n];
        double[] z = new double[latent];
        for (int t = 0; t < tokens; t++) {
            for (int l = 0; l < latent; l++) {
                z[l] = r.nextGaussian();
            }
            for (int j = 0; j < n; j++) {
                double v = 0.3 * r.nextGaussian();
                for (int l = 0; l < latent; l++) {
                    v += z[l] * mix[l * n + j] / Math.sqrt(latent);
                }
                x[t * n + j] = (float) (v * scale[j]);
            }
        }
        return x;
    }

    /** @return Gaussian weights with per-row scales */
    public static float[] randomWeights(SplittableRandom r, int rows, int cols) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < rows; i++) {
            double s = 0.02 * Math.exp(r.nextGaussian() * 0.3);
            for (int j = 0; j < cols; j++) {
                w[i * cols + j] = (float) (r.nextGaussian() * s);
            }
        }
        return w;
    }

    /** @return {@code (2/tokens) XᵀX} as fp64 {@code n × n}, computed naively */
    public static double[] naiveHessian(float[] x, int tokens, int n) {
        double[] h = new double[n * n];
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < n; i++) {
                double xi = x[t * n + i];
                for (int j = 0; j < n; j++) {
                    h[i * n + j] += xi * x[t * n + j];
                }
            }
        }
        for (int i = 0; i < h.length; i++) {
            h[i] *= 2.0 / tokens;
        }
        return h;
    }
}
