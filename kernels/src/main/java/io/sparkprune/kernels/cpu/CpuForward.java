package io.sparkprune.kernels.cpu;

import io.sparkprune.kernels.AttentionJob;
import io.sparkprune.kernels.Checks;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.Tf32;

import java.util.Arrays;

/**
 * The forward-pass kernels of {@link CpuBackend} (the section "Forward-pass kernels" of
 * {@link io.sparkprune.kernels.Backend}; their contracts are documented there). Row-wise kernels
 * split the rows into chunks over the backend's pool; attention is tiled (see
 * {@link #attention(AttentionJob)}).
 */
final class CpuForward {
    /** Query rows of one attention tile. */
    static final int ATT_QB = 64;
    /** Elements below which a row-wise kernel runs on the calling thread. */
    private static final int INLINE_ELEMENTS = 1 << 14;

    private final CpuBackend backend;
    private volatile ForwardLoops elementwise;
    private final ThreadLocal<float[]> bufKt = new ThreadLocal<>();
    private final ThreadLocal<float[]> bufS = new ThreadLocal<>();
    private final ThreadLocal<float[]> bufQ = new ThreadLocal<>();
    private final ThreadLocal<float[]> bufV = new ThreadLocal<>();

    CpuForward(CpuBackend backend) {
        this.backend = backend;
    }

    /**
     * The elementwise loops matching the backend's microkernels: the Vector API ones when the
     * backend uses SIMD, else plain Java. Chosen on first use (the backend's microkernels are set
     * after this object is constructed).
     */
    ForwardLoops elementwise() {
        ForwardLoops e = elementwise;
        if (e == null) {
            if (backend.simd()) {
                try {
                    e = (ForwardLoops) Class.forName("io.sparkprune.kernels.cpu.SimdForwardLoops")
                            .getDeclaredConstructor().newInstance();
                } catch (ReflectiveOperationException | LinkageError ex) {
                    throw new IllegalStateException("cannot load the Vector API elementwise kernels", ex);
                }
            } else {
                e = new ScalarForwardLoops();
            }
            elementwise = e;
        }
        return e;
    }

    private static float[] buffer(ThreadLocal<float[]> tl, int size) {
        float[] b = tl.get();
        if (b == null || b.length < size) {
            b = new float[Math.max(size, 64)];
            tl.set(b);
        }
        return b;
    }

    /** A row-range body. */
    @FunctionalInterface
    interface RowBody {
        void run(int r0, int r1);
    }

    /** Runs {@code body} over row chunks on the pool (inline for small work). */
    void rowsParallel(int rows, int cols, RowBody body) {
        if (rows <= 0) {
            return;
        }
        long work = (long) rows * Math.max(cols, 1);
        int chunks = work < INLINE_ELEMENTS ? 1 : Math.min(rows, backend.threads() * 4);
        int per = (rows + chunks - 1) / chunks;
        int n = (rows + per - 1) / per;
        backend.parallelFor(n, c -> body.run(c * per, Math.min(rows, (c + 1) * per)));
    }

    // ------------------------------------------------------------------ norms

