package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.TestMath;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ByteView;
import io.sparkprune.kernels.DampedFactorizer;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.ResidentSolver;
import io.sparkprune.kernels.SparseGptBlock;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Arrays;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The solver's resident path (the one {@code CudaBackend} takes through {@link ResidentSolver} and
 * {@link DampedFactorizer}) computes bit for bit what its host loop computes, on the CPU: a backend
 * that implements both capabilities the way the GPU backend does (unstructured masks selected inside
 * the solve over all rows of a block; the block's current weights
 * gathered into a dense {@code rows × width} array for the selector of the other patterns, the block mask uploaded as its
 * own {@code rows × width} view, whole-weight grid arrays offset per block; the damped retry on one
 * uploaded copy of H) but with CpuBackend's arithmetic, against the plain CpuBackend. The GPU
 * backend's own kernels are checked against the CPU in the {@code gpu}-tagged tests.
 */
class ResidentSolvePathTest {
    private static final long SEED = new SplittableRandom().nextLong();
    private static CpuBackend cpu;
    private static Backend resident;

    @BeforeAll
    static void open() {
        cpu = CpuBackend.create(2);
        ResidentSolver rs = ResidentSolvePathTest::solve;
        DampedFactorizer df = ResidentSolvePathTest::factor;
        resident = withCapabilities(cpu, java.util.Map.of(ResidentSolver.class, rs, DampedFactorizer.class, df));
    }

    /**
     * A backend that offers the given capability interfaces (each method of one goes to its
     * implementation) and is the CPU backend otherwise: the fakes of the GPU backend's resident paths.
     *
     * @param cpu the backend for every other method
     * @param capabilities capability interface → its implementation
     * @return the combined backend
     */
    static Backend withCapabilities(Backend cpu, java.util.Map<Class<?>, Object> capabilities) {
        Class<?>[] types = new Class<?>[capabilities.size() + 1];
        types[0] = Backend.class;
        int i = 1;
        for (Class<?> c : capabilities.keySet()) {
            types[i++] = c;
        }
        return (Backend) Proxy.newProxyInstance(ResidentSolvePathTest.class.getClassLoader(), types, (proxy, m, args) -> {
            Object target = capabilities.getOrDefault(m.getDeclaringClass(), cpu);
            try {
                return m.invoke(target, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        });
    }

    @AfterAll
    static void close() {
        cpu.close();
    }

    /** The CUDA backend's resident loop, with CpuBackend's kernels. */
    private static void solve(ResidentSolver.SolveJob job) {
        solve(cpu, job);
    }

    /**
     * The CUDA backend's resident loop with the kernels of a given CpuBackend (also the resident factor's
     * solve in {@link ResidentFactorPathTest}).
     */
    static void solve(CpuBackend cpu, ResidentSolver.SolveJob job) {
        job.validate();
        int rows = job.rows();
        int cols = job.cols();
        int bs = Math.min(job.blockSize(), cols);
        ResidentSolver.SolveJob.Quant q = job.quant();
        int groups = q == null ? 1 : q.groups(cols);
        float[] err = new float[rows * bs];
        float[] blockW = new float[rows * bs];
        byte[] blockMask = new byte[rows * bs];
        // the kernels' byte mask of the whole weight (when no host selector), packed into job.mask()'s
        // bits at the end, as CudaBackend's pack_mask_bits does
        byte[] work = job.selector() != null ? null : new byte[rows * cols];
        for (int i1 = 0; i1 < cols; i1 += bs) {
            int i2 = Math.min(cols, i1 + bs);
            int width = i2 - i1;
            ByteView mask;
            if (job.selector() != null) {
                for (int r = 0; r < rows; r++) {
                    System.arraycopy(job.w(), r * cols + i1, blockW, r * width, width);
                }
                Arrays.fill(blockMask, (byte) 0);
                job.selector().select(i1, width, blockW, blockMask);
                ResidentSolver.SolveJob.setBlockBits(job.mask(), rows, cols, i1, width, blockMask);
                mask = new ByteView(blockMask, 0, width);
            } else {
                mask = new ByteView(work, i1, cols);
                if (job.unstructured() > 0) {
                    // in-solve selection: scores w² / U[i,i]² of the block, the k smallest over all rows
                    float[] scores = new float[rows * width];
                    for (int r = 0; r < rows; r++) {
                        for (int i = 0; i < width; i++) {
                            float d = job.u()[(i1 + i) * cols + i1 + i];
                            float v = job.w()[r * cols + i1 + i];
                            scores[r * width + i] = (v * v) / (d * d);
                        }
                    }
                    byte[] bm = new byte[rows * width];
                    io.sparkprune.calibration.sparsity.SmallestK.mark(scores, 0, rows * width,
                            ResidentSolver.SolveJob.prunedPerBlock(job.unstructured(), rows * width), bm, 0);
                    for (int r = 0; r < rows; r++) {
                        System.arraycopy(bm, r * width, work, r * cols + i1, width);
                    }
                }
            }
            SparseGptBlock.Quant bq = null;
            if (q != null) {
                int gOff = q.groupSize() == 0 ? 0 : i1 / q.groupSize();
                bq = new SparseGptBlock.Quant(q.bits(), q.symmetric(), q.groupSize(), new FloatView(q.scale(), gOff, groups),
                        new FloatView(q.zero(), gOff, groups), new ByteView(q.codes(), i1, cols));
            }
            cpu.sparseGptBlock(new SparseGptBlock(rows, width, new FloatView(job.w(), i1, cols),
                    new FloatView(job.u(), i1 * cols + i1, cols), new FloatView(err, 0, width), mask, job.nmKeep(),
                    job.nmGroup(), bq, job.rowLoss(), 0));
            if (i2 < cols) {
                cpu.sgemm(false, false, rows, cols - i2, width, -1f, err, 0, width, job.u(), i1 * cols + i2, cols, 1f,
                        job.w(), i2, cols);
            }
        }
        if (work != null) {
            ResidentSolver.SolveJob.setBlockBits(job.mask(), rows, cols, 0, cols, work);
        }
    }

    /** The CUDA backend's damped retry: one copy of A, the diagonal replaced per attempt. */
    private static int factor(int n, double[] a, double[] diag, double[] lambdas, float[] u) {
        for (int k = 0; k < lambdas.length; k++) {
            double[] work = a.clone();
            for (int i = 0; i < n; i++) {
                work[i * n + i] = diag[i] + lambdas[k];
            }
            if (cpu.inverseCholeskyUpper(n, work, 0, n)) {
                for (int i = 0; i < u.length; i++) {
                    u[i] = (float) work[i];
                }
                return k;
            }
        }
        return -1;
    }

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of(new SparsityPattern.Unstructured(0.5), null, 32),
                Arguments.of(new SparsityPattern.Unstructured(0.7), QuantizationSpec.perChannel(4, false), 64),
                Arguments.of(new SparsityPattern.NofM(2, 4), null, 32),
                Arguments.of(new SparsityPattern.NofM(2, 4), QuantizationSpec.grouped(4, true, 16), 32),
                Arguments.of(new SparsityPattern.NofM(4, 8), QuantizationSpec.grouped(8, false, 32), 64),
                Arguments.of(new SparsityPattern.Block(4, 4, 0.5), null, 32),
                Arguments.of(new SparsityPattern.Block(8, 16, 0.25), QuantizationSpec.perChannel(3, true), 32));
    }

