package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.Erf;

/**
 * Naive fp64 reference pieces for the block tests, written from the papers' formulas with plain
 * loops (no backend, no tiling): matrices are row-major double arrays.
 */
final class Naive {
    private Naive() {
    }

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    /** Y = X·Wᵀ + b; X rows × in, W out × in. */
    static double[] linear(double[] x, int rows, int in, float[] w, float[] b, int out) {
        double[] y = new double[rows * out];
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < out; o++) {
                double s = b == null ? 0 : b[o];
                for (int i = 0; i < in; i++) {
                    s += x[r * in + i] * w[o * in + i];
                }
                y[r * out + o] = s;
            }
        }
        return y;
    }

    static double[] rmsNorm(double[] x, int rows, int cols, float[] w, double eps) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double ms = 0;
            for (int c = 0; c < cols; c++) {
                ms += x[r * cols + c] * x[r * cols + c];
            }
            double inv = 1 / Math.sqrt(ms / cols + eps);
            for (int c = 0; c < cols; c++) {
                y[r * cols + c] = w[c] * x[r * cols + c] * inv;
            }
        }
        return y;
    }

    static double[] layerNorm(double[] x, int rows, int cols, float[] g, float[] b, double eps) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double m = 0;
            for (int c = 0; c < cols; c++) {
                m += x[r * cols + c];
            }
            m /= cols;
            double v = 0;
            for (int c = 0; c < cols; c++) {
                v += (x[r * cols + c] - m) * (x[r * cols + c] - m);
            }
            v /= cols;
            for (int c = 0; c < cols; c++) {
                y[r * cols + c] = (x[r * cols + c] - m) / Math.sqrt(v + eps) * g[c] + b[c];
            }
        }
        return y;
    }

    static double[] add(double[] a, double[] b) {
        double[] y = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            y[i] = a[i] + b[i];
        }
        return y;
    }

    static double silu(double x) {
        return x / (1 + Math.exp(-x));
    }

    static double gelu(double x) {
        return 0.5 * x * (1 + Erf.erf(x / Math.sqrt(2)));
    }

    /**
     * RoPE with rotate_half on rows × heads·hd, angle θ_i·p with θ_i = base^(-2i/hd), fp64, position
     * = index within its sequence.
     */
    static void rope(double[] x, SequenceLayout layout, int heads, int hd, double base) {
        int half = hd / 2;
        int[] pos = layout.positions();
        for (int t = 0; t < pos.length; t++) {
            for (int h = 0; h < heads; h++) {
                int o = t * heads * hd + h * hd;
                for (int i = 0; i < half; i++) {
                    double ang = pos[t] * Math.pow(base, -2.0 * i / hd);
                    double a = x[o + i];
                    double b = x[o + i + half];
                    x[o + i] = a * Math.cos(ang) - b * Math.sin(ang);
                    x[o + i + half] = b * Math.cos(ang) + a * Math.sin(ang);
                }
            }
        }
    }

    /** Softmax attention within each sequence; query head h reads KV head h / (heads / kvHeads). */
    static double[] attention(double[] q, double[] k, double[] v, SequenceLayout layout, int heads, int kvHeads, int hd,
                              boolean causal) {
        int group = heads / kvHeads;
        double[] out = new double[layout.tokens() * heads * hd];
        for (int s = 0; s < layout.sequences(); s++) {
            int b = layout.start(s);
            int n = layout.length(s);
            for (int h = 0; h < heads; h++) {
                int g = h / group;
                for (int i = 0; i < n; i++) {
                    int nk = causal ? i + 1 : n;
                    double[] p = new double[nk];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < nk; j++) {
                        double dot = 0;
                        for (int d = 0; d < hd; d++) {
                            dot += q[(b + i) * heads * hd + h * hd + d] * k[(b + j) * kvHeads * hd + g * hd + d];
                        }
                        p[j] = dot / Math.sqrt(hd);
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < nk; j++) {
                        p[j] = Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    for (int d = 0; d < hd; d++) {
                        double acc = 0;
                        for (int j = 0; j < nk; j++) {
                            acc += p[j] / sum * v[(b + j) * kvHeads * hd + g * hd + d];
                        }
                        out[(b + i) * heads * hd + h * hd + d] = acc;
                    }
                }
            }
        }
        return out;
    }

    /** max |a - b| / (1 + |b|). */
    static double maxRelDiff(float[] a, double[] b) {
        if (a.length != b.length) {
            throw new AssertionError("lengths " + a.length + " vs " + b.length);
        }
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
        }
        return m;
    }
}
