package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.ReferenceFile;
import io.sparkprune.calibration.TestMath;
import io.sparkprune.calibration.baseline.MagnitudePruner;
import io.sparkprune.calibration.baseline.WandaPruner;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.util.Optional;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Our solver against the outputs of the authors' SparseGPT code on a real layer
 * ({@code src/test/resources/reference/README.md}): W is 384 × 1024, H its input Hessian, U from
 * H with dampening 0.01, column blocks of 128.
 */
class ReferenceParityTest {
    private static final String TENSOR = "model.layers.2.mlp.down_proj.weight";
    private static final int ROWS = 384;
    private static final int COLS = 1024;
    private static ReferenceFile ref;
    private static CpuBackend backend;
    private static InverseFactor factor;

    @BeforeAll
    static void load() throws IOException {
        ref = ReferenceFile.load();
        assertThat(ref.shape("W")).containsExactly(ROWS, COLS);
        assertThat(ref.shape("H")).containsExactly(COLS, COLS);
        backend = CpuBackend.create(2);
        factor = InverseFactor.compute(backend, "model.layers.2.mlp.down_proj input", ref.get("H"), COLS, Dampening.DEFAULT);
    }

    @AfterAll
    static void close() {
        backend.close();
    }

    static Stream<Arguments> outputs() {
        Optional<QuantizationSpec> int4 = Optional.of(QuantizationSpec.perChannel(4, false));
        return Stream.of(
                Arguments.of("out_50pct", new SparsityPattern.Unstructured(0.5), Optional.empty()),
                Arguments.of("out_70pct", new SparsityPattern.Unstructured(0.7), Optional.empty()),
                Arguments.of("out_4of8", new SparsityPattern.NofM(4, 8), Optional.empty()),
                Arguments.of("out_2of4", new SparsityPattern.NofM(2, 4), Optional.empty()),
                Arguments.of("out_2of4_int4", new SparsityPattern.NofM(2, 4), int4),
                Arguments.of("out_50pct_int4", new SparsityPattern.Unstructured(0.5), int4));
    }

    @Test
    void factorUsesTheFirstDampening() {
        assertThat(factor.dampening()).isEqualTo(0.01);
        assertThat(factor.dampeningsTried()).containsExactly(0.01);
        assertThat(factor.deadCount()).isZero();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("outputs")
    void matchesTheReferenceOutput(String name, SparsityPattern pattern, Optional<QuantizationSpec> quant) {
        SparseGptSolver solver = new SparseGptSolver(backend, SolverOptions.DEFAULT);
        PruneResult res = solver.prune(TENSOR, ref.get("W"), ROWS, COLS, factor, pattern, quant);
        float[] expected = ref.get(name);
        double agreement = TestMath.zeroAgreement(res.weights(), expected);
        double rel = TestMath.relFrobenius(res.weights(), expected);
        System.out.printf("reference %-15s mask agreement %.6f  relative Frobenius error %.3e  (solve %.3f s)%n",
                name, agreement, rel, res.solveNanos() / 1e9);
        assertThat(agreement).as(name + " mask agreement").isGreaterThanOrEqualTo(0.999);
        assertThat(rel).as(name + " relative Frobenius error").isLessThanOrEqualTo(1e-4);
        int maskedNonZero = 0;
        for (int r = 0; r < ROWS; r++) {
            for (int c = 0; c < COLS; c++) {
                if (res.mask().get(r, c) && res.weights()[r * COLS + c] != 0f) {
                    maskedNonZero++;
                }
            }
        }
        assertThat(maskedNonZero).as("pruned entries that are not zero").isZero();
        if (quant.isPresent()) {
            QuantizedWeights q = res.quantization().orElseThrow();
            assertThat(q.dequantize()).isEqualTo(res.weights()); // bitwise (Arrays.equals)
        }
    }

    @Test
    void plainJavaBackendGivesBitIdenticalResults() {
        try (CpuBackend scalar = CpuBackend.create(2, false)) {
            InverseFactor f = InverseFactor.compute(scalar, "model.layers.2.mlp.down_proj input", ref.get("H"), COLS, Dampening.DEFAULT);
            assertThat(f.upper()).isEqualTo(factor.upper());
            for (Arguments a : outputs().toList()) {
                SparsityPattern p = (SparsityPattern) a.get()[1];
                @SuppressWarnings("unchecked")
                Optional<QuantizationSpec> q = (Optional<QuantizationSpec>) a.get()[2];
                PruneResult ours = new SparseGptSolver(scalar, SolverOptions.DEFAULT).prune(TENSOR, ref.get("W"), ROWS, COLS, f, p, q);
                PruneResult simd = new SparseGptSolver(backend, SolverOptions.DEFAULT).prune(TENSOR, ref.get("W"), ROWS, COLS, factor, p, q);
                assertThat(ours.weights()).as(a.get()[0] + " " + scalar.name() + " vs " + backend.name()).isEqualTo(simd.weights());
            }
        }
    }

    @Test
    void beatsMagnitudeAndWandaOnTheLayerObjective() {
        float[] w = ref.get("W");
        float[] h = ref.get("H");
        SparseGptSolver solver = new SparseGptSolver(backend, SolverOptions.DEFAULT);
        // Wanda's norms: sqrt(Σ x_j²) is proportional to sqrt(H_jj); the scale does not change the masks
        double[] norms = new double[COLS];
        for (int j = 0; j < COLS; j++) {
            norms[j] = Math.sqrt(h[j * COLS + j]);
        }
        for (SparsityPattern p : new SparsityPattern[] {new SparsityPattern.Unstructured(0.5), new SparsityPattern.NofM(2, 4)}) {
            double sgpt = TestMath.hessianError(w, solver.prune(TENSOR, w, ROWS, COLS, factor, p, Optional.empty()).weights(), ROWS, COLS, h);
            double mag = TestMath.hessianError(w, MagnitudePruner.prune(TENSOR, w, ROWS, COLS, p).weights(), ROWS, COLS, h);
            double wanda = TestMath.hessianError(w, WandaPruner.prune(TENSOR, w, ROWS, COLS, norms, p).weights(), ROWS, COLS, h);
            System.out.printf("reference layer %-16s tr(dW H dWᵀ): sparsegpt %.4g  wanda %.4g  magnitude %.4g%n", p.spec(), sgpt, wanda, mag);
            assertThat(sgpt).as(p.spec()).isLessThan(wanda).isLessThan(mag);
        }
    }
}
