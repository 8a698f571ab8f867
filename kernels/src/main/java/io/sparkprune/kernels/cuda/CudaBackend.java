package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.AttentionJob;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.Checks;
import io.sparkprune.kernels.DampedFactorizer;
import io.sparkprune.kernels.ResidentSolver;
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
public final class CudaBackend implements Backend, DampedFactorizer, ResidentSolver {
    /** Class-path resource of the compiled kernels. */
    public static final String FATBIN = "/io/sparkprune/kernels/cuda/sparkprune.fatbin";
    /** Widest column block the fused block kernel handles (its register and shared-memory layout). */
    public static final int MAX_BLOCK_WIDTH = 128;
    private static final int BLOCK_WARPS = 16;
    private static final int BLOCK_SMEM = (MAX_BLOCK_WIDTH * MAX_BLOCK_WIDTH + BLOCK_WARPS * MAX_BLOCK_WIDTH) * 4;

    /** Diagonal block of the device Cholesky and triangular inverse (kernel constant FB). */
    private static final int FB = 64;
    private static final int POTF2_SMEM = 2 * FB * (FB + 1) * 8;

    private static final String[] GPU_OPS = {"sgemm", "syrkPackedUpper", "inverseCholeskyUpper", "sparseGptBlock"};
    private static final String[] CPU_OPS = {"cholesky", "triangularInverse", "choleskyInverse", "rmsNorm", "layerNorm", "rope", "attention", "siluMul", "gelu", "embedding",
        "addRowVector", "add", "logSoftmax", "crossEntropy"};

