package io.sparkprune.kernels.cpu;

import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ByteView;
import io.sparkprune.kernels.Checks;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.GridMath;
import io.sparkprune.kernels.SparseGptBlock;
import io.sparkprune.kernels.Tf32;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;
import java.util.function.IntConsumer;

/**
 * The pure-Java reference backend: multi-threaded (one {@link ForkJoinPool} per backend),
 * cache-blocked, fp32 products with fp32 FMAs, factorizations in fp64.
 *
 * <p>Blocking: a product is cut into tiles of C ({@value #F_MT} × {@value #F_NT} for fp32) that are
 * computed independently by the pool; inside a tile the inner dimension is cut into chunks of
 * {@value #F_KC}, and each chunk of B is packed into a contiguous per-thread buffer (at most
 * 256 KiB, so it stays in L2 while all rows of the tile stream past it). The innermost loops are
 * {@link Microkernels}: the Vector API ones when {@code jdk.incubator.vector} is in the boot layer
 * (start the JVM with {@code --add-modules jdk.incubator.vector}), the plain-Java ones otherwise; both
 * give bit-identical results. Set the system property {@code sparkprune.simd=false} to force plain
 * Java.
 *
 * <p>Factorizations: right-looking blocked Cholesky (panel {@value #NB}; the panel solve is a
 * product with the inverted diagonal block, the trailing update a lower-triangular product),
 * row-blocked triangular inverse (each block row is one product against the already-inverted
 * rows, skipping the structurally zero part), all fp64.
 */
public final class CpuBackend implements Backend {
    /** Rows of an fp32 C tile. */
    static final int F_MT = 128;
    /** Columns of an fp32 C tile. */
    static final int F_NT = 256;
    /** Inner-dimension chunk of an fp32 product. */
    static final int F_KC = 256;
    /** Rows of an fp64 C tile. */
    static final int D_MT = 64;
    /** Columns of an fp64 C tile. */
    static final int D_NT = 256;
    /** Inner-dimension chunk of an fp64 product. */
    static final int D_KC = 128;
    /** Panel width of the blocked factorizations. */
    static final int NB = 128;
    /** Token tile of the Hessian update. */
    static final int SYRK_KT = 64;
    /** Rows per task of the in-block SparseGPT solve. */
    static final int BLOCK_ROWS = 8;

    private final int threads;
    private final ForkJoinPool pool;
    private final Microkernels mk;
    private final ThreadLocal<float[]> bufF1 = new ThreadLocal<>();
    private final ThreadLocal<float[]> bufF2 = new ThreadLocal<>();
    private final ThreadLocal<double[]> bufD1 = new ThreadLocal<>();
    private final ThreadLocal<double[]> bufD2 = new ThreadLocal<>();
    private final ThreadLocal<float[]> bufScores = new ThreadLocal<>();

