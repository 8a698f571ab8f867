package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.NumericsException;
import io.sparkprune.calibration.TestMath;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.sparsity.MaskScope;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ResidentFactorizer;
import io.sparkprune.kernels.ResidentSolver;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The resident-factor path ({@link InverseFactor#computeResident} on a {@link ResidentFactorizer}, then
 * {@link SparseGptSolver} solving on the resident U) computes bit for bit what the host path computes
 * ({@link InverseFactor#compute} and a host U handed to the solve), on the CPU: a backend whose
 * {@link ResidentFactorizer} keeps the packed H and U in Java arrays the way the GPU backend keeps them in
 * device memory (H from the packed sum times the scale in fp64, the diagonal replaced per attempt, U rounded
 * to fp32), with CpuBackend's arithmetic. It also checks that the solve never copies U to the host, that
 * the handle is released on close and on failure, and the typed errors. The GPU backend's own kernels are
 * checked in {@code ResidentFactorGpuTest}.
 */
class ResidentFactorPathTest {
    private static final long SEED = new SplittableRandom().nextLong();
    private static CpuBackend cpu;
    private static CpuFactorizer factorizer;
    private static Backend resident;

    @BeforeAll
    static void open() {
        cpu = CpuBackend.create(2);
        factorizer = new CpuFactorizer();
        ResidentSolver rs = job -> ResidentSolvePathTest.solve(cpu, job);
        resident = ResidentSolvePathTest.withCapabilities(cpu,
                java.util.Map.of(ResidentSolver.class, rs, ResidentFactorizer.class, factorizer));
    }

    @AfterAll
    static void close() {
        cpu.close();
    }

    @BeforeEach
    void reset() {
        factorizer.downloads = 0;
    }

    /** A resident factorizer on the host: the functions of the GPU backend's, with CpuBackend's arithmetic. */
    static final class CpuFactorizer implements ResidentFactorizer {
        int open;       // handles opened and not closed
        int downloads;  // full copies of U made
        int poison = -1; // when ≥ 0: the index of U that factor() sets to NaN (a non-finite factor)

        @Override
        public Factor openFactor(int n, double[] packed, double scale, String label) {
            open++;
            return new CpuFactor(n, packed.clone(), scale);
        }

        final class CpuFactor implements Factor {
            private final int n;
            private final double[] packed;
            private final double scale;
            private float[] u;
            private boolean closed;

            CpuFactor(int n, double[] packed, double scale) {
                this.n = n;
                this.packed = packed;
                this.scale = scale;
            }

            private double h(int i, int j) {
                int a = Math.min(i, j);
                int b = Math.max(i, j);
                return packed[(int) ((long) a * n - (long) a * (a - 1) / 2 + (b - a))] * scale;
            }

            private void live() {
                if (closed) {
                    throw new IllegalStateException("closed");
                }
            }

            @Override
            public int size() {
                return n;
            }

            @Override
            public int factor(double[] diag, double[] lambdas) {
                live();
                for (int k = 0; k < lambdas.length; k++) {
                    double[] work = new double[n * n];
                    for (int i = 0; i < n; i++) {
                        for (int j = i + 1; j < n; j++) {
                            work[i * n + j] = h(i, j);
                        }
                        work[i * n + i] = diag[i] + lambdas[k];
                    }
                    if (cpu.inverseCholeskyUpper(n, work, 0, n)) {
                        u = new float[n * n];
                        for (int i = 0; i < u.length; i++) {
                            u[i] = (float) work[i];
                        }
                        if (poison >= 0) {
                            u[poison] = Float.NaN;
                        }
                        return k;
                    }
                }
                return -1;
            }

            @Override
            public boolean factored() {
                return !closed && u != null;
            }

            @Override
            public long firstNonFinite() {
                live();
                for (int i = 0; i < u.length; i++) {
                    if (!Float.isFinite(u[i])) {
                        return i;
                    }
                }
                return -1;
            }

            @Override
            public void download(float[] out) {
                live();
                downloads++;
                System.arraycopy(u, 0, out, 0, u.length);
            }

            @Override
            public void diagonal(float[] d) {
                live();
                for (int i = 0; i < n; i++) {
                    d[i] = u[i * n + i];
                }
            }

            @Override
            public void solve(ResidentSolver.SolveJob job) {
                live();
                assertThat(job.u()).as("the solve must not be handed a host U").isNull();
                ResidentSolvePathTest.solve(cpu, new ResidentSolver.SolveJob(job.rows(), job.cols(), job.blockSize(),
                        job.w(), u, job.nmKeep(), job.nmGroup(), job.selector(), job.quant(), job.mask(), job.rowLoss(),
                        job.unstructured()));
            }

            @Override
            public void hessianProduct(int rows, float[] a, float[] t) {
                live();
                float[] h32 = new float[n * n];
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < n; j++) {
                        h32[i * n + j] = (float) h(i, j);
                    }
                }
                cpu.sgemm(false, true, rows, n, n, 1f, a, 0, n, h32, 0, n, 0f, t, 0, n);
            }

            @Override
            public void rowQuadratics(int rows, float[] a, double[] q) {
                float[] t = new float[rows * n];
                hessianProduct(rows, a, t);
                for (int r = 0; r < rows; r++) {
                    double s = 0;
                    for (int c = 0; c < n; c++) {
                        s += (double) a[r * n + c] * t[r * n + c];
                    }
                    q[r] = s;
                }
            }

            @Override
            public void close() {
                if (!closed) {
                    closed = true;
                    open--;
                }
            }
        }
    }

    private static HessianAccumulator accumulator(SplittableRandom r, int tokens, int n, int dead) {
        float[] x = TestMath.correlatedActivations(r, tokens, n);
        if (dead >= 0) {
            for (int t = 0; t < tokens; t++) {
                x[t * n + dead] = 0f;
            }
        }
        HessianAccumulator acc = new HessianAccumulator("model.layers.3.mlp gate/up input", n);
        acc.add(cpu, x, tokens);
        return acc;
    }

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of(new SparsityPattern.Unstructured(0.5), MaskScope.ALL_ROWS, null),
                Arguments.of(new SparsityPattern.Unstructured(0.5), MaskScope.PER_ROW, null),
                Arguments.of(new SparsityPattern.NofM(2, 4), MaskScope.ALL_ROWS, QuantizationSpec.grouped(4, true, 16)),
                Arguments.of(new SparsityPattern.Block(4, 4, 0.5), MaskScope.ALL_ROWS, null));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void residentFactorAndSolveEqualTheHostPathBitForBit(SparsityPattern pattern, MaskScope scope, QuantizationSpec quant) {
        SplittableRandom r = new SplittableRandom(SEED ^ pattern.hashCode());
        int rows = 24;
        int cols = 128;
        HessianAccumulator acc = accumulator(r, 400, cols, 11);
        float[] w = TestMath.randomWeights(r, rows, cols);
        SolverOptions opts = new SolverOptions(32, scope);
        // the host path, on a backend with the resident solve but without the resident factor
        InverseFactor fc = InverseFactor.compute(cpu, acc, Dampening.DEFAULT);
        PruneResult a = new SparseGptSolver(cpu, opts).prune("w", w, rows, cols, fc, pattern, Optional.ofNullable(quant));
        PruneResult b;
        InverseFactor fr = InverseFactor.computeResident(resident, acc, Dampening.DEFAULT);
        try (fr) {
            assertThat(factorizer.open).isEqualTo(1);
            assertThat(fr.residentOn(resident)).isNotNull();
            assertThat(fr.residentOn(cpu)).as("another backend does not get the handle").isNull();
            b = new SparseGptSolver(resident, opts).prune("w", w, rows, cols, fr, pattern, Optional.ofNullable(quant));
            assertThat(factorizer.downloads).as("U stayed resident during the solve").isZero();
            assertThat(fr.upper()).as("seed %d", SEED).containsExactly(fc.upper());
            assertThat(factorizer.downloads).as("upper() downloads once, lazily").isEqualTo(1);
            fr.upper();
            assertThat(factorizer.downloads).isEqualTo(1);
        }
        assertThat(factorizer.open).as("closed with the factor").isZero();
        assertThat(fr.residentOn(resident)).isNull();
        assertThat(fr.deadCount()).isEqualTo(1).isEqualTo(fc.deadCount());
        assertThat(fr.isDead(11)).isTrue();
        assertThat(fr.dampening()).isEqualTo(fc.dampening());
        assertThat(fr.lambda()).isEqualTo(fc.lambda());
        ResidentSolvePathTest.assertSamePrune(a, b, SEED);
    }

    @Test
    void rankDeficientHessianRetriesOnTheResidentFactorLikeTheHostPath() {
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 96;
        HessianAccumulator acc = accumulator(r, 8, n, -1); // rank 8 in 96 dimensions
        // λ ≈ 0 twice (the Cholesky of a rank-8 matrix fails), then 1e-2
        Dampening d = new Dampening(1e-300, 1e149, 1e-2);
        InverseFactor fc = InverseFactor.compute(cpu, acc, d);
        try (InverseFactor fr = InverseFactor.computeResident(resident, acc, d)) {
            assertThat(fr.dampeningsTried()).as("seed %d", SEED).hasSizeGreaterThanOrEqualTo(2)
                    .isEqualTo(fc.dampeningsTried());
            assertThat(fr.lambda()).isEqualTo(fc.lambda());
            float[] w = TestMath.randomWeights(r, 8, n);
            PruneResult a = new SparseGptSolver(cpu, SolverOptions.DEFAULT).prune("w", w, 8, n, fc,
                    new SparsityPattern.NofM(2, 4), Optional.empty());
            PruneResult b = new SparseGptSolver(resident, SolverOptions.DEFAULT).prune("w", w, 8, n, fr,
                    new SparsityPattern.NofM(2, 4), Optional.empty());
            assertThat(b.weights()).containsExactly(a.weights());
            assertThat(fr.upper()).containsExactly(fc.upper());
        }
        assertThat(factorizer.open).isZero();
    }

    @Test
    void aResidentFactorSerializesAsAHostFactorWithoutKeepingACopyAndAClosedOneRefuses() throws Exception {
        SplittableRandom r = new SplittableRandom(SEED);
        HessianAccumulator acc = accumulator(r, 300, 64, -1);
        InverseFactor fc = InverseFactor.compute(cpu, acc, Dampening.DEFAULT);
        byte[] bytes;
        try (InverseFactor fr = InverseFactor.computeResident(resident, acc, Dampening.DEFAULT)) {
            java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
            try (java.io.ObjectOutputStream out = new java.io.ObjectOutputStream(b)) {
                out.writeObject(fr);
            }
            bytes = b.toByteArray();
            assertThat(factorizer.downloads).as("U downloaded for the stream").isEqualTo(1);
            fr.upper();
            assertThat(factorizer.downloads).as("and not kept by the factor").isEqualTo(2);
        }
        try (java.io.ObjectInputStream in = new java.io.ObjectInputStream(new java.io.ByteArrayInputStream(bytes))) {
            InverseFactor back = (InverseFactor) in.readObject();
            assertThat(back.upper()).containsExactly(fc.upper());
            assertThat(back.residentOn(resident)).isNull();
        }
        InverseFactor closed = InverseFactor.computeResident(resident, acc, Dampening.DEFAULT);
        closed.close();
        assertThatThrownBy(() -> new java.io.ObjectOutputStream(new java.io.ByteArrayOutputStream()).writeObject(closed))
                .isInstanceOf(java.io.NotSerializableException.class).hasMessageContaining("closed before its U");
        assertThat(factorizer.open).isZero();
    }

    @Test
    void failedFactorReleasesTheHandleAndNamesTheHessian() {
        SplittableRandom r = new SplittableRandom(SEED);
        HessianAccumulator acc = accumulator(r, 8, 96, -1);
        Dampening hopeless = new Dampening(1e-300, 10.0, 1e-299);
        assertThatThrownBy(() -> InverseFactor.computeResident(resident, acc, hopeless))
                .isInstanceOf(NumericsException.class)
                .hasMessageContaining("model.layers.3.mlp gate/up input")
                .hasMessageContaining("failed at every dampening");
        assertThat(factorizer.open).as("freed on failure").isZero();
    }

    @Test
    void nonFiniteFactorIsATypedErrorAtItsPositionAndReleasesTheHandle() {
        SplittableRandom r = new SplittableRandom(SEED);
        HessianAccumulator acc = accumulator(r, 200, 64, -1);
        factorizer.poison = 5 * 64 + 9; // the resident U gets a NaN at [5, 9]
        try {
            assertThatThrownBy(() -> InverseFactor.computeResident(resident, acc, Dampening.DEFAULT))
                    .isInstanceOf(NumericsException.class)
                    .hasMessageContaining("inverse Hessian factor of model.layers.3.mlp gate/up input")
                    .hasMessageContaining("NaN at [5, 9]")
                    .hasMessageContaining("raise the dampening");
        } finally {
            factorizer.poison = -1;
        }
        assertThat(factorizer.open).as("freed on failure").isZero();
    }

    @Test
    void aHostBackendGetsAnOrdinaryFactor() {
        SplittableRandom r = new SplittableRandom(SEED);
        HessianAccumulator acc = accumulator(r, 200, 64, -1);
        try (InverseFactor f = InverseFactor.computeResident(cpu, acc, Dampening.DEFAULT)) {
            assertThat(f.residentOn(cpu)).isNull();
            assertThat(f.upper()).containsExactly(InverseFactor.compute(cpu, acc, Dampening.DEFAULT).upper());
        }
        assertThat(factorizer.open).isZero();
    }
}