    private final int ordinal;
    private final String deviceName;
    private final CUdevice device;
    private final CUcontext ctx;
    private final CUmodule module;
    private final CUfunction fSgemm;
    private final CUfunction fSyrk;
    private final CUfunction fBlock;
    private final CUfunction fLoadReversed;
    private final CUfunction fReversedUpper;
    private final CUfunction fPotf2Inv;
    private final CUfunction fDgemm;
    private final CUfunction fGatherCols;
    private final CUfunction fUnpackUpper;
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
            fLoadReversed = function("load_reversed_f64");
            fReversedUpper = function("reversed_upper");
            fPotf2Inv = function("potf2_inv_f64");
            fDgemm = function("dgemm_f64");
            fGatherCols = function("gather_cols_f32");
            fUnpackUpper = function("unpack_upper_f64");
            Driver.check("cuFuncSetAttribute potf2_inv_f64 max dynamic shared memory " + POTF2_SMEM,
                    () -> JCudaDriver.cuFuncSetAttribute(fPotf2Inv,
                            CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, POTF2_SMEM));
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
        m.put("inverseCholeskyUpper", "gpu: fp64 blocked Cholesky (potf2_inv_f64 + dgemm_f64) and triangular"
                + " inverse of the reversed matrix; also the damped retry (DampedFactorizer)");
        m.put("sparseGptSolve", "gpu: whole column-block loop with W resident (ResidentSolver); unstructured and"
                + " block masks selected on the host per block");
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
        launchAsync(what, f, gx, gy, bx, smem, params);
        Driver.check("kernel " + what, JCudaDriver::cuCtxSynchronize);
    }

    /** Launches without waiting; the caller synchronizes after a chain (errors surface there). */
    private void launchAsync(String what, CUfunction f, int gx, int gy, int bx, int smem, Pointer params) {
        Driver.check("cuLaunchKernel " + what, () -> JCudaDriver.cuLaunchKernel(f, gx, gy, 1, bx, 1, 1, smem, null,
                params, null));
    }

    private static Pointer p(double v) {
        return Pointer.to(new double[] {v});
    }

    private static int blocks(long elements) {
        return (int) ((elements + 255) / 256);
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
    public synchronized void syrkDevice(int n, int k, CUdeviceptr x, CUdeviceptr cPacked) {
        current();
        int nt = (n + 63) / 64;
        long tiles = (long) nt * (nt + 1) / 2;
        Pointer params = Pointer.to(p(n), p(k), p(x), p(n), p(cPacked));
        launch("syrk_packed_f64 n=" + n + " k=" + k, fSyrk, (int) tiles, 1, 256, 0, params);
    }

    /**
     * Copies {@code bytes} bytes between device buffers and waits.
     *
     * @param src source buffer
     * @param dst destination buffer
     * @param bytes bytes from offset 0 of each
     */
    public synchronized void copy(DeviceBuffer src, DeviceBuffer dst, long bytes) {
        current();
        Driver.check("cuMemcpyDtoD " + src.label() + " -> " + dst.label(),
                () -> JCudaDriver.cuMemcpyDtoD(dst.pointer(), src.pointer(), bytes));
        Driver.check("cuMemcpyDtoD sync", JCudaDriver::cuCtxSynchronize);
    }

    /**
     * Zeroes a byte range of a device buffer.
     *
     * @param b buffer
     * @param offset first byte
     * @param bytes length
     */
    public synchronized void zero(DeviceBuffer b, long offset, long bytes) {
        current();
        b.zero(offset, bytes);
    }

    /**
     * Uploads a whole array to the start of a device buffer.
     *
     * @param src fp32 values
     * @param dst buffer of at least {@code 4·src.length} bytes
     */
    public synchronized void upload(float[] src, DeviceBuffer dst) {
        current();
        dst.upload(src, 0, src.length, 0);
    }

    /**
     * Downloads the start of a device buffer into a whole array.
     *
     * @param src buffer
     * @param dst receives {@code dst.length} fp64 values
     */
    public synchronized void download(DeviceBuffer src, double[] dst) {
        current();
        src.download(0, dst, 0, dst.length);
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
        blockDevice(rows, width, w, ldw, u, ldu, err, lde, mask, ldm, nmKeep, nmGroup, q == null ? 0 : q.bits(),
                q != null && q.symmetric(), q == null ? 0 : q.groupSize(), scale, zero, ldq, codes, ldc, loss, true);
    }

    private void blockDevice(int rows, int width, CUdeviceptr w, int ldw, CUdeviceptr u, int ldu, CUdeviceptr err,
                             int lde, CUdeviceptr mask, int ldm, int nmKeep, int nmGroup, int qbits, boolean qsym,
                             int qgroup, CUdeviceptr scale, CUdeviceptr zero, int ldq, CUdeviceptr codes, int ldc,
                             CUdeviceptr loss, boolean sync) {
        Pointer params = Pointer.to(p(rows), p(width), p(w), p(ldw), p(u), p(ldu), p(err), p(lde), p(mask), p(ldm),
                p(nmKeep), p(nmGroup), p(qbits), p(qsym ? 1 : 0), p(qgroup), p(scale), p(zero), p(ldq), p(codes), p(ldc),
                p(loss));
        String what = "sparsegpt_block rows=" + rows + " width=" + width;
        int grid = (rows + BLOCK_WARPS - 1) / BLOCK_WARPS;
        if (sync) {
            launch(what, fBlock, grid, 1, BLOCK_WARPS * 32, BLOCK_SMEM, params);
        } else {
            launchAsync(what, fBlock, grid, 1, BLOCK_WARPS * 32, BLOCK_SMEM, params);
        }
    }

    /**
     * SparseGPT for a whole weight with an N:M pattern and no quantization, every block on the device
     * (a convenience over {@link #sparseGptSolve}).
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
    public void sparseGptSolveNofM(int rows, int cols, float[] w, float[] u, int blockSize, int nmKeep,
                                   int nmGroup, byte[] mask, double[] rowLoss) {
        sparseGptSolve(new SolveJob(rows, cols, blockSize, w, u, nmKeep, nmGroup, null, null, mask, rowLoss));
    }

    /**
     * {@inheritDoc}
     *
     * <p>On this backend: W ({@code rows × cols} fp32), U ({@code cols × cols} fp32), the mask and the
     * codes stay on the device for the whole loop; per block one fused {@code sparsegpt_block} launch and
     * one {@code sgemm_f32} lazy update, launched without host synchronization. Unstructured and block
     * patterns download the block's current weights ({@code rows × blockSize} fp32) for the host selector
     * and upload its mask. Blocks wider than {@value #MAX_BLOCK_WIDTH} columns are refused.
     *
     * @throws IllegalArgumentException when the arrays do not fit, or {@code blockSize > }{@value #MAX_BLOCK_WIDTH}
     * @throws CudaCallException when a driver call or kernel fails
     */
    @Override
    public int maxBlockSize() {
        return MAX_BLOCK_WIDTH;
    }

    @Override
    public synchronized void sparseGptSolve(SolveJob job) {
        job.validate();
        final int rows = job.rows();
        final int cols = job.cols();
        final int bs = Math.min(job.blockSize(), cols);
        if (job.blockSize() > MAX_BLOCK_WIDTH) {
            throw new IllegalArgumentException("block size " + job.blockSize() + " exceeds the GPU kernel's "
                    + MAX_BLOCK_WIDTH + " columns; use a block size of at most " + MAX_BLOCK_WIDTH);
        }
        if (rows == 0) {
            return;
        }
        current();
        long rc = (long) rows * cols;
        try (DeviceBuffer dw = DeviceBuffer.allocate(ctx, 4L * rc, "solve W " + rows + "x" + cols);
             DeviceBuffer du = DeviceBuffer.allocate(ctx, 4L * cols * cols, "solve U " + cols + "x" + cols)) {
            dw.upload(job.w(), 0, (int) rc, 0);
            du.upload(job.u(), 0, cols * cols, 0);
            solveOnDevice(job, dw.pointer(), du.pointer());
            dw.download(0, job.w(), 0, (int) rc);
        }
    }

    /**
     * The resident loop of {@link #sparseGptSolve} on W and U already on the device ({@code job.w()} and
     * {@code job.u()} are not touched): masks, losses and quantization outputs come back to the job's
     * arrays, the pruned W stays in {@code dwp}. For benchmarks and device pipelines.
     *
     * @param job the solve's arguments (its {@code w} and {@code u} arrays are ignored)
     * @param dwp device pointer of W, {@code rows × cols} fp32, updated in place
     * @param dup device pointer of U, {@code cols × cols} fp32
     * @throws CudaCallException when a driver call or kernel fails
     */
    public synchronized void solveOnDevice(SolveJob job, CUdeviceptr dwp, CUdeviceptr dup) {
        current();
        final int rows = job.rows();
        final int cols = job.cols();
        final int bs = Math.min(job.blockSize(), cols);
        SolveJob.Quant q = job.quant();
        int groups = q == null ? 1 : q.groups(cols);
        long rc = (long) rows * cols;
        boolean host = job.selector() != null;
        try (DeviceBuffer dm = DeviceBuffer.allocate(ctx, host ? (long) rows * bs : rc, "solve mask");
             DeviceBuffer de = DeviceBuffer.allocate(ctx, 4L * rows * bs, "solve Err");
             DeviceBuffer dg = DeviceBuffer.allocate(ctx, host ? 4L * rows * bs : 8, "solve block gather");
             DeviceBuffer dl = DeviceBuffer.allocate(ctx, 8L * rows, "solve loss");
             DeviceBuffer dq = DeviceBuffer.allocate(ctx, q == null ? 8 : 8L * rows * groups, "solve grids");
             DeviceBuffer dc = DeviceBuffer.allocate(ctx, q == null ? 8 : rc, "solve codes")) {
            dm.zero(0, dm.bytes());
            dl.zero(0, 8L * rows);
            if (q != null) {
                dq.upload(q.scale(), 0, rows * groups, 0);
                dq.upload(q.zero(), 0, rows * groups, (long) rows * groups);
            }
            float[] blockW = host ? new float[rows * bs] : null;
            byte[] blockMask = host ? new byte[rows * bs] : null;
            for (int i1 = 0; i1 < cols; i1 += bs) {
                int i2 = Math.min(cols, i1 + bs);
                int width = i2 - i1;
                CUdeviceptr mptr;
                int ldm;
                if (host) {
                    Pointer gp = Pointer.to(p(rows), p(width), p(dwp.withByteOffset(4L * i1)), p(cols), p(dg.pointer()));
                    launch("gather_cols_f32 block " + i1, fGatherCols, blocks((long) rows * width), 1, 256, 0, gp);
                    dg.download(0, blockW, 0, rows * width);
                    java.util.Arrays.fill(blockMask, 0, rows * width, (byte) 0);
                    job.selector().select(i1, width, blockW, blockMask);
                    dm.upload(blockMask, 0, rows * width, 0);
                    for (int r = 0; r < rows; r++) {
                        System.arraycopy(blockMask, r * width, job.mask(), r * cols + i1, width);
                    }
                    mptr = dm.pointer();
                    ldm = width;
                } else {
                    mptr = dm.at(i1);
                    ldm = cols;
                }
                int gOff = q == null || q.groupSize() == 0 ? 0 : i1 / q.groupSize();
                blockDevice(rows, width, dwp.withByteOffset(4L * i1), cols, dup.withByteOffset(4L * ((long) i1 * cols + i1)),
                        cols, de.pointer(), width, mptr, ldm, job.nmKeep(), job.nmGroup(), q == null ? 0 : q.bits(),
                        q != null && q.symmetric(), q == null ? 0 : q.groupSize(), q == null ? dq.pointer() : dq.at(4L * gOff),
                        q == null ? dq.pointer() : dq.at(4L * ((long) rows * groups + gOff)), groups,
                        q == null ? dc.pointer() : dc.at(i1), cols,
                        dl.pointer(), false);
                if (i2 < cols) {
                    sgemmDeviceAsync(false, false, rows, cols - i2, width, -1f, de.pointer(), width,
                            dup.withByteOffset(4L * ((long) i1 * cols + i2)), cols, 1f, dwp.withByteOffset(4L * i2), cols,
                            "lazy update block " + i1);
                }
            }
            Driver.check("SparseGPT solve " + rows + "x" + cols + " (fused blocks + lazy updates)",
                    JCudaDriver::cuCtxSynchronize);
            if (!host) {
                dm.download(0, job.mask(), 0, (int) rc);
            }
            double[] loss = new double[rows];
            dl.download(0, loss, 0, rows);
            for (int r = 0; r < rows; r++) {
                job.rowLoss()[r] += loss[r];
            }
            if (q != null) {
                dc.download(0, q.codes(), 0, (int) rc);
                if (q.groupSize() > 0) {
                    dq.download(0, q.scale(), 0, rows * groups);
                    dq.download((long) rows * groups, q.zero(), 0, rows * groups);
                }
            }
        }
    }

    private void sgemmDeviceAsync(boolean transA, boolean transB, int m, int n, int k, float alpha, CUdeviceptr a,
                                  int lda, CUdeviceptr b, int ldb, float beta, CUdeviceptr c, int ldc, String what) {
        Pointer params = Pointer.to(p(transA ? 1 : 0), p(transB ? 1 : 0), p(m), p(n), p(k), p(alpha),
                p(a), p(lda), p(b), p(ldb), p(beta), p(c), p(ldc));
        launchAsync("sgemm_f32 " + what, fSgemm, (n + 63) / 64, (m + 63) / 64, 256, 0, params);
    }

    // ------------------------------------------------------------------ inverse factor on the device

    private void dgemm(boolean transB, boolean lowerC, boolean aLower, int m, int n, int k, double alpha,
                       CUdeviceptr a, int lda, CUdeviceptr b, int ldb, double beta, CUdeviceptr c, int ldc, String what) {
        if (m <= 0 || n <= 0) {
            return;
        }
        Pointer params = Pointer.to(p(transB ? 1 : 0), p(lowerC ? 1 : 0), p(aLower ? 1 : 0), p(m), p(n), p(k),
                p(alpha), p(a), p(lda), p(b), p(ldb), p(beta), p(c), p(ldc));
        launchAsync("dgemm_f64 " + what, fDgemm, (n + 63) / 64, (m + 63) / 64, 256, 0, params);
    }

    /**
     * {@code U = P·L⁻¹·P} with {@code P·(A + λ)·P = L·Lᵀ}, all on the device (see the kernels'
     * comment in sparkprune.cu). A is read through its strict upper triangle, its diagonal from
     * {@code diag} plus λ.
     *
     * @return false when the Cholesky met a pivot that is not positive (nothing is written to U then)
     */
    private boolean factorDevice(int n, CUdeviceptr a, int lda, CUdeviceptr diag, double lambda, DeviceBuffer r,
                                 DeviceBuffer x, DeviceBuffer t, DeviceBuffer info, CUdeviceptr u64, CUdeviceptr u32) {
        long nn = (long) n * n;
        launchAsync("load_reversed_f64 n=" + n, fLoadReversed, blocks(nn), 1, 256, 0,
                Pointer.to(p(n), p(a), p(lda), p(diag), p(lambda), p(r.pointer())));
        x.zero(0, 8L * nn);
        info.zero(0, 4);
        for (int k0 = 0; k0 < n; k0 += FB) {
            int kb = Math.min(FB, n - k0);
            CUdeviceptr d = r.at(8L * ((long) k0 * n + k0));
            CUdeviceptr xd = x.at(8L * ((long) k0 * n + k0));
            launchAsync("potf2_inv_f64 block " + k0, fPotf2Inv, 1, 1, 256, POTF2_SMEM,
                    Pointer.to(p(kb), p(d), p(n), p(xd), p(n), p(info.pointer())));
            int m = n - k0 - kb;
            if (m == 0) {
                break;
            }
            CUdeviceptr a21 = r.at(8L * ((long) (k0 + kb) * n + k0));
            dgemm(true, false, false, m, kb, kb, 1.0, a21, n, xd, n, 0.0, a21, n, "panel " + k0);
            dgemm(true, true, false, m, m, kb, -1.0, a21, n, a21, n, 1.0, r.at(8L * ((long) (k0 + kb) * n + k0 + kb)), n,
                    "trailing update " + k0);
        }
        Driver.check("Cholesky n=" + n, JCudaDriver::cuCtxSynchronize);
        int[] flag = new int[1];
        Driver.check("cuMemcpyDtoH Cholesky info", () -> JCudaDriver.cuMemcpyDtoH(Pointer.to(flag), info.pointer(), 4));
        if (flag[0] != 0) {
            return false;
        }
        int nb = (n + FB - 1) / FB;
        for (int j = nb - 2; j >= 0; j--) {
            int c0 = j * FB;
            int r0 = c0 + FB;
            int m = n - r0;
            dgemm(false, false, false, m, FB, FB, 1.0, r.at(8L * ((long) r0 * n + c0)), n, x.at(8L * ((long) c0 * n + c0)),
                    n, 0.0, t.pointer(), FB, "trtri L21·X11 " + c0);
            dgemm(false, false, true, m, FB, m, -1.0, x.at(8L * ((long) r0 * n + r0)), n, t.pointer(), FB, 0.0,
                    x.at(8L * ((long) r0 * n + c0)), n, "trtri X22·T " + c0);
        }
        launchAsync("reversed_upper n=" + n, fReversedUpper, blocks(nn), 1, 256, 0,
                Pointer.to(p(n), p(x.pointer()), p(u64), p(u32)));
        Driver.check("triangular inverse n=" + n, JCudaDriver::cuCtxSynchronize);
        return true;
    }

    private static CUdeviceptr nullPtr() {
        return new CUdeviceptr();
    }

    /**
     * {@inheritDoc}
     *
     * <p>On this backend: fp64 on the device (blocked Cholesky of the reversed matrix, blocked
     * triangular inverse), A uploaded once and U downloaded once.
     */
    @Override
    public synchronized boolean inverseCholeskyUpper(int n, double[] a, int aOff, int lda) {
        Checks.window("inverseCholeskyUpper A", a.length, aOff, lda, n, n);
        if (n == 0) {
            return true;
        }
        double[] diag = new double[n];
        for (int i = 0; i < n; i++) {
            diag[i] = a[aOff + i * lda + i];
        }
        current();
        long nn = (long) n * n;
        try (Factor f = new Factor(n)) {
            double[] packed = new double[(int) nn];
            for (int i = 0; i < n; i++) {
                System.arraycopy(a, aOff + i * lda, packed, i * n, n);
            }
            f.a.upload(packed, 0, (int) nn, 0);
            f.diag.upload(diag, 0, n, 0);
            if (!factorDevice(n, f.a.pointer(), n, f.diag.pointer(), 0.0, f.r, f.x, f.t, f.info, f.a.pointer(),
                    nullPtr())) {
                return false;
            }
            f.a.download(0, packed, 0, (int) nn);
            for (int i = 0; i < n; i++) {
                System.arraycopy(packed, i * n, a, aOff + i * lda, n);
            }
            return true;
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>On this backend: A and the diagonal are uploaded once; each attempt runs on the device; only
     * the fp32 U of the attempt that worked comes back.
     */
    @Override
    public synchronized int dampedInverseCholeskyUpper(int n, double[] a, double[] diag, double[] lambdas, float[] u) {
        long nn = (long) n * n;
        if (n < 1 || a.length < nn || diag.length < n || u.length < nn) {
            throw new IllegalArgumentException("dampedInverseCholeskyUpper: arrays too short for n = " + n);
        }
        current();
        try (Factor f = new Factor(n);
             DeviceBuffer du = DeviceBuffer.allocate(ctx, 4L * nn, "factor U fp32 " + n + "x" + n)) {
            f.a.upload(a, 0, (int) nn, 0);
            f.diag.upload(diag, 0, n, 0);
            for (int k = 0; k < lambdas.length; k++) {
                if (factorDevice(n, f.a.pointer(), n, f.diag.pointer(), lambdas[k], f.r, f.x, f.t, f.info, nullPtr(),
                        du.pointer())) {
                    du.download(0, u, 0, (int) nn);
                    return k;
                }
            }
            return -1;
        }
    }

    /**
     * Device-resident inverse factor for benchmarks and device pipelines: A ({@code n × n} fp64,
     * strict upper triangle read) and {@code diag} already on the device; U written as fp32 to
     * {@code u32} on the device.
     *
     * @param n order
     * @param a device pointer of A, row stride n
     * @param diag device pointer of the n diagonal values
     * @param lambda dampening added to the diagonal
     * @param u32 device pointer receiving U ({@code n × n} fp32)
     * @return false when A + λI is not positive definite
     */
    public synchronized boolean inverseFactorDevice(int n, CUdeviceptr a, CUdeviceptr diag, double lambda,
                                                    CUdeviceptr u32) {
        current();
        try (Factor f = new Factor(n)) {
            return factorDevice(n, a, n, diag, lambda, f.r, f.x, f.t, f.info, nullPtr(), u32);
        }
    }

    /**
     * Unpacks a packed upper-triangular Hessian on the device (the layout of {@link #syrkPackedUpper})
     * times {@code scale} into the upper triangle of a full {@code n × n} fp64 matrix and its diagonal.
     *
     * @param n order
     * @param packed device pointer of {@code n(n+1)/2} fp64 values
     * @param scale factor applied (e.g. 1 / tokens)
     * @param full device pointer of the {@code n × n} fp64 output (row stride n; lower triangle untouched)
     * @param diag device pointer of the n fp64 diagonal values out
     */
    public synchronized void unpackUpperDevice(int n, CUdeviceptr packed, double scale, CUdeviceptr full, CUdeviceptr diag) {
        current();
        launch("unpack_upper_f64 n=" + n, fUnpackUpper, blocks((long) n * n), 1, 256, 0,
                Pointer.to(p(n), p(packed), p(scale), p(full), p(diag)));
    }

    /** Device work buffers of one factorization of order n. */
    private final class Factor implements AutoCloseable {
        final DeviceBuffer a;
        final DeviceBuffer diag;
        final DeviceBuffer r;
        final DeviceBuffer x;
        final DeviceBuffer t;
        final DeviceBuffer info;

        Factor(int n) {
            long nn = (long) n * n;
            a = DeviceBuffer.allocate(ctx, 8L * nn, "factor A " + n + "x" + n);
            diag = DeviceBuffer.allocate(ctx, 8L * n, "factor diag");
            r = DeviceBuffer.allocate(ctx, 8L * nn, "factor L (reversed)");
            x = DeviceBuffer.allocate(ctx, 8L * nn, "factor L^-1");
            t = DeviceBuffer.allocate(ctx, 8L * n * FB, "factor panel");
            info = DeviceBuffer.allocate(ctx, 8, "factor info");
        }

        @Override
        public void close() {
            for (DeviceBuffer b : new DeviceBuffer[] {info, t, x, r, diag, a}) {
                b.close();
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
