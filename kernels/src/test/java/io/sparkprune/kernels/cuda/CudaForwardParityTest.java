package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.AttentionJob;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.HalfFloats;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static io.sparkprune.kernels.cuda.CudaBackendParityTest.relErr;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The forward-op kernels ({@code forward_ops.cuh}) and the tensor-core products ({@code gemm_tc.cuh})
 * of {@link CudaBackend} against {@link CpuBackend} on fresh random inputs (the seed is in every
 * message), with outputs poisoned (NaN) before each GPU call so that an unwritten element fails:
 * fp32 ops within 1e-5 relative (Frobenius) error, TF32 within 5e-4, bf16 operands within 1e-2
 * (against the fp32 product of the same bf16 values). Windows have offsets and padded row strides;
 * elements outside them must keep a sentinel. Skipped, with the reason, when no CUDA device is usable.
 */
@Tag("gpu")
class CudaForwardParityTest extends CudaSuite {
    private static final float SENTINEL = 12345.5f;

    private static void requireDevice() {
        device.require();
    }

    private static float[] randomF(SplittableRandom r, int n, double scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
        return x;
    }

    /** A window array: sentinel everywhere, random values inside rows x cols at (off, ld). */
    private static float[] window(SplittableRandom r, int off, int ld, int rows, int cols, double scale) {
        float[] a = new float[off + Math.max(0, rows - 1) * ld + cols + 3];
        Arrays.fill(a, SENTINEL);
        for (int i = 0; i < rows; i++) {
            for (int c = 0; c < cols; c++) {
                a[off + i * ld + c] = (float) ((r.nextDouble() * 2 - 1) * scale);
            }
        }
        return a;
    }

    /** Sets the window's elements to NaN (the GPU must overwrite every one). */
    private static float[] poison(float[] a, int off, int ld, int rows, int cols) {
        float[] p = a.clone();
        for (int i = 0; i < rows; i++) {
            Arrays.fill(p, off + i * ld, off + i * ld + cols, Float.NaN);
        }
        return p;
    }

    private static void assertClose(float[] got, float[] ref, double tol, String tag) {
        for (int i = 0; i < ref.length; i++) {
            if (Float.isNaN(got[i]) && !Float.isNaN(ref[i])) {
                throw new AssertionError(tag + ": element " + i + " not written (NaN), reference " + ref[i]);
            }
            if (ref[i] == SENTINEL) {
                assertThat(got[i]).as(tag + ": element " + i + " outside the window changed").isEqualTo(SENTINEL);
            }
        }
        assertThat(relErr(got, ref)).as(tag).isLessThanOrEqualTo(tol);
    }