    private CpuBackend(int threads, Microkernels mk) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.mk = mk;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads);
    }

    /**
     * A backend with one thread per available processor, SIMD when available.
     *
     * @return a new backend; close it to stop its threads
     */
    public static CpuBackend create() {
        return create(Runtime.getRuntime().availableProcessors());
    }

    /**
     * A backend with the given threads, SIMD microkernels when {@link #simdAvailable()} and the
     * system property {@code sparkprune.simd} is not {@code false}.
     *
     * @param threads worker threads, ≥ 1
     * @return a new backend; close it to stop its threads
     */
    public static CpuBackend create(int threads) {
        boolean simd = simdAvailable() && !"false".equalsIgnoreCase(System.getProperty("sparkprune.simd"));
        return create(threads, simd);
    }

    /**
     * @param threads worker threads, ≥ 1
     * @param simd use the Vector API microkernels
     * @return a new backend; close it to stop its threads
     * @throws IllegalStateException when {@code simd} is requested but the module is missing
     */
    public static CpuBackend create(int threads, boolean simd) {
        if (!simd) {
            return new CpuBackend(threads, new ScalarMicrokernels());
        }
        if (!simdAvailable()) {
            throw new IllegalStateException("SIMD kernels need the JVM option --add-modules jdk.incubator.vector");
        }
        try {
            Microkernels k = (Microkernels) Class.forName("io.sparkprune.kernels.cpu.SimdMicrokernels")
                    .getDeclaredConstructor().newInstance();
            return new CpuBackend(threads, k);
        } catch (ReflectiveOperationException | LinkageError e) {
            throw new IllegalStateException("cannot load the Vector API kernels", e);
        }
    }

    /**
     * @return true when the JVM was started with {@code --add-modules jdk.incubator.vector}
     */
    public static boolean simdAvailable() {
        return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    }

    /** @return true when this backend uses the Vector API microkernels */
    public boolean simd() {
        return !(mk instanceof ScalarMicrokernels);
    }

    @Override
    public String name() {
        return "cpu(" + threads + " threads, " + mk.name() + ")";
    }

    @Override
    public int threads() {
        return threads;
    }

    @Override
    public void close() {
        if (pool != null) {
            pool.shutdown();
        }
    }

    // ------------------------------------------------------------------ parallel loop

    /**
     * Runs {@code body.accept(i)} for {@code i in [0, count)} on the pool (work stealing), or
     * inline with one thread. Exceptions propagate to the caller.
     */
    void parallelFor(int count, IntConsumer body) {
        if (count <= 0) {
            return;
        }
        if (pool == null || count == 1) {
            for (int i = 0; i < count; i++) {
                body.accept(i);
            }
            return;
        }
        Range r = new Range(0, count, body);
        if (ForkJoinTask.inForkJoinPool() && ForkJoinTask.getPool() == pool) {
            r.invoke();
        } else {
            pool.invoke(r);
        }
    }

    private static final class Range extends RecursiveAction {
        private static final long serialVersionUID = 1L;
        private final int lo;
        private final int hi;
        private final transient IntConsumer body;

        Range(int lo, int hi, IntConsumer body) {
            this.lo = lo;
            this.hi = hi;
            this.body = body;
        }

        @Override
        protected void compute() {
            if (hi - lo == 1) {
                body.accept(lo);
                return;
            }
            int mid = (lo + hi) >>> 1;
            invokeAll(new Range(lo, mid, body), new Range(mid, hi, body));
        }
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    private static float[] buffer(ThreadLocal<float[]> tl, int size) {
        float[] b = tl.get();
        if (b == null || b.length < size) {
            b = new float[size];
            tl.set(b);
        }
        return b;
    }

    private static double[] bufferD(ThreadLocal<double[]> tl, int size) {
        double[] b = tl.get();
        if (b == null || b.length < size) {
            b = new double[size];
            tl.set(b);
        }
        return b;
    }

    // ------------------------------------------------------------------ fp32 product

    @Override
    public void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                      float beta, float[] c, int cOff, int ldc) {
        Checks.window("sgemm A", a.length, aOff, lda, transA ? k : m, transA ? m : k);
        Checks.window("sgemm B", b.length, bOff, ldb, transB ? n : k, transB ? k : n);
        Checks.window("sgemm C", c.length, cOff, ldc, m, n);
        if (m == 0 || n == 0) {
            return;
        }
        int tn = ceilDiv(n, F_NT);
        int tm = ceilDiv(m, F_MT);
        parallelFor(tm * tn, t -> {
            int i0 = (t / tn) * F_MT;
            int j0 = (t % tn) * F_NT;
            int mb = Math.min(F_MT, m - i0);
            int nb = Math.min(F_NT, n - j0);
            int ct = cOff + i0 * ldc + j0;
            scale(c, ct, ldc, mb, nb, beta);
            if (k == 0 || alpha == 0f) {
                return;
            }
            float[] bp = buffer(bufF1, F_KC * nb);
            for (int l0 = 0; l0 < k; l0 += F_KC) {
                int kb = Math.min(F_KC, k - l0);
                if (transB) {
                    for (int j = 0; j < nb; j++) {
                        int src = bOff + (j0 + j) * ldb + l0;
                        for (int l = 0; l < kb; l++) {
                            bp[l * nb + j] = b[src + l];
                        }
                    }
                } else {
                    for (int l = 0; l < kb; l++) {
                        System.arraycopy(b, bOff + (l0 + l) * ldb + j0, bp, l * nb, nb);
                    }
                }
                if (transA) {
                    float[] ap = buffer(bufF2, mb * kb);
                    for (int l = 0; l < kb; l++) {
                        int src = aOff + (l0 + l) * lda + i0;
                        for (int i = 0; i < mb; i++) {
                            ap[i * kb + l] = a[src + i];
                        }
                    }
                    mk.gemmF(mb, nb, kb, alpha, ap, 0, kb, bp, 0, nb, c, ct, ldc);
                } else {
                    mk.gemmF(mb, nb, kb, alpha, a, aOff + i0 * lda + l0, lda, bp, 0, nb, c, ct, ldc);
                }
            }
        });
    }

    private static void scale(float[] c, int off, int ldc, int rows, int cols, float beta) {
        if (beta == 1f) {
            return;
        }
        for (int i = 0; i < rows; i++) {
            int r = off + i * ldc;
            if (beta == 0f) {
                java.util.Arrays.fill(c, r, r + cols, 0f);
            } else {
                for (int j = 0; j < cols; j++) {
                    c[r + j] *= beta;
                }
            }
        }
    }

    private static void scale(double[] c, int off, int ldc, int rows, int cols, double beta) {
        if (beta == 1.0) {
            return;
        }
        for (int i = 0; i < rows; i++) {
            int r = off + i * ldc;
            if (beta == 0.0) {
                java.util.Arrays.fill(c, r, r + cols, 0.0);
            } else {
                for (int j = 0; j < cols; j++) {
                    c[r + j] *= beta;
                }
            }
        }
    }

    // ------------------------------------------------------------------ fp64 products (internal)

    /**
     * One fp64 tile {@code C[mb×nb] += alpha · A[mb×k] · B[k×nb]} on the calling thread, B packed
     * per chunk.
     */
    private void tileD(int mb, int nb, int k, double alpha, double[] a, int aOff, int lda,
                       double[] b, int bOff, int ldb, double[] c, int cOff, int ldc) {
        if (mb == 0 || nb == 0 || k == 0) {
            return;
        }
        double[] bp = bufferD(bufD1, D_KC * nb);
        for (int l0 = 0; l0 < k; l0 += D_KC) {
            int kb = Math.min(D_KC, k - l0);
            for (int l = 0; l < kb; l++) {
                System.arraycopy(b, bOff + (l0 + l) * ldb, bp, l * nb, nb);
            }
            mk.gemmD(mb, nb, kb, alpha, a, aOff + l0, lda, bp, 0, nb, c, cOff, ldc);
        }
    }

    /**
     * {@code C = alpha · A · B + beta · C}, fp64, no transposes, parallel over C tiles. With
     * {@code lowerOnly}, only tiles that touch the lower triangle of C (incl. the diagonal) are
     * computed, and some entries just above the diagonal inside diagonal tiles are computed too.
     */
    void dgemm(int m, int n, int k, double alpha, double[] a, int aOff, int lda,
               double[] b, int bOff, int ldb, double beta, double[] c, int cOff, int ldc, boolean lowerOnly) {
        if (m == 0 || n == 0) {
            return;
        }
        int tn = ceilDiv(n, D_NT);
        int tm = ceilDiv(m, D_MT);
        parallelFor(tm * tn, t -> {
            int i0 = (t / tn) * D_MT;
            int j0 = (t % tn) * D_NT;
            int mb = Math.min(D_MT, m - i0);
            int nb = Math.min(D_NT, n - j0);
            if (lowerOnly) {
                if (j0 >= i0 + mb) {
                    return;
                }
                nb = Math.min(nb, i0 + mb - j0);
            }
            int ct = cOff + i0 * ldc + j0;
            scale(c, ct, ldc, mb, nb, beta);
            if (alpha != 0.0) {
                tileD(mb, nb, k, alpha, a, aOff + i0 * lda, lda, b, bOff + j0, ldb, c, ct, ldc);
            }
        });
    }

    // ------------------------------------------------------------------ Hessian update

    /**
     * The argument checks shared by both Hessian updates.
     *
     * @return false when there is nothing to add (n or k is 0)
     * @throws IllegalArgumentException when X's window does not fit, the packed array is too short
     *     or the triangle does not fit one array
     */
    private static boolean checkSyrk(String what, int n, int k, float[] x, int xOff, int ldx, double[] cPacked) {
        Checks.window(what, x.length, xOff, ldx, k, n);
        long packed = (long) n * (n + 1) / 2;
        if (cPacked.length < packed) {
            throw new IllegalArgumentException("packed C needs " + packed + " elements, has " + cPacked.length);
        }
        if (packed > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("n = " + n + " is too large for a packed triangle in one array");
        }
        return n != 0 && k != 0;
    }

    @Override
    public void syrkPackedUpper(int n, int k, float[] x, int xOff, int ldx, double[] cPacked) {
        if (!checkSyrk("syrk X", n, k, x, xOff, ldx, cPacked)) {
            return;
        }
        double[] xd = new double[SYRK_KT * n];   // (kt, n) row-major
        double[] xt = new double[n * SYRK_KT];   // (n, kt) row-major
        int tiles = ceilDiv(n, D_NT);
        for (int t0 = 0; t0 < k; t0 += SYRK_KT) {
            final int kt = Math.min(SYRK_KT, k - t0);
            for (int t = 0; t < kt; t++) {
                int src = xOff + (t0 + t) * ldx;
                for (int j = 0; j < n; j++) {
                    double v = x[src + j];
                    xd[t * n + j] = v;
                    xt[j * kt + t] = v;
                }
            }
            parallelFor(tiles, ct -> {
                int j0 = ct * D_NT;
                int j1 = Math.min(n, j0 + D_NT);
                int nb = j1 - j0;
                double[] bp = bufferD(bufD1, kt * nb);
                for (int t = 0; t < kt; t++) {
                    System.arraycopy(xd, t * n + j0, bp, t * nb, nb);
                }
                for (int i = 0; i < j1; i++) {
                    int js = Math.max(i, j0);
                    int len = j1 - js;
                    int cIdx = (int) ((long) i * n - (long) i * (i - 1) / 2) + (js - i);
                    mk.gemmD(1, len, kt, 1.0, xt, i * kt, kt, bp, js - j0, nb, cPacked, cIdx, len);
                }
            });
        }
    }

    /**
     * The CPU twin of the TF32 Hessian update ({@link Backend#syrkPackedUpperTf32}; the CUDA kernel
     * is {@code syrk_packed_tf32} in gemm_tc.cuh): for every chunk of
     * {@value Backend#SYRK_TF32_CHUNK} tokens (counted from this call's token 0) the chunk's rows of
     * X are rounded to TF32 ({@link Tf32#round}, bit-exact {@code cvt.rna.tf32.f32}), the chunk's
     * {@code Xᵀ·X} is computed in fp32 starting from zero, the products (exact in fp32, two 11-bit
     * significands) added token by token in order with fp32 FMAs, and each chunk sum is added to
     * the fp64 packed triangle. The tensor cores add the products of one chunk in another order, so
     * this twin and the GPU agree to the fp32 rounding of the chunk sums, not bit for bit.
     *
     * <p>Blocking: per chunk, the rounded rows are stored once as X ({@code kc × n}) and Xᵀ
     * ({@code n × kc}); the upper triangle is covered by {@value #F_MT} × {@value #F_NT} tiles of C
     * (tiles entirely below the diagonal are skipped) computed independently by the pool with the
     * fp32 {@link Microkernels} (SIMD when available) into a per-thread fp32 tile, whose upper
     * part is then added to the packed fp64 sums.
     */
    @Override
    public void syrkPackedUpperTf32(int n, int k, float[] x, int xOff, int ldx, double[] cPacked) {
        if (!checkSyrk("syrkTf32 X", n, k, x, xOff, ldx, cPacked)) {
            return;
        }
        final int chunk = Backend.SYRK_TF32_CHUNK;
        int kcMax = Math.min(chunk, k);
        float[] xr = new float[kcMax * n]; // (kc, n) row-major, TF32 values
        float[] xt = new float[n * kcMax]; // (n, kc) row-major, TF32 values
        int tm = ceilDiv(n, F_MT);
        int tn = ceilDiv(n, F_NT);
        int[] tiles = new int[tm * tn];
        int count = 0;
        for (int bi = 0; bi < tm; bi++) {
            for (int bj = 0; bj < tn; bj++) {
                if (bi * F_MT < Math.min(n, (bj + 1) * F_NT)) { // the tile reaches the upper triangle
                    tiles[count++] = bi * tn + bj;
                }
            }
        }
        final int tileCount = count;
        for (int c0 = 0; c0 < k; c0 += chunk) {
            final int kc = Math.min(chunk, k - c0);
            for (int t = 0; t < kc; t++) {
                int src = xOff + (c0 + t) * ldx;
                int dst = t * n;
                for (int j = 0; j < n; j++) {
                    float v = Tf32.round(x[src + j]);
                    xr[dst + j] = v;
                    xt[j * kc + t] = v;
                }
            }
            parallelFor(tileCount, ti -> {
                int tile = tiles[ti];
                int i0 = (tile / tn) * F_MT;
                int j0 = (tile % tn) * F_NT;
                int mb = Math.min(F_MT, n - i0);
                int nb = Math.min(F_NT, n - j0);
                float[] bp = buffer(bufF1, kc * nb);
                for (int t = 0; t < kc; t++) {
                    System.arraycopy(xr, t * n + j0, bp, t * nb, nb);
                }
                float[] acc = buffer(bufF2, mb * nb);
                java.util.Arrays.fill(acc, 0, mb * nb, 0f);
                mk.gemmF(mb, nb, kc, 1f, xt, i0 * kc, kc, bp, 0, nb, acc, 0, nb);
                for (int i = i0; i < i0 + mb; i++) {
                    int js = Math.max(i, j0);
                    int cIdx = (int) ((long) i * n - (long) i * (i - 1) / 2) + (js - i);
                    int a = (i - i0) * nb - j0;
                    for (int j = js; j < j0 + nb; j++, cIdx++) {
                        cPacked[cIdx] += acc[a + j];
                    }
                }
            });
        }
    }

    // ------------------------------------------------------------------ factorizations

    @Override
    public boolean cholesky(int n, double[] a, int aOff, int lda, boolean upper) {
        Checks.window("cholesky A", a.length, aOff, lda, n, n);
        if (upper) {
            transposeInPlace(n, a, aOff, lda);
            boolean ok = choleskyLower(n, a, aOff, lda);
            transposeInPlace(n, a, aOff, lda);
            return ok;
        }
        return choleskyLower(n, a, aOff, lda);
    }

    @Override
    public void triangularInverse(int n, double[] a, int aOff, int lda, boolean upper) {
        Checks.window("triangularInverse A", a.length, aOff, lda, n, n);
        if (upper) {
            transposeInPlace(n, a, aOff, lda);
            inverseLower(n, a, aOff, lda);
            transposeInPlace(n, a, aOff, lda);
        } else {
            inverseLower(n, a, aOff, lda);
        }
    }

    @Override
    public void choleskyInverse(int n, double[] l, int lOff, int ldl, double[] out, int outOff, int ldo) {
        Checks.window("choleskyInverse L", l.length, lOff, ldl, n, n);
        Checks.window("choleskyInverse out", out.length, outOff, ldo, n, n);
        if (n == 0) {
            return;
        }
        double[] x = new double[n * n];
        for (int i = 0; i < n; i++) {
            System.arraycopy(l, lOff + i * ldl, x, i * n, i + 1);
        }
        inverseLower(n, x, 0, n);
        double[] xt = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j <= i; j++) {
                xt[j * n + i] = x[i * n + j];
            }
        }
        dgemm(n, n, n, 1.0, xt, 0, n, x, 0, n, 0.0, out, outOff, ldo, false);
    }

    @Override
    public boolean inverseCholeskyUpper(int n, double[] a, int aOff, int lda) {
        Checks.window("inverseCholeskyUpper A", a.length, aOff, lda, n, n);
        reverseInPlace(n, a, aOff, lda);
        if (!choleskyLower(n, a, aOff, lda)) {
            return false;
        }
        inverseLower(n, a, aOff, lda);
        reverseInPlace(n, a, aOff, lda);
        return true;
    }

    /** Blocked right-looking Cholesky, lower, in place; zeros the strict upper triangle on success. */
    private boolean choleskyLower(int n, double[] a, int off, int lda) {
        double[] inv = new double[NB * NB];
        double[] invT = new double[NB * NB];
        int maxM = Math.max(0, n - NB);
        double[] p = new double[maxM * NB];
        double[] pt = new double[NB * maxM];
        for (int k0 = 0; k0 < n; k0 += NB) {
            int kb = Math.min(NB, n - k0);
            int d = off + k0 * lda + k0;
            if (!potf2(a, d, lda, kb)) {
                return false;
            }
            int m = n - k0 - kb;
            if (m == 0) {
                break;
            }
            invertLowerSmall(a, d, lda, kb, inv);
            for (int i = 0; i < kb; i++) {
                for (int j = 0; j < kb; j++) {
                    invT[j * kb + i] = inv[i * kb + j];
                }
            }
            int a21 = off + (k0 + kb) * lda + k0;
            // P = A21 · L11^-T  (m × kb)
            dgemm(m, kb, kb, 1.0, a, a21, lda, invT, 0, kb, 0.0, p, 0, kb, false);
            for (int i = 0; i < m; i++) {
                System.arraycopy(p, i * kb, a, a21 + i * lda, kb);
                for (int l = 0; l < kb; l++) {
                    pt[l * m + i] = p[i * kb + l];
                }
            }
            // A22 -= P · P^T, lower part
            dgemm(m, m, kb, -1.0, p, 0, kb, pt, 0, m, 1.0, a, a21 + kb, lda, true);
        }
        zeroStrictUpper(n, a, off, lda);
        return true;
    }

    /** Unblocked Cholesky of the lower triangle of an {@code n × n} block at {@code d}. */
    private static boolean potf2(double[] a, int d, int lda, int n) {
        for (int j = 0; j < n; j++) {
            int rj = d + j * lda;
            double s = a[rj + j];
            for (int l = 0; l < j; l++) {
                s -= a[rj + l] * a[rj + l];
            }
            if (!(s > 0.0) || s == Double.POSITIVE_INFINITY) {
                return false;
            }
            double ljj = Math.sqrt(s);
            a[rj + j] = ljj;
            for (int i = j + 1; i < n; i++) {
                int ri = d + i * lda;
                double t = a[ri + j];
                for (int l = 0; l < j; l++) {
                    t -= a[ri + l] * a[rj + l];
                }
                a[ri + j] = t / ljj;
            }
        }
        return true;
    }

    /** Inverse of the lower triangular {@code n × n} block at {@code d} into {@code out} (ld n, upper zeroed). */
    private static void invertLowerSmall(double[] a, int d, int lda, int n, double[] out) {
        for (int i = 0; i < n; i++) {
            int ri = d + i * lda;
            double lii = a[ri + i];
            for (int j = 0; j < i; j++) {
                double s = 0.0;
                for (int l = j; l < i; l++) {
                    s += a[ri + l] * out[l * n + j];
                }
                out[i * n + j] = -s / lii;
            }
            out[i * n + i] = 1.0 / lii;
            for (int j = i + 1; j < n; j++) {
                out[i * n + j] = 0.0;
            }
        }
    }

    /**
     * Blocked in-place inverse of a lower triangular matrix. For block row I = [i0, i0+ib):
     * {@code X[I,I] = L[I,I]^-1} and {@code X[I, :i0] = -X[I,I] · (L[I, :i0] · X[:i0, :i0])}, where the
     * product with the already-inverted (lower triangular) rows skips their zero upper part.
     */
    private void inverseLower(int n, double[] a, int off, int lda) {
        zeroStrictUpper(n, a, off, lda);
        double[] xii = new double[NB * NB];
        double[] t = new double[NB * Math.max(1, n)];
        for (int i0 = 0; i0 < n; i0 += NB) {
            final int ib = Math.min(NB, n - i0);
            final int io = i0;
            invertLowerSmall(a, off + i0 * lda + i0, lda, ib, xii);
            if (i0 > 0) {
                int tiles = ceilDiv(i0, D_NT);
                parallelFor(tiles, ti -> {
                    int c0 = ti * D_NT;
                    int cb = Math.min(D_NT, io - c0);
                    for (int r = 0; r < ib; r++) {
                        java.util.Arrays.fill(t, r * io + c0, r * io + c0 + cb, 0.0);
                    }
                    // T[:, c0:c0+cb] = L[I, c0:i0] · X[c0:i0, c0:c0+cb]; X[l, c] = 0 for l < c0 <= c
                    tileD(ib, cb, io - c0, 1.0, a, off + io * lda + c0, lda, a, off + c0 * lda + c0, lda, t, c0, io);
                });
                dgemm(ib, i0, ib, -1.0, xii, 0, ib, t, 0, i0, 0.0, a, off + i0 * lda, lda, false);
            }
            for (int r = 0; r < ib; r++) {
                System.arraycopy(xii, r * ib, a, off + (i0 + r) * lda + i0, r + 1);
            }
        }
    }

    private static void zeroStrictUpper(int n, double[] a, int off, int lda) {
        for (int i = 0; i < n; i++) {
            java.util.Arrays.fill(a, off + i * lda + i + 1, off + i * lda + n, 0.0);
        }
    }

    private static void transposeInPlace(int n, double[] a, int off, int lda) {
        for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++) {
                int p = off + i * lda + j;
                int q = off + j * lda + i;
                double v = a[p];
                a[p] = a[q];
                a[q] = v;
            }
        }
    }

    /** {@code A ← P·A·P} with P the order-reversing permutation: {@code a[i][j] ↔ a[n-1-i][n-1-j]}. */
    private static void reverseInPlace(int n, double[] a, int off, int lda) {
        for (int i = 0; i < (n + 1) / 2; i++) {
            int ri = off + i * lda;
            int rm = off + (n - 1 - i) * lda;
            int jEnd = (i == n - 1 - i) ? n / 2 : n;
            for (int j = 0; j < jEnd; j++) {
                int p = ri + j;
                int q = rm + (n - 1 - j);
                double v = a[p];
                a[p] = a[q];
                a[q] = v;
            }
        }
    }

    // ------------------------------------------------------------------ SparseGPT block

    @Override
    public void sparseGptBlock(SparseGptBlock job) {
        job.validate();
        int rows = job.rows();
        if (rows == 0 || job.width() == 0) {
            return;
        }
        parallelFor(ceilDiv(rows, BLOCK_ROWS), t -> {
            int r0 = t * BLOCK_ROWS;
            int r1 = Math.min(rows, r0 + BLOCK_ROWS);
            float[] scratch = buffer(bufScores, Math.max(2, job.width()));
            for (int r = r0; r < r1; r++) {
                solveRow(job, r, scratch);
            }
        });
    }

    /** One row of {@link SparseGptBlock}; see its Javadoc for the exact sequence. */
    private void solveRow(SparseGptBlock job, int r, float[] scores) {
        final int width = job.width();
        final float[] w = job.w().data();
        final int wo = job.w().index(r, 0);
        final float[] u = job.u().data();
        final FloatView uv = job.u();
        final byte[] mask = job.mask().data();
        final int mo = job.mask().index(r, 0);
        final float[] err = job.err().data();
        final int eo = job.err().index(r, 0);
        final int nmGroup = job.nmGroup();
        final int nmPrune = nmGroup - job.nmKeep();
        final SparseGptBlock.Quant quant = job.quant();
        final int maxq = quant == null ? 0 : GridMath.maxq(quant.bits());
        final int half = quant == null ? 0 : 1 << (quant.bits() - 1);
        final int groupSize = quant == null ? 0 : quant.groupSize();
        float[] grid = new float[2];
        float scale = 0f;
        float zero = 0f;
        if (quant != null && groupSize == 0) {
            scale = quant.scale().data()[quant.scale().index(r, 0)];
            zero = quant.zero().data()[quant.zero().index(r, 0)];
        }
        double loss = 0.0;
        for (int i = 0; i < width; i++) {
            if (nmGroup > 0 && i % nmGroup == 0) {
                for (int j = 0; j < nmGroup; j++) {
                    float v = w[wo + i + j];
                    float d = u[uv.index(i + j, i + j)];
                    scores[j] = (v * v) / (d * d);
                }
                for (int p = 0; p < nmPrune; p++) {
                    int best = -1;
                    for (int j = 0; j < nmGroup; j++) {
                        if (mask[mo + i + j] == 0 && (best < 0 || scores[j] < scores[best])) {
                            best = j;
                        }
                    }
                    mask[mo + i + best] = 1;
                }
            }
            if (quant != null && groupSize > 0 && i % groupSize == 0) {
                GridMath.fit(w, wo + i, groupSize, 1, quant.bits(), quant.symmetric(), grid, 0);
                scale = grid[0];
                zero = grid[1];
                int g = i / groupSize;
                quant.scale().data()[quant.scale().index(r, g)] = scale;
                quant.zero().data()[quant.zero().index(r, g)] = zero;
            }
            final float wi = w[wo + i];
            float q = mask[mo + i] != 0 ? 0f : wi;
            if (quant != null) {
                float level = GridMath.level(q, scale, zero, maxq);
                ByteView codes = quant.codes();
                codes.data()[codes.index(r, i)] = (byte) ((int) level - half);
                q = GridMath.value(level, scale, zero);
            }
            final int ur = uv.index(i, 0);
            final float e = (wi - q) / u[ur + i];
            loss += (double) e * e;
            mk.subScaled(width - i - 1, e, u, ur + i + 1, w, wo + i + 1);
            w[wo + i] = q;
            err[eo + i] = e;
        }
        job.rowLoss()[job.lossOffset() + r] += loss;
    }

    // =====================================================================================
    // Forward-pass kernels (model forward passes): implemented in CpuForward, see Backend.
    // =====================================================================================

    private final CpuForward forward = new CpuForward(this);

    /** @return the microkernels this backend uses (for {@link CpuForward}) */
    Microkernels microkernels() {
        return mk;
    }

    @Override
    public void rmsNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] w, int wOff,
                        float[] y, int yOff, int ldy) {
        forward.rmsNorm(rows, cols, eps, x, xOff, ldx, w, wOff, y, yOff, ldy);
    }

    @Override
    public void layerNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] gamma, int gOff,
                          float[] beta, int bOff, float[] y, int yOff, int ldy) {
        forward.layerNorm(rows, cols, eps, x, xOff, ldx, gamma, gOff, beta, bOff, y, yOff, ldy);
    }

    @Override
    public void rope(int rows, int heads, int headDim, float[] x, int xOff, int ldx, int[] positions, int posOff,
                     float[] cos, float[] sin, int tableRows) {
        forward.rope(rows, heads, headDim, x, xOff, ldx, positions, posOff, cos, sin, tableRows);
    }

    @Override
    public void attention(io.sparkprune.kernels.AttentionJob job) {
        forward.attention(job);
    }

    @Override
    public void siluMul(int rows, int cols, float[] g, int gOff, int ldg, float[] u, int uOff, int ldu,
                        float[] y, int yOff, int ldy) {
        forward.siluMul(rows, cols, g, gOff, ldg, u, uOff, ldu, y, yOff, ldy);
    }

    @Override
    public void gelu(int rows, int cols, float[] x, int xOff, int ldx) {
        forward.gelu(rows, cols, x, xOff, ldx);
    }

    @Override
    public void embedding(int rows, int cols, int[] ids, int idOff, float[] table, int tOff, int tableRows,
                          float[] y, int yOff, int ldy, boolean accumulate) {
        forward.embedding(rows, cols, ids, idOff, table, tOff, tableRows, y, yOff, ldy, accumulate);
    }

    @Override
    public void addRowVector(int rows, int cols, float[] v, int vOff, float[] y, int yOff, int ldy) {
        forward.addRowVector(rows, cols, v, vOff, y, yOff, ldy);
    }

    @Override
    public void add(int rows, int cols, float[] x, int xOff, int ldx, float[] y, int yOff, int ldy) {
        forward.add(rows, cols, x, xOff, ldx, y, yOff, ldy);
    }

    @Override
    public void logSoftmax(int rows, int cols, float[] x, int xOff, int ldx) {
        forward.logSoftmax(rows, cols, x, xOff, ldx);
    }

    @Override
    public void crossEntropy(int rows, int cols, float[] logits, int xOff, int ldx, int[] targets, int tOff,
                             double[] nll, int nllOff) {
        forward.crossEntropy(rows, cols, logits, xOff, ldx, targets, tOff, nll, nllOff);
    }
}
