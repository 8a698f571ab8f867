package io.sparkprune.kernels.cpu;

/**
 * Plain-Java microkernels: one row of C at a time, four rank-1 updates fused per pass over the row
 * so that C is loaded and stored once per four products; the inner loop is a straight
 * {@code Math.fma} over contiguous arrays, which C2 vectorises.
 */
final class ScalarMicrokernels extends Microkernels {

    @Override
    String name() {
        return "scalar";
    }

    @Override
    void gemmF(int m, int n, int k, float alpha, float[] a, int aOff, int lda,
               float[] b, int bOff, int ldb, float[] c, int cOff, int ldc) {
        for (int i = 0; i < m; i++) {
            int ai = aOff + i * lda;
            int ci = cOff + i * ldc;
            int l = 0;
            for (; l + 4 <= k; l += 4) {
                float s0 = alpha * a[ai + l];
                float s1 = alpha * a[ai + l + 1];
                float s2 = alpha * a[ai + l + 2];
                float s3 = alpha * a[ai + l + 3];
                int b0 = bOff + l * ldb;
                int b1 = b0 + ldb;
                int b2 = b1 + ldb;
                int b3 = b2 + ldb;
                for (int j = 0; j < n; j++) {
                    c[ci + j] = Math.fma(s3, b[b3 + j], Math.fma(s2, b[b2 + j],
                            Math.fma(s1, b[b1 + j], Math.fma(s0, b[b0 + j], c[ci + j]))));
                }
            }
            for (; l < k; l++) {
                float s = alpha * a[ai + l];
                int bl = bOff + l * ldb;
                for (int j = 0; j < n; j++) {
                    c[ci + j] = Math.fma(s, b[bl + j], c[ci + j]);
                }
            }
        }
    }

    @Override
    void gemmD(int m, int n, int k, double alpha, double[] a, int aOff, int lda,
               double[] b, int bOff, int ldb, double[] c, int cOff, int ldc) {
        for (int i = 0; i < m; i++) {
            int ai = aOff + i * lda;
            int ci = cOff + i * ldc;
            int l = 0;
            for (; l + 4 <= k; l += 4) {
                double s0 = alpha * a[ai + l];
                double s1 = alpha * a[ai + l + 1];
                double s2 = alpha * a[ai + l + 2];
                double s3 = alpha * a[ai + l + 3];
                int b0 = bOff + l * ldb;
                int b1 = b0 + ldb;
                int b2 = b1 + ldb;
                int b3 = b2 + ldb;
                for (int j = 0; j < n; j++) {
                    c[ci + j] = Math.fma(s3, b[b3 + j], Math.fma(s2, b[b2 + j],
                            Math.fma(s1, b[b1 + j], Math.fma(s0, b[b0 + j], c[ci + j]))));
                }
            }
            for (; l < k; l++) {
                double s = alpha * a[ai + l];
                int bl = bOff + l * ldb;
                for (int j = 0; j < n; j++) {
                    c[ci + j] = Math.fma(s, b[bl + j], c[ci + j]);
                }
            }
        }
    }

    @Override
    void subScaled(int n, float e, float[] x, int xOff, float[] y, int yOff) {
        for (int j = 0; j < n; j++) {
            y[yOff + j] -= e * x[xOff + j];
        }
    }
}