    @Test
    void normsMatchCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED);
        for (int[] shape : new int[][] {{1, 1}, {3, 7}, {37, 300}, {129, 4096}, {600, 1000}}) {
            int rows = shape[0];
            int cols = shape[1];
            int off = r.nextInt(5);
            int ld = cols + r.nextInt(4);
            String tag = "norm " + rows + "x" + cols + " seed=" + SEED;
            float[] x = window(r, off, ld, rows, cols, 3);
            float[] w = randomF(r, cols + 2, 2);
            float[] b = randomF(r, cols + 2, 1);
            float[] ref = x.clone();
            cpu.rmsNorm(rows, cols, 1e-6f, x, off, ld, w, 1, ref, off, ld);
            float[] got = poison(x, off, ld, rows, cols);
            gpu.rmsNorm(rows, cols, 1e-6f, x, off, ld, w, 1, got, off, ld);
            assertClose(got, ref, 1e-5, "rmsNorm " + tag);
            float[] inPlace = x.clone();
            gpu.rmsNorm(rows, cols, 1e-6f, inPlace, off, ld, w, 1, inPlace, off, ld);
            assertClose(inPlace, ref, 1e-5, "rmsNorm in place " + tag);
            cpu.layerNorm(rows, cols, 1e-5f, x, off, ld, w, 2, b, 1, ref, off, ld);
            got = poison(x, off, ld, rows, cols);
            gpu.layerNorm(rows, cols, 1e-5f, x, off, ld, w, 2, b, 1, got, off, ld);
            assertClose(got, ref, 1e-5, "layerNorm " + tag);
        }
    }

    @Test
    void ropeMatchesCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        for (int[] shape : new int[][] {{1, 1, 2}, {37, 4, 64}, {300, 3, 128}, {65, 2, 80}}) {
            int rows = shape[0];
            int heads = shape[1];
            int hd = shape[2];
            int table = 400;
            int cols = heads * hd;
            int off = r.nextInt(4);
            int ld = cols + r.nextInt(3);
            float[] x = window(r, off, ld, rows, cols, 2);
            int[] pos = new int[rows + 1];
            for (int i = 0; i < pos.length; i++) {
                pos[i] = r.nextInt(table);
            }
            float[] cos = new float[table * hd / 2];
            float[] sin = new float[table * hd / 2];
            for (int i = 0; i < cos.length; i++) {
                double a = r.nextDouble() * 6.28;
                cos[i] = (float) Math.cos(a);
                sin[i] = (float) Math.sin(a);
            }
            float[] ref = x.clone();
            cpu.rope(rows, heads, hd, ref, off, ld, pos, 1, cos, sin, table);
            float[] got = x.clone();
            gpu.rope(rows, heads, hd, got, off, ld, pos, 1, cos, sin, table);
            assertClose(got, ref, 1e-5, "rope " + Arrays.toString(shape) + " seed=" + SEED);
        }
    }

    @Test
    void elementwiseOpsMatchCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        for (int[] shape : new int[][] {{1, 1}, {5, 33}, {300, 1000}, {2, 70000}}) {
            int rows = shape[0];
            int cols = shape[1];
            int off = r.nextInt(4);
            int ld = cols + r.nextInt(3);
            String tag = rows + "x" + cols + " seed=" + SEED;
            float[] g = window(r, off, ld, rows, cols, 8);
            float[] u = window(r, off, ld, rows, cols, 3);
            float[] ref = u.clone();
            cpu.siluMul(rows, cols, g, off, ld, u, off, ld, ref, off, ld);
            float[] got = poison(u, off, ld, rows, cols);
            gpu.siluMul(rows, cols, g, off, ld, u, off, ld, got, off, ld);
            assertClose(got, ref, 1e-5, "siluMul " + tag);
            float[] gInPlace = g.clone();
            gpu.siluMul(rows, cols, gInPlace, off, ld, u, off, ld, gInPlace, off, ld);
            assertClose(gInPlace, ref, 1e-5, "siluMul in place " + tag);

            ref = g.clone();
            cpu.gelu(rows, cols, ref, off, ld);
            got = g.clone();
            gpu.gelu(rows, cols, got, off, ld);
            assertClose(got, ref, 1e-5, "gelu " + tag);

            float[] v = randomF(r, cols + 3, 1);
            ref = u.clone();
            cpu.addRowVector(rows, cols, v, 3, ref, off, ld);
            got = u.clone();
            gpu.addRowVector(rows, cols, v, 3, got, off, ld);
            assertClose(got, ref, 1e-5, "addRowVector " + tag);

            ref = u.clone();
            cpu.add(rows, cols, g, off, ld, ref, off, ld);
            got = u.clone();
            gpu.add(rows, cols, g, off, ld, got, off, ld);
            assertClose(got, ref, 1e-5, "add " + tag);
        }
    }

    @Test
    void aLargeEmbeddingTableIsUploadedOnceAndGathersAsOnTheCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 4);
        int tableRows = 4200;
        int cols = 1024; // 17.2 MB: over CACHED_TABLE_BYTES
        float[] table = randomF(r, 5 + tableRows * cols, 1);
        assertThat(4L * table.length).isGreaterThanOrEqualTo(CudaBackend.CACHED_TABLE_BYTES);
        long afterFirst = 0;
        for (int call = 0; call < 3; call++) {
            int rows = 1 + r.nextInt(700);
            int[] ids = new int[rows];
            for (int i = 0; i < rows; i++) {
                ids[i] = r.nextInt(tableRows);
            }
            boolean acc = call == 2;
            float[] ref = randomF(r, rows * cols, 1);
            float[] got = acc ? ref.clone() : new float[rows * cols];
            cpu.embedding(rows, cols, ids, 0, table, 5, tableRows, ref, 0, cols, acc);
            gpu.embedding(rows, cols, ids, 0, table, 5, tableRows, got, 0, cols, acc);
            assertThat(got).as("call %d", call).containsExactly(ref);
            long held = gpu.cachedWeightBytes(); // (other tests' weights may be freed in between: it only shrinks)
            assertThat(held).as("the table's device copy is kept").isGreaterThanOrEqualTo(4L * table.length);
            if (call == 0) {
                afterFirst = held;
            } else {
                assertThat(held).as("no second copy of the table").isLessThanOrEqualTo(afterFirst);
            }
        }
    }

    @Test
    void embeddingMatchesCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        int tableRows = 1000;
        for (int cols : new int[] {1, 17, 768}) {
            int rows = 1 + r.nextInt(500);
            int[] ids = new int[rows + 2];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = r.nextInt(tableRows);
            }
            float[] table = randomF(r, 3 + tableRows * cols, 1);
            int ld = cols + 2;
            for (boolean acc : new boolean[] {false, true}) {
                float[] y = window(r, 1, ld, rows, cols, 1);
                float[] ref = y.clone();
                cpu.embedding(rows, cols, ids, 2, table, 3, tableRows, ref, 1, ld, acc);
                float[] got = acc ? y.clone() : poison(y, 1, ld, rows, cols);
                gpu.embedding(rows, cols, ids, 2, table, 3, tableRows, got, 1, ld, acc);
                assertClose(got, ref, 1e-5, "embedding cols=" + cols + " acc=" + acc + " seed=" + SEED);
            }
        }
    }

    @Test
    void logSoftmaxAndCrossEntropyMatchCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 4);
        for (int[] shape : new int[][] {{1, 1}, {7, 50}, {64, 32000}, {3, 151936}}) {
            int rows = shape[0];
            int cols = shape[1];
            int ld = cols + 1;
            String tag = rows + "x" + cols + " seed=" + SEED;
            float[] x = window(r, 2, ld, rows, cols, 10);
            float[] ref = x.clone();
            cpu.logSoftmax(rows, cols, ref, 2, ld);
            float[] got = x.clone();
            gpu.logSoftmax(rows, cols, got, 2, ld);
            assertClose(got, ref, 1e-5, "logSoftmax " + tag);
            int[] t = new int[rows + 1];
            for (int i = 0; i < t.length; i++) {
                t[i] = r.nextInt(cols);
            }
            double[] nr = new double[rows + 2];
            double[] ng = new double[rows + 2];
            Arrays.fill(ng, Double.NaN);
            ng[0] = -7;
            nr[0] = -7;
            ng[rows + 1] = -7;
            nr[rows + 1] = -7;
            cpu.crossEntropy(rows, cols, x, 2, ld, t, 1, nr, 1);
            gpu.crossEntropy(rows, cols, x, 2, ld, t, 1, ng, 1);
            for (double d : ng) {
                assertThat(d).as("crossEntropy not written " + tag).isNotNaN();
            }
            assertThat(CudaBackendParityTest.relErr(ng, nr)).as("crossEntropy " + tag).isLessThanOrEqualTo(1e-9);
        }
    }

    private static void checkAttention(SplittableRandom r, int heads, int kvHeads, int hd, boolean causal, int window,
                                       int[] seqStarts, int[] keyLengths, String tag) {
        int seqs = seqStarts.length - 1;
        int rows = seqStarts[seqs];
        int qc = heads * hd;
        int kc = kvHeads * hd;
        float[] q = randomF(r, rows * qc + 1, 1.5);
        float[] k = randomF(r, rows * kc, 1.5);
        float[] v = randomF(r, 2 + rows * (kc + 3), 1);
        float[] outRef = new float[rows * qc];
        Arrays.fill(outRef, SENTINEL);
        float[] outGpu = outRef.clone();
        for (int s = 0; s < seqs; s++) {
            Arrays.fill(outGpu, seqStarts[s] * qc, seqStarts[s + 1] * qc, Float.NaN);
        }
        float scale = (float) (1 / Math.sqrt(hd));
        cpu.attention(new AttentionJob(heads, kvHeads, hd, scale, causal, window, seqs, seqStarts, keyLengths,
                new FloatView(q, 1, qc), new FloatView(k, 0, kc), new FloatView(v, 2, kc + 3),
                new FloatView(outRef, 0, qc)));
        gpu.attention(new AttentionJob(heads, kvHeads, hd, scale, causal, window, seqs, seqStarts, keyLengths,
                new FloatView(q, 1, qc), new FloatView(k, 0, kc), new FloatView(v, 2, kc + 3),
                new FloatView(outGpu, 0, qc)));
        assertClose(outGpu, outRef, 1e-5, "attention " + tag + " seed=" + SEED);
    }

    @Test
    void causalAttentionMatchesCpuAtTileAndNonTileLengths() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 5);
        for (int hd : new int[] {64, 128}) {
            for (int n : new int[] {1, 37, 300, 2048}) {
                // packed batch: a gap of 3 rows before the first sequence (never written), then two sequences
                int[] starts = {3, 3 + n, 3 + n + 1 + n / 2};
                checkAttention(r, 2, 1, hd, true, 0, starts, null, "causal hd=" + hd + " n=" + n);
            }
        }
    }

    @Test
    void paddedBidirectionalAttentionMatchesCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 6);
        for (int hd : new int[] {64, 128}) {
            for (int n : new int[] {1, 37, 300, 2048}) {
                int seqs = 2;
                int[] starts = {0, n, 2 * n};
                int[] keyLengths = {Math.max(0, n - 1 - r.nextInt(Math.max(1, n / 3))), n};
                checkAttention(r, 4, 2, hd, false, 0, starts, keyLengths, "padded hd=" + hd + " n=" + n);
            }
        }
    }

    @Test
    void slidingWindowGroupedAndOddHeadWidthAttentionMatchCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 7);
        checkAttention(r, 6, 2, 40, true, 50, new int[] {0, 333}, null, "window=50 hd=40 gqa 6/2");
        checkAttention(r, 3, 3, 8, false, 0, new int[] {0, 65, 65, 130}, new int[] {0, 0, 64},
                "empty sequence, zero key length hd=8");
        checkAttention(r, 2, 1, 160, true, 0, new int[] {0, 100}, null, "hd=160 (delegated to the CPU)");
    }

    @Test
    void tf32SgemmMatchesCpuForAllTransposesStridesAndBetas() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 8);
        for (int trial = 0; trial < 16; trial++) {
            boolean ta = (trial & 1) != 0;
            boolean tb = (trial & 2) != 0;
            boolean big = trial >= 12;
            // at least 16 x 16 outputs, so that the relative error averages TF32 roundings (a single
            // product can be off by 2^-10); the big trials have strides that are multiples of 4 (the
            // 16-byte cp.async path), the small ones mostly not (the plain-load path)
            int m = big ? 1024 + 4 * r.nextInt(25) : 16 + r.nextInt(300);
            int n = big ? 1024 + 4 * r.nextInt(25) : 16 + r.nextInt(300);
            int k = big ? 1024 + 4 * r.nextInt(75) : 1 + r.nextInt(600);
            float alpha = trial % 3 == 0 ? -1f : (float) r.nextDouble(-2, 2);
            float beta = trial % 4 == 0 ? 0f : (trial % 4 == 1 ? 1f : 0.5f);
            int lda = (ta ? m : k) + (trial >= 8 ? 0 : r.nextInt(3));
            int ldb = (tb ? k : n) + (trial >= 8 ? 0 : r.nextInt(3));
            int ldc = n + r.nextInt(3);
            float[] a = randomF(r, (ta ? k : m) * lda + 5, 1);
            float[] b = randomF(r, (tb ? n : k) * ldb + 5, 1);
            float[] c = window(r, 2, ldc, m, n, 1);
            float[] ref = c.clone();
            cpu.sgemm(ta, tb, m, n, k, alpha, a, 1, lda, b, 3, ldb, beta, ref, 2, ldc);
            float[] got = beta == 0f ? poison(c, 2, ldc, m, n) : c.clone();
            gpu.sgemmTf32(ta, tb, m, n, k, alpha, a, 1, lda, b, 3, ldb, beta, got, 2, ldc);
            assertClose(got, ref, 5e-4, "sgemmTf32 " + (ta ? "T" : "N") + (tb ? "T" : "N") + " " + m + "x" + n + "x" + k
                    + " alpha=" + alpha + " beta=" + beta + " seed=" + SEED);
        }
    }

    @Test
    void bf16GemmMatchesCpuOnTheSameBf16Values() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 9);
        for (int trial = 0; trial < 12; trial++) {
            boolean ta = (trial & 1) != 0;
            boolean tb = (trial & 2) != 0;
            int m = trial >= 8 ? 1024 + r.nextInt(64) : 1 + r.nextInt(300);
            int n = trial >= 8 ? 1024 + r.nextInt(64) : 1 + r.nextInt(300);
            int k = trial >= 8 ? 2048 : 1 + r.nextInt(500);
            int lda = (ta ? m : k) + (trial >= 4 ? 0 : 1);
            int ldb = (tb ? k : n) + (trial >= 4 ? 0 : 1);
            float[] af = randomF(r, (ta ? k : m) * lda, 1);
            float[] bf = randomF(r, (tb ? n : k) * ldb, 1);
            short[] a = new short[af.length];
            short[] b = new short[bf.length];
            for (int i = 0; i < af.length; i++) {
                a[i] = HalfFloats.floatToBf16(af[i]);
                af[i] = HalfFloats.bf16ToFloat(a[i]);
            }
            for (int i = 0; i < bf.length; i++) {
                b[i] = HalfFloats.floatToBf16(bf[i]);
                bf[i] = HalfFloats.bf16ToFloat(b[i]);
            }
            float beta = trial % 2 == 0 ? 0f : 0.5f;
            float[] c = window(r, 0, n, m, n, 1);
            float[] ref = c.clone();
            cpu.sgemm(ta, tb, m, n, k, 1.5f, af, 0, lda, bf, 0, ldb, beta, ref, 0, n);
            float[] got = beta == 0f ? poison(c, 0, n, m, n) : c.clone();
            gpu.gemmBf16(ta, tb, m, n, k, 1.5f, a, 0, lda, b, 0, ldb, beta, got, 0, n);
            assertClose(got, ref, 1e-2, "gemmBf16 " + (ta ? "T" : "N") + (tb ? "T" : "N") + " " + m + "x" + n + "x" + k
                    + " seed=" + SEED);
            // fp32 accumulation of exact bf16 products: far tighter than the 1e-2 budget in practice
            assertThat(relErr(got, ref)).as("gemmBf16 accumulation " + m + "x" + n + "x" + k).isLessThan(1e-4);
        }
    }

    @Test
    void tf32HessianMatchesFp64Sums() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 10);
        for (int[] shape : new int[][] {{1, 300}, {37, 300}, {130, 1000}, {768, 3000}, {257, 5}}) {
            int n = shape[0];
            int k = shape[1];
            int ldx = n + (n % 2);
            float[] x = randomF(r, 2 + k * ldx, 1);
            int packed = n * (n + 1) / 2;
            double[] start = new double[packed];
            for (int i = 0; i < packed; i++) {
                start[i] = r.nextDouble();
            }
            double[] ref = start.clone();
            double[] got = start.clone();
            cpu.syrkPackedUpper(n, k, x, 2, ldx, ref);
            gpu.syrkPackedUpperTf32(n, k, x, 2, ldx, got);
            double[] dRef = new double[packed];
            double[] dGot = new double[packed];
            for (int i = 0; i < packed; i++) {
                dRef[i] = ref[i] - start[i];
                dGot[i] = got[i] - start[i];
            }
            assertThat(CudaBackendParityTest.relErr(dGot, dRef)).as("syrkTf32 n=" + n + " k=" + k + " seed=" + SEED)
                    .isLessThanOrEqualTo(5e-4);
        }
    }

    /**
     * The TF32 Hessian kernel against its CPU twin ({@code CpuBackend.syrkPackedUpperTf32}: same
     * operand rounding, same 256-token chunks): they may differ only by the fp32 rounding of the
     * chunk sums (the tensor cores add in another order), bounded per element by
     * {@code 4 · kc · 2^-24 · Σ|products|} per chunk (twice the IEEE bound of each side, doubled
     * again for the hardware accumulator).
     */
    @Test
    void tf32HessianMatchesItsCpuTwin() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 11);
        for (int[] shape : new int[][] {{1, 300}, {37, 300}, {130, 1000}, {384, 2100}, {257, 5}}) {
            int n = shape[0];
            int k = shape[1];
            int ldx = n + (n % 2);
            float[] x = randomF(r, 2 + k * ldx, 1);
            int packed = n * (n + 1) / 2;
            double[] twin = new double[packed];
            double[] got = new double[packed];
            cpu.syrkPackedUpperTf32(n, k, x, 2, ldx, twin);
            gpu.syrkPackedUpperTf32(n, k, x, 2, ldx, got);
            int p = 0;
            for (int i = 0; i < n; i++) {
                for (int j = i; j < n; j++, p++) {
                    double bound = 0;
                    for (int c0 = 0; c0 < k; c0 += 256) {
                        int kc = Math.min(256, k - c0);
                        double abs = 0;
                        for (int t = c0; t < c0 + kc; t++) {
                            abs += Math.abs((double) io.sparkprune.kernels.Tf32.round(x[2 + t * ldx + i])
                                    * io.sparkprune.kernels.Tf32.round(x[2 + t * ldx + j]));
                        }
                        bound += 4 * kc * 0x1p-24 * abs;
                    }
                    assertThat(Math.abs(got[p] - twin[p])).as("syrkTf32 (%d,%d) n=%d k=%d seed=%d", i, j, n, k, SEED)
                            .isLessThanOrEqualTo(bound + 1e-12);
                }
            }
        }
    }
}
