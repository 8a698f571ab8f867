package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.AttentionJob;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.Checks;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.DampedFactorizer;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ResidentFactorizer;
import io.sparkprune.kernels.ResidentForward;
import io.sparkprune.kernels.ResidentHessian;
import io.sparkprune.kernels.ResidentSolver;
import io.sparkprune.kernels.SparseGptBlock;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.kernels.cpu.CpuBackend;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * {@link Backend} on one CUDA device through JCuda's driver API, with SparkPrune's own kernels
 * ({@code kernels/src/main/cuda/sparkprune.cu}, built by nvcc into the resource
 * {@value #FATBIN} with sm_80 and sm_90 machine code and compute_90 PTX, loaded with
 * {@code cuModuleLoadData}). Needs only the driver ({@code libcuda.so.1}).
 *
 * <p>Which operations run on the GPU is listed by {@link #kernelStatus()}: the fp32 product
 * ({@code sgemm}), the Hessian update ({@code syrkPackedUpper}: fp64 sums of exact fp32 products on
 * the fp64 tensor cores, {@code syrk_packed_dmma}), the inverse factor ({@link #inverseCholeskyUpper},
 * {@link DampedFactorizer}: fp64 blocked Cholesky and triangular inverse, the large products on the
 * fp64 tensor cores), the fused SparseGPT block solve ({@code sparseGptBlock}, block width
 * ≤ {@value #MAX_BLOCK_WIDTH}), the resident solve ({@link ResidentSolver}) and every forward op
 * ({@code kernels/src/main/cuda/forward_ops.cuh}; attention for head widths
 * ≤ {@value #MAX_ATTENTION_HEAD_DIM}, in TF32 workspaces on the TF32 tensor cores,
 * {@code attention_tc.cuh}); the rest is delegated to a {@link CpuBackend} with the same
 * thread count, on the host arrays. Beyond {@link Backend}, the tensor-core products of
 * {@code gemm_tc.cuh}: {@link #sgemmTf32}, {@link #gemmBf16} and {@link #syrkPackedUpperTf32}. Each
 * host-array operation has a package-private {@code *Device} twin on device pointers (one launch,
 * no host copies) for a device-resident forward pass.
 *
 * <p><b>Hopper kernels.</b> On a device of compute capability exactly 9.0 (H100, H200) the backend
 * also loads {@value #FATBIN_SM90A} ({@code kernels/src/main/cuda/hopper.cu}: sm_90a machine code,
 * warpgroup {@code wgmma.mma_async} products), unless the system property
 * {@value #WGMMA_PROPERTY} is {@code false}; when it cannot be loaded the backend logs one warning and
 * runs without it. {@link #hopperKernels()} says whether they are in use. Then the NT products
 * ({@code transA = false, transB = true}, the linear-layer form {@code x·Wᵀ}) of {@link #sgemmTf32}
 * ({@code wg_gemm_tf32_nt256}, after both operands are rounded to TF32 by {@code round_tf32} into
 * scratch buffers) and {@link #gemmBf16} ({@code wg_gemm_bf16_nt}) run on them when their strides
 * and inner dimension allow 16-byte copies, and the TF32 Hessian ({@link #syrkPackedUpperTf32}, the
 * resident {@link ResidentHessian.Accumulator#addTf32}) runs {@code transpose_round_tf32} and
 * {@code wg_syrk_tf32}; every other case runs the {@code mma.sync} kernels of {@code gemm_tc.cuh}. Both
 * compute the same TF32 (or bf16) products with fp32 accumulation, so the results agree to fp32
 * summation order. The fp64 tensor-core products of the device inverse factor (inner dimension
 * ≥ 256, {@code DMMA_MIN_K}) run on {@code dgemm_dmma_sm90} ({@code mma.sync} m16n8k8 f64 by default,
 * {@code DG9_KS} in hopper.cu; sm_90 only) instead of {@code dgemm_dmma} (m8n8k4): the same fp64
 * function, another summation order. Host-array calls copy their operands to the device
 * and the results back; {@link #sparseGptSolve} ({@link ResidentSolver}) keeps a whole weight on the
 * device across blocks.
 *
 * <p><b>Resident Hessian.</b> Through {@link ResidentHessian} ({@link #openHessian}) the packed fp64
 * Hessian sum {@code Σ xᵀx} ({@code n(n+1)/2} doubles: 485 MB for n = 11008) lives in device memory
 * across batches: each batch uploads only its {@code k × n} fp32 rows and runs {@code syrk_packed_dmma}
 * into the resident sum, and the sum comes down once, added into the caller's packed array. (Plain
 * {@link #syrkPackedUpper} must upload and download the whole sum on every call.)
 *
 * <p><b>Stream and pinned staging.</b> Each backend creates one {@code CUstream} at construction
 * (destroyed by {@link #close()}); every kernel launch and every staged copy is queued on it, and the
 * backend synchronizes the stream before results are handed back to Java. The stream is a blocking
 * one ({@code CU_STREAM_DEFAULT}), so the few operations still issued on the NULL stream (memsets,
 * small direct copies) stay ordered with it. Copies of at least 1 MiB between Java arrays and device
 * buffers go through two page-locked host buffers ({@code PinnedStaging}: {@code cuMemHostAlloc}, at
 * most 32 MiB each, allocated on demand, freed at close): the Java array is copied into one pinned
 * buffer while the other's {@code cuMemcpyHtoDAsync}/{@code cuMemcpyDtoHAsync} runs, larger copies go
 * in chunks, and strided operand windows are gathered straight into the pinned buffer. Smaller copies
 * go straight from the Java array ({@code cuMemcpyHtoD}).
 *
 * <p>The backend uses the device's primary context, made current on the calling thread by every call;
 * calls are serialized (the methods are {@code synchronized}), so one backend is safe to share between
 * threads. Every driver call is checked; failures throw {@link CudaCallException} naming the call, the
 * kernel or operand, and the driver's error.
 */
public final class CudaBackend implements Backend, DampedFactorizer, ResidentSolver, ResidentHessian, ResidentForward,
        ResidentFactorizer {
    /** Class-path resource of the compiled kernels. */
    public static final String FATBIN = "/io/sparkprune/kernels/cuda/sparkprune.fatbin";
    /** Class-path resource of the Hopper kernels ({@code hopper.cu}, sm_90a machine code only). */
    public static final String FATBIN_SM90A = "/io/sparkprune/kernels/cuda/sparkprune_sm90a.fatbin";
    /**
     * System property that, set to {@code false}, keeps the Hopper kernels ({@value #FATBIN_SM90A})
     * from being loaded on a compute-capability-9.0 device; any other value (or none) allows them.
     */
    public static final String WGMMA_PROPERTY = "sparkprune.cuda.wgmma";
    /**
     * System property choosing how the device Cholesky of the inverse factor runs each PANEL-column
     * panel's FB-column steps: {@code fused} (the default: one cooperative launch of chol_panel_f64 per
     * panel, see sparkprune.cu; on an H200 the factor of n = 14336 took 72 against 76 ms, of n = 4096 6.5
     * against 8.0 ms) or {@code steps} (three launches per step, potf2_inv_f64 and two dgemm_f64).
     * Read once per backend; {@link #panelSteps(PanelSteps)} overrides it.
     */
    public static final String CHOL_PANEL_PROPERTY = "sparkprune.cuda.cholPanel";
    /**
     * System property choosing the resident solves' factor form ({@link SolveForm}): {@code cholesky}
     * (default) or {@code inverse}.
     */
    public static final String SOLVE_FORM_PROPERTY = "sparkprune.cuda.solveForm";
    /**
     * System property choosing how the resident solve selects an unstructured block mask on the device
     * (mask scope {@code all_rows}): {@code fused} (the default: one cooperative launch of
     * {@code unstr_select_r16} or {@code unstr_select_g} per column block, see unstr_select.cuh) or
     * {@code radix4} (the earlier chain of 11 launches per block: scores, four 8-bit radix passes of two
     * launches each, marks, ties; kept for one release). Both give the same mask, bit for bit. Read once per
     * backend; {@link #unstructuredSelect(UnstructuredSelect)} overrides it.
     */
    public static final String UNSTRUCTURED_SELECT_PROPERTY = "sparkprune.cuda.unstructuredSelect";
    private static final System.Logger LOG = System.getLogger(CudaBackend.class.getName());
    /** Widest column block the fused block kernel handles (its register and shared-memory layout). */
    public static final int MAX_BLOCK_WIDTH = 128;
    /** Default blocks per super-block of the device solve's two-level lazy updates ({@link #lazyUpdateBlocks(int)}). */
    public static final int DEFAULT_LAZY_BLOCKS = 8;
    /**
     * Width of the band of U right of its diagonal that the Cholesky form of the solve keeps
     * ({@link #solveOnDeviceCholesky}): the widest column block, {@value}; {@code UBAND} in sparkprune.cu.
     */
    public static final int U_BAND = MAX_BLOCK_WIDTH;
    private static final int BLOCK_WARPS = 16;
    private static final int BLOCK_SMEM = (MAX_BLOCK_WIDTH * MAX_BLOCK_WIDTH + BLOCK_WARPS * MAX_BLOCK_WIDTH) * 4;
    /**
     * Rows from which a block solve runs {@code sparsegpt_block_rows} (one thread per row) instead of
     * {@code sparsegpt_block} (one warp per row). Both compute the same bits; on an H200 (2026-11-21,
     * {@code tools/device/solve_probe.py}, 2:4, all 32 blocks of a 4096-column tensor) the thread
     * kernel took 6.0 ms for 11008 and 14336 rows against 9.4 and 11.1 ms, but 6.8 ms for 4096 rows
     * against 3.4 ms (one warp per multiprocessor is too little to hide its latencies). With
     * {@link BlockKernel#AUTO} the same bound now splits the lane kernels: {@code sparsegpt_block_l16}
     * below it, {@code sparsegpt_block_l8} from it ({@code _l4} from {@link #LANES_L4_MIN}; the old kernels
     * serve N:M groups wider than the lanes;
     * {@code tools/device/block_probe.py} times every variant: on an H200, 2026-11-21, one 2:4 block of
     * 4096 rows took 78 µs on {@code _l16} against 108 µs on {@code sparsegpt_block}, of 11008 rows 91 µs
     * on {@code _l8} against 249 µs on {@code sparsegpt_block_rows}).
     */
    static final int BLOCK_ROWS_MIN = 8192;
    /**
     * Rows from which the automatic choice runs {@code sparsegpt_block_l4} rather than {@code _l8}: on an
     * H200 (2026-11-21, {@code tools/device/block_probe.py}, one 128-column block) {@code _l4} took 118 µs
     * (2:4) and 85 µs (pre-selected mask) for 14336 rows against 140 and 96 µs, and {@code _l8} 91 and
     * 66 µs for 11008 rows against 111 and 80 µs.
     */
    static final int LANES_L4_MIN = 12288;
    /**
     * The fused block kernels, all computing the same bits (see {@code sparsegpt_lanes.cuh}):
     * {@link #AUTO} lets {@link CudaBackend} choose by rows; the others force one kernel for A/B timings
     * and tests ({@link #blockKernel(BlockKernel)}). A lane kernel forced for an N:M group that does not
     * divide its lanes, or {@link #ROWS} on a device where it does not fit, falls back to {@link #WARP}.
     */
    public enum BlockKernel {
        /**
         * By rows: {@link #L16} below {@link CudaBackend#BLOCK_ROWS_MIN} rows, {@link #L8} from there,
         * {@link #L4} from {@link CudaBackend#LANES_L4_MIN} (the fewest lanes with the most rows per SM);
         * for an N:M group wider than those lanes, the next lane kernel whose lanes it divides.
         */
        AUTO(null, 0, 0),
        /** {@code sparsegpt_block}: one warp per row. */
        WARP("sparsegpt_block", 32, 1),
        /** {@code sparsegpt_block_rows}: one thread per row, row state in shared memory. */
        ROWS("sparsegpt_block_rows", 1, 1),
        /** {@code sparsegpt_block_l4}: 4 lanes per row. */
        L4("sparsegpt_block_l4", 4, 1),
        /** {@code sparsegpt_block_l8}: 8 lanes per row. */
        L8("sparsegpt_block_l8", 8, 1),
        /** {@code sparsegpt_block_l16}: 16 lanes per row. */
        L16("sparsegpt_block_l16", 16, 1),
        /** {@code sparsegpt_block_l8r2}: 8 lanes per pair of rows. */
        L8R2("sparsegpt_block_l8r2", 8, 2),
        /** {@code sparsegpt_block_l16r2}: 16 lanes per pair of rows. */
        L16R2("sparsegpt_block_l16r2", 16, 2);

        final String kernel;
        /** Lanes per row group (32: one warp per row; 1: one thread per row). */
        final int lanes;
        /** Rows per group of lanes. */
        final int rowsPerLanes;

        BlockKernel(String kernel, int lanes, int rowsPerLanes) {
            this.kernel = kernel;
            this.lanes = lanes;
            this.rowsPerLanes = rowsPerLanes;
        }

        /** @return whether this is one of the lane kernels of {@code sparsegpt_lanes.cuh} */
        boolean isLanes() {
            return lanes > 1 && lanes < 32;
        }
    }

    /** Most threads per block of the lane kernels (their SL_MAX_THREADS). */
    static final int LANES_MAX_THREADS = 512;

    /**
     * Dynamic shared memory of a lane kernel (its {@code SL_SMEM}): the packed upper triangle of the
     * 128 × 128 block of U and its diagonal (fp32), plus per row the errors (129 fp32) and codes (132 bytes).
     *
     * @param rowsPerBlock rows per thread block, {@code rowsPerLanes · threads / lanes}
     * @return bytes
     */
    static int laneSmem(int rowsPerBlock) {
        int w = MAX_BLOCK_WIDTH;
        return 4 * (w * (w + 1) / 2 + w) + rowsPerBlock * (4 * (w + 1) + w + 4);
    }

    /**
     * Threads per block of a lane kernel: the rows of one multiprocessor's share split into as few
     * thread blocks of at most {@value #LANES_MAX_THREADS} threads as possible, each rounded up to whole
     * warps, so that the blocks spread evenly over the multiprocessors.
     *
     * @param rows rows of the block solve, ≥ 1
     * @param sms the device's multiprocessors, ≥ 1
     * @param lanes lanes per row group (4, 8 or 16)
     * @param rowsPerLanes rows per lane group (1 or 2)
     * @return a multiple of 32 in [32, {@value #LANES_MAX_THREADS}]
     */
    static int laneThreads(int rows, int sms, int lanes, int rowsPerLanes) {
        long perSm = ((long) rows + sms - 1) / sms;
        long threadsPerSm = (perSm + rowsPerLanes - 1) / rowsPerLanes * lanes;
        long blocks = (threadsPerSm + LANES_MAX_THREADS - 1) / LANES_MAX_THREADS;
        long t = ((threadsPerSm + blocks - 1) / blocks + 31) / 32 * 32;
        return (int) Math.max(32, Math.min(LANES_MAX_THREADS, t));
    }

    /**
     * The kernel {@code blockDevice} runs.
     *
     * @param forced {@link #blockKernel()}
     * @param rows rows of the block solve
     * @param nmGroup M of N:M, 0 for a pre-selected mask
     * @param rowsKernelFits whether {@code sparsegpt_block_rows} fits the device's shared memory
     * @return never {@link BlockKernel#AUTO}
     */
    static BlockKernel chooseBlockKernel(BlockKernel forced, int rows, int nmGroup, boolean rowsKernelFits) {
        BlockKernel k = forced;
        if (k == BlockKernel.AUTO) {
            k = rows >= LANES_L4_MIN ? BlockKernel.L4 : rows >= BLOCK_ROWS_MIN ? BlockKernel.L8 : BlockKernel.L16;
            for (BlockKernel wider : new BlockKernel[] {BlockKernel.L8, BlockKernel.L16}) {
                if (nmGroup > 0 && k.lanes % nmGroup != 0 && wider.lanes > k.lanes) {
                    k = wider;
                }
            }
        }
        if (k.isLanes() && nmGroup > 0 && k.lanes % nmGroup != 0) {
            // the group's columns must share one slot of the lane kernel: the old kernels do the rest
            k = forced == BlockKernel.AUTO && rows >= BLOCK_ROWS_MIN ? BlockKernel.ROWS : BlockKernel.WARP;
        }
        if (k == BlockKernel.ROWS && !rowsKernelFits) {
            k = BlockKernel.WARP;
        }
        return k;
    }

    /** Threads (rows) per block of sparsegpt_block_rows, at most (its SR_MAX_THREADS). */
    private static final int BLOCK_ROWS_MAX_THREADS = 128;

    /**
     * The most threads per block of {@code sparsegpt_block_rows} whose shared memory fits a device.
     *
     * @param optinBytes the device's opt-in shared memory per block, bytes
     *     ({@code CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN}: 232,448 on H100/H200,
     *     166,912 on A100)
     * @return a multiple of 32 up to {@value #BLOCK_ROWS_MAX_THREADS}, or 0 when not even 32 fit (the
     *     warp-per-row kernel then serves every block)
     */
    static int blockRowsThreadLimit(int optinBytes) {
        for (int t = BLOCK_ROWS_MAX_THREADS; t >= 32; t -= 32) {
            if (blockRowsSmem(t) <= optinBytes) {
                return t;
            }
        }
        return 0;
    }

    /**
     * Threads (one per row) per block of {@code sparsegpt_block_rows}: enough rows per multiprocessor
     * to use every one, in warps, at most {@code limit}.
     *
     * @param rows rows of the block solve, ≥ 1
     * @param sms the device's multiprocessors, ≥ 1
     * @param limit {@link #blockRowsThreadLimit}, ≥ 32
     * @return a multiple of 32 in [32, limit]
     */
    static int blockRowsThreads(int rows, int sms, int limit) {
        long perSm = ((long) rows + sms - 1) / sms;
        return (int) Math.max(32, Math.min(limit, (perSm + 31) / 32 * 32));
    }

    /** Dynamic shared memory of sparsegpt_block_rows with {@code threads} threads (its SR_SMEM). */
    private static int blockRowsSmem(int threads) {
        return 4 * MAX_BLOCK_WIDTH * MAX_BLOCK_WIDTH + 2 * 4 * MAX_BLOCK_WIDTH * (threads + 1) + 2 * MAX_BLOCK_WIDTH * (threads + 1);
    }

    private volatile BlockKernel blockKernel = BlockKernel.AUTO;

    /**
     * The fused block kernel in use ({@link BlockKernel#AUTO} unless {@link #blockKernel(BlockKernel)} forced one).
     *
     * @return the setting
     */
    public BlockKernel blockKernel() {
        return blockKernel;
    }

    /**
     * Forces one fused block kernel (for A/B timings and tests; every kernel computes the same bits),
     * or {@link BlockKernel#AUTO}.
     *
     * @param kernel the kernel; not null
     * @throws NullPointerException when null
     */
    public void blockKernel(BlockKernel kernel) {
        this.blockKernel = java.util.Objects.requireNonNull(kernel, "kernel");
    }

    /**
     * How {@code factorDevice} runs the FB-column steps of a Cholesky panel (both compute the same fp64
     * factor up to the summation order of the in-panel updates, with the same info rule).
     */
    enum PanelSteps {
        /** Three launches per step: potf2_inv_f64, the panel product and the in-panel update (dgemm_f64). */
        STEPS,
        /**
         * One cooperative launch of chol_panel_f64 per panel (left-looking inside the panel, flags between
         * its thread blocks); {@link #STEPS} where the device has no cooperative launch.
         */
        FUSED;

        /**
         * @param value the value of {@value CudaBackend#CHOL_PANEL_PROPERTY}, or null
         * @return {@link #FUSED} for null, else the named mode (case-insensitive)
         * @throws CudaSettingException when the value is neither {@code steps} nor {@code fused}
         */
        static PanelSteps parse(String value) {
            return parseSetting(CHOL_PANEL_PROPERTY, value, FUSED, "use 'fused' (one chol_panel_f64 launch per panel,"
                    + " the default) or 'steps' (three launches per 64-column Cholesky step)");
        }
    }

    /**
     * How {@code selectUnstructuredDevice} finds a column block's unstructured mask (both give the same
     * bits: the k smallest keys {@code w² / U[c,c]²} of the rows × width block, ties to the lower row-major
     * index).
     */
    enum UnstructuredSelect {
        /**
         * Eleven launches per block: unstr_scores, unstr_init, four 8-bit radix passes (unstr_hist over the
         * keys, unstr_pick in one thread), unstr_mark and unstr_ties (one 1024-thread block).
         */
        RADIX4,
        /**
         * One cooperative launch per block of unstr_select_r16 (keys in registers) or unstr_select_g (keys in
         * global memory): a 12/12/8-bit radix select with three grid barriers; {@link #RADIX4} where the
         * device has no cooperative launch.
         */
        FUSED;

        /**
         * @param value the value of {@value CudaBackend#UNSTRUCTURED_SELECT_PROPERTY}, or null
         * @return {@link #FUSED} for null, else the named mode (case-insensitive, surrounding blanks ignored)
         * @throws CudaSettingException when the value is neither {@code radix4} nor {@code fused}
         */
        static UnstructuredSelect parse(String value) {
            return parseSetting(UNSTRUCTURED_SELECT_PROPERTY, value, FUSED, "use 'fused' (one cooperative launch"
                    + " per column block, the default) or 'radix4' (the earlier 11 launches per block)");
        }
    }

    private volatile UnstructuredSelect unstructuredSelect = UnstructuredSelect.FUSED;
    /** Upper bound on unstr_select's grid (tests: few blocks, each owning a long range; the global-keys variant). */
    private volatile int selectGridLimit = Integer.MAX_VALUE;
    /**
     * unstr_select's workspace (US_WS_WORDS words of unstr_select.cuh: barrier counters, histograms,
     * per-block histograms), null until the first fused selection ({@link #selectWorkspace}).
     */
    private DeviceBuffer selectWs;

    /**
     * @return how the resident solve selects unstructured block masks (from
     *     {@value #UNSTRUCTURED_SELECT_PROPERTY} unless set)
     */
    UnstructuredSelect unstructuredSelect() {
        return unstructuredSelect;
    }

    /**
     * Chooses how the resident solve selects unstructured block masks (package-private: tests and A/B
     * timings; both modes give the same bits).
     *
     * @param mode the mode; not null
     * @throws NullPointerException when null
     */
    void unstructuredSelect(UnstructuredSelect mode) {
        this.unstructuredSelect = java.util.Objects.requireNonNull(mode, "mode");
    }

    /**
     * Caps unstr_select's grid below its occupancy limit (package-private: tests of few thread blocks with
     * long index ranges, which exercise {@code unstr_select_g} on small shapes).
     *
     * @param limit at least 1
     * @throws IllegalArgumentException when limit &lt; 1
     */
    void selectGridLimit(int limit) {
        if (limit < 1) {
            throw new IllegalArgumentException("unstr_select grid limit must be >= 1, got " + limit);
        }
        this.selectGridLimit = limit;
    }

    /**
     * Which factor the resident group solves ({@link ResidentFactorizer.Factor} on this backend) keep:
     * both give SparseGPT's function; they differ in rounding and in the factor's cost.
     */
    public enum SolveForm {
        /**
         * R with {@code H + λI = R·Rᵀ} and U's diagonal band ({@link #solveOnDeviceCholesky}): one Cholesky,
         * no triangular inverse. The default.
         */
        CHOLESKY,
        /** U, the upper Cholesky factor of {@code (H + λI)⁻¹} ({@link #solveOnDevice}), as the CPU path does. */
        INVERSE;

        /**
         * @param value the value of {@value CudaBackend#SOLVE_FORM_PROPERTY}, or null
         * @return {@link #CHOLESKY} for null, else the named form (case-insensitive)
         * @throws CudaSettingException when the value is neither {@code cholesky} nor {@code inverse}
         */
        static SolveForm parse(String value) {
            return parseSetting(SOLVE_FORM_PROPERTY, value, CHOLESKY, "use 'cholesky' (the Cholesky factor of H and"
                    + " U's band, the default) or 'inverse' (the whole inverse factor U)");
        }
    }

    /**
     * One of the backend's system-property settings: the constant of {@code dflt}'s enum whose lower-case
     * name is {@code value} (surrounding blanks and case ignored), {@code dflt} for null.
     *
     * @throws CudaSettingException naming the property, the value and {@code help} (the allowed values)
     */
    private static <E extends Enum<E>> E parseSetting(String property, String value, E dflt, String help) {
        if (value == null) {
            return dflt;
        }
        String v = value.trim().toLowerCase(java.util.Locale.ROOT);
        for (E e : dflt.getDeclaringClass().getEnumConstants()) {
            if (e.name().toLowerCase(java.util.Locale.ROOT).equals(v)) {
                return e;
            }
        }
        throw new CudaSettingException("system property " + property + " is '" + value + "': " + help);
    }

    private volatile SolveForm solveForm = SolveForm.CHOLESKY;

    /** @return the factor form of the resident group solves (from {@value #SOLVE_FORM_PROPERTY} unless set) */
    public SolveForm solveForm() {
        return solveForm;
    }

    /**
     * Chooses the factor form of resident group factors factored from now on (tests and A/B timings).
     *
     * @param form the form; not null
     */
    public void solveForm(SolveForm form) {
        this.solveForm = java.util.Objects.requireNonNull(form, "form");
    }

    private volatile PanelSteps panelSteps = PanelSteps.FUSED;
    /** Upper bound on chol_panel_f64's grid (tests: fewer blocks than row slabs, each owning several). */
    private volatile int cholPanelGridLimit = Integer.MAX_VALUE;

    /**
     * Caps chol_panel_f64's grid below its occupancy limit, so that one block owns several row slabs
     * (package-private: tests of that case, which large n or small devices reach).
     *
     * @param limit at least 1
     * @throws IllegalArgumentException when limit &lt; 1
     */
    void cholPanelGridLimit(int limit) {
        if (limit < 1) {
            throw new IllegalArgumentException("chol_panel_f64 grid limit must be >= 1, got " + limit);
        }
        this.cholPanelGridLimit = limit;
    }

    /**
     * @return how the device Cholesky runs its panel steps (from {@value #CHOL_PANEL_PROPERTY} unless set)
     */
    PanelSteps panelSteps() {
        return panelSteps;
    }

    /**
     * Chooses how the device Cholesky runs its panel steps (package-private: tests and A/B timings).
     *
     * @param mode the mode; not null
     */
    void panelSteps(PanelSteps mode) {
        this.panelSteps = java.util.Objects.requireNonNull(mode, "mode");
    }

    /** Diagonal block of the device Cholesky and triangular inverse (kernel constant FB). */
    private static final int FB = 64;
    /** potf2_inv_f64: the FB × (FB + 1) fp64 published columns plus FB square roots of the pivots. */
    private static final int POTF2_SMEM = (FB * (FB + 1) + FB) * 8;
    /** chol_panel_f64: threads per block (its CP_THREADS); its dynamic shared memory is {@link #POTF2_SMEM}. */
    private static final int CHOL_PANEL_THREADS = 256;

    private static final String[] GPU_OPS = {"sgemm", "syrkPackedUpper", "syrkPackedUpperTf32", "inverseCholeskyUpper",
        "sparseGptBlock",
        "rmsNorm", "layerNorm", "rope", "attention", "siluMul", "gelu", "embedding", "addRowVector", "add", "logSoftmax",
        "crossEntropy"};
    private static final String[] CPU_OPS = {"cholesky", "triangularInverse", "choleskyInverse"};

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
    private final CUfunction fBandUpper;
    private final CUfunction fBandTiles;
    private final CUfunction fAxpbyCols;
    private final CUfunction fPackMaskBits;
    private final CUfunction fUnpackUpper;
    private final CUfunction fPackedToSym;
    private final CUfunction fRowDot;
    private final CUfunction fUnstrScores;
    private final CUfunction fUnstrInit;
    private final CUfunction fUnstrHist;
    private final CUfunction fUnstrPick;
    private final CUfunction fUnstrMark;
    private final CUfunction fUnstrTies;
    private final Fns fn;
    private volatile int lazyBlocks = DEFAULT_LAZY_BLOCKS;
    /** Compute capability as 10 · major + minor (90 for H100/H200). */
    private final int computeCapability;
    /** The kernels of {@value #FATBIN_SM90A}, or null when not loaded. */
    private final Hopper hopper;
    /** Whether loaded Hopper kernels are used (package-private switch for benchmarks and tests). */
    private boolean hopperEnabled = true;
    /** Largest scratch piece of a wgmma call, bytes ({@link #WG_SCRATCH_BYTES}; smaller in tests of the pieces). */
    private long wgScratchBytes = WG_SCRATCH_BYTES;
    private int smCount;
    private final CpuBackend cpu;
    /**
     * Grow-only scratch buffers by slot ({@link #ws}): 0..7 hold the operands of host-array calls;
     * {@link #WS_HOPPER_A} and {@link #WS_HOPPER_B} the TF32-rounded operands of the Hopper kernels
     * (the calls are serialized by the backend's lock, so one set serves every call).
     */
    private final DeviceBuffer[] workspace = new DeviceBuffer[10];
    /** Scratch slot of the TF32-rounded A of {@code wg_gemm_tf32_nt256} and of Xᵀ of {@code wg_syrk_tf32}. */
    private static final int WS_HOPPER_A = 8;
    /** Scratch slot of the TF32-rounded B of {@code wg_gemm_tf32_nt256}. */
    private static final int WS_HOPPER_B = 9;
    /** The stream of every launch and staged copy (blocking: ordered with the NULL stream's copies and memsets). */
    private final CUstream stream;
    /** Launch timing for benchmarks ({@link #profileLaunches}); off by default. */
    private final LaunchProfile profile = new LaunchProfile();
    private final PinnedStaging staging;
    /**
     * The second stream ({@code CU_STREAM_NON_BLOCKING}) and pinned staging of {@link #downloadOutsideLock}:
     * downloads that run without the backend's lock, so that another thread's kernels run meanwhile. Created on
     * first use under the lock; the staging's own lock serializes such downloads.
     */
    private CUstream copyStream;
    private PinnedStaging copyStaging;
    /** Resident Hessians not yet closed, freed by {@link #close()}; weak, so a leaked one reaches its cleaner. */
    private final Set<DeviceHessian> openHessians = Collections.newSetFromMap(new WeakHashMap<>());
    /** Resident group factors not yet closed, freed by {@link #close()}; weak, so a leaked one reaches its cleaners. */
    private final Set<GroupFactor> openFactors = Collections.newSetFromMap(new WeakHashMap<>());
    /** Forward workspaces not yet closed, closed by {@link #close()}. */
    private final Set<CudaWorkspace> openWorkspaces = Collections.newSetFromMap(new WeakHashMap<>());
    /** Device copies of weights shared by the forward workspaces (created on first use). */
    private DeviceArrayCache<DeviceBuffer> weights;
    /** Device copies of block outputs kept by {@link ForwardWorkspace.Handoff#PIPELINE} workspaces. */
    private final ActivationCache<DeviceBuffer> activations = new ActivationCache<>(DEVICE_MEMORY, this::freeDeviceBytes);
    /** The activation cache's budget as last set (read without the lock by {@link #activationCacheBytes}). */
    private volatile long activationBudget = ACTIVATION_CACHE_AUTO;
    private boolean closed;

    private CudaBackend(int ordinal, int threads, long stagingChunkBytes, long minStagedBytes) {
        this.ordinal = ordinal;
        // the user's settings first: a bad value is bad input (InvalidInputException), not an unusable device
        PanelSteps panelMode = PanelSteps.parse(System.getProperty(CHOL_PANEL_PROPERTY));
        SolveForm form = SolveForm.parse(System.getProperty(SOLVE_FORM_PROPERTY));
        UnstructuredSelect selectMode = UnstructuredSelect.parse(System.getProperty(UNSTRUCTURED_SELECT_PROPERTY));
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
            fSyrk = function("syrk_packed_dmma");
            fBlock = function("sparsegpt_block");
            fLoadReversed = function("load_reversed_f64");
            fReversedUpper = function("reversed_upper");
            fPotf2Inv = function("potf2_inv_f64");
            fDgemm = function("dgemm_f64");
            fGatherCols = function("gather_cols_f32");
            fBandUpper = function("band_upper_f32");
            fBandTiles = function("band_tiles_f32");
            fAxpbyCols = function("axpby_cols_f32");
            fPackMaskBits = function("pack_mask_bits");
            fUnpackUpper = function("unpack_upper_f64");
            fPackedToSym = function("packed_to_symmetric_f32");
            fRowDot = function("row_dot_f64");
            fUnstrScores = function("unstr_scores");
            fUnstrInit = function("unstr_init");
            fUnstrHist = function("unstr_hist");
            fUnstrPick = function("unstr_pick");
            fUnstrMark = function("unstr_mark");
            fUnstrTies = function("unstr_ties");
            Driver.check("cuFuncSetAttribute potf2_inv_f64 max dynamic shared memory " + POTF2_SMEM,
                    () -> JCudaDriver.cuFuncSetAttribute(fPotf2Inv,
                            CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, POTF2_SMEM));
            Driver.check("cuFuncSetAttribute sparsegpt_block max dynamic shared memory " + BLOCK_SMEM,
                    () -> JCudaDriver.cuFuncSetAttribute(fBlock,
                            CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, BLOCK_SMEM));
            fn = new Fns();
            panelSteps = panelMode;
            solveForm = form;
            unstructuredSelect = selectMode;
            computeCapability = 10 * attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                    "compute capability major") + attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                    "compute capability minor");
            hopper = loadHopper();
            stream = new CUstream();
            Driver.check("cuStreamCreate on " + deviceName,
                    () -> JCudaDriver.cuStreamCreate(stream, CUstream_flags.CU_STREAM_DEFAULT));
        } catch (RuntimeException e) {
            JCudaDriver.cuDevicePrimaryCtxRelease(device);
            throw e;
        }
        staging = new PinnedStaging(stream, stagingChunkBytes, minStagedBytes);
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
     * @throws CudaSettingException when {@value #CHOL_PANEL_PROPERTY} is neither {@code fused} nor
     *     {@code steps}, {@value #UNSTRUCTURED_SELECT_PROPERTY} neither {@code fused} nor {@code radix4}, or
     *     {@value #SOLVE_FORM_PROPERTY} neither {@code cholesky} nor {@code inverse} (checked before the
     *     driver is touched)
     */
    public static CudaBackend create(int ordinal, int threads) {
        return new CudaBackend(ordinal, threads, PinnedStaging.DEFAULT_CHUNK_BYTES, PinnedStaging.DEFAULT_MIN_STAGED_BYTES);
    }

    /**
     * {@link #create(int, int)} with the pinned staging's sizes given (for tests of chunked copies).
     *
     * @param stagingChunkBytes bytes per pinned buffer, ≥ 8
     * @param minStagedBytes copies of at least this many bytes are staged
     */
    static CudaBackend create(int ordinal, int threads, long stagingChunkBytes, long minStagedBytes) {
        return new CudaBackend(ordinal, threads, stagingChunkBytes, minStagedBytes);
    }

    /** @return the pinned staging of this backend's copies (package-private, for tests) */
    PinnedStaging staging() {
        return staging;
    }

    /**
     * @return which operations run on the GPU ({@code "gpu"}) and which are delegated to the CPU
     *     backend ({@code "cpu (delegated)"}), for every {@link Backend} operation (the extra tensor-core
     *     products {@link #sgemmTf32} and {@link #gemmBf16} always run on the GPU: on a compute-capability-9.0
     *     device with {@link #hopperKernels()}, their NT form on {@code wg_gemm_tf32_nt256} and
     *     {@code wg_gemm_bf16_nt}, else on {@code sgemm_tf32_*} and {@code gemm_bf16_*})
     */
    public static Map<String, String> kernelStatus() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("sgemm", "gpu: sgemm_f32 (fp32 FMA, 64x64 shared-memory tiles)");
        m.put("syrkPackedUpper", "gpu: syrk_packed_dmma (fp64 tensor cores: fp64 sums of exact fp32 products); the sum kept on"
                + " the device across batches through ResidentHessian");
        m.put("syrkPackedUpperTf32", "gpu: syrk_packed_tf32 (TF32 tensor cores, fp32 sums per "
                + SYRK_TF32_CHUNK + "-token chunk, fp64 across chunks); on compute capability 9.0 with hopperKernels()"
                + " (-D" + WGMMA_PROPERTY + " not false) transpose_round_tf32 + wg_syrk_tf32 (wgmma, sm_90a) instead;"
                + " resident through ResidentHessian.addTf32");
        m.put("inverseCholeskyUpper", "gpu: fp64 blocked Cholesky (potf2_inv_f64 + dgemm_f64) and recursive"
                + " triangular inverse of the reversed matrix (large products on the fp64 tensor cores: dgemm_dmma,"
                + " or dgemm_dmma_sm90 (mma.sync m16n8k8 f64) with hopperKernels());"
                + " also the damped retry (DampedFactorizer)");
        m.put("sparseGptBlock", "gpu: sparsegpt_block_l16 / _l8 / _l4 by rows (lanes per row; sparsegpt_block or"
                + " sparsegpt_block_rows for N:M groups wider than the lanes; one launch per block, width <= " + MAX_BLOCK_WIDTH
                + "; wider blocks delegated); the whole column-block loop with W resident through ResidentSolver"
                + " (per-row unstructured and block masks selected on the host per block, all-rows unstructured masks"
                + " on the device)");
        for (String op : CPU_OPS) {
            m.put(op, "cpu (delegated)");
        }
        m.put("rmsNorm", "gpu: rmsnorm_f32 (block per row, fp64 mean square)");
        m.put("layerNorm", "gpu: layernorm_f32 (block per row, fp64 two-pass statistics)");
        m.put("rope", "gpu: rope_f32 (rotate_half, in place)");
        m.put("attention", "gpu: attention_f32 (flash-style tiles of " + ATTENTION_QUERY_TILE + " queries x "
                + ATT_KEY_TILE + " keys, online softmax, fp32; headDim <= " + MAX_ATTENTION_HEAD_DIM
                + ", wider heads delegated); in TF32 workspaces (AttentionJob.tf32) attention_tf32 (TF32 tensor cores,"
                + " mma.sync m16n8k8, FlashAttention-2 tiles of " + ATTENTION_TF32_QUERY_TILE + " queries x "
                + ATT_TF32_KEY_TILE + " keys, cp.async double buffer; headDim a multiple of 8 <= "
                + AttentionJob.TF32_MAX_HEAD_DIM + ", other widths fp32)");
        m.put("siluMul", "gpu: silu_mul_f32 (fp64 sigmoid)");
        m.put("gelu", "gpu: gelu_f32 (fp64 erfc)");
        m.put("embedding", "gpu: embedding_f32 (gather, optional accumulate)");
        m.put("addRowVector", "gpu: add_row_vector_f32");
        m.put("add", "gpu: add_f32");
        m.put("logSoftmax", "gpu: log_softmax_f32 (block per row, fp64 log-sum-exp)");
        m.put("crossEntropy", "gpu: cross_entropy_f32 (block per row, fp64 nll)");
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
        return function(module, name);
    }

    private static CUfunction function(CUmodule in, String name) {
        CUfunction f = new CUfunction();
        Driver.check("cuModuleGetFunction " + name, () -> JCudaDriver.cuModuleGetFunction(f, in, name));
        return f;
    }

    private int attribute(int attribute, String what) {
        int[] v = new int[1];
        Driver.check("cuDeviceGetAttribute " + what + " of device " + ordinal,
                () -> JCudaDriver.cuDeviceGetAttribute(v, attribute, device));
        return v[0];
    }

    /**
     * Loads {@value #FATBIN_SM90A} when the device's compute capability is exactly 9.0 and
     * {@value #WGMMA_PROPERTY} is not {@code false}.
     *
     * @return its kernels, or null (not a 9.0 device, switched off, or loading failed: one warning)
     */
    private Hopper loadHopper() {
        if (computeCapability != 90) {
            return null;
        }
        String prop = System.getProperty(WGMMA_PROPERTY);
        if (prop != null && prop.trim().equalsIgnoreCase("false")) {
            LOG.log(System.Logger.Level.INFO, "CUDA device " + ordinal + " (" + deviceName + "): Hopper wgmma kernels"
                    + " switched off by -D" + WGMMA_PROPERTY + "=false; the mma.sync kernels run");
            return null;
        }
        CUmodule m = new CUmodule();
        boolean loaded = false;
        try {
            byte[] image = readResource(FATBIN_SM90A);
            if (image == null) {
                throw new IllegalStateException(FATBIN_SM90A + " is not on the class path (a build without nvcc?)");
            }
            Driver.check("cuModuleLoadData " + FATBIN_SM90A + " (" + image.length + " bytes) on " + deviceName,
                    () -> JCudaDriver.cuModuleLoadData(m, image));
            loaded = true;
            return new Hopper(m);
        } catch (RuntimeException e) {
            if (loaded) {
                JCudaDriver.cuModuleUnload(m);
            }
            LOG.log(System.Logger.Level.WARNING, "CUDA device " + ordinal + " (" + deviceName + ", compute capability"
                    + " 9.0): the Hopper wgmma kernels could not be loaded, the mma.sync kernels run instead: "
                    + e.getMessage());
            return null;
        }
    }

    /** @return the bytes of a class-path resource, or null when it is missing */
    private static byte[] readResource(String name) {
        try (InputStream in = CudaBackend.class.getResourceAsStream(name)) {
            return in == null ? null : in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + name + ": " + e.getMessage(), e);
        }
    }

    /**
     * @return whether the Hopper kernels ({@value #FATBIN_SM90A}: {@code wg_gemm_tf32_nt256},
     *     {@code wg_gemm_bf16_nt}, {@code wg_syrk_tf32}, {@code dgemm_dmma_sm90}) are in use: the device has compute capability
     *     9.0, {@value #WGMMA_PROPERTY} is not {@code false}, the module loaded, and they were not switched
     *     off by {@link #useHopperKernels(boolean)}
     */
    public synchronized boolean hopperKernels() {
        return hopper != null && hopperEnabled;
    }

    /**
     * Switches loaded Hopper kernels on or off for later calls (package-private: benchmarks and tests
     * time and compare the {@code mma.sync} kernels on the same device). No effect when they are not
     * loaded.
     *
     * @param on whether to use them
     */
    synchronized void useHopperKernels(boolean on) {
        hopperEnabled = on;
    }

    /**
     * Sets the largest scratch piece of the wgmma paths (package-private: tests make it small so that
     * small shapes exercise the piece loops of {@link #sgemmTf32Device} and {@link #syrkTf32Device}).
     *
     * @param bytes bytes per scratch piece, ≥ 1 (pieces never go below 256 rows or tokens)
     */
    synchronized void wgScratchBytes(long bytes) {
        wgScratchBytes = Math.max(1, bytes);
    }

    /** @return the device's compute capability as {@code 10 · major + minor} (e.g. 90 for H100/H200, 80 for A100) */
    public int computeCapability() {
        return computeCapability;
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
            b = alloc(Math.max(bytes, 1L << 20), "workspace " + slot + " (" + label + ")");
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
        return alloc(bytes, label);
    }

    /**
     * A device buffer of this backend's context whose large copies go through the pinned staging. When
     * the allocation fails while the activation cache holds unpinned entries, they are freed (the host
     * arrays stay the source of truth) and the allocation is tried once more.
     */
    private DeviceBuffer alloc(long bytes, String label) {
        try {
            return alloc0(bytes, label);
        } catch (CudaCallException e) {
            if (activations.evictAll() == 0) {
                throw e;
            }
            LOG.log(System.Logger.Level.DEBUG, () -> "device allocation of " + bytes + " bytes (" + label
                    + ") failed; freed the activation cache and retrying: " + e.getMessage());
            return alloc0(bytes, label);
        }
    }

    private DeviceBuffer alloc0(long bytes, String label) {
        if (!profile.on()) {
            return DeviceBuffer.allocate(ctx, staging, bytes, label);
        }
        long t0 = System.nanoTime();
        DeviceBuffer b = DeviceBuffer.allocate(ctx, staging, bytes, label);
        profile.add("cuMemAlloc " + label, System.nanoTime() - t0);
        return b;
    }

    /**
     * Starts or stops timing every kernel launch and device allocation of this backend, each on its own
     * (a stream synchronization after each launch, so nothing overlaps while it is on): for
     * benchmarks that want to know where a chain of launches spends its time. Starting clears earlier
     * entries. Results are unchanged.
     *
     * @param on start (true) or stop (false)
     */
    public synchronized void profileLaunches(boolean on) {
        profile.enable(on);
    }

    /**
     * @return the timed call sites since {@link #profileLaunches}{@code (true)}, largest total first, one
     *     line each ({@code total ms, calls, mean µs per call, site}); empty when nothing was timed
     */
    public synchronized String launchProfile() {
        return LaunchProfile.format(profile.entries());
    }

    /** Runs one launch, timed when {@link #profileLaunches} is on. */
    private void timedLaunch(String what, Driver.Call call) {
        if (!profile.on()) {
            Driver.check("cuLaunchKernel " + what, call);
            return;
        }
        Driver.check("stream before " + what, this::syncStream);
        long t0 = System.nanoTime();
        Driver.check("cuLaunchKernel " + what, call);
        Driver.check("kernel " + what, this::syncStream);
        profile.add(what, System.nanoTime() - t0);
    }

    /** Waits for this backend's stream (its kernels and copies); errors of queued kernels surface here. */
    private int syncStream() {
        return JCudaDriver.cuStreamSynchronize(stream);
    }

    private void launch(String what, CUfunction f, int gx, int gy, int bx, int smem, Pointer params) {
        launchAsync(what, f, gx, gy, bx, smem, params);
        Driver.check("kernel " + what, this::syncStream);
    }

    /** Launches without waiting; the caller synchronizes after a chain (errors surface there). */
    private void launchAsync(String what, CUfunction f, int gx, int gy, int bx, int smem, Pointer params) {
        launchAsync(what, f, gx, gy, bx, 1, smem, params);
    }

    /** {@link #launchAsync(String, CUfunction, int, int, int, int, Pointer)} with a 2-D block {@code bx × by}. */
    private void launchAsync(String what, CUfunction f, int gx, int gy, int bx, int by, int smem, Pointer params) {
        timedLaunch(what, () -> JCudaDriver.cuLaunchKernel(f, gx, gy, 1, bx, by, 1, smem, stream, params, null));
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
            try {
                Driver.check("cuStreamSynchronize at close of " + name(), this::syncStream);
            } finally {
                for (DeviceHessian h : new ArrayList<>(openHessians)) {
                    h.release();
                }
                openHessians.clear();
                for (GroupFactor f : new ArrayList<>(openFactors)) {
                    f.release();
                }
                openFactors.clear();
                for (CudaWorkspace w : new ArrayList<>(openWorkspaces)) {
                    w.close();
                }
                openWorkspaces.clear();
                if (weights != null) {
                    weights.clear();
                }
                activations.clear();
                for (int i = 0; i < workspace.length; i++) {
                    if (workspace[i] != null) {
                        workspace[i].close();
                        workspace[i] = null;
                    }
                }
                if (selectWs != null) {
                    selectWs.close();
                    selectWs = null;
                }
                try {
                    staging.close();
                    if (copyStaging != null) {
                        copyStaging.close(); // waits for a download outside the lock still running
                    }
                } finally {
                    try {
                        if (copyStream != null) {
                            Driver.check("cuStreamDestroy (copies)", () -> JCudaDriver.cuStreamDestroy(copyStream));
                        }
                    } finally {
                        Driver.check("cuStreamDestroy", () -> JCudaDriver.cuStreamDestroy(stream));
                    }
                }
            }
            try {
                if (hopper != null) {
                    Driver.check("cuModuleUnload " + FATBIN_SM90A, () -> JCudaDriver.cuModuleUnload(hopper.module));
                }
            } finally {
                Driver.check("cuModuleUnload", () -> JCudaDriver.cuModuleUnload(module));
            }
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
        hostGemm("sgemm", transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc,
                (da, dla, db, dlb, dc) -> sgemmDevice(transA, transB, m, n, k, alpha, da, dla, db, dlb, beta, dc, n,
                        m + "x" + n + "x" + k));
    }

    /** A device product over packed operands: A, its row stride, B, its row stride, C (row stride n). */
    @FunctionalInterface
    private interface DeviceGemm {
        void run(CUdeviceptr a, int lda, CUdeviceptr b, int ldb, CUdeviceptr c);
    }

    /**
     * The host-array form shared by the fp32 products: window checks, the trivial cases on the CPU,
     * operands packed into the workspace, the device product, C back into its window.
     */
    private void hostGemm(String name, boolean transA, boolean transB, int m, int n, int k, float alpha,
                          float[] a, int aOff, int lda, float[] b, int bOff, int ldb, float beta, float[] c, int cOff,
                          int ldc, DeviceGemm product) {
        Checks.window(name + " A", a.length, aOff, lda, transA ? k : m, transA ? m : k);
        Checks.window(name + " B", b.length, bOff, ldb, transB ? n : k, transB ? k : n);
        Checks.window(name + " C", c.length, cOff, ldc, m, n);
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0 || alpha == 0f) {
            cpu.sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
            return;
        }
        current();
        int ac = transA ? m : k;
        int bc = transB ? k : n;
        DeviceBuffer da = upWindow(0, a, aOff, lda, transA ? k : m, ac, name + " A");
        DeviceBuffer db = upWindow(1, b, bOff, ldb, transB ? n : k, bc, name + " B");
        DeviceBuffer dc = beta == 0f ? ws(2, 4L * m * n, name + " C") : upWindow(2, c, cOff, ldc, m, n, name + " C");
        product.run(da.pointer(), ac, db.pointer(), bc, dc.pointer());
        downloadWindow(dc, c, cOff, ldc, m, n);
    }

    /** {@code C = alpha·op(A)·op(B) + beta·C} on device pointers (see {@link #sgemm}). */
    void sgemmDevice(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             CUdeviceptr a, int lda, CUdeviceptr b, int ldb, float beta, CUdeviceptr c, int ldc,
                             String what) {
        sgemmDeviceAsync(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, what);
        Driver.check("kernel sgemm_f32 " + what, this::syncStream);
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
        DeviceBuffer dx = upWindow(0, x, xOff, ldx, k, n, "syrk X");
        DeviceBuffer dcp = ws(3, 8L * packed, "syrk packed H");
        dcp.upload(cPacked, 0, (int) packed, 0);
        syrkDevice(n, k, dx.pointer(), dcp.pointer());
        dcp.download(0, cPacked, 0, (int) packed);
    }

    /** {@code Cp += Xᵀ·X} on device pointers (see {@link #syrkPackedUpper}); X is {@code k × n}, row stride n. */
    public synchronized void syrkDevice(int n, int k, CUdeviceptr x, CUdeviceptr cPacked) {
        current();
        int nt = (n + 127) / 128;
        int tiles = nt * (nt + 1) / 2;
        int stages = (k + SYRK_DMMA_BK - 1) / SYRK_DMMA_BK;
        int splits = Math.max(1, Math.min(stages, (smCount() + tiles - 1) / tiles));
        int perSplit = (stages + splits - 1) / splits * SYRK_DMMA_BK;
        splits = (k + perSplit - 1) / perSplit;
        Pointer params = Pointer.to(p(n), p(k), p(x), p(n), p(cPacked), p(perSplit), p(n % 4 == 0 ? 1 : 0));
        launch("syrk_packed_dmma n=" + n + " k=" + k, fSyrk, tiles, splits, 256, SYRK_DMMA_SMEM, params);
    }

    /**
     * {@inheritDoc}
     *
     * <p>On this backend: the packed fp64 sum ({@code 8·n(n+1)/2} bytes, 485 MB for n = 11008) is
     * allocated in device memory and zeroed; {@link ResidentHessian.Accumulator#add} uploads only the
     * batch's rows ({@code k × n} fp32, through the pinned staging) into workspace 0 and runs
     * {@code syrk_packed_dmma} into the resident sum (the kernel of {@link #syrkPackedUpper}, so the same
     * fp64 sums of exact fp32 products); {@link ResidentHessian.Accumulator#addTo} downloads it once,
     * adding it into the host array chunk by chunk. Closing the backend frees every accumulator still
     * open; one that becomes unreachable unclosed is freed by its buffer's cleaner (with a leak warning).
     *
     * @throws IllegalArgumentException when n is not in 1..65535
     * @throws CudaCallException when the device memory cannot be allocated (the message names the label)
     */
    @Override
    public synchronized ResidentHessian.Accumulator openHessian(int n, String label) {
        if (n < 1 || n > 65535) {
            throw new IllegalArgumentException("resident Hessian " + label + ": features must be 1..65535, got " + n);
        }
        current();
        long packed = (long) n * (n + 1) / 2;
        DeviceBuffer sum = alloc(8L * packed, "resident Hessian of " + label + " (" + n + " features, packed fp64)");
        try {
            sum.zero(0, sum.bytes());
        } catch (RuntimeException e) {
            sum.close();
            throw e;
        }
        DeviceHessian h = new DeviceHessian(n, label, sum);
        openHessians.add(h);
        return h;
    }

    /** A packed fp64 Hessian sum resident on this backend's device (see {@link #openHessian}). */
    private final class DeviceHessian implements ResidentHessian.Accumulator {
        private final int n;
        private final String label;
        private DeviceBuffer sum; // n(n+1)/2 fp64, packed upper triangle by rows; null once released

        DeviceHessian(int n, String label, DeviceBuffer sum) {
            this.n = n;
            this.label = label;
            this.sum = sum;
        }

        @Override
        public int features() {
            return n;
        }

        private DeviceBuffer live() {
            if (sum == null) {
                throw new IllegalStateException("resident Hessian of " + label + " is closed (or its CUDA backend"
                        + " was closed); open a new one");
            }
            return sum;
        }

        @Override
        public void add(int k, float[] x, int xOff, int ldx) {
            addBatch(k, x, xOff, ldx, false);
        }

        @Override
        public void addTf32(int k, float[] x, int xOff, int ldx) {
            addBatch(k, x, xOff, ldx, true);
        }

        /**
         * {@inheritDoc}
         *
         * <p>On this backend x must be a matrix of a forward workspace of this backend
         * ({@link #openWorkspace}); its products go straight into the resident sum, no copy.
         */
        @Override
        public void add(ForwardWorkspace.Matrix x, boolean tf32) {
            synchronized (CudaBackend.this) {
                if (!(x instanceof CudaWorkspace.DeviceMatrix) || x.cols() != n) {
                    throw new IllegalArgumentException("resident Hessian of " + label + " (" + n + " features) was given "
                            + x + (x instanceof CudaWorkspace.DeviceMatrix ? "" : " that is not in a CUDA workspace"));
                }
                DeviceBuffer s = live();
                CudaWorkspace owner = null;
                for (CudaWorkspace w : openWorkspaces) {
                    if (w.owns(x)) {
                        owner = w;
                    }
                }
                if (owner == null) {
                    throw new IllegalArgumentException("resident Hessian of " + label + ": " + x
                            + " belongs to no open workspace of this backend");
                }
                DeviceBuffer dx = owner.bufferOf(x);
                if (x.rows() == 0) {
                    return;
                }
                current();
                if (tf32) {
                    syrkTf32Device(n, x.rows(), dx.pointer(), n, s.pointer());
                } else {
                    syrkDevice(n, x.rows(), dx.pointer(), s.pointer());
                }
            }
        }

        /** Uploads the batch's rows and adds their products into the resident sum, exact or TF32. */
        private void addBatch(int k, float[] x, int xOff, int ldx, boolean tf32) {
            synchronized (CudaBackend.this) {
                Checks.window("resident Hessian of " + label + " X", x.length, xOff, ldx, k, n);
                DeviceBuffer s = live();
                if (k == 0) {
                    return;
                }
                current();
                DeviceBuffer dx = upWindow(0, x, xOff, ldx, k, n, "resident Hessian X of " + label);
                if (tf32) {
                    syrkTf32Device(n, k, dx.pointer(), n, s.pointer());
                } else {
                    syrkDevice(n, k, dx.pointer(), s.pointer());
                }
            }
        }

        @Override
        public void addTo(double[] cPacked) {
            synchronized (CudaBackend.this) {
                long packed = (long) n * (n + 1) / 2;
                if (cPacked.length < packed) {
                    throw new IllegalArgumentException("resident Hessian of " + label + ": packed sum needs " + packed
                            + " elements, the host array has " + cPacked.length);
                }
                DeviceBuffer s = live();
                current();
                s.downloadAdd(0, cPacked, 0, (int) packed);
            }
        }

        @Override
        public void close() {
            synchronized (CudaBackend.this) {
                if (sum == null) {
                    return;
                }
                openHessians.remove(this);
                if (closed) {
                    sum = null; // freed by the backend's close
                    return;
                }
                current();
                release();
            }
        }

        /** Frees the sum (the context is current); idempotent. */
        void release() {
            DeviceBuffer s = sum;
            sum = null;
            if (s != null) {
                s.close();
            }
        }
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
        Driver.check("cuMemcpyDtoDAsync " + src.label() + " -> " + dst.label(),
                () -> JCudaDriver.cuMemcpyDtoDAsync(dst.pointer(), src.pointer(), bytes, stream));
        Driver.check("cuMemcpyDtoD sync", this::syncStream);
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

    /**
     * Downloads the start of a device buffer into a whole array.
     *
     * @param src buffer
     * @param dst receives {@code dst.length} fp32 values
     */
    public synchronized void download(DeviceBuffer src, float[] dst) {
        current();
        src.download(0, dst, 0, dst.length);
    }

    /**
     * Copies a device buffer's first {@code dst.length} floats into {@code dst} without holding the backend's
     * lock while the bytes move, so that other threads' kernels and copies on this backend run meanwhile
     * (the prune job's two calibration partitions share one GPU: one partition's block output comes down while
     * the other's forward pass runs). Under the lock it only records an event on the backend's stream after
     * every operation queued so far (those that wrote {@code src}); the copy then runs on a second,
     * non-blocking stream that waits for that event, through a pinned staging of its own, in chunks drained
     * into {@code dst} by the copy pool ({@link PinnedStaging#download}). Copies below the staging threshold
     * take the ordinary locked path. Same bytes as {@link #download(DeviceBuffer, float[])}.
     *
     * <p>The caller must own {@code src} until this returns: nothing may free it or write it meanwhile (a
     * workspace's live matrix, used by one thread).
     *
     * @param src a device buffer of this backend holding at least {@code 4 · dst.length} bytes
     * @param dst the host array, filled when this returns
     * @throws CudaCallException when a driver call fails (also for an earlier kernel's fault)
     * @throws IllegalStateException when the backend is closed
     */
    void downloadOutsideLock(DeviceBuffer src, float[] dst) {
        long bytes = 4L * dst.length;
        if (bytes > src.bytes()) {
            throw new IllegalArgumentException("download of " + dst.length + " floats from a device buffer of "
                    + src.bytes() + " bytes");
        }
        CUevent ready = new CUevent();
        PinnedStaging copies;
        synchronized (this) {
            current();
            if (!staging.staged(bytes) || profile.on()) {
                src.download(0, dst, 0, dst.length);
                return;
            }
            if (copyStream == null) {
                CUstream s = new CUstream();
                Driver.check("cuStreamCreate (copies) on " + deviceName,
                        () -> JCudaDriver.cuStreamCreateWithPriority(s, CUstream_flags.CU_STREAM_NON_BLOCKING, 0));
                copyStaging = new PinnedStaging(s, staging.chunkBytes(), 0);
                copyStream = s;
            }
            copies = copyStaging;
            Driver.check("cuEventCreate (download)", () -> JCudaDriver.cuEventCreate(ready,
                    jcuda.driver.CUevent_flags.CU_EVENT_DISABLE_TIMING));
            Driver.check("cuEventRecord (download)", () -> JCudaDriver.cuEventRecord(ready, stream));
        }
        try {
            Driver.check("cuCtxSetCurrent device " + ordinal, () -> JCudaDriver.cuCtxSetCurrent(ctx));
            CUstream s = copyStream;
            Driver.check("cuStreamWaitEvent (download)", () -> JCudaDriver.cuStreamWaitEvent(s, ready, 0));
            copies.download(src.pointer(), bytes, (b, from) -> b.asFloatBuffer().get(dst, (int) (from / 4),
                    b.remaining() / 4), "download outside the lock");
        } finally {
            JCudaDriver.cuEventDestroy(ready);
        }
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
        BlockKernel k = chooseBlockKernel(blockKernel, rows, nmGroup, fn.blockRowsMaxThreads >= 32);
        if (k.isLanes()) {
            // a few lanes per row: row columns in registers, many rows in flight per multiprocessor
            int threads = laneThreads(rows, smCount(), k.lanes, k.rowsPerLanes);
            int perBlock = k.rowsPerLanes * threads / k.lanes;
            String what = k.kernel + " rows=" + rows + " width=" + width + " threads=" + threads;
            CUfunction f = fn.lanes.get(k);
            if (sync) {
                launch(what, f, (rows + perBlock - 1) / perBlock, 1, threads, laneSmem(perBlock), params);
            } else {
                launchAsync(what, f, (rows + perBlock - 1) / perBlock, 1, threads, laneSmem(perBlock), params);
            }
            return;
        }
        if (k == BlockKernel.ROWS) {
            // one thread per row: fewer instructions per column step; enough rows to fill the device
            int threads = blockRowsThreads(rows, smCount(), fn.blockRowsMaxThreads);
            String what = "sparsegpt_block_rows rows=" + rows + " width=" + width;
            int grid = (rows + threads - 1) / threads;
            if (sync) {
                launch(what, fn.blockRows, grid, 1, threads, blockRowsSmem(threads), params);
            } else {
                launchAsync(what, fn.blockRows, grid, 1, threads, blockRowsSmem(threads), params);
            }
            return;
        }
        String what = "sparsegpt_block rows=" + rows + " width=" + width;
        int grid = (rows + BLOCK_WARPS - 1) / BLOCK_WARPS;
        if (sync) {
            launch(what, fBlock, grid, 1, BLOCK_WARPS * 32, BLOCK_SMEM, params);
        } else {
            launchAsync(what, fBlock, grid, 1, BLOCK_WARPS * 32, BLOCK_SMEM, params);
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>On this backend: W ({@code rows × cols} fp32), U ({@code cols × cols} fp32), the mask and the
     * codes stay on the device for the whole loop; per block one fused block kernel launch
     * ({@link BlockKernel}: by default a lane kernel of {@code sparsegpt_lanes.cuh}) and
     * the two-level lazy updates of {@link #lazyUpdateBlocks(int)} (3xTF32 on Hopper, else
     * {@code sgemm_f32}), launched without host synchronization. The kernels work on a byte mask
     * ({@code rows × cols}, 1 = pruned); at the end {@code pack_mask_bits} packs it into
     * {@code rows × ceil(cols / 64)} 64-bit words on the device and only those come back (an eighth of
     * the bytes). Unstructured and block patterns selected on the host download the block's current
     * weights ({@code rows × blockSize} fp32) for the host selector, upload its byte mask and set the
     * block's bits of {@code job.mask()} on the host. Blocks wider than {@value #MAX_BLOCK_WIDTH} columns are refused.
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
        requireBlockWidth(job);
        if (job.u() == null) {
            throw new IllegalArgumentException("sparseGptSolve needs U on the host (job.u() is null); a solve on a"
                    + " resident factor goes through ResidentFactorizer.Factor.solve");
        }
        if (rows == 0) {
            return;
        }
        current();
        long rc = (long) rows * cols;
        try (DeviceBuffer dw = alloc(4L * rc, "solve W " + rows + "x" + cols);
             DeviceBuffer du = alloc(4L * cols * cols, "solve U " + cols + "x" + cols)) {
            dw.upload(job.w(), 0, (int) rc, 0);
            du.upload(job.u(), 0, cols * cols, 0);
            solveOnDevice(job, dw.pointer(), du.pointer());
            dw.download(0, job.w(), 0, (int) rc);
        }
    }

    /**
     * The resident loop of {@link #sparseGptSolve} on W and U already on the device ({@code job.w()} and
     * {@code job.u()} are not touched): the mask (as bits, see {@link SolveJob#mask()}), losses and
     * quantization outputs come back to the job's arrays, the pruned W stays in {@code dwp}. For
     * benchmarks, device pipelines and {@link ResidentFactorizer.Factor#solve}.
     *
     * @param job the solve's arguments (its {@code w} and {@code u} arrays are ignored)
     * @param dwp device pointer of W, {@code rows × cols} fp32, updated in place
     * @param dup device pointer of U, {@code cols × cols} fp32
     * @throws IllegalArgumentException when {@code job.mask()} is shorter than {@link SolveJob#maskWords}
     * @throws CudaCallException when a driver call or kernel fails
     */
    public synchronized void solveOnDevice(SolveJob job, CUdeviceptr dwp, CUdeviceptr dup) {
        solveLoop(job, dwp, dup, null);
    }

    /**
     * The solve of {@link #solveOnDevice} in its Cholesky form: the same function in exact arithmetic
     * (SparseGPT, arXiv 2301.00774, Algorithm 1 with the lazy batch-updates of §3.3), computed from the
     * Cholesky factor R of H ({@code H + λI = R·Rᵀ}, R upper) and only the band of
     * {@code U = R⁻¹} next to its diagonal, so that the factor needs no triangular inverse
     * ({@link ResidentFactorizer.Factor} on this backend; {@code hessianFactorDevice} for benchmarks).
     *
     * <p>Derivation: SparseGPT's updates give the final weights {@code W' = W − E·U} with E the scaled
     * errors (rows × n). Right-multiplying by R gives {@code E = (W − W')·R = D·R}, and for the columns T
     * right of the processed ones L (R upper triangular, {@code U_LT = −R_LL⁻¹·R_LT·R_TT⁻¹}) their
     * current values are {@code W_T − E_L·U_LT = W_T + D_L·R_LT·R_TT⁻¹}. For the next block b of T only
     * its own diagonal block of {@code R_TT⁻¹} enters: {@code W_b(current) = W_b + C_b·U_bb} with
     * {@code C = Σ D_k·R_k,·} summed over the finished blocks k. So per block: {@code W_b += C_b·U_bb}
     * (rows × w × w), the unchanged fused block kernel on {@code U_bb}, {@code D_b = W_b(original) − W'_b},
     * and the lazy updates {@code C[:, i2:] += D_b·R[i1:i2, i2:]} in place of
     * {@code W[:, i2:] −= Err·U[i1:i2, i2:]} (same shapes and flops, two levels as in
     * {@link #lazyUpdateBlocks(int)}). Extra device memory: C (rows × cols fp32) and U's diagonal tiles.
     *
     * @param job the solve's arguments (its {@code w} and {@code u} arrays are ignored)
     * @param dwp device pointer of W, {@code rows × cols} fp32, updated in place
     * @param dr device pointer of R, {@code cols × cols} row-major fp32, upper triangular with
     *     {@code H + λI = R·Rᵀ}
     * @param dband device pointer of U's band, {@code cols × }{@value #U_BAND} row-major fp32,
     *     {@code band[i][t] = U[i][i + t]} (zeros past column cols − 1)
     * @throws IllegalArgumentException when {@code job.mask()} is shorter than {@link SolveJob#maskWords}
     * @throws CudaCallException when a driver call or kernel fails
     */
    public synchronized void solveOnDeviceCholesky(SolveJob job, CUdeviceptr dwp, CUdeviceptr dr, CUdeviceptr dband) {
        if (dband == null) {
            throw new IllegalArgumentException("solveOnDeviceCholesky needs U's band (dband is null)");
        }
        solveLoop(job, dwp, dr, dband);
    }

    /** @throws IllegalArgumentException when the job's block is wider than {@value #MAX_BLOCK_WIDTH} columns */
    private static void requireBlockWidth(SolveJob job) {
        if (job.blockSize() > MAX_BLOCK_WIDTH) {
            throw new IllegalArgumentException("block size " + job.blockSize() + " exceeds the GPU kernel's "
                    + MAX_BLOCK_WIDTH + " columns; use a block size of at most " + MAX_BLOCK_WIDTH);
        }
    }

    /**
     * The device solve: in the inverse form ({@code band == null}) {@code f} is U, else the Cholesky
     * form of {@link #solveOnDeviceCholesky} with {@code f} = R.
     */
    private void solveLoop(SolveJob job, CUdeviceptr dwp, CUdeviceptr f, CUdeviceptr band) {
        requireBlockWidth(job);
        job.checkMask(); // the rest of validate() does not apply: W and U are on the device here
        if (job.rows() == 0 || job.cols() == 0) {
            return;
        }
        current();
        final int rows = job.rows();
        final int cols = job.cols();
        final int bs = Math.min(job.blockSize(), cols);
        SolveJob.Quant q = job.quant();
        int groups = q == null ? 1 : q.groups(cols);
        long rc = (long) rows * cols;
        boolean host = job.selector() != null;
        boolean unstr = job.unstructured() > 0;
        final int words = SolveJob.maskWords(rows, cols);
        // super-blocks of lazyBlocks blocks: the lazy updates inside a super-block reach only its own
        // columns; the columns right of it get one update per super-block with an inner dimension of sw
        final int sw = Math.min(cols, bs * lazyBlocks);
        final boolean chol = band != null;
        final int tiles = (cols + bs - 1) / bs;
        final int lastWidth = cols - (tiles - 1) * bs;
        // dm: the kernels' working byte mask (the block's for host selection, else the whole weight's,
        // packed into the words of dbits at the end)
        try (DeviceBuffer dm = alloc(host ? (long) rows * bs : rc, "solve mask");
             DeviceBuffer dbits = alloc(host ? 8 : Math.max(8L, 8L * words), "solve mask bits");
             DeviceBuffer dk = alloc(unstr ? 4L * rows * bs : 8, "solve scores");
             DeviceBuffer ds = alloc(unstr ? 4L * (4 + 256) : 8, "solve select state");
             DeviceBuffer de = alloc(4L * rows * sw, "solve Err");
             DeviceBuffer dg = alloc(host ? 4L * rows * bs : 8, "solve block gather");
             DeviceBuffer dl = alloc(8L * rows, "solve loss");
             DeviceBuffer dq = alloc(q == null ? 8 : 8L * rows * groups, "solve grids");
             DeviceBuffer dc = alloc(q == null ? 8 : rc, "solve codes");
             // the splits of any lazy update that runs on 3xTF32: inner dimension a block (bs) or a super-block
             // (≤ sw) wide; a block width that is no multiple of 4 still has super-blocks that are
             // (the Cholesky form's C_b·U_bb has the last block's width as its inner dimension too)
             DeviceBuffer dsplit = alloc(lazy3xTf32(bs) || lazy3xTf32(sw) || (chol && lazy3xTf32(lastWidth))
                     ? 4L * 2 * ((long) rows + cols) * sw : 8, "solve 3xTF32 splits");
             // the Cholesky form: the accumulated C = Σ D·R (rows × cols), U's diagonal tiles, the block's Err
             DeviceBuffer dcor = alloc(chol ? 4L * rc : 8, "solve C = D·R " + rows + "x" + cols);
             DeviceBuffer dtiles = alloc(chol ? 4L * tiles * bs * bs : 8, "solve U diagonal tiles");
             DeviceBuffer derr = alloc(chol ? 4L * rows * bs : 8, "solve block Err")) {
            if (chol) {
                dcor.zero(0, dcor.bytes());
                launchAsync("band_tiles_f32 n=" + cols + " bs=" + bs, fBandTiles, blocks((long) tiles * bs * bs), 1, 256,
                        0, Pointer.to(p(cols), p(bs), p(band), p(dtiles.pointer())));
            }
            // what the lazy updates change (row stride cols): W itself, or C in the Cholesky form
            final CUdeviceptr lazyTarget = chol ? dcor.pointer() : dwp;
            final float alpha = chol ? 1f : -1f; // W −= Err·U, or C += D·R
            dm.zero(0, dm.bytes());
            dl.zero(0, 8L * rows);
            if (q != null) {
                dq.upload(q.scale(), 0, rows * groups, 0);
                dq.upload(q.zero(), 0, rows * groups, (long) rows * groups);
            }
            float[] blockW = host ? new float[rows * bs] : null;
            byte[] blockMask = host ? new byte[rows * bs] : null;
            for (int i1 = 0; i1 < cols; i1 += bs) {
                int s1 = i1 / sw * sw;
                int s2 = Math.min(cols, s1 + sw);
                int i2 = Math.min(s2, i1 + bs);
                int width = i2 - i1;
                CUdeviceptr err = de.at(4L * (i1 - s1)); // Err of the block, or D in the Cholesky form
                // U[i1:i2, i1:i2]: in U itself, or U's diagonal tile
                CUdeviceptr ubb = chol ? dtiles.at(4L * (i1 / bs) * bs * bs) : f.withByteOffset(4L * ((long) i1 * cols + i1));
                int ldub = chol ? bs : cols;
                CUdeviceptr wb = dwp.withByteOffset(4L * i1);
                if (chol) {
                    // D's slot ← W_b (original); then W_b += C_b·U_bb, the block's current weights
                    launchAsync("axpby_cols_f32 copy block " + i1, fAxpbyCols, blocks((long) rows * width), 1, 256, 0,
                            Pointer.to(p(rows), p(width), p(1f), p(wb), p(cols), p(0f), p(err), p(sw)));
                    if (i1 > 0) {
                        // (on the 3xTF32 kernel where the lazy updates use it: sgemm_f32 runs this shape at a few TFLOP/s)
                        lazyUpdate(rows, width, width, 1f, dcor.at(4L * i1), cols, ubb, ldub, wb, cols, dsplit, i1);
                    }
                }
                CUdeviceptr mptr;
                int ldm;
                if (host) {
                    Pointer gp = Pointer.to(p(rows), p(width), p(wb), p(cols), p(dg.pointer()));
                    launch("gather_cols_f32 block " + i1, fGatherCols, blocks((long) rows * width), 1, 256, 0, gp);
                    dg.download(0, blockW, 0, rows * width);
                    java.util.Arrays.fill(blockMask, 0, rows * width, (byte) 0);
                    job.selector().select(i1, width, blockW, blockMask);
                    dm.upload(blockMask, 0, rows * width, 0);
                    SolveJob.setBlockBits(job.mask(), rows, cols, i1, width, blockMask);
                    mptr = dm.pointer();
                    ldm = width;
                } else {
                    mptr = dm.at(i1);
                    ldm = cols;
                    if (unstr) {
                        selectUnstructuredDevice(rows, width, wb, cols, ubb, ldub,
                                ResidentSolver.SolveJob.prunedPerBlock(job.unstructured(), rows * width), dk, ds, mptr, ldm);
                    }
                }
                int gOff = q == null || q.groupSize() == 0 ? 0 : i1 / q.groupSize();
                // (in the Cholesky form the block's Err is not needed past the block: D replaces it)
                blockDevice(rows, width, wb, cols, ubb, ldub, chol ? derr.pointer() : err, chol ? width : sw, mptr, ldm,
                        job.nmKeep(), job.nmGroup(), q == null ? 0 : q.bits(),
                        q != null && q.symmetric(), q == null ? 0 : q.groupSize(), q == null ? dq.pointer() : dq.at(4L * gOff),
                        q == null ? dq.pointer() : dq.at(4L * ((long) rows * groups + gOff)), groups,
                        q == null ? dc.pointer() : dc.at(i1), cols,
                        dl.pointer(), false);
                // inverse form: W[:, i2:] −= Err·U[., i2:]; Cholesky form: C[:, i2:] += D·R[., i2:]
                if (chol) {
                    // D_b = W_b(original) − W'_b
                    launchAsync("axpby_cols_f32 D block " + i1, fAxpbyCols, blocks((long) rows * width), 1, 256, 0,
                            Pointer.to(p(rows), p(width), p(-1f), p(wb), p(cols), p(1f), p(err), p(sw)));
                }
                if (i2 < s2) {
                    // the columns left in the block's super-block, from this block
                    lazyUpdate(rows, s2 - i2, width, alpha, err, sw, f.withByteOffset(4L * ((long) i1 * cols + i2)), cols,
                            lazyTarget.withByteOffset(4L * i2), cols, dsplit, i1);
                } else if (s2 < cols) {
                    // the columns right of the super-block, from all of its blocks
                    lazyUpdate(rows, cols - s2, s2 - s1, alpha, de.pointer(), sw,
                            f.withByteOffset(4L * ((long) s1 * cols + s2)), cols,
                            lazyTarget.withByteOffset(4L * s2), cols, dsplit, s1);
                }
            }
            if (!host) {
                packMaskBits(rows, cols, dm.pointer(), cols, dbits.pointer(), false);
            }
            Driver.check("SparseGPT solve " + rows + "x" + cols + " (fused blocks + lazy updates + mask bits)",
                    this::syncStream);
            if (!host) {
                dbits.download(0, job.mask(), 0, words);
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

    /**
     * {@code pack_mask_bits}: a device byte mask as 64-bit words in the layout of {@link SolveJob#mask()}
     * (one warp per word). Nothing is launched for an empty mask.
     *
     * @param rows rows of the mask
     * @param cols columns of the mask
     * @param m device pointer of the byte mask, {@code rows × cols} with row stride {@code ldm ≥ cols} bytes,
     *     non-zero = pruned
     * @param ldm row stride of {@code m} in bytes
     * @param out device pointer of {@code rows × ceil(cols / 64)} 64-bit words, overwritten
     * @param wait synchronize the stream (and check the launch) before returning; else only launched
     * @throws CudaCallException when the launch (or, with {@code wait}, the kernel) fails
     */
    void packMaskBits(int rows, int cols, CUdeviceptr m, int ldm, CUdeviceptr out, boolean wait) {
        int words = SolveJob.maskWords(rows, cols);
        if (words == 0) {
            return;
        }
        String what = "pack_mask_bits " + rows + "x" + cols;
        Pointer params = Pointer.to(p(rows), p(cols), p(m), p(ldm), p(out), p(SolveJob.wordsPerRow(cols)));
        if (wait) {
            launch(what, fPackMaskBits, blocks(32L * words), 1, 256, 0, params);
        } else {
            launchAsync(what, fPackMaskBits, blocks(32L * words), 1, 256, 0, params);
        }
    }

    /**
     * One lazy update {@code C += alpha · Err · Ublk} of the solve (C rows × n, Err rows × k, Ublk k × n;
     * alpha −1 in the inverse form, +1 with D and R in the Cholesky form), on the
     * Hopper 3xTF32 kernel when {@link #lazy3xTf32} allows it, else on {@code sgemm_f32}; launched without
     * waiting. {@code i1} is the first column of the Err columns (for error messages).
     */
    private void lazyUpdate(int rows, int n, int k, float alpha, CUdeviceptr err, int lde, CUdeviceptr ublk, int ldu,
                            CUdeviceptr c, int ldc, DeviceBuffer split, int i1) {
        if (lazy3xTf32(k)) {
            lazyUpdate3xTf32(rows, n, k, alpha, err, lde, ublk, ldu, c, ldc, split, i1);
        } else {
            sgemmDeviceAsync(false, false, rows, n, k, alpha, err, lde, ublk, ldu, 1f, c, ldc,
                    "lazy update from column " + i1);
        }
    }

    /**
     * Blocks per super-block of the device solve's two-level lazy updates ({@link #lazyUpdateBlocks(int)}).
     *
     * @return blocks per super-block, ≥ 1
     */
    public int lazyUpdateBlocks() {
        return lazyBlocks;
    }

    /**
     * Sets how many column blocks form one super-block of the device solve's lazy updates (default
     * {@value #DEFAULT_LAZY_BLOCKS}). After each block, only the columns left in its super-block are
     * updated (an inner dimension of one block); after each super-block, all columns right of it get one
     * update with an inner dimension of the super-block's width. In exact arithmetic this is the same as
     * updating everything after each block (SparseGPT, arXiv 2301.00774 §3.3 "lazy batch-updates",
     * from GPTQ arXiv 2210.17323 §4 step 2, applied at two levels); in fp32 only the summation order of
     * W's updates changes, and W is read and written about {@code blocks} times less often. 1 gives the
     * one-level schedule of the reference.
     *
     * @param blocks blocks per super-block, 1 to 64
     * @throws IllegalArgumentException outside 1..64
     */
    public void lazyUpdateBlocks(int blocks) {
        if (blocks < 1 || blocks > 64) {
            throw new IllegalArgumentException("lazy-update blocks per super-block must be 1..64, got " + blocks);
        }
        lazyBlocks = blocks;
    }

    /**
     * Whether the solve's lazy updates of {@code width}-column blocks run on the Hopper 3xTF32 kernel:
     * Hopper kernels in use and a block width whose rows are whole 16-byte copies.
     */
    private boolean lazy3xTf32(int width) {
        return hopperKernels() && width % 4 == 0;
    }

    /**
     * The lazy update {@code W[:, i2:] −= Err · U[i1:i2, i2:]} on the Hopper tensor cores in fp32
     * accuracy (3xTF32, {@code wg_gemm_3xtf32_nt}, see hopper.cu): Err (rows × width) is split into
     * TF32 hi and lo parts, the block rows of U (width × n) into the hi and lo parts of their transpose,
     * then one launch computes {@code C = alpha · (Errhi·Bhiᵀ + Errhi·Bloᵀ + Errlo·Bhiᵀ) + 1 · C}. Launched
     * without waiting. The product differs from sgemm_f32's only in rounding (measured relative error
     * of the product 9e-7 against sgemm_f32's 2e-7, H200, {@code tools/device/solve_probe.py}).
     *
     * @param rows rows of W
     * @param n columns updated ({@code cols − i2})
     * @param width block width (the inner dimension), a multiple of 4
     * @param alpha the product's factor (−1: W −= Err·U; +1: C += D·R)
     * @param err Err, rows × width
     * @param lde Err's row stride
     * @param ublk U[i1, i2], width × n with row stride ldu
     * @param c W[:, i2], rows × n with row stride ldc, updated in place
     * @param split scratch of at least 8·(rows + n)·width bytes
     * @param i1 the block's first column (for error messages)
     */
    private void lazyUpdate3xTf32(int rows, int n, int width, float alpha, CUdeviceptr err, int lde, CUdeviceptr ublk,
                                  int ldu, CUdeviceptr c, int ldc, DeviceBuffer split, int i1) {
        long ea = (long) rows * width;
        long ba = (long) n * width;
        CUdeviceptr ehi = split.pointer();
        CUdeviceptr elo = split.at(4L * ea);
        CUdeviceptr bhi = split.at(8L * ea);
        CUdeviceptr blo = split.at(8L * ea + 4L * ba);
        launchAsync("split_tf32 Err block " + i1, hopper.split, (int) Math.max(1, Math.min(4096, (ea + 255) / 256)), 1,
                256, 0, Pointer.to(p(rows), p(width), p(err), p(lde), p(ehi), p(elo), p(width)));
        launchAsync("transpose_split_tf32 U block " + i1, hopper.transposeSplit, (n + 31) / 32, (width + 31) / 32, 32, 8, 0,
                Pointer.to(p(width), p(n), p(ublk), p(ldu), p(bhi), p(blo), p(width)));
        launchAsync("wg_gemm_3xtf32_nt lazy update block " + i1 + " " + rows + "x" + n + "x" + width, hopper.gemm3xTf32,
                (n + 127) / 128, (rows + 127) / 128, 256, WG3_SMEM, Pointer.to(p(rows), p(n), p(width), p(alpha), p(ehi),
                        p(elo), p(width), p(bhi), p(blo), p(width), p(1f), p(c), p(ldc)));
    }

    /** unstr_select's threads per block (US_THREADS in unstr_select.cuh). */
    static final int SELECT_THREADS = 512;
    /** Keys per thread that unstr_select_r16 keeps in registers (US_KPT). */
    static final int SELECT_KEYS_PER_THREAD = 16;
    /** unstr_select's workspace words that do not depend on the grid (US_HDR + 2 · US_BINS + US_LAST). */
    private static final int SELECT_WS_FIXED_WORDS = 4 + 2 * 4096 + 256;
    /** unstr_select's per-block histogram words (US_LAST). */
    private static final int SELECT_WS_BLOCK_WORDS = 256;

    /**
     * The unstructured per-block mask on the device, launched without waiting: the k smallest keys
     * {@code w² / U[c,c]²} (fp32, {@code __fdiv_rn(__fmul_rn(w, w), __fmul_rn(d, d))}, compared as their
     * uint32 bit patterns) of the rows × width block, ties to the lower row-major index {@code r · width + c};
     * every mask entry of the block is written (1 = pruned). SparseGPT's rule per block over all rows
     * (Frantar &amp; Alistarh 2023, section 3) as {@code SmallestK}. {@link UnstructuredSelect#FUSED} (with
     * cooperative launch): one launch, {@link #selectFused}; {@link UnstructuredSelect#RADIX4}: the 11-launch
     * chain of kernels {@code unstr_*} (scores, a 4-pass radix select of the k-th smallest key, marks, tie
     * order). Both write the same bits.
     *
     * @param rows rows of the block (n = rows · width &lt; 2³¹)
     * @param width columns of the block, 1..{@value #MAX_BLOCK_WIDTH}
     * @param w device pointer of the block's first weight, fp32, row stride {@code ldw} elements
     * @param u device pointer of U[i1, i1] (the block's diagonal block of the fp32 inverse factor, row stride
     *     {@code ldu}; only its diagonal is read)
     * @param k entries to prune, at most n; none for k ≤ 0 (nothing is launched or written)
     * @param keys scratch of at least 4 · n bytes (the keys, uint32)
     * @param state scratch of at least 4 · (4 + 256) bytes (the chain's radix state and histogram)
     * @param mask device pointer of the block's first mask byte, row stride {@code ldm} bytes
     */
    private void selectUnstructuredDevice(int rows, int width, CUdeviceptr w, int ldw, CUdeviceptr u, int ldu, int k,
                                          DeviceBuffer keys, DeviceBuffer state, CUdeviceptr mask, int ldm) {
        if (k <= 0) {
            return;
        }
        long n = (long) rows * width;
        if (unstructuredSelect == UnstructuredSelect.FUSED && fn.unstrSelectGMaxGrid > 0
                && selectFused(rows, width, w, ldw, u, ldu, k, keys, mask, ldm)) {
            return;
        }
        CUdeviceptr st = state.pointer();
        CUdeviceptr hist = state.at(16);
        launchAsync("unstr_scores", fUnstrScores, blocks(n), 1, 256, 0,
                Pointer.to(p(rows), p(width), p(w), p(ldw), p(u), p(ldu), p(keys.pointer())));
        launchAsync("unstr_init", fUnstrInit, 1, 1, 256, 0, Pointer.to(p(st), p(hist), p(k)));
        int grid = (int) Math.min(4L * smCount(), Math.max(1, blocks(n)));
        for (int shift = 24; shift >= 0; shift -= 8) {
            launchAsync("unstr_hist", fUnstrHist, grid, 1, 256, 0,
                    Pointer.to(Pointer.to(new long[] {n}), p(keys.pointer()), p(st), p(shift), p(hist)));
            launchAsync("unstr_pick", fUnstrPick, 1, 1, 32, 0, Pointer.to(p(st), p(hist), p(shift)));
        }
        launchAsync("unstr_mark", fUnstrMark, blocks(n), 1, 256, 0,
                Pointer.to(p(rows), p(width), p(keys.pointer()), p(st), p(mask), p(ldm)));
        launchAsync("unstr_ties", fUnstrTies, 1, 1, 1024, 0,
                Pointer.to(p(rows), p(width), p(keys.pointer()), p(st), p(mask), p(ldm)));
    }

    /**
     * {@link #selectUnstructuredDevice} in one cooperative launch (unstr_select.cuh): thread block b of G
     * owns keys {@code [b · chunk, (b + 1) · chunk)}; three radix passes of 12, 12 and 8 bits (shared
     * histograms, global ones by atomics, a grid barrier after each; every block finds the digit from the
     * whole histogram), then the marks, ties resolved through the per-block counts of the last pass. The
     * grid: as many blocks as fit on the device at once ({@code cuOccupancyMaxActiveBlocksPerMultiprocessor}
     * × SMs, capped by {@link #selectGridLimit} and by one block per {@value #SELECT_THREADS} keys); the
     * register variant {@code unstr_select_r16} when each block then holds at most
     * {@value #SELECT_KEYS_PER_THREAD} × {@value #SELECT_THREADS} keys, else {@code unstr_select_g}.
     * {@code tools/device/select_probe.py} mirrors this choice.
     *
     * @return true when launched; false when the device refused the cooperative launch as too large
     *     (then, with one warning, this backend uses {@link UnstructuredSelect#RADIX4} from now on)
     */
    private boolean selectFused(int rows, int width, CUdeviceptr w, int ldw, CUdeviceptr u, int ldu, int k,
                                DeviceBuffer keys, CUdeviceptr mask, int ldm) {
        long n = (long) rows * width;
        if (n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("unstructured selection of " + rows + " x " + width + " = " + n
                    + " entries exceeds the kernel's 2^31 - 1; use smaller row shards");
        }
        int perKeys = (int) Math.max(1, (n + SELECT_THREADS - 1) / SELECT_THREADS);
        int grid = Math.max(1, Math.min(Math.min(fn.unstrSelectR16MaxGrid, selectGridLimit), perKeys));
        CUfunction f = fn.unstrSelectR16;
        String name = "unstr_select_r16";
        if (fn.unstrSelectR16MaxGrid == 0 || selectChunk(n, grid) > (long) SELECT_KEYS_PER_THREAD * SELECT_THREADS) {
            grid = Math.max(1, Math.min(Math.min(fn.unstrSelectGMaxGrid, selectGridLimit), perKeys));
            f = fn.unstrSelectG;
            name = "unstr_select_g";
        }
        int chunk = (int) selectChunk(n, grid);
        DeviceBuffer ws = selectWorkspace(grid);
        int g = grid;
        CUfunction kernel = f;
        Pointer params = Pointer.to(p(rows), p(width), p(w), p(ldw), p(u), p(ldu), p(k), p(chunk), p(keys.pointer()),
                p(mask), p(ldm), p(ws.pointer()));
        int[] rc = {0};
        timedLaunch(name + " grid " + g, () -> {
            rc[0] = JCudaDriver.cuLaunchCooperativeKernel(kernel, g, 1, 1, SELECT_THREADS, 1, 1, 0, stream, params);
            return rc[0] == CUresult.CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE ? CUresult.CUDA_SUCCESS : rc[0];
        });
        if (rc[0] == CUresult.CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE) {
            // fewer multiprocessors than the occupancy query saw (e.g. MPS limits): the launch chain needs none
            LOG.log(System.Logger.Level.WARNING, "device " + ordinal + ": " + name + " with " + g + " thread blocks is"
                    + " too large for a cooperative launch here; selecting unstructured masks with the "
                    + "11-launch chain (" + UNSTRUCTURED_SELECT_PROPERTY + "=radix4) from now on");
            unstructuredSelect = UnstructuredSelect.RADIX4;
            return false;
        }
        return true;
    }

    /**
     * Keys per thread block of unstr_select: {@code ceil(n / grid)} rounded up to a multiple of 32.
     *
     * @param n keys, ≥ 1
     * @param grid thread blocks, ≥ 1
     * @return the chunk (chunk · grid ≥ n)
     */
    static long selectChunk(long n, int grid) {
        long c = (n + grid - 1) / grid;
        return (c + 31) / 32 * 32;
    }

    /**
     * unstr_select's workspace, allocated at the first fused selection for the largest grid either variant
     * can have (under half a MiB on an H200) and zeroed then; every launch leaves it zeroed again.
     *
     * @param grid the launch's thread blocks, at most the occupancy limit it was sized for
     * @throws IllegalStateException when the grid exceeds that limit (a bug, not bad input)
     */
    private DeviceBuffer selectWorkspace(int grid) {
        if (selectWs == null) {
            int maxGrid = Math.max(fn.unstrSelectR16MaxGrid, fn.unstrSelectGMaxGrid);
            DeviceBuffer b = alloc(4L * (SELECT_WS_FIXED_WORDS + (long) SELECT_WS_BLOCK_WORDS * maxGrid),
                    "unstr_select workspace (" + maxGrid + " blocks)");
            try {
                b.zero(0, b.bytes());
            } catch (RuntimeException e) {
                b.close();
                throw e;
            }
            selectWs = b;
        }
        if (selectWs.bytes() < 4L * (SELECT_WS_FIXED_WORDS + (long) SELECT_WS_BLOCK_WORDS * grid)) {
            throw new IllegalStateException("unstr_select grid " + grid + " exceeds the workspace's " + selectWs.bytes()
                    + " bytes (sized for the occupancy limit)");
        }
        return selectWs;
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
        dgemmBatched(1, 0, 0, 0, transB, lowerC, aLower, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, what);
    }

    /**
     * {@code batch} independent products {@code C = alpha·A·op(B) + beta·C} (fp64; A m × k, op(B) k × n,
     * C m × n, row-major with the given row strides), problem z at element offsets {@code z·sA, z·sB, z·sC}.
     * {@code lowerC}: only C's lower triangle is written; {@code aLower} / {@code bLower}: A / op(B) is
     * lower triangular with its zeros stored, so the kernels skip the products with those zeros (the
     * result is bitwise the same; see dgemm_f64 in sparkprune.cu). Products with an inner dimension of
     * at least {@link #DMMA_MIN_K} run on {@code dgemm_dmma_sm90} (hopper.cu, {@code mma.sync} m16n8k8
     * f64) with {@link #hopperKernels()}, else on {@code dgemm_dmma} (m8n8k4); the others on
     * {@code dgemm_f64} (FMA pipes).
     */
    private void dgemmBatched(int batch, long sA, long sB, long sC, boolean transB, boolean lowerC, boolean aLower,
                              boolean bLower, int m, int n, int k, double alpha, CUdeviceptr a, int lda, CUdeviceptr b,
                              int ldb, double beta, CUdeviceptr c, int ldc, String what) {
        // the in-place panel product and the rank-64 trailing updates (k = 64) stay on dgemm_f64, which is
        // faster there (one 128 × 128 tensor-core tile per SM has too little work at k = 64)
        DgemmKernel kernel = k < DMMA_MIN_K ? DgemmKernel.F64
                : hopperKernels() ? DgemmKernel.DMMA_SM90 : DgemmKernel.DMMA;
        launchDgemm(kernel, batch, sA, sB, sC, transB, lowerC, aLower, bLower, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc, what);
    }

    /** The fp64 product kernels of the inverse factor (package-private: tests compare them). */
    enum DgemmKernel {
        /** {@code dgemm_f64}: fp64 FMAs, 64 × 64 tiles (sparkprune.cu). */
        F64,
        /** {@code dgemm_dmma}: {@code mma.sync} m8n8k4 f64, 128 × 128 tiles (gemm_tc.cuh, sm_80+). */
        DMMA,
        /** {@code dgemm_dmma_sm90}: {@code mma.sync} m16n8k8 f64, 128 × 128 tiles (hopper.cu, sm_90a). */
        DMMA_SM90
    }

    /**
     * Runs one (batched) product of {@link #dgemmBatched} on the given kernel, whatever the inner
     * dimension, and waits for it (package-private: tests compare the kernels on the same inputs).
     * Pointers are device addresses in this backend's context; shapes and flags as for
     * {@link #dgemmBatched}.
     *
     * @throws IllegalStateException for {@link DgemmKernel#DMMA_SM90} when {@link #hopperKernels()} is false
     * @throws CudaCallException when the launch or the kernel fails
     */
    synchronized void dgemmWith(DgemmKernel kernel, int batch, long sA, long sB, long sC, boolean transB, boolean lowerC,
                                boolean aLower, boolean bLower, int m, int n, int k, double alpha, CUdeviceptr a, int lda,
                                CUdeviceptr b, int ldb, double beta, CUdeviceptr c, int ldc) {
        if (kernel == DgemmKernel.DMMA_SM90 && !hopperKernels()) {
            throw new IllegalStateException("dgemm_dmma_sm90 needs the Hopper kernels (compute capability 9.0), not in"
                    + " use on device " + ordinal);
        }
        current();
        launchDgemm(kernel, batch, sA, sB, sC, transB, lowerC, aLower, bLower, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc, "test " + m + "x" + n + "x" + k);
        Driver.check("dgemm " + kernel + " " + m + "x" + n + "x" + k, this::syncStream);
    }

    private void launchDgemm(DgemmKernel kernel, int batch, long sA, long sB, long sC, boolean transB, boolean lowerC,
                             boolean aLower, boolean bLower, int m, int n, int k, double alpha, CUdeviceptr a, int lda,
                             CUdeviceptr b, int ldb, double beta, CUdeviceptr c, int ldc, String what) {
        if (m <= 0 || n <= 0 || batch <= 0) {
            return;
        }
        Pointer params = Pointer.to(p(transB ? 1 : 0), p(lowerC ? 1 : 0), p(aLower ? 1 : 0), p(bLower ? 1 : 0),
                p(m), p(n), p(k),
                p(alpha), p(a), p(lda), p(b), p(ldb), p(beta), p(c), p(ldc), Pointer.to(new long[] {sA}),
                Pointer.to(new long[] {sB}), Pointer.to(new long[] {sC}));
        switch (kernel) {
            case DMMA_SM90 -> timedLaunch("dgemm_dmma_sm90 " + what, () -> JCudaDriver.cuLaunchKernel(hopper.dgemmDmma,
                    (n + 127) / 128, (m + 127) / 128, batch, 256, 1, 1, DGEMM_DMMA_SM90_SMEM, stream, params, null));
            case DMMA -> timedLaunch("dgemm_dmma " + what, () -> JCudaDriver.cuLaunchKernel(fn.dgemmDmma,
                    (n + 127) / 128, (m + 127) / 128, batch, 256, 1, 1, DGEMM_DMMA_SMEM, stream, params, null));
            case F64 -> timedLaunch("dgemm_f64 " + what, () -> JCudaDriver.cuLaunchKernel(fDgemm, (n + 63) / 64,
                    (m + 63) / 64, batch, 256, 1, 1, 0, stream, params, null));
            default -> throw new AssertionError(kernel);
        }
    }

    /**
     * {@code U = P·L⁻¹·P} with {@code P·(A + λ)·P = L·Lᵀ}, all on the device (see the kernels'
     * comment in sparkprune.cu). A is read through its strict upper triangle, its diagonal from
     * {@code diag} plus λ.
     *
     * @return false when the Cholesky met a pivot that is not positive (nothing is written to U then)
     * @throws IllegalStateException when chol_panel_f64 ({@link PanelSteps#FUSED}) reports a flag wait that
     *         timed out (info 2: its blocks were not all resident)
     */
    private boolean factorDevice(int n, CUdeviceptr a, int lda, CUdeviceptr diag, double lambda, DeviceBuffer r,
                                 DeviceBuffer x, DeviceBuffer t, DeviceBuffer info, CUdeviceptr u64, CUdeviceptr u32) {
        if (!choleskyReversed(n, a, lda, diag, lambda, r, x, t, info)) {
            return false;
        }
        // X = L⁻¹ by recursive doubling: the diagonal FB-blocks of X hold their inverses (potf2_inv_f64);
        // at level s, for each pair of s-blocks [A 0; B C] of L on the diagonal,
        // X21 = -C⁻¹·(B·A⁻¹), all pairs of a level in one batched launch per product.
        for (int s = FB; s < n; s *= 2) {
            trtriPairs(n, s, r, x, t);
        }
        launchAsync("reversed_upper n=" + n, fReversedUpper, blocks((long) n * n), 1, 256, 0,
                Pointer.to(p(n), p(x.pointer()), p(u64), p(u32)));
        Driver.check("triangular inverse n=" + n, this::syncStream);
        return true;
    }

    /** One level of the recursive triangular inverse: every pair of s-blocks on X's diagonal (see factorDevice). */
    private void trtriPairs(int n, int s, DeviceBuffer r, DeviceBuffer x, DeviceBuffer t) {
        int full = n / (2 * s);              // pairs with both halves of size s
        int rest = n - full * 2 * s;         // a last pair with a shorter second half, if rest > s
        long step = 2L * s * (n + 1);        // element offset between consecutive pairs' diagonals
        if (full > 0) {
            trtriLevel(n, s, s, 0, full, step, r, x, t);
        }
        if (rest > s) {
            trtriLevel(n, s, rest - s, full * 2 * s, 1, 0, r, x, t);
        }
    }

    /**
     * The factor of the Cholesky form of the solve ({@link #solveOnDeviceCholesky}), all on the device:
     * with {@code P·(A + λI)·P = L·Lᵀ} (P reverses the order), {@code R = P·L·P} (upper triangular,
     * {@code A + λI = R·Rᵀ}) in fp32, and the band {@code B[i][t] = U[i][i+t]}, {@code 0 ≤ t <}
     * {@value #U_BAND}, of {@code U = R⁻¹ = P·L⁻¹·P} (the upper Cholesky factor of {@code (A + λI)⁻¹}), from
     * the diagonal and first sub-diagonal {@value #U_BAND}-blocks of {@code L⁻¹} only. The factor costs
     * one Cholesky ({@code n³/3} flops) instead of a Cholesky and a triangular inverse ({@code 2n³/3}).
     * Inputs as for {@link #factorDevice}.
     *
     * @param r32 receives R, {@code n × n} row-major fp32 (zeros below the diagonal)
     * @param band receives U's band, {@code n × }{@value #U_BAND} row-major fp32 (zeros past column n − 1)
     * @return false when the Cholesky met a pivot that is not positive (nothing is written then)
     */
    private boolean factorDeviceCholesky(int n, CUdeviceptr a, int lda, CUdeviceptr diag, double lambda, DeviceBuffer r,
                                         DeviceBuffer x, DeviceBuffer t, DeviceBuffer info, CUdeviceptr r32,
                                         CUdeviceptr band) {
        if (!choleskyReversed(n, a, lda, diag, lambda, r, x, t, info)) {
            return false;
        }
        // the diagonal U_BAND-blocks of X = L⁻¹: the levels of factorDevice below U_BAND
        for (int s = FB; s < U_BAND && s < n; s *= 2) {
            trtriPairs(n, s, r, x, t);
        }
        // the first sub-diagonal U_BAND-blocks: every adjacent pair (j, j+1) of diagonal blocks, the same
        // X21 = -C⁻¹·(B·A⁻¹) as a level of the full inverse, with pairs one block apart instead of two
        int q = n / U_BAND;
        int rem = n - q * U_BAND;
        if (q >= 2) {
            trtriLevel(n, U_BAND, U_BAND, 0, q - 1, (long) U_BAND * (n + 1), r, x, t);
        }
        if (q >= 1 && rem > 0) {
            trtriLevel(n, U_BAND, rem, (q - 1) * U_BAND, 1, 0, r, x, t);
        }
        launchAsync("reversed_upper R n=" + n, fReversedUpper, blocks((long) n * n), 1, 256, 0,
                Pointer.to(p(n), p(r.pointer()), p(nullPtr()), p(r32)));
        launchAsync("band_upper_f32 n=" + n, fBandUpper, blocks((long) n * U_BAND), 1, 256, 0,
                Pointer.to(p(n), p(x.pointer()), p(band)));
        Driver.check("Cholesky form of the factor n=" + n, this::syncStream);
        return true;
    }

    /**
     * The blocked Cholesky {@code P·(A + λI)·P = L·Lᵀ} into r (lower, zeros above), the inverses of its
     * FB × FB diagonal blocks into x; waits for it.
     *
     * @return false when a pivot was not positive
     */
    private boolean choleskyReversed(int n, CUdeviceptr a, int lda, CUdeviceptr diag, double lambda, DeviceBuffer r,
                                     DeviceBuffer x, DeviceBuffer t, DeviceBuffer info) {
        long nn = (long) n * n;
        launchAsync("load_reversed_f64 n=" + n, fLoadReversed, blocks(nn), 1, 256, 0,
                Pointer.to(p(n), p(a), p(lda), p(diag), p(lambda), p(r.pointer())));
        x.zero(0, 8L * nn);
        info.zero(0, 4);
        // Two levels of blocking: panels of PANEL columns are factored by FB-column steps whose rank-FB
        // updates stay inside the panel; the rest of the matrix gets one rank-PANEL update per panel,
        // a product with an inner dimension of PANEL that runs on the fp64 tensor cores (dgemm_dmma, or
        // dgemm_dmma_sm90 with hopperKernels()). A panel's steps run as three launches each, or with
        // PanelSteps.FUSED as one chol_panel_f64 launch (same factor up to summation order, same info)
        boolean fused = panelSteps == PanelSteps.FUSED && fn.cholPanelMaxGrid > 0;
        CUdeviceptr flags = t.pointer(); // chol_panel_f64's 2·⌈n / FB⌉ flags: t is free until the inverse
        if (fused) {
            t.zero(0, 8L * ((n + FB - 1) / FB));
        }
        for (int p0 = 0; p0 < n; p0 += PANEL) {
            int pEnd = Math.min(n, p0 + PANEL);
            if (fused) {
                cholPanel(n, p0, r, x, flags, info);
            }
            for (int k0 = p0; k0 < pEnd && !fused; k0 += FB) {
                int kb = Math.min(FB, pEnd - k0);
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
                int w = pEnd - k0 - kb; // the panel's columns right of this step
                if (w > 0) {
                    dgemm(true, true, false, m, w, kb, -1.0, a21, n, a21, n, 1.0,
                            r.at(8L * ((long) (k0 + kb) * n + k0 + kb)), n, "panel update " + k0);
                }
            }
            int m = n - pEnd;
            if (m > 0) {
                CUdeviceptr l21 = r.at(8L * ((long) pEnd * n + p0));
                dgemm(true, true, false, m, m, pEnd - p0, -1.0, l21, n, l21, n, 1.0, r.at(8L * ((long) pEnd * n + pEnd)), n,
                        "trailing update " + p0);
            }
        }
        Driver.check("Cholesky n=" + n, this::syncStream);
        int[] flag = new int[1];
        Driver.check("cuMemcpyDtoH Cholesky info", () -> JCudaDriver.cuMemcpyDtoH(Pointer.to(flag), info.pointer(), 4));
        if (flag[0] == 2) {
            throw new IllegalStateException("chol_panel_f64 (n = " + n + ") on device " + ordinal + ": a thread block"
                    + " waited over 2 s for another's flag (not all blocks resident?); run with -D"
                    + CHOL_PANEL_PROPERTY + "=steps and report this");
        }
        return flag[0] == 0;
    }

    /**
     * Factors the panel of columns {@code p0 .. min(n, p0 + PANEL)} of R (rows p0 .. n-1; the trailing
     * updates of earlier panels applied) in one cooperative launch of chol_panel_f64: L in R's panel
     * columns, L⁻¹ of each FB × FB diagonal block in X, {@code info} ≥ 1 on a failed pivot. One block per
     * FB-row slab, at most {@code fn.cholPanelMaxGrid} (a block then owns several slabs).
     */
    private void cholPanel(int n, int p0, DeviceBuffer r, DeviceBuffer x, CUdeviceptr flags, DeviceBuffer info) {
        int grid = Math.min(Math.min(fn.cholPanelMaxGrid, cholPanelGridLimit), (n - p0 + FB - 1) / FB);
        Pointer params = Pointer.to(p(n), p(p0), p(r.pointer()), p(x.pointer()), p(flags),
                p(info.pointer()));
        timedLaunch("chol_panel_f64 panel " + p0, () -> JCudaDriver.cuLaunchCooperativeKernel(fn.cholPanel, grid, 1, 1,
                CHOL_PANEL_THREADS, 1, 1, POTF2_SMEM, stream, params));
    }

    /**
     * One level of the recursive triangular inverse: {@code count} pairs starting at diagonal index
     * {@code i0} (then every {@code step} elements), first half {@code a} wide, second half {@code c}:
     * {@code T = L21·A⁻¹} then {@code X21 = -C⁻¹·T}. A⁻¹ and C⁻¹ are lower triangular with their
     * zeros stored (X was zeroed, potf2_inv_f64 writes zeros above the diagonal), so the first product
     * skips the zero rows of A⁻¹ ({@code bLower}: about half its flops) and the second the zero columns
     * of C⁻¹ ({@code aLower}).
     */
    private void trtriLevel(int n, int a, int c, int i0, int count, long step, DeviceBuffer r, DeviceBuffer x,
                            DeviceBuffer t) {
        long l21 = (long) (i0 + a) * n + i0;
        long aInv = (long) i0 * n + i0;
        long cInv = (long) (i0 + a) * n + i0 + a;
        long tStride = (long) c * a;
        dgemmBatched(count, step, step, tStride, false, false, false, true, c, a, a, 1.0, r.at(8L * l21), n, x.at(8L * aInv),
                n, 0.0, t.pointer(), a, "trtri B·A^-1 level " + a);
        dgemmBatched(count, step, tStride, step, false, false, true, false, c, a, c, -1.0, x.at(8L * cInv), n, t.pointer(), a,
                0.0, x.at(8L * l21), n, "trtri C^-1·T level " + a);
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
             DeviceBuffer du = alloc(4L * nn, "factor U fp32 " + n + "x" + n)) {
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
     * Device-resident factor of the Cholesky form ({@link #solveOnDeviceCholesky}) for benchmarks and
     * device pipelines: A ({@code n × n} fp64, strict upper triangle read) and {@code diag} already on
     * the device; R and U's band written as fp32 on the device.
     *
     * @param n order
     * @param a device pointer of A, row stride n
     * @param diag device pointer of the n diagonal values
     * @param lambda dampening added to the diagonal
     * @param r32 device pointer receiving R ({@code n × n} fp32, upper, {@code A + λI = R·Rᵀ})
     * @param band device pointer receiving U's band ({@code n × }{@value #U_BAND} fp32)
     * @return false when A + λI is not positive definite
     * @throws CudaCallException when a driver call or kernel fails
     */
    public synchronized boolean hessianFactorDevice(int n, CUdeviceptr a, CUdeviceptr diag, double lambda,
                                                    CUdeviceptr r32, CUdeviceptr band) {
        current();
        try (Factor f = new Factor(n)) {
            return factorDeviceCholesky(n, a, n, diag, lambda, f.r, f.x, f.t, f.info, r32, band);
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

        private final java.util.List<DeviceBuffer> all = new java.util.ArrayList<>();

        Factor(int n) {
            long nn = (long) n * n;
            try {
                a = add(alloc(8L * nn, "factor A " + n + "x" + n));
                diag = add(alloc(8L * n, "factor diag"));
                r = add(alloc(8L * nn, "factor L (reversed)"));
                x = add(alloc(8L * nn, "factor L^-1"));
                t = add(alloc(8L * ((long) n * n / 2 + (long) n * FB), "factor trtri products"));
                info = add(alloc(8, "factor info"));
            } catch (RuntimeException e) {
                close(); // e.g. out of device memory part-way: free what was taken
                throw e;
            }
        }

        private DeviceBuffer add(DeviceBuffer b) {
            all.add(b);
            return b;
        }

        @Override
        public void close() {
            for (int i = all.size() - 1; i >= 0; i--) {
                all.get(i).close();
            }
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>On this backend: the packed sum goes to the device once ({@code n(n+1)/2} fp64, half the bytes
     * of the dense matrix); {@link ResidentFactorizer.Factor#factor} unpacks it into the work matrix of
     * the attempts ({@code unpack_upper_f64}) and keeps, in the {@link #solveForm()} in force,
     * {@link SolveForm#CHOLESKY}: R and U's band (fp32; the solves run {@link #solveOnDeviceCholesky}; U
     * itself is computed only if {@link ResidentFactorizer.Factor#download} asks for it, from the packed
     * sum: its device copy, or the caller's array, which this backend keeps a reference to while the
     * factor is open), or {@link SolveForm#INVERSE}: U (fp32). The dense fp32 H of
     * {@link ResidentFactorizer.Factor#hessianProduct} is built on the device on first use
     * ({@code packed_to_symmetric_f32}), after which the device's packed sum is freed if the factor is
     * held. Device memory while factoring: the packed sum, U or R, and the work buffers of
     * {@link #dampedInverseCholeskyUpper}; after it, U (or R and U's n × {@value #U_BAND} band) and one
     * copy of H.
     *
     * @throws CudaCallException when the device memory cannot be allocated (the message names the label)
     */
    @Override
    public synchronized ResidentFactorizer.Factor openFactor(int n, double[] packed, double scale, String label) {
        long count = (long) n * (n + 1) / 2;
        if (n < 1 || n > 65535) {
            throw new IllegalArgumentException("resident factor of " + label + ": order must be 1..65535, got " + n);
        }
        if (packed.length < count) {
            throw new IllegalArgumentException("resident factor of " + label + ": the packed Hessian needs " + count
                    + " values, got " + packed.length);
        }
        current();
        GroupFactor f = new GroupFactor(n, scale, label);
        try {
            f.packed = alloc(8L * count, "group Hessian of " + label + " (" + n + " features, packed fp64)");
            f.scratch = alloc(8, "group factor of " + label + ": non-finite index");
            f.packed.upload(packed, 0, (int) count, 0);
            f.hostPacked = packed; // (a reference, for U on demand in the Cholesky form; see the contract)
        } catch (RuntimeException | Error e) {
            f.release();
            throw e;
        }
        openFactors.add(f);
        return f;
    }

    /** @return resident group factors opened and not yet closed ({@link #openFactor}); for leak checks */
    public synchronized int openFactorCount() {
        return openFactors.size();
    }

    /** A group's packed Hessian and inverse factor resident on this backend's device ({@link #openFactor}). */
    private final class GroupFactor implements ResidentFactorizer.Factor {
        private final int n;
        private final double scale;
        private final String label;
        private DeviceBuffer packed;  // n(n+1)/2 fp64, Σ xᵀx packed by rows; null once freed
        private DeviceBuffer u32;     // (n, n) row-major fp32 U; null before factor() or in the Cholesky form
        private DeviceBuffer r32;     // SolveForm.CHOLESKY: (n, n) row-major fp32 R (H + λI = R·Rᵀ); else null
        private DeviceBuffer band;    // SolveForm.CHOLESKY: (n, U_BAND) fp32 band of U; else null
        private double[] diagUsed;    // SolveForm.CHOLESKY: the diagonal and λ that worked, for U on demand
        private double lambdaUsed;
        private double[] hostPacked;  // the caller's packed sum (a reference), to upload again for U on demand
        private DeviceBuffer h32;     // (n, n) row-major fp32 H = (float)(scale·S), both triangles; built lazily
        private DeviceBuffer scratch; // 8 bytes: first non-finite index
        private boolean open = true;

        GroupFactor(int n, double scale, String label) {
            this.n = n;
            this.scale = scale;
            this.label = label;
        }

        @Override
        public int size() {
            return n;
        }

        private void live() {
            if (!open) {
                throw new IllegalStateException("resident factor of " + label + " is closed (or its CUDA backend was"
                        + " closed)");
            }
        }

        private void requireFactored() {
            live();
            if (u32 == null && r32 == null) {
                throw new IllegalStateException("resident factor of " + label + " has no U: factor() did not succeed");
            }
        }

        @Override
        public int factor(double[] diag, double[] lambdas) {
            synchronized (CudaBackend.this) {
                live();
                if (diag.length < n) {
                    throw new IllegalArgumentException("resident factor of " + label + ": diagonal needs " + n
                            + " values, got " + diag.length);
                }
                if (u32 != null || r32 != null) {
                    throw new IllegalStateException("resident factor of " + label + " is already factored");
                }
                if (packed == null) {
                    throw new IllegalStateException("resident factor of " + label + ": the packed Hessian was freed");
                }
                current();
                boolean chol = solveForm == SolveForm.CHOLESKY;
                long nn = (long) n * n;
                DeviceBuffer out = alloc(4L * nn, "group factor " + (chol ? "R" : "U") + " of " + label + " (" + n + "x"
                        + n + " fp32)");
                DeviceBuffer b = null;
                boolean keep = false;
                try (Factor f = new Factor(n)) {
                    if (chol) {
                        b = alloc(4L * n * U_BAND, "group factor band of U of " + label + " (" + n + "x" + U_BAND
                                + " fp32)");
                    }
                    unpackUpperDevice(n, packed.pointer(), scale, f.a.pointer(), f.diag.pointer());
                    f.diag.upload(diag, 0, n, 0); // the caller's dead-input rule (H_ii = 0 → 1)
                    for (int k = 0; k < lambdas.length; k++) {
                        boolean ok = chol
                                ? factorDeviceCholesky(n, f.a.pointer(), n, f.diag.pointer(), lambdas[k], f.r, f.x, f.t,
                                        f.info, out.pointer(), b.pointer())
                                : factorDevice(n, f.a.pointer(), n, f.diag.pointer(), lambdas[k], f.r, f.x, f.t, f.info,
                                        nullPtr(), out.pointer());
                        if (ok) {
                            if (chol) { // what download() needs to compute U on demand, then the buffers
                                diagUsed = java.util.Arrays.copyOf(diag, n);
                                lambdaUsed = lambdas[k];
                                r32 = out;
                                band = b;
                            } else {
                                u32 = out;
                            }
                            keep = true;
                            if (h32 != null) {
                                freePacked();
                            }
                            return k;
                        }
                    }
                    return -1;
                } finally {
                    if (!keep) {
                        out.close();
                        if (b != null) {
                            b.close();
                        }
                    }
                }
            }
        }

        @Override
        public boolean factored() {
            synchronized (CudaBackend.this) {
                return open && (u32 != null || r32 != null);
            }
        }

        @Override
        public boolean holdsInverseFactor() {
            synchronized (CudaBackend.this) {
                requireFactored();
                return u32 != null;
            }
        }

        /**
         * {@inheritDoc}
         *
         * <p>In the Cholesky form: of R ({@code i·n + j}) and then of U's band (offset by n²), the
         * values the solves read.
         */
        @Override
        public long firstNonFinite() {
            synchronized (CudaBackend.this) {
                requireFactored();
                if (u32 != null) {
                    return firstNonFiniteDevice(u32.pointer(), (long) n * n, scratch);
                }
                long inR = firstNonFiniteDevice(r32.pointer(), (long) n * n, scratch);
                if (inR >= 0) {
                    return inR;
                }
                long inBand = firstNonFiniteDevice(band.pointer(), (long) n * U_BAND, scratch);
                return inBand < 0 ? -1 : (long) n * n + inBand;
            }
        }

        /**
         * {@inheritDoc}
         *
         * <p>In the Cholesky form U is not held: it is computed here (a whole fp64 factorization and its
         * work memory, about 32n² bytes for the call), from the packed sum — the device copy, or the
         * caller's array uploaded again once the device copy was freed — with the diagonal and λ that
         * worked: the inverse form's U, the same bits.
         */
        @Override
        public void download(float[] u) {
            synchronized (CudaBackend.this) {
                requireFactored();
                long nn = (long) n * n;
                if (u.length < nn) {
                    throw new IllegalArgumentException("resident factor of " + label + ": U needs " + nn
                            + " values, the host array has " + u.length);
                }
                current();
                if (u32 != null) {
                    u32.download(0, u, 0, (int) nn);
                    return;
                }
                DeviceBuffer again = null; // the packed sum, uploaded again when it was freed (H's fp32 copy exists)
                try (Factor f = new Factor(n);
                     DeviceBuffer du = alloc(4L * nn, "U of " + label + " on demand (" + n + "x" + n + " fp32)")) {
                    DeviceBuffer src = packed;
                    if (src == null) {
                        long count = (long) n * (n + 1) / 2;
                        again = alloc(8L * count, "group Hessian of " + label + " again, for U (packed fp64)");
                        again.upload(hostPacked, 0, (int) count, 0);
                        src = again;
                    }
                    unpackUpperDevice(n, src.pointer(), scale, f.a.pointer(), f.diag.pointer());
                    f.diag.upload(diagUsed, 0, n, 0);
                    if (!factorDevice(n, f.a.pointer(), n, f.diag.pointer(), lambdaUsed, f.r, f.x, f.t, f.info, nullPtr(),
                            du.pointer())) {
                        throw new IllegalStateException("resident factor of " + label + ": the Cholesky that succeeded"
                                + " with λ = " + lambdaUsed + " failed when repeated for U");
                    }
                    du.download(0, u, 0, (int) nn);
                } finally {
                    if (again != null) {
                        again.close();
                    }
                }
            }
        }

        @Override
        public void diagonal(float[] d) {
            synchronized (CudaBackend.this) {
                requireFactored();
                if (d.length < n) {
                    throw new IllegalArgumentException("resident factor of " + label + ": diagonal needs " + n
                            + " values, got " + d.length);
                }
                current();
                try (DeviceBuffer dd = alloc(4L * n, "group factor diagonal of " + label)) {
                    // U[i,i] at i·(n+1) of U, or at i·U_BAND of its band: a column window of width 1
                    launch("gather_cols_f32 diagonal of U n=" + n, fGatherCols, blocks(n), 1, 256, 0,
                            Pointer.to(p(n), p(1), p(u32 != null ? u32.pointer() : band.pointer()),
                                    p(u32 != null ? n + 1 : U_BAND), p(dd.pointer())));
                    dd.download(0, d, 0, n);
                }
            }
        }

        @Override
        public void solve(SolveJob job) {
            synchronized (CudaBackend.this) {
                requireFactored();
                job.validate();
                if (job.cols() != n) {
                    throw new IllegalArgumentException("resident factor of " + label + " is " + n + " x " + n
                            + " but the solve has " + job.cols() + " columns");
                }
                requireBlockWidth(job);
                int rows = job.rows();
                if (rows == 0) {
                    return;
                }
                current();
                long rc = (long) rows * n;
                try (DeviceBuffer dw = alloc(4L * rc, "solve W " + rows + "x" + n)) {
                    dw.upload(job.w(), 0, (int) rc, 0);
                    if (u32 != null) {
                        solveOnDevice(job, dw.pointer(), u32.pointer());
                    } else {
                        solveOnDeviceCholesky(job, dw.pointer(), r32.pointer(), band.pointer());
                    }
                    dw.download(0, job.w(), 0, (int) rc);
                }
            }
        }

        @Override
        public void hessianProduct(int rows, float[] a, float[] t) {
            synchronized (CudaBackend.this) {
                live();
                long rn = (long) rows * n;
                if (rows < 0 || a.length < rn || t.length < rn) {
                    throw new IllegalArgumentException("resident factor of " + label + ": A·H needs " + rows + " x " + n
                            + " arrays, got " + a.length + " and " + t.length);
                }
                if (rows == 0) {
                    return;
                }
                current();
                try (DeviceBuffer da = alloc(4L * rn, "A of A·H " + rows + "x" + n);
                     DeviceBuffer dt = alloc(4L * rn, "A·H " + rows + "x" + n)) {
                    product(rows, a, da, dt);
                    dt.download(0, t, 0, (int) rn);
                }
            }
        }

        @Override
        public void rowQuadratics(int rows, float[] a, double[] q) {
            synchronized (CudaBackend.this) {
                live();
                long rn = (long) rows * n;
                if (rows < 0 || a.length < rn || q.length < rows) {
                    throw new IllegalArgumentException("resident factor of " + label + ": row quadratics need a " + rows
                            + " x " + n + " array and " + rows + " sums, got " + a.length + " and " + q.length);
                }
                if (rows == 0) {
                    return;
                }
                current();
                try (DeviceBuffer da = alloc(4L * rn, "A of A·H " + rows + "x" + n);
                     DeviceBuffer dt = alloc(4L * rn, "A·H " + rows + "x" + n);
                     DeviceBuffer dq = alloc(8L * rows, "row quadratics " + rows)) {
                    product(rows, a, da, dt);
                    launch("row_dot_f64 " + rows + "x" + n, fRowDot, rows, 1, 256, 0,
                            Pointer.to(p(rows), p(n), p(da.pointer()), p(dt.pointer()), p(dq.pointer())));
                    dq.download(0, q, 0, rows);
                }
            }
        }

        /** Uploads A into {@code da} and computes {@code dt = A·H} (the fp32 H made on first use). */
        private void product(int rows, float[] a, DeviceBuffer da, DeviceBuffer dt) {
            if (h32 == null) {
                if (packed == null) {
                    throw new IllegalStateException("resident factor of " + label + ": the packed Hessian was freed");
                }
                h32 = alloc(4L * n * n, "group Hessian of " + label + " (" + n + "x" + n + " fp32)");
                launch("packed_to_symmetric_f32 n=" + n, fPackedToSym, blocks((long) n * n), 1, 256, 0,
                        Pointer.to(p(n), p(packed.pointer()), p(scale), p(h32.pointer())));
                if (u32 != null || r32 != null) {
                    freePacked();
                }
            }
            da.upload(a, 0, rows * n, 0);
            // the FP32 linear of CudaWorkspace (x·Wᵀ with W = H): the same kernel, so the same bits
            sgemmDevice(false, true, rows, n, n, 1f, da.pointer(), n, h32.pointer(), n, 0f, dt.pointer(), n,
                    "A·H of " + label + " " + rows + "x" + n + "x" + n);
        }

        private void freePacked() {
            DeviceBuffer b = packed;
            packed = null;
            if (b != null) {
                b.close();
            }
        }

        @Override
        public void close() {
            synchronized (CudaBackend.this) {
                if (!open) {
                    return;
                }
                openFactors.remove(this); // (a closed backend released its factors already: open is false then)
                current();
                release();
            }
        }

        /** Frees every buffer (the context is current); idempotent. */
        void release() {
            open = false;
            DeviceBuffer[] all = {h32, u32, r32, band, scratch, packed};
            h32 = u32 = r32 = band = scratch = packed = null;
            hostPacked = null;
            RuntimeException first = null;
            for (DeviceBuffer b : all) {
                if (b != null) {
                    try {
                        b.close();
                    } catch (RuntimeException e) {
                        if (first == null) {
                            first = e;
                        }
                    }
                }
            }
            if (first != null) {
                throw first;
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


    // ------------------------------------------------------------------ forward ops on the GPU (forward_ops.cuh)
    //
    // Host-array methods check their windows as CpuBackend does, copy the operands (packed to a row
    // stride equal to their width) to the workspace buffers, run the *Device variant and copy the
    // results back. The *Device variants take device pointers with row strides, launch one kernel
    // and synchronize; ids, positions and targets must already be in range there (the kernels skip
    // a row whose id or position is out of range and give a NaN loss for an out-of-range target).

    /** Widest attention head the GPU attention kernel handles; wider heads are delegated to the CPU. */
    public static final int MAX_ATTENTION_HEAD_DIM = 128;
    /** Query rows per attention tile (a block of the attention kernel). */
    public static final int ATTENTION_QUERY_TILE = 64;
    /**
     * Query rows per tile of the TF32 attention kernel {@code attention_tf32} (a block of 8 warps of 16
     * rows each); its tile table is {@code attentionTiles(sequences, seqStarts, ATTENTION_TF32_QUERY_TILE)}.
     */
    public static final int ATTENTION_TF32_QUERY_TILE = 128;
    /** Keys per shared-memory stage of {@code attention_tf32} (its FT_BK). */
    private static final int ATT_TF32_KEY_TILE = 64;
    /** attention_tf32: 2 stages of K and V tiles of 64 × 132 floats (its FT_STAGE), 135,168 bytes. */
    private static final int ATT_TF32_SMEM = 2 * 2 * ATT_TF32_KEY_TILE * (AttentionJob.TF32_MAX_HEAD_DIM + 4) * 4;
    private static final int ATT_KEY_TILE = 32;
    private static final int EW_THREADS = 256;
    private static final int TF32_SMEM = 3 * 2 * (128 * 36) * 4;
    private static final int SYRK_TF32_SMEM = 2 * 2 * (128 * 36) * 4 + 64 * 256 * 8;
    private static final int BF16_SMEM = 3 * 2 * (128 * 40) * 2;
    /** syrk_packed_dmma: 3 stages of two 32 × 136 fp32 operand tiles. */
    private static final int SYRK_DMMA_SMEM = 3 * 2 * (32 * 136) * 4;
    /** Tokens per shared-memory stage of syrk_packed_dmma (token splits are multiples of it). */
    private static final int SYRK_DMMA_BK = 32;
    /** dgemm_dmma: 3 stages of two operand tiles of max(128 × 20, 16 × 132) doubles. */
    private static final int DGEMM_DMMA_SMEM = 3 * 2 * (128 * 20) * 8;
    /**
     * Columns per outer panel of the device Cholesky: the trailing update after each panel is a
     * product with this inner dimension, on the fp64 tensor cores (≥ {@link #DMMA_MIN_K}: dgemm_dmma, or
     * dgemm_dmma_sm90 with {@link #hopperKernels()}).
     */
    private static final int PANEL = 512;
    /**
     * Inner dimension from which the fp64 products use the tensor cores (dgemm_dmma_sm90 on Hopper, else
     * dgemm_dmma; below it dgemm_f64 is faster). For dgemm_dmma_sm90 too: tools/device/dgemm_probe.py's
     * "panel" rows (m × 64 × 64 in place, m × w × 64 lowerC) found it no faster than dgemm_f64 at k = 64
     * (H200, 2026-11-21: 0.019 vs 0.020 ms and 0.066 vs 0.066 ms).
     */
    private static final int DMMA_MIN_K = 256;
    /**
     * dgemm_dmma_sm90 (hopper.cu): DG9_STAGES = 3 stages of two operand tiles of max(128 × 36, 32 × 132)
     * doubles (DG9_BK = 32).
     */
    private static final int DGEMM_DMMA_SM90_SMEM = 3 * 2 * (128 * 36) * 8;

    /** The kernels of forward_ops.cuh and gemm_tc.cuh. */
    private final class Fns {
        /** The device's opt-in shared memory per block, bytes (232,448 on H100/H200, 166,912 on A100). */
        final int optinSmem = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                "opt-in shared memory per block");
        /** The thread-per-row twin of sparsegpt_block (same bits; faster from {@link #BLOCK_ROWS_MIN} rows). */
        final CUfunction blockRows = function("sparsegpt_block_rows");
        /** Its most threads per block on this device (its shared memory grows with them); 0 = not used. */
        final int blockRowsMaxThreads = blockRowsThreadLimit(optinSmem);
        /** The lane kernels of sparsegpt_lanes.cuh (same bits as sparsegpt_block). */
        final java.util.EnumMap<BlockKernel, CUfunction> lanes = new java.util.EnumMap<>(BlockKernel.class);
        /** Whether syrk_packed_tf32's shared memory fits this device (not on A100: 200 KiB > 163 KiB). */
        final boolean syrkTf32Fits = SYRK_TF32_SMEM <= optinSmem;
        final CUfunction rms = function("rmsnorm_f32");
        final CUfunction ln = function("layernorm_f32");
        final CUfunction rope = function("rope_f32");
        final CUfunction att = function("attention_f32");
        /** The TF32 tensor-core attention (attention_tc.cuh). */
        final CUfunction attTf32 = function("attention_tf32");
        /** Whether attention_tf32's shared memory fits this device (135,168 bytes: every sm_80+ data-center GPU). */
        final boolean attTf32Fits = ATT_TF32_SMEM <= optinSmem;
        final CUfunction silu = function("silu_mul_f32");
        final CUfunction gelu = function("gelu_f32");
        final CUfunction emb = function("embedding_f32");
        final CUfunction addRow = function("add_row_vector_f32");
        final CUfunction add = function("add_f32");
        final CUfunction logSm = function("log_softmax_f32");
        final CUfunction ce = function("cross_entropy_f32");
        final CUfunction[] tf32 = {function("sgemm_tf32_nn"), function("sgemm_tf32_nt"), function("sgemm_tf32_tn"),
            function("sgemm_tf32_tt")};
        final CUfunction[] bf16 = {function("gemm_bf16_nn"), function("gemm_bf16_nt"), function("gemm_bf16_tn"),
            function("gemm_bf16_tt")};
        final CUfunction syrkTf32 = function("syrk_packed_tf32");
        final CUfunction dgemmDmma = function("dgemm_dmma");
        final CUfunction nonFinite = function("first_nonfinite_f32");
        /** Device widening of 16-bit weights ({@link #acquireWeight(HostTensor, String)}). */
        final CUfunction bf16ToF32 = function("bf16_to_f32");
        final CUfunction f16ToF32 = function("f16_to_f32");
        /** The fused Cholesky panel ({@link PanelSteps#FUSED}). */
        final CUfunction cholPanel = function("chol_panel_f64");
        /** Whether the device supports cuLaunchCooperativeKernel (chol_panel_f64 needs it). */
        final boolean cooperative = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH,
                "cooperative launch") != 0;
        /** chol_panel_f64's largest grid: resident blocks per SM times the SM count (0 without cooperative launch). */
        final int cholPanelMaxGrid;
        /** The one-launch unstructured selection with its keys in registers ({@link UnstructuredSelect#FUSED}). */
        final CUfunction unstrSelectR16 = function("unstr_select_r16");
        /** The one-launch unstructured selection with its keys in global memory (any number of keys per block). */
        final CUfunction unstrSelectG = function("unstr_select_g");
        /** unstr_select_r16's largest co-resident grid (0 without cooperative launch). */
        final int unstrSelectR16MaxGrid;
        /** unstr_select_g's largest co-resident grid (0 without cooperative launch). */
        final int unstrSelectGMaxGrid;

        Fns() {
            for (BlockKernel k : BlockKernel.values()) {
                if (k.isLanes()) {
                    CUfunction f = function(k.kernel);
                    // at most 128 rows per block (L4, 512 threads): 116,480 bytes, within every sm_80+ device
                    maxSmem(k.kernel, f, laneSmem(k.rowsPerLanes * LANES_MAX_THREADS / k.lanes));
                    lanes.put(k, f);
                }
            }
            if (blockRowsMaxThreads >= 32) {
                maxSmem("sparsegpt_block_rows", blockRows, blockRowsSmem(blockRowsMaxThreads));
            }
            maxSmem("attention_f32", att, attentionSmem(MAX_ATTENTION_HEAD_DIM));
            if (attTf32Fits) {
                maxSmem("attention_tf32", attTf32, ATT_TF32_SMEM);
            }
            for (CUfunction f : tf32) {
                maxSmem("sgemm_tf32", f, TF32_SMEM);
            }
            for (CUfunction f : bf16) {
                maxSmem("gemm_bf16", f, BF16_SMEM);
            }
            if (syrkTf32Fits) {
                maxSmem("syrk_packed_tf32", syrkTf32, SYRK_TF32_SMEM);
            }
            maxSmem("syrk_packed_dmma", fSyrk, SYRK_DMMA_SMEM);
            maxSmem("dgemm_dmma", dgemmDmma, DGEMM_DMMA_SMEM);
            maxSmem("chol_panel_f64", cholPanel, POTF2_SMEM);
            int[] perSm = new int[1];
            if (cooperative) {
                Driver.check("cuOccupancyMaxActiveBlocksPerMultiprocessor chol_panel_f64", () -> JCudaDriver
                        .cuOccupancyMaxActiveBlocksPerMultiprocessor(perSm, cholPanel, CHOL_PANEL_THREADS, POTF2_SMEM));
            }
            int sms = Math.max(1, attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                    "multiprocessor count"));
            cholPanelMaxGrid = perSm[0] * sms;
            unstrSelectR16MaxGrid = cooperative ? occupancy("unstr_select_r16", unstrSelectR16, SELECT_THREADS, 0) * sms : 0;
            unstrSelectGMaxGrid = cooperative ? occupancy("unstr_select_g", unstrSelectG, SELECT_THREADS, 0) * sms : 0;
        }
    }

    /** Thread blocks of {@code f} that fit on one multiprocessor at once ({@code threads} each, {@code smem} dynamic bytes). */
    private static int occupancy(String name, CUfunction f, int threads, int smem) {
        int[] perSm = new int[1];
        Driver.check("cuOccupancyMaxActiveBlocksPerMultiprocessor " + name, () -> JCudaDriver
                .cuOccupancyMaxActiveBlocksPerMultiprocessor(perSm, f, threads, smem));
        return perSm[0];
    }

    private static void maxSmem(String name, CUfunction f, int bytes) {
        Driver.check("cuFuncSetAttribute " + name + " max dynamic shared memory " + bytes,
                () -> JCudaDriver.cuFuncSetAttribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        bytes));
    }

    private static int attentionSmem(int headDim) {
        int dp = headDim + 1;
        return (ATTENTION_QUERY_TILE * dp + 2 * ATT_KEY_TILE * dp + ATTENTION_QUERY_TILE * (ATT_KEY_TILE + 1)) * 4;
    }

    private int smCount() {
        if (smCount == 0) {
            int[] v = new int[1];
            Driver.check("cuDeviceGetAttribute multiprocessor count", () -> JCudaDriver.cuDeviceGetAttribute(v,
                    jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device));
            smCount = Math.max(1, v[0]);
        }
        return smCount;
    }

    static void uploadInts(DeviceBuffer b, int[] src, int off, int count, String what) {
        if (count > 0) {
            Driver.check("cuMemcpyHtoD " + what + " (" + count + " ints)", () -> JCudaDriver.cuMemcpyHtoD(b.pointer(),
                    Pointer.to(src).withByteOffset(4L * off), 4L * count));
        }
    }

    private static void uploadShorts(DeviceBuffer b, short[] src, int count, String what) {
        if (count > 0) {
            Driver.check("cuMemcpyHtoD " + what + " (" + count + " bf16)", () -> JCudaDriver.cuMemcpyHtoD(b.pointer(),
                    Pointer.to(src), 2L * count));
        }
    }

    private static short[] pack(short[] a, int off, int ld, int rows, int cols) {
        if (off == 0 && ld == cols && a.length == rows * cols) {
            return a;
        }
        short[] out = new short[rows * cols];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(a, off + r * ld, out, r * cols, cols);
        }
        return out;
    }

    /** Launches an elementwise kernel over {@code total} elements (grid-stride, 64-bit index). */
    private void launchElementwise(String what, CUfunction f, long total, Pointer params) {
        int blocks = (int) Math.max(1, Math.min((total + EW_THREADS - 1) / EW_THREADS, 1L << 20));
        launch(what, f, blocks, 1, EW_THREADS, 0, params);
    }

    /** Copies the result window back: downloads {@code rows × cols} floats into {@code y} at (yOff, ldy). */
    private static void downloadWindow(DeviceBuffer d, float[] y, int yOff, int ldy, int rows, int cols) {
        d.downloadWindow(y, yOff, ldy, rows, cols);
    }

    /** Workspace {@code slot} holding the window as a dense {@code rows × cols} fp32 matrix (row stride cols). */
    private DeviceBuffer upWindow(int slot, float[] a, int off, int ld, int rows, int cols, String what) {
        DeviceBuffer d = ws(slot, 4L * rows * cols, what);
        d.uploadWindow(a, off, ld, rows, cols);
        return d;
    }

    private DeviceBuffer upVector(int slot, float[] v, int off, int len, String what) {
        DeviceBuffer d = ws(slot, 4L * len, what);
        d.upload(v, off, len, 0);
        return d;
    }

    @Override
    public synchronized void rmsNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] w, int wOff,
                                     float[] y, int yOff, int ldy) {
        Checks.window("rmsNorm x", x.length, xOff, ldx, rows, cols);
        Checks.window("rmsNorm w", w.length, wOff, cols, 1, cols);
        Checks.window("rmsNorm y", y.length, yOff, ldy, rows, cols);
        if (rows == 0 || cols == 0) {
            return;
        }
        current();
        DeviceBuffer dx = upWindow(0, x, xOff, ldx, rows, cols, "rmsNorm x");
        DeviceBuffer dw = upVector(1, w, wOff, cols, "rmsNorm w");
        rmsNormDevice(rows, cols, eps, dx.pointer(), cols, dw.pointer(), dx.pointer(), cols);
        downloadWindow(dx, y, yOff, ldy, rows, cols);
    }

    /** {@link #rmsNorm} on device pointers (y may be x). */
    void rmsNormDevice(int rows, int cols, float eps, CUdeviceptr x, int ldx, CUdeviceptr w, CUdeviceptr y, int ldy) {
        launch("rmsnorm_f32 " + rows + "x" + cols, fn.rms, rows, 1, EW_THREADS, 0,
                Pointer.to(p(rows), p(cols), p(eps), p(x), p(ldx), p(w), p(y), p(ldy)));
    }

    @Override
    public synchronized void layerNorm(int rows, int cols, float eps, float[] x, int xOff, int ldx, float[] gamma,
                                       int gOff, float[] beta, int bOff, float[] y, int yOff, int ldy) {
        Checks.window("layerNorm x", x.length, xOff, ldx, rows, cols);
        Checks.window("layerNorm gamma", gamma.length, gOff, cols, 1, cols);
        Checks.window("layerNorm beta", beta.length, bOff, cols, 1, cols);
        Checks.window("layerNorm y", y.length, yOff, ldy, rows, cols);
        if (rows == 0 || cols == 0) {
            return;
        }
        current();
        DeviceBuffer dx = upWindow(0, x, xOff, ldx, rows, cols, "layerNorm x");
        DeviceBuffer dg = upVector(1, gamma, gOff, cols, "layerNorm gamma");
        DeviceBuffer db = upVector(2, beta, bOff, cols, "layerNorm beta");
        layerNormDevice(rows, cols, eps, dx.pointer(), cols, dg.pointer(), db.pointer(), dx.pointer(), cols);
        downloadWindow(dx, y, yOff, ldy, rows, cols);
    }

    /** {@link #layerNorm} on device pointers (y may be x). */
    void layerNormDevice(int rows, int cols, float eps, CUdeviceptr x, int ldx, CUdeviceptr gamma, CUdeviceptr beta,
                         CUdeviceptr y, int ldy) {
        launch("layernorm_f32 " + rows + "x" + cols, fn.ln, rows, 1, EW_THREADS, 0,
                Pointer.to(p(rows), p(cols), p(eps), p(x), p(ldx), p(gamma), p(beta), p(y), p(ldy)));
    }

    @Override
    public synchronized void rope(int rows, int heads, int headDim, float[] x, int xOff, int ldx, int[] positions,
                                  int posOff, float[] cos, float[] sin, int tableRows) {
        if (headDim % 2 != 0 || headDim < 2 || heads < 1) {
            throw new IllegalArgumentException("rope needs heads >= 1 and an even headDim >= 2, got " + heads + ", "
                    + headDim);
        }
        int half = headDim / 2;
        int cols = heads * headDim;
        Checks.window("rope x", x.length, xOff, ldx, rows, cols);
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
        if (rows == 0) {
            return;
        }
        current();
        DeviceBuffer dx = upWindow(0, x, xOff, ldx, rows, cols, "rope x");
        DeviceBuffer dp = ws(1, 4L * rows, "rope positions");
        uploadInts(dp, positions, posOff, rows, "rope positions");
        DeviceBuffer dc = upVector(2, cos, 0, tableRows * half, "rope cos");
        DeviceBuffer ds = upVector(3, sin, 0, tableRows * half, "rope sin");
        ropeDevice(rows, heads, headDim, dx.pointer(), cols, dp.pointer(), dc.pointer(), ds.pointer(), tableRows);
        downloadWindow(dx, x, xOff, ldx, rows, cols);
    }

    /** {@link #rope} on device pointers; positions (device ints) must be in {@code [0, tableRows)}. */
    void ropeDevice(int rows, int heads, int headDim, CUdeviceptr x, int ldx, CUdeviceptr positions, CUdeviceptr cos,
                    CUdeviceptr sin, int tableRows) {
        launch("rope_f32 " + rows + "x" + heads + "x" + headDim, fn.rope, rows, 1, EW_THREADS, 0,
                Pointer.to(p(rows), p(heads), p(headDim), p(x), p(ldx), p(positions), p(cos), p(sin), p(tableRows)));
    }

    /**
     * The attention kernel's work list: for every sequence and every {@value #ATTENTION_QUERY_TILE}-row
     * query tile of it, the pair (sequence, first query row within the sequence).
     *
     * @param sequences number of sequences
     * @param seqStarts {@code sequences + 1} row offsets
     * @return {@code 2 × tiles} ints
     */
    static int[] attentionTiles(int sequences, int[] seqStarts) {
        return attentionTiles(sequences, seqStarts, ATTENTION_QUERY_TILE);
    }

    /**
     * The work list of an attention kernel with {@code tileRows} query rows per tile: for every
     * sequence and every tile of it, the pair (sequence, first query row within the sequence), in
     * order ({@link #ATTENTION_QUERY_TILE} for {@code attention_f32}, {@link #ATTENTION_TF32_QUERY_TILE}
     * for {@code attention_tf32}).
     *
     * @param sequences number of sequences
     * @param seqStarts {@code sequences + 1} row offsets
     * @param tileRows query rows per tile, ≥ 1
     * @return {@code 2 × tiles} ints
     */
    static int[] attentionTiles(int sequences, int[] seqStarts, int tileRows) {
        int tiles = 0;
        for (int s = 0; s < sequences; s++) {
            tiles += (seqStarts[s + 1] - seqStarts[s] + tileRows - 1) / tileRows;
        }
        int[] t = new int[2 * tiles];
        int i = 0;
        for (int s = 0; s < sequences; s++) {
            int n = seqStarts[s + 1] - seqStarts[s];
            for (int i0 = 0; i0 < n; i0 += tileRows) {
                t[i++] = s;
                t[i++] = i0;
            }
        }
        return t;
    }

    /**
     * {@inheritDoc}
     *
     * <p>On the GPU: the tiled kernel {@code attention_f32} (FlashAttention, Dao et al. 2022, arXiv
     * 2205.14135, Algorithm 1, in fp32 with an fp64 softmax denominator) for head widths up to
     * {@value #MAX_ATTENTION_HEAD_DIM}; wider heads are delegated to the CPU backend. A
     * {@link AttentionJob#tf32()} job runs the tensor-core kernel {@code attention_tf32}
     * ({@link #attentionTf32Device}) when {@link #tf32AttentionRuns} holds for its head width, else it
     * is delegated to the CPU backend (which computes the TF32 function for any width).
     */
    @Override
    public synchronized void attention(AttentionJob job) {
        job.validate();
        int rows = job.rows();
        boolean tf32 = job.tf32();
        if (job.headDim() > MAX_ATTENTION_HEAD_DIM || (tf32 && !tf32AttentionRuns(job.headDim()))) {
            cpu.attention(job);
            return;
        }
        int[] tiles = attentionTiles(job.sequences(), job.seqStarts(),
                tf32 ? ATTENTION_TF32_QUERY_TILE : ATTENTION_QUERY_TILE);
        if (rows == 0 || tiles.length == 0) {
            return;
        }
        current();
        int hd = job.headDim();
        int qc = job.heads() * hd;
        int kc = job.kvHeads() * hd;
        DeviceBuffer dq = upWindow(0, job.q().data(), job.q().offset(), job.q().ld(), rows, qc, "attention q");
        DeviceBuffer dk = upWindow(1, job.k().data(), job.k().offset(), job.k().ld(), rows, kc, "attention k");
        DeviceBuffer dv = upWindow(2, job.v().data(), job.v().offset(), job.v().ld(), rows, kc, "attention v");
        DeviceBuffer dout = ws(3, 4L * rows * qc, "attention out");
        DeviceBuffer dmeta = ws(4, 4L * (tiles.length + 2L * job.sequences() + 1), "attention tiles");
        int seqs = job.sequences();
        uploadInts(dmeta, tiles, 0, tiles.length, "attention tiles");
        Driver.check("cuMemcpyHtoD attention seqStarts", () -> JCudaDriver.cuMemcpyHtoD(dmeta.at(4L * tiles.length),
                Pointer.to(job.seqStarts()), 4L * (seqs + 1)));
        CUdeviceptr keyLengths = new CUdeviceptr();
        if (job.keyLengths() != null && seqs > 0) {
            keyLengths = dmeta.at(4L * (tiles.length + seqs + 1));
            CUdeviceptr kl = keyLengths;
            Driver.check("cuMemcpyHtoD attention keyLengths", () -> JCudaDriver.cuMemcpyHtoD(kl,
                    Pointer.to(job.keyLengths()), 4L * seqs));
        }
        if (tf32) {
            attentionTf32Device(job.heads(), job.kvHeads(), hd, job.scale(), job.causal(), job.window(),
                    tiles.length / 2, dmeta.at(4L * tiles.length), keyLengths, dmeta.pointer(), dq.pointer(), qc,
                    dk.pointer(), kc, dv.pointer(), kc, dout.pointer(), qc);
        } else {
            attentionDevice(job.heads(), job.kvHeads(), hd, job.scale(), job.causal(), job.window(), tiles.length / 2,
                    dmeta.at(4L * tiles.length), keyLengths, dmeta.pointer(), dq.pointer(), qc, dk.pointer(), kc,
                    dv.pointer(), kc, dout.pointer(), qc);
        }
        float[] o = new float[rows * qc];
        dout.download(0, o, 0, rows * qc);
        float[] out = job.out().data();
        for (int s = 0; s < seqs; s++) {
            for (int r = job.seqStarts()[s]; r < job.seqStarts()[s + 1]; r++) {
                System.arraycopy(o, r * qc, out, job.out().index(r, 0), qc);
            }
        }
    }

    /**
     * {@link #attention} on device pointers (head width ≤ {@value #MAX_ATTENTION_HEAD_DIM}).
     *
     * @param tiles number of query tiles in {@code tileTable} (see {@link #attentionTiles})
     * @param seqStarts device ints, {@code sequences + 1} row offsets
     * @param keyLengths device ints per sequence, or a null pointer (every row a real token)
     * @param tileTable device copy of {@link #attentionTiles}
     */
    void attentionDevice(int heads, int kvHeads, int headDim, float scale, boolean causal, int window, int tiles,
                         CUdeviceptr seqStarts, CUdeviceptr keyLengths, CUdeviceptr tileTable, CUdeviceptr q, int ldq,
                         CUdeviceptr k, int ldk, CUdeviceptr v, int ldv, CUdeviceptr out, int ldo) {
        if (headDim > MAX_ATTENTION_HEAD_DIM) {
            throw new IllegalArgumentException("attention on the GPU needs headDim <= " + MAX_ATTENTION_HEAD_DIM
                    + ", got " + headDim);
        }
        Pointer params = Pointer.to(p(heads), p(kvHeads), p(headDim), p(scale), p(causal ? 1 : 0), p(window),
                p(seqStarts), p(keyLengths), p(tileTable), p(q), p(ldq), p(k), p(ldk), p(v), p(ldv), p(out), p(ldo));
        launch("attention_f32 tiles=" + tiles + " heads=" + heads + " headDim=" + headDim, fn.att, tiles, heads, 256,
                attentionSmem(headDim), params);
    }

    /**
     * Whether {@link #attentionTf32Device} runs a head width on this device: {@link AttentionJob#supportsTf32}
     * and the kernel's 135,168 bytes of shared memory fit the device's opt-in limit (every sm_80+
     * data-center GPU; not some consumer parts).
     *
     * @param headDim width of one head
     * @return true when the TF32 attention kernel can run it here
     */
    public boolean tf32AttentionRuns(int headDim) {
        return AttentionJob.supportsTf32(headDim) && fn.attTf32Fits;
    }

    /**
     * The TF32 attention ({@link AttentionJob#tf32()}) on device pointers: the tensor-core kernel
     * {@code attention_tf32} ({@code kernels/src/main/cuda/attention_tc.cuh}; FlashAttention-2, Dao 2023,
     * arXiv 2307.08691, Algorithm 1, with {@code mma.sync.m16n8k8} TF32 products for Q·Kᵀ and P·V, operands
     * rounded by {@code cvt.rna.tf32.f32}, online softmax in fp32 with an fp64 denominator). One block
     * of 256 threads per ({@value #ATTENTION_TF32_QUERY_TILE}-row query tile, query head); keys in tiles
     * of 64 through two cp.async shared-memory stages. Masks, layout and arguments as
     * {@link #attentionDevice}, except that the tile table has {@value #ATTENTION_TF32_QUERY_TILE}-row
     * tiles.
     *
     * @param heads query heads
     * @param kvHeads key/value heads (divides heads)
     * @param headDim head width, {@link #tf32AttentionRuns} must hold
     * @param scale factor of the dot products (applied to q before its rounding)
     * @param causal mask keys after the query
     * @param window sliding window in tokens, 0 for none
     * @param tiles number of query tiles in {@code tileTable}
     * @param seqStarts device ints, {@code sequences + 1} row offsets
     * @param keyLengths device ints per sequence, or a null pointer (every row a real token)
     * @param tileTable device copy of {@code attentionTiles(sequences, seqStarts, ATTENTION_TF32_QUERY_TILE)}
     * @param q queries, row stride {@code ldq} floats
     * @param ldq q's row stride
     * @param k keys, row stride {@code ldk}
     * @param ldk k's row stride
     * @param v values, row stride {@code ldv}
     * @param ldv v's row stride
     * @param out output, row stride {@code ldo}; rows outside the sequences are not written
     * @param ldo out's row stride
     * @throws IllegalArgumentException when the head width is not a multiple of 8 up to
     *     {@value AttentionJob#TF32_MAX_HEAD_DIM}, or the kernel's shared memory does not fit the device
     */
    void attentionTf32Device(int heads, int kvHeads, int headDim, float scale, boolean causal, int window, int tiles,
                             CUdeviceptr seqStarts, CUdeviceptr keyLengths, CUdeviceptr tileTable, CUdeviceptr q,
                             int ldq, CUdeviceptr k, int ldk, CUdeviceptr v, int ldv, CUdeviceptr out, int ldo) {
        if (!tf32AttentionRuns(headDim)) {
            throw new IllegalArgumentException("TF32 attention on the GPU needs headDim a multiple of 8 up to "
                    + AttentionJob.TF32_MAX_HEAD_DIM + " and " + ATT_TF32_SMEM + " bytes of shared memory per block ("
                    + fn.optinSmem + " on this device), got headDim " + headDim);
        }
        Pointer params = Pointer.to(p(heads), p(kvHeads), p(headDim), p(scale), p(causal ? 1 : 0), p(window),
                p(seqStarts), p(keyLengths), p(tileTable), p(q), p(ldq), p(k), p(ldk), p(v), p(ldv), p(out), p(ldo));
        launch("attention_tf32 tiles=" + tiles + " heads=" + heads + " headDim=" + headDim, fn.attTf32, tiles, heads,
                256, ATT_TF32_SMEM, params);
    }

    @Override
    public synchronized void siluMul(int rows, int cols, float[] g, int gOff, int ldg, float[] u, int uOff, int ldu,
                                     float[] y, int yOff, int ldy) {
        Checks.window("siluMul g", g.length, gOff, ldg, rows, cols);
        Checks.window("siluMul u", u.length, uOff, ldu, rows, cols);
        Checks.window("siluMul y", y.length, yOff, ldy, rows, cols);
        if (rows == 0 || cols == 0) {
            return;
        }
        current();
        DeviceBuffer dg = upWindow(0, g, gOff, ldg, rows, cols, "siluMul g");
        DeviceBuffer du = upWindow(1, u, uOff, ldu, rows, cols, "siluMul u");
        siluMulDevice(rows, cols, dg.pointer(), cols, du.pointer(), cols, dg.pointer(), cols);
        downloadWindow(dg, y, yOff, ldy, rows, cols);
    }

    /** {@link #siluMul} on device pointers (y may be g or u). */
    void siluMulDevice(int rows, int cols, CUdeviceptr g, int ldg, CUdeviceptr u, int ldu, CUdeviceptr y, int ldy) {
        launchElementwise("silu_mul_f32 " + rows + "x" + cols, fn.silu, (long) rows * cols,
                Pointer.to(p(rows), p(cols), p(g), p(ldg), p(u), p(ldu), p(y), p(ldy)));
    }

    @Override
    public synchronized void gelu(int rows, int cols, float[] x, int xOff, int ldx) {
        Checks.window("gelu x", x.length, xOff, ldx, rows, cols);
        if (rows == 0 || cols == 0) {
            return;
        }
        current();
        DeviceBuffer dx = upWindow(0, x, xOff, ldx, rows, cols, "gelu x");
        geluDevice(rows, cols, dx.pointer(), cols);
        downloadWindow(dx, x, xOff, ldx, rows, cols);
    }

    /** {@link #gelu} on device pointers (fp64 {@code erfc}, rounded to fp32). */
    void geluDevice(int rows, int cols, CUdeviceptr x, int ldx) {
        launchElementwise("gelu_f32 " + rows + "x" + cols, fn.gelu, (long) rows * cols,
                Pointer.to(p(rows), p(cols), p(x), p(ldx)));
    }

    @Override
    public synchronized void embedding(int rows, int cols, int[] ids, int idOff, float[] table, int tOff, int tableRows,
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
        if (rows == 0 || cols == 0) {
            return;
        }
        current();
        DeviceBuffer dids = ws(0, 4L * rows, "embedding ids");
        uploadInts(dids, ids, idOff, rows, "embedding ids");
        DeviceBuffer dy = accumulate ? upWindow(2, y, yOff, ldy, rows, cols, "embedding y")
                : ws(2, 4L * rows * cols, "embedding y");
        if (4L * table.length >= CACHED_TABLE_BYTES && 4L * table.length <= weightCache().limitBytes() / 2) {
            // a model's table (a 32000 × 4096 one is 524 MB, against 134 MB of result for 8192 tokens): its
            // device copy stays in the weight cache between calls, keyed by the array
            DeviceArrayCache.Entry<DeviceBuffer> e = acquireWeight(table, "embedding table " + tableRows + "x" + cols);
            try {
                embeddingDevice(rows, cols, dids.pointer(), e.buffer().pointer().withByteOffset(4L * tOff), tableRows,
                        dy.pointer(), cols, accumulate);
            } finally {
                unpinWeight(e);
            }
        } else {
            DeviceBuffer dt = upVector(1, table, tOff, tableRows * cols, "embedding table");
            embeddingDevice(rows, cols, dids.pointer(), dt.pointer(), tableRows, dy.pointer(), cols, accumulate);
        }
        downloadWindow(dy, y, yOff, ldy, rows, cols);
    }

    /**
     * Smallest embedding table (bytes of its whole array) whose device copy {@link #embedding} keeps in the
     * weight cache between calls ({@link #acquireWeight}); smaller ones, and ones over half the cache's limit
     * (which would evict the model's weights), are uploaded for each call.
     */
    public static final long CACHED_TABLE_BYTES = 16L << 20;

    /** {@link #embedding} on device pointers; ids (device ints) must be in {@code [0, tableRows)}. */
    void embeddingDevice(int rows, int cols, CUdeviceptr ids, CUdeviceptr table, int tableRows, CUdeviceptr y, int ldy,
                         boolean accumulate) {
        launchElementwise("embedding_f32 " + rows + "x" + cols, fn.emb, (long) rows * cols,
                Pointer.to(p(rows), p(cols), p(ids), p(table), p(tableRows), p(y), p(ldy), p(accumulate ? 1 : 0)));
    }

    @Override
    public synchronized void addRowVector(int rows, int cols, float[] v, int vOff, float[] y, int yOff, int ldy) {
        Checks.window("addRowVector v", v.length, vOff, cols, 1, cols);
        Checks.window("addRowVector y", y.length, yOff, ldy, rows, cols);
        if (rows == 0 || cols == 0) {
            return;
        }
        current();
        DeviceBuffer dv = upVector(0, v, vOff, cols, "addRowVector v");
        DeviceBuffer dy = upWindow(1, y, yOff, ldy, rows, cols, "addRowVector y");
        addRowVectorDevice(rows, cols, dv.pointer(), dy.pointer(), cols);
        downloadWindow(dy, y, yOff, ldy, rows, cols);
    }

    /** {@link #addRowVector} on device pointers. */
    void addRowVectorDevice(int rows, int cols, CUdeviceptr v, CUdeviceptr y, int ldy) {
        launchElementwise("add_row_vector_f32 " + rows + "x" + cols, fn.addRow, (long) rows * cols,
                Pointer.to(p(rows), p(cols), p(v), p(y), p(ldy)));
    }

    @Override
    public synchronized void add(int rows, int cols, float[] x, int xOff, int ldx, float[] y, int yOff, int ldy) {
        Checks.window("add x", x.length, xOff, ldx, rows, cols);
        Checks.window("add y", y.length, yOff, ldy, rows, cols);
        if (rows == 0 || cols == 0) {
            return;
        }
        current();
        DeviceBuffer dx = upWindow(0, x, xOff, ldx, rows, cols, "add x");
        DeviceBuffer dy = upWindow(1, y, yOff, ldy, rows, cols, "add y");
        addDevice(rows, cols, dx.pointer(), cols, dy.pointer(), cols);
        downloadWindow(dy, y, yOff, ldy, rows, cols);
    }

    /** {@link #add} on device pointers. */
    void addDevice(int rows, int cols, CUdeviceptr x, int ldx, CUdeviceptr y, int ldy) {
        launchElementwise("add_f32 " + rows + "x" + cols, fn.add, (long) rows * cols,
                Pointer.to(p(rows), p(cols), p(x), p(ldx), p(y), p(ldy)));
    }

    @Override
    public synchronized void logSoftmax(int rows, int cols, float[] x, int xOff, int ldx) {
        Checks.window("logSoftmax x", x.length, xOff, ldx, rows, cols);
        if (rows == 0 || cols == 0) {
            return;
        }
        current();
        DeviceBuffer dx = upWindow(0, x, xOff, ldx, rows, cols, "logSoftmax x");
        logSoftmaxDevice(rows, cols, dx.pointer(), cols);
        downloadWindow(dx, x, xOff, ldx, rows, cols);
    }

    /** {@link #logSoftmax} on device pointers. */
    void logSoftmaxDevice(int rows, int cols, CUdeviceptr x, int ldx) {
        launch("log_softmax_f32 " + rows + "x" + cols, fn.logSm, rows, 1, EW_THREADS, 0,
                Pointer.to(p(rows), p(cols), p(x), p(ldx)));
    }

    @Override
    public synchronized void crossEntropy(int rows, int cols, float[] logits, int xOff, int ldx, int[] targets,
                                          int tOff, double[] nll, int nllOff) {
        Checks.window("crossEntropy logits", logits.length, xOff, ldx, rows, cols);
        Checks.window("crossEntropy targets", targets.length, tOff, 1, rows, 1);
        if (rows > 0 && (nllOff < 0 || (long) nllOff + rows > nll.length)) {
            throw new IllegalArgumentException("crossEntropy: nll needs " + rows + " entries at " + nllOff
                    + ", has " + nll.length);
        }
        for (int r = 0; r < rows; r++) {
            int t = targets[tOff + r];
            if (t < 0 || t >= cols) {
                throw new IllegalArgumentException("crossEntropy: target " + t + " of row " + r + " outside [0, " + cols
                        + ")");
            }
        }
        if (rows == 0) {
            return;
        }
        current();
        DeviceBuffer dx = upWindow(0, logits, xOff, ldx, rows, cols, "crossEntropy logits");
        DeviceBuffer dt = ws(1, 4L * rows, "crossEntropy targets");
        uploadInts(dt, targets, tOff, rows, "crossEntropy targets");
        DeviceBuffer dn = ws(2, 8L * rows, "crossEntropy nll");
        crossEntropyDevice(rows, cols, dx.pointer(), cols, dt.pointer(), dn.pointer());
        dn.download(0, nll, nllOff, rows);
    }

    /** {@link #crossEntropy} on device pointers: {@code rows} fp64 losses to {@code nll}. */
    void crossEntropyDevice(int rows, int cols, CUdeviceptr logits, int ldx, CUdeviceptr targets, CUdeviceptr nll) {
        launch("cross_entropy_f32 " + rows + "x" + cols, fn.ce, rows, 1, EW_THREADS, 0,
                Pointer.to(p(rows), p(cols), p(logits), p(ldx), p(targets), p(nll)));
    }

    // ------------------------------------------------------------------ resident forward (CudaWorkspace)

    /**
     * {@inheritDoc}
     *
     * <p>On this backend: a {@code CudaWorkspace}, every matrix in device memory and every op one launch
     * of the kernel its host-array op runs. Weights are uploaded once per array into a cache shared by
     * the workspaces (a quarter of the device's memory, least recently used weights evicted; weights of
     * open workspaces stay). Block outputs of {@link ForwardWorkspace.Handoff#PIPELINE} workspaces are
     * kept in the activation cache ({@link #activationCacheBytes(long)}). Closing the backend closes its
     * open workspaces.
     *
     * @throws IllegalStateException when the backend is closed
     */
    @Override
    public synchronized ForwardWorkspace openWorkspace(ForwardPrecision precision, String label,
                                                      ForwardWorkspace.Handoff handoff) {
        current();
        CudaWorkspace w = new CudaWorkspace(this, precision, label, handoff);
        openWorkspaces.add(w);
        return w;
    }

    /**
     * {@inheritDoc}
     *
     * <p>On this backend {@link #ACTIVATION_CACHE_AUTO} (the default) is a quarter of the device's free
     * memory ({@code cuMemGetInfo}) when the first output is kept after the setting. The cache also
     * yields to every other allocation of the backend: when one fails, the cache's entries are freed and
     * the allocation is retried ({@link ActivationCache}).
     */
    @Override
    public void activationCacheBytes(long bytes) {
        if (bytes == activationBudget) {
            return; // the common case (every task sets it): no wait for the backend's lock
        }
        ActivationCache.checkBudget(bytes);
        synchronized (this) {
            if (!closed) { // a closed backend holds nothing (and has no context for cuMemGetInfo)
                current(); // a smaller budget frees buffers
                activations.budget(bytes);
            }
            activationBudget = bytes;
        }
    }

    /** @return the device's free memory in bytes ({@code cuMemGetInfo}; the context is current) */
    private long freeDeviceBytes() {
        long[] free = new long[1];
        long[] total = new long[1];
        Driver.check("cuMemGetInfo device " + ordinal, () -> JCudaDriver.cuMemGetInfo(free, total));
        return free[0];
    }

    /** Sizes and frees the buffers of this backend's caches (with the context current). */
    private static final DeviceArrayCache.Memory<DeviceBuffer> DEVICE_MEMORY = new DeviceArrayCache.Memory<>() {
        @Override
        public long bytes(DeviceBuffer b) {
            return b.bytes();
        }

        @Override
        public void free(DeviceBuffer b) {
            b.close();
        }
    };

    /**
     * Keeps a block output's device buffer in the activation cache ({@link ActivationCache#keep}).
     *
     * @param host the array it was just downloaded into; it must not be modified afterwards
     * @param buffer a buffer of this backend holding {@code host}'s values; on true the cache owns it
     * @return whether it was kept (false: the caller still owns the buffer)
     */
    synchronized boolean keepActivation(float[] host, DeviceBuffer buffer) {
        if (closed) {
            return false;
        }
        current();
        return activations.keep(host, buffer);
    }

    /**
     * Copies an array's cached device values into a buffer ({@code cuMemcpyDtoDAsync}, then waits: the
     * cached buffer may be freed right after).
     *
     * @param host the array being uploaded
     * @param floats floats of it wanted (its first {@code floats})
     * @param dst the destination, at least {@code 4·floats} bytes
     * @return whether the array was cached (false: nothing was copied)
     */
    synchronized boolean copyCachedActivation(float[] host, long floats, DeviceBuffer dst) {
        if (closed) {
            return false;
        }
        current();
        DeviceBuffer src = activations.lookup(host, floats);
        if (src == null) {
            return false;
        }
        long bytes = 4L * floats;
        Driver.check("cuMemcpyDtoDAsync cached activations " + src.label() + " -> " + dst.label() + " (" + bytes
                + " bytes)", () -> JCudaDriver.cuMemcpyDtoDAsync(dst.pointer(), src.pointer(), bytes, stream));
        Driver.check("cuMemcpyDtoD sync (cached activations)", this::syncStream);
        return true;
    }

    /**
     * Removes an array's entry from the activation cache and hands its device buffer over
     * ({@link ActivationCache#take}).
     *
     * @param host the array being uploaded
     * @param floats floats of it wanted (its first {@code floats})
     * @return the buffer holding them (now the caller's), or null when the array was not cached
     */
    synchronized DeviceBuffer takeCachedActivation(float[] host, long floats) {
        if (closed) {
            return null;
        }
        current();
        return activations.take(host, floats);
    }

    /** @return bytes of device memory held by the activation cache */
    synchronized long cachedActivationBytes() {
        return activations.bytes();
    }

    /** @return whether {@link #close()} ran */
    synchronized boolean isClosed() {
        return closed;
    }

    /** Forgets a closed workspace. */
    synchronized void workspaceClosed(CudaWorkspace w) {
        openWorkspaces.remove(w);
    }

    /**
     * The pinned device copy of a weight array: kept across workspaces while the array lives (the arrays
     * of {@code io.sparkprune.pipeline.forward.Weights} never change after loading), uploaded on a miss
     * after evicting least recently used unpinned weights beyond the cache's limit (a quarter of the
     * device's memory, at least 1 GiB; pinned weights may push it over). Call {@link #unpinWeight} once per
     * acquire.
     *
     * @param w the weight's values (must not change afterwards)
     * @param label what it is, for messages
     * @return the entry, pinned once more
     */
    synchronized DeviceArrayCache.Entry<DeviceBuffer> acquireWeight(float[] w, String label) {
        current();
        weightCache();
        DeviceArrayCache.Entry<DeviceBuffer> e = weights.get(w);
        if (e == null) {
            long need = 4L * Math.max(1, w.length);
            weights.makeRoom(need);
            DeviceBuffer b = alloc(need, "weight " + label + " (" + w.length + " fp32)");
            try {
                b.upload(w, 0, w.length, 0);
            } catch (RuntimeException ex) {
                b.close();
                throw ex;
            }
            e = weights.put(w, b);
        }
        weights.pin(e);
        return e;
    }

    /**
     * {@link #acquireWeight(float[], String)} for a weight given as a host tensor in its checkpoint dtype,
     * keyed by the tensor object's identity (held weakly, as arrays are). On a miss the device buffer is
     * allocated for the fp32 values ({@code 4·numel} bytes, what the entry counts against the cache's
     * limit, as for an fp32 array), then an F32 tensor's bytes are uploaded into it, and a BF16 or F16
     * tensor's 2-byte values are uploaded into a temporary device buffer ({@code 2·numel} bytes, freed
     * before this returns) and widened into it by {@code bf16_to_f32} / {@code f16_to_f32}
     * ({@link #widenDevice}): the same fp32 bits {@link HostTensor#toFloatArray()} gives on the host, with
     * half the host-to-device bytes and no host fp32 array.
     *
     * @param t the weight, F32, F16 or BF16 (its bytes must not change afterwards)
     * @param label what it is, for messages
     * @return the entry, pinned once more; its buffer holds {@code t.numel()} fp32 values
     * @throws IllegalArgumentException for another dtype or more than {@code 2^31 - 9} elements
     * @throws CudaCallException when a driver call fails (nothing is cached then)
     */
    synchronized DeviceArrayCache.Entry<DeviceBuffer> acquireWeight(HostTensor t, String label) {
        DType dtype = t.dtype();
        if (dtype != DType.F32 && dtype != DType.F16 && dtype != DType.BF16) {
            throw new IllegalArgumentException("weight " + label + " is " + t + "; a device weight must be F32, F16 or BF16");
        }
        long n = t.numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("weight " + label + " (" + t + ") has " + n + " elements, over 2^31 - 9");
        }
        current();
        DeviceArrayCache<DeviceBuffer> cache = weightCache();
        DeviceArrayCache.Entry<DeviceBuffer> e = cache.get(t);
        if (e == null) {
            long need = 4L * Math.max(1, n);
            cache.makeRoom(need);
            DeviceBuffer b = alloc(need, "weight " + label + " (" + n + " fp32 from " + dtype + ")");
            try {
                if (dtype == DType.F32) {
                    b.upload(t.data(), 0);
                } else if (n > 0) {
                    try (DeviceBuffer half = alloc(2L * n, "weight " + label + " (" + n + " " + dtype + " before widening)")) {
                        half.upload(t.data(), 0);
                        widenDevice(dtype, half.pointer(), b.pointer(), n);
                    }
                }
            } catch (RuntimeException ex) {
                b.close();
                throw ex;
            }
            e = cache.put(t, n, b);
        }
        cache.pin(e);
        return e;
    }

    /**
     * Widens {@code n} 16-bit floats on the device to fp32 ({@code bf16_to_f32} or {@code f16_to_f32}: exact,
     * the bits of {@link io.sparkprune.kernels.HalfFloats#bf16ToFloat} / {@code f16ToFloat}, NaN payloads
     * included), and waits for it.
     *
     * @param dtype BF16 or F16
     * @param in device address of {@code n} little-endian 2-byte values
     * @param out device address of {@code n} floats (must not overlap {@code in})
     * @param n elements, ≥ 1
     * @throws IllegalArgumentException for another dtype
     */
    synchronized void widenDevice(DType dtype, CUdeviceptr in, CUdeviceptr out, long n) {
        CUfunction f = switch (dtype) {
            case BF16 -> fn.bf16ToF32;
            case F16 -> fn.f16ToF32;
            default -> throw new IllegalArgumentException("device widening needs BF16 or F16, got " + dtype);
        };
        current();
        launchElementwise((dtype == DType.BF16 ? "bf16_to_f32" : "f16_to_f32") + " n=" + n, f, n,
                Pointer.to(Pointer.to(new long[] {n}), p(in), p(out)));
    }

    /** The weight cache, created on first use with its limit (a quarter of the device's memory, at least 1 GiB). */
    private DeviceArrayCache<DeviceBuffer> weightCache() {
        if (weights == null) {
            long[] total = new long[1];
            Driver.check("cuDeviceTotalMem " + ordinal, () -> JCudaDriver.cuDeviceTotalMem(total, device));
            weights = new DeviceArrayCache<>(DEVICE_MEMORY, Math.max(1L << 30, total[0] / 4));
        }
        return weights;
    }

    /** Releases one pin of a cached weight. */
    synchronized void unpinWeight(DeviceArrayCache.Entry<DeviceBuffer> e) {
        if (weights != null && !closed) {
            current();
            weights.unpin(e);
        }
    }

    /** @return bytes of device memory held by cached weights (0 before the first workspace weight) */
    synchronized long cachedWeightBytes() {
        return weights == null ? 0 : weights.bytes();
    }

    /**
     * The first non-finite element of {@code n} device floats ({@code first_nonfinite_f32}), or −1.
     *
     * @param x device pointer of the floats
     * @param n count, ≥ 1
     * @param scratch 8 bytes of device memory for the result
     * @return the smallest index i with x[i] NaN or infinite, or −1
     */
    synchronized long firstNonFiniteDevice(CUdeviceptr x, long n, DeviceBuffer scratch) {
        current();
        Driver.check("cuMemsetD8 non-finite index", () -> JCudaDriver.cuMemsetD8(scratch.pointer(), (byte) 0xff, 8));
        int blocks = (int) Math.max(1, Math.min((n + EW_THREADS - 1) / EW_THREADS, 4L * smCount() * 8));
        launch("first_nonfinite_f32 n=" + n, fn.nonFinite, blocks, 1, EW_THREADS, 0,
                Pointer.to(Pointer.to(new long[] {n}), p(x), p(scratch.pointer())));
        long[] first = new long[1];
        Driver.check("cuMemcpyDtoH non-finite index", () -> JCudaDriver.cuMemcpyDtoH(Pointer.to(first),
                scratch.pointer(), 8));
        return first[0] == -1L ? -1 : first[0];
    }

    // ------------------------------------------------------------------ tensor-core GEMMs (gemm_tc.cuh)

    /**
     * {@link #sgemm} with the products on the tensor cores in TF32 ({@code sgemm_tf32_*}: each operand
     * rounded to TF32, 10 mantissa bits, by {@code cvt.rna.tf32.f32}; fp32 accumulation;
     * {@code mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32}, PTX ISA "warp-level matrix multiply-
     * accumulate"). Relative error against fp32 of order 1e-4 for random operands. Same arguments,
     * shapes and {@code beta == 0} rule as {@link #sgemm}. With {@link #hopperKernels()} the NT form
     * with k a multiple of 4 runs {@code wg_gemm_tf32_nt256} instead (warpgroup {@code wgmma.mma_async}
     * m64n256k8 TF32, the same rounded products; see {@link #sgemmTf32Device}).
     *
     * @throws IllegalArgumentException when a window does not fit its array
     */
    public synchronized void sgemmTf32(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                       float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                       float beta, float[] c, int cOff, int ldc) {
        hostGemm("sgemmTf32", transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc,
                (da, dla, db, dlb, dc) -> sgemmTf32Device(transA, transB, m, n, k, alpha, da, dla, db, dlb, beta, dc, n));
    }

    /**
     * {@link #sgemmTf32} on device pointers (row strides in elements); waits for completion. With
     * {@link #hopperKernels()} the NT form ({@code !transA && transB}) with {@code k}, {@code lda} and
     * {@code ldb} multiples of 4 runs {@code wg_gemm_tf32_nt256}: A's rows {@code m × k} (stride lda) and
     * B's rows {@code n × k} (stride ldb) are first rounded to TF32 by {@code round_tf32} into the
     * backend's scratch buffers (slots {@link #WS_HOPPER_A}, {@link #WS_HOPPER_B}; the caller's A and B
     * are not modified), in row pieces of at most about {@value #WG_SCRATCH_BYTES} bytes each (a large
     * weight, e.g. a 128256 × 4096 embedding head, is rounded and multiplied piece by piece). Every other
     * case runs {@code sgemm_tf32_*}.
     */
    synchronized void sgemmTf32Device(boolean transA, boolean transB, int m, int n, int k, float alpha, CUdeviceptr a,
                                      int lda, CUdeviceptr b, int ldb, float beta, CUdeviceptr c, int ldc) {
        if (!transA && transB && m > 0 && n > 0 && k > 0 && k % 4 == 0 && lda % 4 == 0 && ldb % 4 == 0
                && lda >= k && ldb >= k && hopperKernels()) {
            wgSgemmTf32(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        Pointer params = Pointer.to(p(m), p(n), p(k), p(alpha), p(a), p(lda), p(b), p(ldb), p(beta), p(c), p(ldc),
                p(lda % 4 == 0 ? 1 : 0), p(ldb % 4 == 0 ? 1 : 0));
        launch("sgemm_tf32 " + m + "x" + n + "x" + k, fn.tf32[(transA ? 2 : 0) + (transB ? 1 : 0)], (n + 127) / 128,
                (m + 127) / 128, 256, TF32_SMEM, params);
    }

    /**
     * General matrix product with bf16 operands on the tensor cores, fp32 accumulation and fp32 C:
     * {@code C = alpha · op(A) · op(B) + beta · C} ({@code gemm_bf16_*},
     * {@code mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32}). A and B hold raw bf16 bits
     * ({@link io.sparkprune.kernels.HalfFloats}); shapes, strides and the {@code beta == 0} rule as
     * {@link #sgemm}. The linear-layer form {@code Y = X·Wᵀ} ({@code transB}) is the fast layout; with
     * {@link #hopperKernels()} and k a multiple of 8 it runs {@code wg_gemm_bf16_nt} (warpgroup
     * {@code wgmma.mma_async} m64n256k16 bf16, fp32 accumulation; see {@link #gemmBf16Device}).
     *
     * @param transA use Aᵀ
     * @param transB use Bᵀ
     * @param m rows of C
     * @param n columns of C
     * @param k inner dimension
     * @param alpha scale of the product
     * @param a A's bf16 bits
     * @param aOff index of A's element (0,0)
     * @param lda A's row stride
     * @param b B's bf16 bits
     * @param bOff index of B's element (0,0)
     * @param ldb B's row stride
     * @param beta scale of the old C
     * @param c C, fp32, updated
     * @param cOff index of C's element (0,0)
     * @param ldc C's row stride
     * @throws IllegalArgumentException when a window does not fit its array
     */
    public synchronized void gemmBf16(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                      short[] a, int aOff, int lda, short[] b, int bOff, int ldb,
                                      float beta, float[] c, int cOff, int ldc) {
        Checks.window("gemmBf16 A", a.length, aOff, lda, transA ? k : m, transA ? m : k);
        Checks.window("gemmBf16 B", b.length, bOff, ldb, transB ? n : k, transB ? k : n);
        Checks.window("gemmBf16 C", c.length, cOff, ldc, m, n);
        if (m == 0 || n == 0) {
            return;
        }
        current();
        int ar = transA ? k : m;
        int ac = transA ? m : k;
        int br = transB ? n : k;
        int bc = transB ? k : n;
        DeviceBuffer da = ws(0, 2L * ar * ac, "gemmBf16 A");
        DeviceBuffer db = ws(1, 2L * br * bc, "gemmBf16 B");
        uploadShorts(da, pack(a, aOff, lda, ar, ac), ar * ac, "gemmBf16 A");
        uploadShorts(db, pack(b, bOff, ldb, br, bc), br * bc, "gemmBf16 B");
        DeviceBuffer dc = beta == 0f ? ws(2, 4L * m * n, "gemmBf16 C") : upWindow(2, c, cOff, ldc, m, n, "gemmBf16 C");
        gemmBf16Device(transA, transB, m, n, k, alpha, da.pointer(), ac, db.pointer(), bc, beta, dc.pointer(), n);
        downloadWindow(dc, c, cOff, ldc, m, n);
    }

    /**
     * {@link #gemmBf16} on device pointers (A, B bf16; C fp32; row strides in elements); waits for
     * completion. With {@link #hopperKernels()} the NT form ({@code !transA && transB}) with A and B at
     * 16-byte aligned addresses and {@code k}, {@code lda}, {@code ldb} multiples of 8 runs
     * {@code wg_gemm_bf16_nt}; every other case runs {@code gemm_bf16_*}.
     */
    synchronized void gemmBf16Device(boolean transA, boolean transB, int m, int n, int k, float alpha, CUdeviceptr a,
                                     int lda, CUdeviceptr b, int ldb, float beta, CUdeviceptr c, int ldc) {
        if (!transA && transB && m > 0 && n > 0 && k > 0 && k % 8 == 0 && lda % 8 == 0 && ldb % 8 == 0
                && Address.of(a) % 16 == 0 && Address.of(b) % 16 == 0 && hopperKernels()) {
            launch("wg_gemm_bf16_nt " + m + "x" + n + "x" + k, hopper.gemmBf16, (n + WG_BN - 1) / WG_BN,
                    (m + WG_BM - 1) / WG_BM, WG_THREADS, WG_SMEM, Pointer.to(p(m), p(n), p(k), p(alpha), p(a), p(lda),
                            p(b), p(ldb), p(beta), p(c), p(ldc)));
            return;
        }
        Pointer params = Pointer.to(p(m), p(n), p(k), p(alpha), p(a), p(lda), p(b), p(ldb), p(beta), p(c), p(ldc),
                p(lda % 8 == 0 ? 1 : 0), p(ldb % 8 == 0 ? 1 : 0));
        launch("gemm_bf16 " + m + "x" + n + "x" + k, fn.bf16[(transA ? 2 : 0) + (transB ? 1 : 0)], (n + 127) / 128,
                (m + 127) / 128, 256, BF16_SMEM, params);
    }

    /**
     * {@link #syrkPackedUpper} in TF32 ({@code syrk_packed_tf32}): {@code C += Xᵀ·X} with the products
     * on the tensor cores (operands rounded to TF32), summed in fp32 over chunks of
     * {@value #SYRK_TF32_CHUNK} tokens, each chunk's sums added in fp64 and the result added to the
     * fp64 packed upper triangle. Relative error of order 1e-4 against the fp64 sums. Same arguments
     * as {@link #syrkPackedUpper}; the exact arithmetic is {@link Backend#syrkPackedUpperTf32}'s (chunk
     * {@value Backend#SYRK_TF32_CHUNK}, must equal {@code TC_CHUNK} in gemm_tc.cuh), and
     * {@link io.sparkprune.kernels.cpu.CpuBackend#syrkPackedUpperTf32} is its CPU twin. With
     * {@link #hopperKernels()} it runs {@code transpose_round_tf32} and {@code wg_syrk_tf32} (same
     * contract; see {@link #syrkTf32Device}).
     *
     * @throws IllegalArgumentException when X does not fit or cPacked is too short
     * @throws InvalidInputException see {@link #syrkTf32Device}
     */
    @Override
    public synchronized void syrkPackedUpperTf32(int n, int k, float[] x, int xOff, int ldx, double[] cPacked) {
        Checks.window("syrkTf32 X", x.length, xOff, ldx, k, n);
        long packed = (long) n * (n + 1) / 2;
        if (cPacked.length < packed) {
            throw new IllegalArgumentException("packed C needs " + packed + " elements, has " + cPacked.length);
        }
        if (n == 0 || k == 0) {
            return;
        }
        current();
        DeviceBuffer dx = upWindow(0, x, xOff, ldx, k, n, "syrkTf32 X");
        DeviceBuffer dcp = ws(3, 8L * packed, "syrkTf32 packed H");
        dcp.upload(cPacked, 0, (int) packed, 0);
        syrkTf32Device(n, k, dx.pointer(), n, dcp.pointer());
        dcp.download(0, cPacked, 0, (int) packed);
    }

    /**
     * TF32 Hessian update on device pointers (see {@link #syrkPackedUpperTf32}): {@code Cp += Xᵀ·X}
     * with X {@code k × n} fp32, row stride {@code ldx}; waits for completion. With
     * {@link #hopperKernels()}: the tokens in pieces (multiples of {@value #SYRK_TF32_CHUNK} tokens, at
     * most {@value #WG_SCRATCH_BYTES} bytes of Xᵀ each), each piece transposed and rounded to TF32
     * by {@code transpose_round_tf32} into a scratch buffer (slot {@link #WS_HOPPER_A}, row stride the
     * piece's tokens rounded up to a multiple of 4, the padding zeroed), then {@code wg_syrk_tf32} (the
     * same 256-token chunks as {@code syrk_packed_tf32} and the CPU twin, since pieces start on chunk
     * boundaries); else {@code syrk_packed_tf32}.
     *
     * @param n features
     * @param k tokens
     * @param x device pointer of X
     * @param ldx row stride of X, elements
     * @param cPacked device pointer of the packed fp64 upper triangle
     * @throws InvalidInputException on a device without the Hopper kernels whose opt-in shared memory
     *     per block is too small for {@code syrk_packed_tf32} (A100): the message names the recipe key
     *     {@code calibration.hessian_precision} and its fix, {@code exact}
     */
    public synchronized void syrkTf32Device(int n, int k, CUdeviceptr x, int ldx, CUdeviceptr cPacked) {
        current();
        if (n > 0 && k > 0 && hopperKernels()) {
            wgSyrkTf32(n, k, x, ldx, cPacked);
            return;
        }
        if (!fn.syrkTf32Fits) {
            throw new InvalidInputException("TF32 Hessians (syrk_packed_tf32) need " + SYRK_TF32_SMEM
                    + " bytes of shared memory per block; " + deviceName + " offers " + fn.optinSmem
                    + " (the Hopper kernels, compute capability 9.0, do not need them): use calibration.hessian_precision:"
                    + " exact (the default) on this device");
        }
        int nt = (n + 127) / 128;
        int tiles = nt * (nt + 1) / 2;
        int chunks = (k + SYRK_TF32_CHUNK - 1) / SYRK_TF32_CHUNK;
        int splits = Math.max(1, Math.min(chunks, (2 * smCount() + tiles - 1) / tiles));
        int perSplit = (chunks + splits - 1) / splits * SYRK_TF32_CHUNK;
        splits = (k + perSplit - 1) / perSplit;
        Pointer params = Pointer.to(p(n), p(k), p(x), p(ldx), p(cPacked), p(perSplit), p(ldx % 4 == 0 ? 1 : 0));
        launch("syrk_packed_tf32 n=" + n + " k=" + k, fn.syrkTf32, tiles, splits, 256, SYRK_TF32_SMEM, params);
    }

    // ------------------------------------------------------------------ Hopper kernels (hopper.cu, sm_90a)

    /** Threads per block of every wgmma kernel (two warpgroups). */
    private static final int WG_THREADS = 256;
    /** Rows of C per block of the wgmma GEMMs and syrk. */
    private static final int WG_BM = 128;
    /** Columns of C per block of wg_gemm_tf32_nt256 and wg_gemm_bf16_nt. */
    private static final int WG_BN = 256;
    /**
     * Dynamic shared memory of every wgmma kernel, bytes: 4 stages of (128 + 256) rows × 128 bytes for
     * the GEMMs, 6 stages of (128 + 128) rows × 128 bytes for the syrk (both 196608), plus 1024 bytes
     * of slack for the 1024-byte alignment of the swizzled tiles.
     */
    private static final int WG_SMEM = 4 * (128 + 256) * 128 + 1024;
    /**
     * Largest scratch buffer of one piece of a wgmma call, bytes: the TF32-rounded rows of A, of B (the
     * TF32 GEMM) or Xᵀ (the syrk); larger operands go in pieces, so the scratch stays bounded.
     */
    static final long WG_SCRATCH_BYTES = 256L << 20;
    /** Most tokens of one transpose_round_tf32 launch (grid.y of 32-token tiles ≤ 65535), chunk multiple. */
    private static final int WG_TRANSPOSE_MAX_TOKENS = 65535 * 32 / SYRK_TF32_CHUNK * SYRK_TF32_CHUNK;

    /** The kernels of {@value #FATBIN_SM90A} in their module (unloaded by {@link #close()}). */
    private static final class Hopper {
        final CUmodule module;
        final CUfunction gemmTf32;
        final CUfunction gemmBf16;
        final CUfunction syrk;
        final CUfunction round;
        final CUfunction transposeRound;
        /** The 3xTF32 lazy update of the solve and its operand splits. */
        final CUfunction gemm3xTf32;
        final CUfunction split;
        final CUfunction transposeSplit;
        /** The fp64 tensor-core product of the inverse factor (m16n8k8 f64). */
        final CUfunction dgemmDmma;

        Hopper(CUmodule module) {
            this.module = module;
            gemmTf32 = function(module, "wg_gemm_tf32_nt256");
            gemmBf16 = function(module, "wg_gemm_bf16_nt");
            syrk = function(module, "wg_syrk_tf32");
            round = function(module, "round_tf32");
            transposeRound = function(module, "transpose_round_tf32");
            maxSmem("wg_gemm_tf32_nt256", gemmTf32, WG_SMEM);
            maxSmem("wg_gemm_bf16_nt", gemmBf16, WG_SMEM);
            maxSmem("wg_syrk_tf32", syrk, WG_SMEM);
            gemm3xTf32 = function(module, "wg_gemm_3xtf32_nt");
            split = function(module, "split_tf32");
            transposeSplit = function(module, "transpose_split_tf32");
            maxSmem("wg_gemm_3xtf32_nt", gemm3xTf32, WG3_SMEM);
            dgemmDmma = function(module, "dgemm_dmma_sm90");
            maxSmem("dgemm_dmma_sm90", dgemmDmma, DGEMM_DMMA_SM90_SMEM);
        }
    }

    /** wg_gemm_3xtf32_nt: 3 stages of four 128 × 128-byte operand tiles, plus 1024 bytes of alignment. */
    private static final int WG3_SMEM = 3 * 4 * 128 * 128 + 1024;

    /** Reads the address a JCuda device pointer stands for (its native pointer plus byte offset). */
    private static final class Address extends CUdeviceptr {
        private Address(CUdeviceptr p) {
            super(p);
        }

        /** @return the device address of {@code p} */
        static long of(CUdeviceptr p) {
            Address a = new Address(p);
            return a.getNativePointer() + a.getByteOffset();
        }
    }

    /** Queues {@code out[i] = cvt.rna.tf32.f32(in[i])} for {@code count} floats ({@code round_tf32}). */
    private void roundTf32Async(long count, CUdeviceptr in, CUdeviceptr out, String what) {
        int grid = (int) Math.max(1, Math.min(4096, (count + 255) / 256));
        launchAsync("round_tf32 " + what + " (" + count + " floats)", hopper.round, grid, 1, 256, 0,
                Pointer.to(Pointer.to(new long[] {count}), p(in), p(out)));
    }

    /**
     * Rows per piece of a K-major operand with row stride {@code ld} (fp32) whose rounded copy must fit
     * the scratch piece ({@link #WG_SCRATCH_BYTES} unless a test set it): a multiple of 256 (whole C tiles), at least 256, at most {@code rows}.
     */
    private int wgPieceRows(int rows, int ld) {
        long fit = wgScratchBytes / (4L * ld) / 256 * 256;
        return (int) Math.min(rows, Math.max(256, fit));
    }

    /**
     * The wgmma TF32 NT product (see {@link #sgemmTf32Device}): {@code C = alpha·A·Bᵀ + beta·C} with A's
     * and B's rows rounded to TF32 into the scratch buffers, piece by piece; m, n, k ≥ 1; k, lda, ldb
     * multiples of 4; waits for completion.
     */
    private void wgSgemmTf32(int m, int n, int k, float alpha, CUdeviceptr a, int lda, CUdeviceptr b, int ldb,
                             float beta, CUdeviceptr c, int ldc) {
        int mPiece = wgPieceRows(m, lda);
        int nPiece = wgPieceRows(n, ldb);
        DeviceBuffer ra = ws(WS_HOPPER_A, 4L * ((long) (mPiece - 1) * lda + k), "TF32-rounded A of wg_gemm_tf32_nt256");
        DeviceBuffer rb = ws(WS_HOPPER_B, 4L * ((long) (nPiece - 1) * ldb + k), "TF32-rounded B of wg_gemm_tf32_nt256");
        boolean bOnce = nPiece == n;
        if (bOnce) {
            roundTf32Async((long) (n - 1) * ldb + k, b, rb.pointer(), "B");
        }
        for (int i0 = 0; i0 < m; i0 += mPiece) {
            int mc = Math.min(mPiece, m - i0);
            roundTf32Async((long) (mc - 1) * lda + k, a.withByteOffset(4L * i0 * lda), ra.pointer(), "A rows " + i0);
            for (int j0 = 0; j0 < n; j0 += nPiece) {
                int nc = Math.min(nPiece, n - j0);
                if (!bOnce) {
                    roundTf32Async((long) (nc - 1) * ldb + k, b.withByteOffset(4L * j0 * ldb), rb.pointer(),
                            "B rows " + j0);
                }
                launchAsync("wg_gemm_tf32_nt256 " + mc + "x" + nc + "x" + k + " at (" + i0 + ", " + j0 + ")",
                        hopper.gemmTf32, (nc + WG_BN - 1) / WG_BN, (mc + WG_BM - 1) / WG_BM, WG_THREADS, WG_SMEM,
                        Pointer.to(p(mc), p(nc), p(k), p(alpha), p(ra.pointer()), p(lda), p(rb.pointer()), p(ldb),
                                p(beta), p(c.withByteOffset(4L * ((long) i0 * ldc + j0))), p(ldc)));
            }
        }
        Driver.check("kernel wg_gemm_tf32_nt256 " + m + "x" + n + "x" + k, this::syncStream);
    }

    /** The wgmma TF32 Hessian update (see {@link #syrkTf32Device}); n, k ≥ 1. */
    private void wgSyrkTf32(int n, int k, CUdeviceptr x, int ldx, CUdeviceptr cPacked) {
        long fit = wgScratchBytes / (4L * n) / SYRK_TF32_CHUNK * SYRK_TF32_CHUNK;
        int piece = (int) Math.max(SYRK_TF32_CHUNK, Math.min(WG_TRANSPOSE_MAX_TOKENS, fit));
        int nt = (n + WG_BM - 1) / WG_BM;
        int tiles = nt * (nt + 1) / 2;
        for (int t0 = 0; t0 < k; t0 += piece) {
            final int kc = Math.min(piece, k - t0);
            final int ldt = (kc + 3) & ~3;
            DeviceBuffer xt = ws(WS_HOPPER_A, 4L * n * ldt, "TF32 X^T of wg_syrk_tf32");
            if (ldt != kc) {
                Driver.check("cuMemsetD2D32Async X^T padding (" + n + " rows x " + (ldt - kc) + ")",
                        () -> JCudaDriver.cuMemsetD2D32Async(xt.at(4L * kc), 4L * ldt, 0, ldt - kc, n, stream));
            }
            CUdeviceptr xp = x.withByteOffset(4L * t0 * ldx);
            launchAsync("transpose_round_tf32 n=" + n + " k=" + kc, hopper.transposeRound, (n + 31) / 32, (kc + 31) / 32,
                    32, 8, 0, Pointer.to(p(kc), p(n), p(xp), p(ldx), p(xt.pointer()), p(ldt)));
            int chunks = (kc + SYRK_TF32_CHUNK - 1) / SYRK_TF32_CHUNK;
            int splits = Math.max(1, Math.min(chunks, (2 * smCount() + tiles - 1) / tiles));
            int perSplit = (chunks + splits - 1) / splits * SYRK_TF32_CHUNK;
            splits = (kc + perSplit - 1) / perSplit;
            launch("wg_syrk_tf32 n=" + n + " k=" + kc + " (tokens from " + t0 + ") splits=" + splits, hopper.syrk,
                    tiles, splits, WG_THREADS, WG_SMEM, Pointer.to(p(n), p(kc), p(xt.pointer()), p(ldt), p(cPacked),
                            p(perSplit)));
        }
    }
}
