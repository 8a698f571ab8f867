package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.AttentionJob;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.Checks;
import io.sparkprune.kernels.SparseGptBlock;
import io.sparkprune.kernels.cpu.CpuBackend;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.JCudaDriver;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@link Backend} on one CUDA device through JCuda's driver API, with SparkPrune's own kernels
 * ({@code kernels/src/main/cuda/sparkprune.cu}, built by nvcc into the resource
 * {@value #FATBIN} with sm_80 and sm_90 machine code and compute_90 PTX, loaded with
 * {@code cuModuleLoadData}). Needs only the driver ({@code libcuda.so.1}).
 *
 * <p>Which operations run on the GPU is listed by {@link #kernelStatus()}: today the fp32 product
 * ({@code sgemm}), the Hessian update ({@code syrkPackedUpper}, fp64 sums of exact fp32 products) and
 * the fused SparseGPT block solve ({@code sparseGptBlock}, block width ≤ {@value #MAX_BLOCK_WIDTH});
 * everything else (factorizations, forward ops) is delegated to a {@link CpuBackend} with the same
 * thread count, on the host arrays. Host-array calls copy their operands to the device and the results
 * back (synchronously, pageable memory); {@link #sparseGptSolveNofM} keeps a whole weight on the device
 * across blocks.
 *
 * <p>The backend uses the device's primary context, made current on the calling thread by every call;
 * calls are serialized (the methods are {@code synchronized}), so one backend is safe to share between
 * threads. Every driver call is checked; failures throw {@link CudaCallException} naming the call, the
 * kernel or operand, and the driver's error.
 */
public final class CudaBackend implements Backend {
    /** Class-path resource of the compiled kernels. */
    public static final String FATBIN = "/io/sparkprune/kernels/cuda/sparkprune.fatbin";
    /** Widest column block the fused block kernel handles (its register and shared-memory layout). */
    public static final int MAX_BLOCK_WIDTH = 128;
    private static final int BLOCK_WARPS = 16;
    private static final int BLOCK_SMEM = (MAX_BLOCK_WIDTH * MAX_BLOCK_WIDTH + BLOCK_WARPS * MAX_BLOCK_WIDTH) * 4;

    private static final String[] GPU_OPS = {"sgemm", "syrkPackedUpper", "sparseGptBlock"};
    private static final String[] CPU_OPS = {"cholesky", "triangularInverse", "choleskyInverse",
        "inverseCholeskyUpper", "rmsNorm", "layerNorm", "rope", "attention", "siluMul", "gelu", "embedding",
        "addRowVector", "add", "logSoftmax", "crossEntropy"};

    private final int ordinal;
    private final String deviceName;
    private final CUdevice device;
    private final CUcontext ctx;
    private final CUmodule module;
    private final CUfunction fSgemm;
    private final CUfunction fSyrk;
    private final CUfunction fBlock;
    private final CpuBackend cpu;
    private final DeviceBuffer[] workspace = new DeviceBuffer[8];
    private boolean closed;

    private CudaBackend(int ordinal, int threads) {
        this.ordinal = ordinal;
        JCudaNatives.load();
        Driver.check("cuInit", () -> JCudaDriver.cuInit(0));
        int[] count = new int[1];
        Driver.check("cuDeviceGetCount", () -> JCudaDriver.cuDeviceGetCount(count));
        if (ordinal < 0 || ordinal >= count[0]) {
            throw new IllegalStateException("CUDA device " + ordinal + " does not exist: this host has " + count[0]
                    + " device(s); set the device ordinal (spark.sparkprune.gpu.device) to one of 0.." + (count[0] - 1));
        }
        device = new CUdevice();
        Driver.check("cuDeviceGet " + ordinal, () -> JCudaDriver.cuDeviceGet(device, ordinal));
        byte[] name = new byte[256];
        Driver.check("cuDeviceGetName " + ordinal, () -> JCudaDriver.cuDeviceGetName(name, name.length, device));
        int len = 0;
        while (len < name.length && name[len] != 0) {
            len++;
        }
        deviceName = new String(name, 0, len, StandardCharsets.UTF_8);
        ctx = new CUcontext();
        Driver.check("cuDevicePrimaryCtxRetain " + ordinal, () -> JCudaDriver.cuDevicePrimaryCtxRetain(ctx, device));
        try {
            current();
            byte[] image = loadFatbin();
            module = new CUmodule();
            Driver.check("cuModuleLoadData " + FATBIN + " (" + image.length + " bytes) on " + deviceName,
                    () -> JCudaDriver.cuModuleLoadData(module, image));
            fSgemm = function("sgemm_f32");
            fSyrk = function("syrk_packed_f64");
            fBlock = function("sparsegpt_block");
            Driver.check("cuFuncSetAttribute sparsegpt_block max dynamic shared memory " + BLOCK_SMEM,
                    () -> JCudaDriver.cuFuncSetAttribute(fBlock,
                            CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, BLOCK_SMEM));
        } catch (RuntimeException e) {
            JCudaDriver.cuDevicePrimaryCtxRelease(device);
            throw e;
        }
        cpu = CpuBackend.create(threads);
    }

    /**
     * Opens a backend on a CUDA device.
     *
     * @param ordinal device ordinal, ≥ 0
     * @param threads threads of the CPU backend that runs the delegated operations, ≥ 1
     * @return a new backend; close it to release the device context and buffers
     * @throws IllegalStateException when there is no driver, no such device, or the kernels were not
     *     built ({@code -Dsparkprune.skipCuda=true}); {@link CudaCallException} when a driver call fails
     */
    public static CudaBackend create(int ordinal, int threads) {
        return new CudaBackend(ordinal, threads);
    }

    /**
     * @return which operations run on the GPU ({@code "gpu"}) and which are delegated to the CPU
     *     backend ({@code "cpu (delegated)"}), in {@link Backend}'s order
     */
    public static Map<String, String> kernelStatus() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("sgemm", "gpu: sgemm_f32 (fp32 FMA, 64x64 shared-memory tiles)");
        m.put("syrkPackedUpper", "gpu: syrk_packed_f64 (fp64 sums of exact fp32 products)");
        m.put("sparseGptBlock", "gpu: sparsegpt_block (one launch per block, width <= " + MAX_BLOCK_WIDTH
                + "; wider blocks delegated)");
        for (String op : CPU_OPS) {
            m.put(op, "cpu (delegated)");
        }
        return m;
    }

    /** @return the names of the operations that run on the GPU */
    public static String[] gpuOps() {
        return GPU_OPS.clone();
    }

    private static byte[] loadFatbin() {
        try (InputStream in = CudaBackend.class.getResourceAsStream(FATBIN)) {
            if (in == null) {
                throw new IllegalStateException("the CUDA kernels " + FATBIN + " are not on the class path: this"
                        + " build was made with -Dsparkprune.skipCuda=true or without nvcc; rebuild with nvcc on PATH"
                        + " or use --backend cpu");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + FATBIN + ": " + e.getMessage(), e);
        }
    }

    private CUfunction function(String name) {
        CUfunction f = new CUfunction();
        Driver.check("cuModuleGetFunction " + name, () -> JCudaDriver.cuModuleGetFunction(f, module, name));
        return f;
    }

    private void current() {
        if (closed) {
            throw new IllegalStateException("CUDA backend on device " + ordinal + " is closed");
        }
        Driver.check("cuCtxSetCurrent device " + ordinal, () -> JCudaDriver.cuCtxSetCurrent(ctx));
    }

    /** A grow-only scratch buffer of this backend (slot per operand). */
    private DeviceBuffer ws(int slot, long bytes, String label) {
        DeviceBuffer b = workspace[slot];
        if (b == null || b.bytes() < bytes) {
            if (b != null) {
                b.close();
            }
            b = DeviceBuffer.allocate(ctx, Math.max(bytes, 1L << 20), "workspace " + slot + " (" + label + ")");
            workspace[slot] = b;
        }
        return b;
    }

    /**
     * Allocates a device buffer in this backend's context (for callers that keep data on the device).
     *
     * @param bytes size
     * @param label what it holds
     * @return the buffer; close it before closing the backend
     */
    public synchronized DeviceBuffer allocate(long bytes, String label) {
        current();
        return DeviceBuffer.allocate(ctx, bytes, label);
    }

    private void launch(String what, CUfunction f, int gx, int gy, int bx, int smem, Pointer params) {
        Driver.check("cuLaunchKernel " + what, () -> JCudaDriver.cuLaunchKernel(f, gx, gy, 1, bx, 1, 1, smem, null,
                params, null));
        Driver.check("kernel " + what, JCudaDriver::cuCtxSynchronize);
    }

    private static Pointer p(int v) {
        return Pointer.to(new int[] {v});
    }

    private static Pointer p(float v) {
        return Pointer.to(new float[] {v});
    }

    private static Pointer p(CUdeviceptr d) {
        return Pointer.to(d);
    }

    @Override
    public String name() {
        return "cuda(" + ordinal + ": " + deviceName + "; delegates to " + cpu.name() + ")";
    }

    /** @return the device's name as the driver reports it */
    public String deviceName() {
        return deviceName;
    }

    @Override
    public int threads() {
        return cpu.threads();
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        try {
            current();
            for (int i = 0; i < workspace.length; i++) {
                if (workspace[i] != null) {
                    workspace[i].close();
                    workspace[i] = null;
                }
            }
            Driver.check("cuModuleUnload", () -> JCudaDriver.cuModuleUnload(module));
        } finally {
            closed = true;
            JCudaDriver.cuDevicePrimaryCtxRelease(device);
            cpu.close();
        }
    }

    // ------------------------------------------------------------------ packing helpers

    private static float[] pack(float[] a, int off, int ld, int rows, int cols) {
        if (off == 0 && ld == cols && a.length == rows * cols) {
            return a;
        }
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(a, off + r * ld, out, r * cols, cols);
        }
        return out;
    }

    private static byte[] pack(byte[] a, int off, int ld, int rows, int cols) {
        if (off == 0 && ld == cols && a.length == rows * cols) {
            return a;
        }
        byte[] out = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(a, off + r * ld, out, r * cols, cols);
        }
        return out;
    }

    private static void unpack(float[] src, float[] a, int off, int ld, int rows, int cols) {
        if (src == a) {
            return;
        }
        for (int r = 0; r < rows; r++) {
            System.arraycopy(src, r * cols, a, off + r * ld, cols);
        }
    }

    private static void unpack(byte[] src, byte[] a, int off, int ld, int rows, int cols) {
        if (src == a) {
            return;
        }
        for (int r = 0; r < rows; r++) {
            System.arraycopy(src, r * cols, a, off + r * ld, cols);
        }
    }

    // ------------------------------------------------------------------ GPU operations

    @Override
    public synchronized void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                   float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                   float beta, float[] c, int cOff, int ldc) {
        Checks.window("sgemm A", a.length, aOff, lda, transA ? k : m, transA ? m : k);
        Checks.window("sgemm B", b.length, bOff, ldb, transB ? n : k, transB ? k : n);
        Checks.window("sgemm C", c.length, cOff, ldc, m, n);
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0 || alpha == 0f) {
            cpu.sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
            return;
        }
        current();
        int ar = transA ? k : m;
        int ac = transA ? m : k;
        int br = transB ? n : k;
        int bc = transB ? k : n;
        String shape = m + "x" + n + "x" + k;
        DeviceBuffer da = ws(0, 4L * ar * ac, "sgemm A");
        DeviceBuffer db = ws(1, 4L * br * bc, "sgemm B");
        DeviceBuffer dc = ws(2, 4L * m * n, "sgemm C");
        da.upload(pack(a, aOff, lda, ar, ac), 0, ar * ac, 0);
        db.upload(pack(b, bOff, ldb, br, bc), 0, br * bc, 0);
        float[] hc = beta == 0f ? null : pack(c, cOff, ldc, m, n);
        if (hc != null) {
            dc.upload(hc, 0, m * n, 0);
        }
        sgemmDevice(transA, transB, m, n, k, alpha, da.pointer(), ac, db.pointer(), bc, beta, dc.pointer(), n, shape);
        if (hc == null) {
            hc = (cOff == 0 && ldc == n && c.length == m * n) ? c : new float[m * n];
        }
        dc.download(0, hc, 0, m * n);
        unpack(hc, c, cOff, ldc, m, n);
    }

    /** {@code C = alpha·op(A)·op(B) + beta·C} on device pointers (see {@link #sgemm}). */
    void sgemmDevice(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             CUdeviceptr a, int lda, CUdeviceptr b, int ldb, float beta, CUdeviceptr c, int ldc,
                             String what) {
        Pointer params = Pointer.to(p(transA ? 1 : 0), p(transB ? 1 : 0), p(m), p(n), p(k), p(alpha),
                p(a), p(lda), p(b), p(ldb), p(beta), p(c), p(ldc));
        launch("sgemm_f32 " + what, fSgemm, (n + 63) / 64, (m + 63) / 64, 256, 0, params);
    }

    @Override
    public synchronized void syrkPackedUpper(int n, int k, float[] x, int xOff, int ldx, double[] cPacked) {
        Checks.window("syrk X", x.length, xOff, ldx, k, n);
        long packed = (long) n * (n + 1) / 2;
        if (cPacked.length < packed) {
            throw new IllegalArgumentException("packed C needs " + packed + " elements, has " + cPacked.length);
        }
        if (n == 0 || k == 0) {
            return;
        }
        current();
        DeviceBuffer dx = ws(0, 4L * k * n, "syrk X");
        DeviceBuffer dcp = ws(3, 8L * packed, "syrk packed H");
        dx.upload(pack(x, xOff, ldx, k, n), 0, k * n, 0);
        dcp.upload(cPacked, 0, (int) packed, 0);
        syrkDevice(n, k, dx.pointer(), dcp.pointer());
        dcp.download(0, cPacked, 0, (int) packed);
    }

    /** {@code Cp += Xᵀ·X} on device pointers (see {@link #syrkPackedUpper}); X is {@code k × n}, row stride n. */
    void syrkDevice(int n, int k, CUdeviceptr x, CUdeviceptr cPacked) {
        int nt = (n + 63) / 64;
        long tiles = (long) nt * (nt + 1) / 2;
        Pointer params = Pointer.to(p(n), p(k), p(x), p(n), p(cPacked));
        launch("syrk_packed_f64 n=" + n + " k=" + k, fSyrk, (int) tiles, 1, 256, 0, params);
    }

    /** Makes this backend's context current on the calling thread (for callers using device buffers). */
    synchronized void makeCurrent() {
        current();
    }

    @Override
    public synchronized void sparseGptBlock(SparseGptBlock job) {
        job.validate();
        final int rows = job.rows();
        final int width = job.width();
        if (rows == 0 || width == 0) {
            return;
        }
        if (width > MAX_BLOCK_WIDTH) {
            cpu.sparseGptBlock(job);
            return;
        }
        current();
        SparseGptBlock.Quant q = job.quant();
        int gcols = q == null ? 0 : (q.groupSize() == 0 ? 1 : width / q.groupSize());
        DeviceBuffer dw = ws(0, 4L * rows * width, "block W");
        DeviceBuffer du = ws(1, 4L * width * width, "block U");
        DeviceBuffer de = ws(2, 4L * rows * width, "block Err");
        DeviceBuffer dm = ws(3, (long) rows * width, "block mask");
        DeviceBuffer dl = ws(4, 8L * rows, "block loss");
        DeviceBuffer dq = ws(5, q == null ? 8 : 8L * rows * gcols, "block grid");
        DeviceBuffer dcodes = ws(6, q == null ? 1 : (long) rows * width, "block codes");
        float[] w = pack(job.w().data(), job.w().offset(), job.w().ld(), rows, width);
        dw.upload(w, 0, rows * width, 0);
        du.upload(pack(job.u().data(), job.u().offset(), job.u().ld(), width, width), 0, width * width, 0);
        byte[] mask = pack(job.mask().data(), job.mask().offset(), job.mask().ld(), rows, width);
        dm.upload(mask, 0, rows * width, 0);
        dl.zero(0, 8L * rows);
        float[] scale = null;
        float[] zero = null;
        if (q != null) {
            scale = pack(q.scale().data(), q.scale().offset(), q.scale().ld(), rows, gcols);
            zero = pack(q.zero().data(), q.zero().offset(), q.zero().ld(), rows, gcols);
            dq.upload(scale, 0, rows * gcols, 0);
            dq.upload(zero, 0, rows * gcols, (long) rows * gcols);
        }
        blockDevice(rows, width, dw.pointer(), width, du.pointer(), width, de.pointer(), width, dm.pointer(), width,
                job.nmKeep(), job.nmGroup(), q, dq.pointer(), dq.at(4L * rows * gcols), gcols, dcodes.pointer(), width,
                dl.pointer());
        dw.download(0, w, 0, rows * width);
        unpack(w, job.w().data(), job.w().offset(), job.w().ld(), rows, width);
        float[] err = (job.err().offset() == 0 && job.err().ld() == width && job.err().data().length == rows * width)
                ? job.err().data() : new float[rows * width];
        de.download(0, err, 0, rows * width);
        unpack(err, job.err().data(), job.err().offset(), job.err().ld(), rows, width);
        dm.download(0, mask, 0, rows * width);
        unpack(mask, job.mask().data(), job.mask().offset(), job.mask().ld(), rows, width);
        double[] loss = new double[rows];
        dl.download(0, loss, 0, rows);
        for (int r = 0; r < rows; r++) {
            job.rowLoss()[job.lossOffset() + r] += loss[r];
        }
        if (q != null) {
            if (q.groupSize() > 0) {
                dq.download(0, scale, 0, rows * gcols);
                dq.download((long) rows * gcols, zero, 0, rows * gcols);
                unpack(scale, q.scale().data(), q.scale().offset(), q.scale().ld(), rows, gcols);
                unpack(zero, q.zero().data(), q.zero().offset(), q.zero().ld(), rows, gcols);
            }
            byte[] codes = pack(q.codes().data(), q.codes().offset(), q.codes().ld(), rows, width);
            dcodes.download(0, codes, 0, rows * width);
            unpack(codes, q.codes().data(), q.codes().offset(), q.codes().ld(), rows, width);
        }
    }

    private void blockDevice(int rows, int width, CUdeviceptr w, int ldw, CUdeviceptr u, int ldu, CUdeviceptr err,
                             int lde, CUdeviceptr mask, int ldm, int nmKeep, int nmGroup, SparseGptBlock.Quant q,
                             CUdeviceptr scale, CUdeviceptr zero, int ldq, CUdeviceptr codes, int ldc, CUdeviceptr loss) {
        Pointer params = Pointer.to(p(rows), p(width), p(w), p(ldw), p(u), p(ldu), p(err), p(lde), p(mask), p(ldm),
                p(nmKeep), p(nmGroup), p(q == null ? 0 : q.bits()), p(q != null && q.symmetric() ? 1 : 0),
                p(q == null ? 0 : q.groupSize()), p(scale), p(zero), p(ldq), p(codes), p(ldc), p(loss));
        launch("sparsegpt_block rows=" + rows + " width=" + width, fBlock, (rows + BLOCK_WARPS - 1) / BLOCK_WARPS, 1,
                BLOCK_WARPS * 32, BLOCK_SMEM, params);
    }

    /**
     * SparseGPT for a whole weight with an N:M pattern and no quantization, every block on the device:
     * W and U are uploaded once; per column block of {@code blockSize} the fused block kernel, then the
     * lazy update {@code W[:, i2:] -= Err · U[i1:i2, i2:]} by the sgemm kernel; W and the mask are
     * downloaded at the end. Computes the same function as {@code SparseGptSolver} with this backend
     * (without its input checks and dead-column handling).
     *
     * @param rows rows of W
     * @param cols columns of W (and order of U)
     * @param w {@code rows × cols} weights, replaced by the pruned weights
     * @param u {@code cols × cols} upper inverse factor (fp32, upper triangle read)
     * @param blockSize column block, 1..{@value #MAX_BLOCK_WIDTH}, a multiple of {@code nmGroup}
     * @param nmKeep N of N:M
     * @param nmGroup M of N:M
     * @param mask receives the {@code rows × cols} mask, 1 = pruned
     * @param rowLoss receives the per-row losses (added to)
     */
    public synchronized void sparseGptSolveNofM(int rows, int cols, float[] w, float[] u, int blockSize, int nmKeep,
                                                int nmGroup, byte[] mask, double[] rowLoss) {
        if (blockSize < 1 || blockSize > MAX_BLOCK_WIDTH || nmGroup < 1 || blockSize % nmGroup != 0
                || nmKeep < 0 || nmKeep > nmGroup || cols % nmGroup != 0) {
            throw new IllegalArgumentException("bad block " + blockSize + " / N:M " + nmKeep + ":" + nmGroup
                    + " for " + cols + " columns");
        }
        Checks.window("solve W", w.length, 0, cols, rows, cols);
        Checks.window("solve U", u.length, 0, cols, cols, cols);
        Checks.window("solve mask", mask.length, 0, cols, rows, cols);
        if (rowLoss.length < rows) {
            throw new IllegalArgumentException("rowLoss needs " + rows + " elements, has " + rowLoss.length);
        }
        current();
        try (DeviceBuffer dw = DeviceBuffer.allocate(ctx, 4L * rows * cols, "solve W " + rows + "x" + cols);
             DeviceBuffer du = DeviceBuffer.allocate(ctx, 4L * cols * cols, "solve U " + cols + "x" + cols);
             DeviceBuffer dm = DeviceBuffer.allocate(ctx, (long) rows * cols, "solve mask");
             DeviceBuffer de = DeviceBuffer.allocate(ctx, 4L * rows * blockSize, "solve Err");
             DeviceBuffer dl = DeviceBuffer.allocate(ctx, 8L * rows, "solve loss")) {
            dw.upload(w, 0, rows * cols, 0);
            du.upload(u, 0, cols * cols, 0);
            dm.zero(0, (long) rows * cols);
            dl.zero(0, 8L * rows);
            CUdeviceptr none = dl.pointer();
            for (int i1 = 0; i1 < cols; i1 += blockSize) {
                int i2 = Math.min(cols, i1 + blockSize);
                int width = i2 - i1;
                blockDevice(rows, width, dw.at(4L * i1), cols, du.at(4L * ((long) i1 * cols + i1)), cols, de.pointer(),
                        width, dm.at(i1), cols, nmKeep, nmGroup, null, none, none, 0, none, 0, dl.pointer());
                if (i2 < cols) {
                    sgemmDevice(false, false, rows, cols - i2, width, -1f, de.pointer(), width,
                            du.at(4L * ((long) i1 * cols + i2)), cols, 1f, dw.at(4L * i2), cols,
                            "lazy update block " + i1);
                }
            }
            dw.download(0, w, 0, rows * cols);
            dm.download(0, mask, 0, rows * cols);
            double[] loss = new double[rows];
            dl.download(0, loss, 0, rows);
            for (int r = 0; r < rows; r++) {
                rowLoss[r] += loss[r];
            }
        }
    }

    // ------------------------------------------------------------------ delegated to the CPU backend

    @Override
    public boolean cholesky(int n, double[] a, int aOff, int lda, boolean upper) {
        return cpu.cholesky(n, a, aOff, lda, upper);
    }

    @Override
    public void triangularInverse(int n, double[] a, int aOff, int lda, boolean upper) {
        cpu.triangularInverse(n, a, aOff, lda, upper);
    }

    @Override
    public void choleskyInverse(int n, double[] l, int lOff, int ldl, double[] out, int outOff, int ldo) {
        cpu.choleskyInverse(n, l, lOff, ldl, out, outOff, ldo);
    }

    @Override
    public boolean inverseCholeskyUpper(int n, double[] a, int aOff, int lda) {
        return cpu.inverseCholeskyUpper(n, a, aOff, lda);
    }

    @Override
    public void rmsNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] w, int wOff,
                        float[] y, int yOff, int ldy) {
        cpu.rmsNorm(rows, cols, eps, x, xOff, ldx, w, wOff, y, yOff, ldy);
    }

    @Override
    public void layerNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] gamma, int gOff,
                          float[] beta, int bOff, float[] y, int yOff, int ldy) {
        cpu.layerNorm(rows, cols, eps, x, xOff, ldx, gamma, gOff, beta, bOff, y, yOff, ldy);
    }

    @Override
    public void rope(int rows, int heads, int headDim, float[] x, int xOff, int ldx, int[] positions, int posOff,
                     float[] cos, float[] sin, int tableRows) {
        cpu.rope(rows, heads, headDim, x, xOff, ldx, positions, posOff, cos, sin, tableRows);
    }

    @Override
    public void attention(AttentionJob job) {
        cpu.attention(job);
    }

    @Override
    public void siluMul(int rows, int cols, float[] g, int gOff, int ldg, float[] u, int uOff, int ldu,
                        float[] y, int yOff, int ldy) {
        cpu.siluMul(rows, cols, g, gOff, ldg, u, uOff, ldu, y, yOff, ldy);
    }

    @Override
    public void gelu(int rows, int cols, float[] x, int xOff, int ldx) {
        cpu.gelu(rows, cols, x, xOff, ldx);
    }

    @Override
    public void embedding(int rows, int cols, int[] ids, int idOff, float[] table, int tOff, int tableRows,
                          float[] y, int yOff, int ldy, boolean accumulate) {
        cpu.embedding(rows, cols, ids, idOff, table, tOff, tableRows, y, yOff, ldy, accumulate);
    }

    @Override
    public void addRowVector(int rows, int cols, float[] v, int vOff, float[] y, int yOff, int ldy) {
        cpu.addRowVector(rows, cols, v, vOff, y, yOff, ldy);
    }

    @Override
    public void add(int rows, int cols, float[] x, int xOff, int ldx, float[] y, int yOff, int ldy) {
        cpu.add(rows, cols, x, xOff, ldx, y, yOff, ldy);
    }

    @Override
    public void logSoftmax(int rows, int cols, float[] x, int xOff, int ldx) {
        cpu.logSoftmax(rows, cols, x, xOff, ldx);
    }

    @Override
    public void crossEntropy(int rows, int cols, float[] logits, int xOff, int ldx, int[] targets, int tOff,
                             double[] nll, int nllOff) {
        cpu.crossEntropy(rows, cols, logits, xOff, ldx, targets, tOff, nll, nllOff);
    }
}