    @org.junit.jupiter.api.Test
    void perRowUnstructuredScopeUsesTheHostSelector() {
        SplittableRandom r = new SplittableRandom(SEED);
        int rows = 24;
        int cols = 96;
        float[] x = TestMath.correlatedActivations(r, 300, cols);
        double[] h = TestMath.naiveHessian(x, 300, cols);
        float[] w = TestMath.randomWeights(r, rows, cols);
        SolverOptions opts = new SolverOptions(32, io.sparkprune.calibration.sparsity.MaskScope.PER_ROW);
        InverseFactor f = InverseFactor.compute(cpu, "in", h, cols, Dampening.DEFAULT);
        SparsityPattern p = new SparsityPattern.Unstructured(0.5);
        PruneResult a = new SparseGptSolver(cpu, opts).prune("w", w, rows, cols, f, p, Optional.empty());
        PruneResult b = new SparseGptSolver(resident, opts).prune("w", w, rows, cols, f, p, Optional.empty());
        assertThat(b.weights()).containsExactly(a.weights());
        for (int row = 0; row < rows; row++) {
            assertThat(b.mask().countRow(row)).isEqualTo(cols / 2);
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void residentPathEqualsTheHostLoopBitForBit(SparsityPattern pattern, QuantizationSpec quant, int blockSize) {
        SplittableRandom r = new SplittableRandom(SEED ^ pattern.hashCode() ^ blockSize);
        int rows = 48;
        int cols = 160;
        int tokens = 400;
        float[] x = TestMath.correlatedActivations(r, tokens, cols);
        for (int t = 0; t < tokens; t++) {
            x[t * cols + 7] = 0f; // one dead input
        }
        double[] h = TestMath.naiveHessian(x, tokens, cols);
        float[] w = TestMath.randomWeights(r, rows, cols);
        SolverOptions opts = new SolverOptions(blockSize, io.sparkprune.calibration.sparsity.MaskScope.ALL_ROWS);
        InverseFactor fc = InverseFactor.compute(cpu, "layer input", h, cols, Dampening.DEFAULT);
        InverseFactor fr = InverseFactor.compute(resident, "layer input", h, cols, Dampening.DEFAULT);
        assertThat(fr.upper()).as("seed %d", SEED).containsExactly(fc.upper());
        assertThat(fr.deadCount()).isEqualTo(1);
        PruneResult a = new SparseGptSolver(cpu, opts).prune("w", w, rows, cols, fc, pattern, Optional.ofNullable(quant));
        PruneResult b = new SparseGptSolver(resident, opts).prune("w", w, rows, cols, fr, pattern,
                Optional.ofNullable(quant));
        assertSamePrune(a, b, SEED);
    }

    /**
     * The resident path's result equals the host path's bit for bit: weights, mask (non-empty), row
     * losses and, when quantized, codes and scales.
     */
    static void assertSamePrune(PruneResult host, PruneResult resident, long seed) {
        assertThat(resident.weights()).as("seed %d", seed).containsExactly(host.weights());
        assertThat(resident.mask()).isEqualTo(host.mask());
        assertThat(resident.rowLoss()).containsExactly(host.rowLoss());
        assertThat(host.mask().count()).isGreaterThan(0);
        assertThat(resident.quantization().isPresent()).isEqualTo(host.quantization().isPresent());
        if (host.quantization().isPresent()) {
            assertThat(resident.quantization().orElseThrow().codes()).containsExactly(host.quantization().orElseThrow().codes());
            assertThat(resident.quantization().orElseThrow().scales()).containsExactly(host.quantization().orElseThrow().scales());
        }
    }
}