    void rmsNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] w, int wOff,
                 float[] y, int yOff, int ldy) {
        Checks.window("rmsNorm x", x.length, xOff, ldx, rows, cols);
        Checks.window("rmsNorm w", w.length, wOff, cols, 1, cols);
        Checks.window("rmsNorm y", y.length, yOff, ldy, rows, cols);
        rowsParallel(rows, cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int xi = xOff + r * ldx;
                int yi = yOff + r * ldy;
                double ss = 0.0;
                for (int c = 0; c < cols; c++) {
                    double v = x[xi + c];
                    ss += v * v;
                }
                float inv = (float) (1.0 / Math.sqrt(ss / cols + eps));
                for (int c = 0; c < cols; c++) {
                    y[yi + c] = w[wOff + c] * (x[xi + c] * inv);
                }
            }
        });
    }

    void layerNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] gamma, int gOff,
                   float[] beta, int bOff, float[] y, int yOff, int ldy) {
        Checks.window("layerNorm x", x.length, xOff, ldx, rows, cols);
        Checks.window("layerNorm gamma", gamma.length, gOff, cols, 1, cols);
        Checks.window("layerNorm beta", beta.length, bOff, cols, 1, cols);
        Checks.window("layerNorm y", y.length, yOff, ldy, rows, cols);
        rowsParallel(rows, cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int xi = xOff + r * ldx;
                int yi = yOff + r * ldy;
                double s = 0.0;
                for (int c = 0; c < cols; c++) {
                    s += x[xi + c];
                }
                double mean = s / cols;
                double ss = 0.0;
                for (int c = 0; c < cols; c++) {
                    double d = x[xi + c] - mean;
                    ss += d * d;
                }
                float inv = (float) (1.0 / Math.sqrt(ss / cols + eps));
                float m = (float) mean;
                for (int c = 0; c < cols; c++) {
                    y[yi + c] = (x[xi + c] - m) * inv * gamma[gOff + c] + beta[bOff + c];
                }
            }
        });
    }

    // ------------------------------------------------------------------ rotary embedding

    void rope(int rows, int heads, int headDim, float[] x, int xOff, int ldx, int[] positions, int posOff,
              float[] cos, float[] sin, int tableRows) {
        if (headDim % 2 != 0 || headDim < 2 || heads < 1) {
            throw new IllegalArgumentException("rope needs heads >= 1 and an even headDim >= 2, got " + heads + ", " + headDim);
        }
        int half = headDim / 2;
        Checks.window("rope x", x.length, xOff, ldx, rows, heads * headDim);
        Checks.window("rope positions", positions.length, posOff, 1, rows, 1);
        Checks.window("rope cos", cos.length, 0, half, tableRows, half);
        Checks.window("rope sin", sin.length, 0, half, tableRows, half);
        for (int r = 0; r < rows; r++) {
            int p = positions[posOff + r];
            if (p < 0 || p >= tableRows) {
                throw new IllegalArgumentException("rope: position " + p + " of row " + r + " outside the table of "
                        + tableRows + " positions");
            }
        }
        rowsParallel(rows, heads * headDim, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int t = positions[posOff + r] * half;
                for (int h = 0; h < heads; h++) {
                    int b = xOff + r * ldx + h * headDim;
                    for (int i = 0; i < half; i++) {
                        float c = cos[t + i];
                        float s = sin[t + i];
                        float x1 = x[b + i];
                        float x2 = x[b + half + i];
                        x[b + i] = x1 * c - x2 * s;
                        x[b + half + i] = x2 * c + x1 * s;
                    }
                }
            }
        });
    }

    // ------------------------------------------------------------------ attention

    /**
     * Tiled attention. One task per (sequence, KV head, block of {@value #ATT_QB} query rows); the
     * task packs Kᵀ of its key range once ({@code headDim × nk}) and, for each query head of the KV
     * head's group, computes the {@code qb × nk} score tile ({@link ForwardLoops#scores}), the masked
     * stable softmax row by row, and {@code P · V} ({@link ForwardLoops#weightedSum}). Memory per thread:
     * {@code (headDim + qb) × nk} floats, where nk ≤ the sequence length.
     *
     * <p>A {@link AttentionJob#tf32()} job rounds with {@link Tf32#round}: Kᵀ as it is packed, the
     * scaled queries {@code scale · q} into a {@code qb × headDim} buffer (the scores then use scale 1,
     * so every product is exact and only the fp32 sums round), the weights {@code e^{s - max}} (max the
     * row's maximum) and V into an {@code nk × headDim} buffer; the product uses the un-normalized
     * rounded weights and each output row is then multiplied by {@code fp32(1 / Σ weights)} (fp64 sum),
     * the order of the GPU kernel {@code attention_tf32}. The fp32 path is unchanged.
     */
    void attention(AttentionJob job) {
        job.validate();
        final int seqs = job.sequences();
        int[] taskSeq = new int[16];
        int[] taskRow = new int[16];
        int tasks = 0;
        for (int s = 0; s < seqs; s++) {
            int n = job.seqStarts()[s + 1] - job.seqStarts()[s];
            for (int i0 = 0; i0 < n; i0 += ATT_QB) {
                if (tasks == taskSeq.length) {
                    taskSeq = Arrays.copyOf(taskSeq, tasks * 2);
                    taskRow = Arrays.copyOf(taskRow, tasks * 2);
                }
                taskSeq[tasks] = s;
                taskRow[tasks] = i0;
                tasks++;
            }
        }
        final int kvHeads = job.kvHeads();
        final int[] ts = taskSeq;
        final int[] tr = taskRow;
        backend.parallelFor(tasks * kvHeads, t -> attentionTile(job, ts[t / kvHeads], tr[t / kvHeads], t % kvHeads));
    }

    private void attentionTile(AttentionJob job, int s, int i0, int kvh) {
        final int hd = job.headDim();
        final int group = job.heads() / job.kvHeads();
        final int base = job.seqStarts()[s];
        final int n = job.seqStarts()[s + 1] - base;
        final int kl = job.keyLength(s);
        final int i1 = Math.min(n, i0 + ATT_QB);
        final int qb = i1 - i0;
        final boolean causal = job.causal();
        final int window = job.window();
        // key range [jLo, jHi) covering every query of the tile
        int jHi = causal ? Math.min(kl, i1) : kl;
        int jLo = window > 0 ? Math.max(0, i0 - window + 1) : 0;
        final int nk = Math.max(0, jHi - jLo);
        final FloatView q = job.q();
        final FloatView k = job.k();
        final FloatView v = job.v();
        final FloatView out = job.out();
        if (nk == 0) {
            for (int g = 0; g < group; g++) {
                int h = kvh * group + g;
                for (int i = i0; i < i1; i++) {
                    int o = out.index(base + i, h * hd);
                    Arrays.fill(out.data(), o, o + hd, 0f);
                }
            }
            return;
        }
        final ForwardLoops ew = elementwise();
        final boolean tf32 = job.tf32();
        float[] kt = buffer(bufKt, hd * nk);
        float[] kd = k.data();
        for (int jj = 0; jj < nk; jj++) {
            int src = k.index(base + jLo + jj, kvh * hd);
            for (int d = 0; d < hd; d++) {
                kt[d * nk + jj] = tf32 ? Tf32.round(kd[src + d]) : kd[src + d];
            }
        }
        float[] sc = buffer(bufS, qb * nk);
        if (tf32) {
            attentionTileTf32(job, s, i0, kvh, jLo, nk, kt, sc, ew);
            return;
        }
        for (int g = 0; g < group; g++) {
            int h = kvh * group + g;
            ew.scores(qb, nk, hd, job.scale(), q.data(), q.index(base + i0, h * hd), q.ld(), kt, sc);
            for (int r = 0; r < qb; r++) {
                int i = i0 + r;
                int lo = window > 0 ? Math.max(0, i - window + 1) : 0;
                int hi = causal ? Math.min(kl, i + 1) : kl;
                int row = r * nk;
                int a = lo - jLo;
                int b = hi - jLo;
                if (b <= a) {
                    Arrays.fill(sc, row, row + nk, 0f);
                    continue;
                }
                float max = Float.NEGATIVE_INFINITY;
                for (int j = a; j < b; j++) {
                    max = Math.max(max, sc[row + j]);
                }
                double sum = ew.expShift(sc, row + a, b - a, max);
                float inv = (float) (1.0 / sum);
                for (int j = 0; j < a; j++) {
                    sc[row + j] = 0f;
                }
                for (int j = a; j < b; j++) {
                    sc[row + j] *= inv;
                }
                for (int j = b; j < nk; j++) {
                    sc[row + j] = 0f;
                }
            }
            ew.weightedSum(qb, hd, nk, sc, v.data(), v.index(base + jLo, kvh * hd), v.ld(), out.data(),
                    out.index(base + i0, h * hd), out.ld());
        }
    }

    /**
     * The TF32 rest of {@link #attentionTile} (see {@link #attention}): Kᵀ is packed and rounded in
     * {@code kt}; {@code sc} holds at least {@code qb × nk} floats; the key range {@code [jLo, jLo + nk)}
     * is not empty.
     */
    private void attentionTileTf32(AttentionJob job, int s, int i0, int kvh, int jLo, int nk, float[] kt, float[] sc,
                                   ForwardLoops ew) {
        final int hd = job.headDim();
        final int group = job.heads() / job.kvHeads();
        final int base = job.seqStarts()[s];
        final int n = job.seqStarts()[s + 1] - base;
        final int kl = job.keyLength(s);
        final int i1 = Math.min(n, i0 + ATT_QB);
        final int qb = i1 - i0;
        final boolean causal = job.causal();
        final int window = job.window();
        final float scale = job.scale();
        final FloatView q = job.q();
        final FloatView v = job.v();
        final FloatView out = job.out();
        float[] vr = buffer(bufV, nk * hd);
        float[] vd = v.data();
        for (int jj = 0; jj < nk; jj++) {
            int src = v.index(base + jLo + jj, kvh * hd);
            for (int d = 0; d < hd; d++) {
                vr[jj * hd + d] = Tf32.round(vd[src + d]);
            }
        }
        float[] qr = buffer(bufQ, qb * hd + qb);
        final int invAt = qb * hd; // fp32(1 / l) of row r at qr[invAt + r]
        float[] qd = q.data();
        float[] od = out.data();
        for (int g = 0; g < group; g++) {
            int h = kvh * group + g;
            for (int r = 0; r < qb; r++) {
                int src = q.index(base + i0 + r, h * hd);
                for (int d = 0; d < hd; d++) {
                    qr[r * hd + d] = Tf32.round(scale * qd[src + d]);
                }
            }
            ew.scores(qb, nk, hd, 1f, qr, 0, hd, kt, sc);
            for (int r = 0; r < qb; r++) {
                int i = i0 + r;
                int lo = window > 0 ? Math.max(0, i - window + 1) : 0;
                int hi = causal ? Math.min(kl, i + 1) : kl;
                int row = r * nk;
                int a = Math.max(0, lo - jLo);
                int b = Math.min(nk, hi - jLo);
                if (b <= a) {
                    Arrays.fill(sc, row, row + nk, 0f);
                    qr[invAt + r] = 0f;
                    continue;
                }
                float max = Float.NEGATIVE_INFINITY;
                for (int j = a; j < b; j++) {
                    max = Math.max(max, sc[row + j]);
                }
                double sum = 0.0;
                for (int j = a; j < b; j++) {
                    float p = Tf32.round((float) Math.exp(sc[row + j] - max));
                    sc[row + j] = p;
                    sum += p;
                }
                qr[invAt + r] = sum > 0.0 ? (float) (1.0 / sum) : 0f;
                Arrays.fill(sc, row, row + a, 0f);
                Arrays.fill(sc, row + b, row + nk, 0f);
            }
            int o0 = out.index(base + i0, h * hd);
            ew.weightedSum(qb, hd, nk, sc, vr, 0, hd, od, o0, out.ld());
            for (int r = 0; r < qb; r++) {
                float inv = qr[invAt + r];
                int oi = o0 + r * out.ld();
                for (int d = 0; d < hd; d++) {
                    od[oi + d] *= inv;
                }
            }
        }
    }

    // ------------------------------------------------------------------ activations, elementwise

    void siluMul(int rows, int cols, float[] g, int gOff, int ldg, float[] u, int uOff, int ldu,
                 float[] y, int yOff, int ldy) {
        Checks.window("siluMul g", g.length, gOff, ldg, rows, cols);
        Checks.window("siluMul u", u.length, uOff, ldu, rows, cols);
        Checks.window("siluMul y", y.length, yOff, ldy, rows, cols);
        final ForwardLoops ew = elementwise();
        rowsParallel(rows, cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                ew.siluMul(g, gOff + r * ldg, u, uOff + r * ldu, y, yOff + r * ldy, cols);
            }
        });
    }

    void gelu(int rows, int cols, float[] x, int xOff, int ldx) {
        Checks.window("gelu x", x.length, xOff, ldx, rows, cols);
        final ForwardLoops ew = elementwise();
        rowsParallel(rows, cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                ew.gelu(x, xOff + r * ldx, cols);
            }
        });
    }

    void embedding(int rows, int cols, int[] ids, int idOff, float[] table, int tOff, int tableRows,
                   float[] y, int yOff, int ldy, boolean accumulate) {
        Checks.window("embedding ids", ids.length, idOff, 1, rows, 1);
        Checks.window("embedding table", table.length, tOff, cols, tableRows, cols);
        Checks.window("embedding y", y.length, yOff, ldy, rows, cols);
        for (int r = 0; r < rows; r++) {
            int id = ids[idOff + r];
            if (id < 0 || id >= tableRows) {
                throw new IllegalArgumentException("embedding: id " + id + " of row " + r + " outside the table of "
                        + tableRows + " rows");
            }
        }
        rowsParallel(rows, cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int src = tOff + ids[idOff + r] * cols;
                int yi = yOff + r * ldy;
                if (accumulate) {
                    for (int c = 0; c < cols; c++) {
                        y[yi + c] += table[src + c];
                    }
                } else {
                    System.arraycopy(table, src, y, yi, cols);
                }
            }
        });
    }

    void addRowVector(int rows, int cols, float[] v, int vOff, float[] y, int yOff, int ldy) {
        Checks.window("addRowVector v", v.length, vOff, cols, 1, cols);
        Checks.window("addRowVector y", y.length, yOff, ldy, rows, cols);
        rowsParallel(rows, cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int yi = yOff + r * ldy;
                for (int c = 0; c < cols; c++) {
                    y[yi + c] += v[vOff + c];
                }
            }
        });
    }

    void add(int rows, int cols, float[] x, int xOff, int ldx, float[] y, int yOff, int ldy) {
        Checks.window("add x", x.length, xOff, ldx, rows, cols);
        Checks.window("add y", y.length, yOff, ldy, rows, cols);
        rowsParallel(rows, cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int xi = xOff + r * ldx;
                int yi = yOff + r * ldy;
                for (int c = 0; c < cols; c++) {
                    y[yi + c] += x[xi + c];
                }
            }
        });
    }

    // ------------------------------------------------------------------ softmax, cross-entropy

    /** m + log Σ e^{x - m} of one row, fp64. */
    private static double logSumExp(float[] x, int xi, int cols) {
        float max = Float.NEGATIVE_INFINITY;
        for (int c = 0; c < cols; c++) {
            max = Math.max(max, x[xi + c]);
        }
        if (max == Float.NEGATIVE_INFINITY || Float.isNaN(max)) {
            return max;
        }
        double sum = 0.0;
        for (int c = 0; c < cols; c++) {
            sum += Math.exp((double) x[xi + c] - max);
        }
        return max + Math.log(sum);
    }

    void logSoftmax(int rows, int cols, float[] x, int xOff, int ldx) {
        Checks.window("logSoftmax x", x.length, xOff, ldx, rows, cols);
        rowsParallel(rows, cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int xi = xOff + r * ldx;
                double lse = logSumExp(x, xi, cols);
                for (int c = 0; c < cols; c++) {
                    x[xi + c] = (float) (x[xi + c] - lse);
                }
            }
        });
    }

    void crossEntropy(int rows, int cols, float[] logits, int xOff, int ldx, int[] targets, int tOff,
                      double[] nll, int nllOff) {
        Checks.window("crossEntropy logits", logits.length, xOff, ldx, rows, cols);
        Checks.window("crossEntropy targets", targets.length, tOff, 1, rows, 1);
        if (rows > 0 && (nllOff < 0 || (long) nllOff + rows > nll.length)) {
            throw new IllegalArgumentException("crossEntropy: nll needs " + rows + " entries at " + nllOff
                    + ", has " + nll.length);
        }
        for (int r = 0; r < rows; r++) {
            int t = targets[tOff + r];
            if (t < 0 || t >= cols) {
                throw new IllegalArgumentException("crossEntropy: target " + t + " of row " + r + " outside [0, " + cols + ")");
            }
        }
        rowsParallel(rows, cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int xi = xOff + r * ldx;
                nll[nllOff + r] = logSumExp(logits, xi, cols) - logits[xi + targets[tOff + r]];
            }
        });
    }
}
