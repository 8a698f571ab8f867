package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.NumericsException;
import io.sparkprune.calibration.SparsityPatternException;
import io.sparkprune.calibration.TestMath;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Bad inputs fail early with typed errors that name the tensor; rank deficiency is retried. */
class BadNumericsTest {
    private static final long SEED = new Random().nextLong();
    private static CpuBackend backend;

    @BeforeAll
    static void setUp() {
        backend = CpuBackend.create(2);
    }

    @AfterAll
    static void tearDown() {
        backend.close();
    }

    private static InverseFactor goodFactor(SplittableRandom r, int n) {
        float[] x = TestMath.correlatedActivations(r, 2 * n, n);
        HessianAccumulator acc = new HessianAccumulator("model.layers.0.mlp input", n);
        acc.add(backend, x, 2 * n);
        return InverseFactor.compute(backend, acc, Dampening.DEFAULT);
    }

    @Test
    void nanOrInfinityInTheWeightIsATypedErrorNamingTensorAndPosition() {
        SplittableRandom r = new SplittableRandom(SEED);
        InverseFactor f = goodFactor(r, 64);
        float[] w = TestMath.randomWeights(r, 8, 64);
        w[3 * 64 + 17] = Float.NaN;
        SparseGptSolver solver = new SparseGptSolver(backend, SolverOptions.DEFAULT);
        assertThatThrownBy(() -> solver.prune("model.layers.0.mlp.up_proj.weight", w, 8, 64, f, new SparsityPattern.NofM(2, 4), Optional.empty()))
                .isInstanceOf(NumericsException.class).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("model.layers.0.mlp.up_proj.weight").hasMessageContaining("NaN at [3, 17]");
        w[3 * 64 + 17] = Float.NEGATIVE_INFINITY;
        assertThatThrownBy(() -> solver.prune("model.layers.0.mlp.up_proj.weight", w, 8, 64, f, new SparsityPattern.Unstructured(0.5), Optional.empty()))
                .isInstanceOf(NumericsException.class).hasMessageContaining("-Infinity at [3, 17]");
    }

    @Test
    void nanOrInfinityInTheHessianOrActivationsIsATypedError() {
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 32;
        float[] x = TestMath.correlatedActivations(r, 64, n);
        double[] h = TestMath.naiveHessian(x, 64, n);
        h[5 * n + 9] = Double.POSITIVE_INFINITY;
        assertThatThrownBy(() -> InverseFactor.compute(backend, "model.layers.4.self_attn q/k/v input", h, n, Dampening.DEFAULT))
                .isInstanceOf(NumericsException.class)
                .hasMessageContaining("Hessian of model.layers.4.self_attn q/k/v input").hasMessageContaining("Infinity at [5, 9]");
        x[10 * n + 3] = Float.NaN;
        HessianAccumulator acc = new HessianAccumulator("model.layers.4.self_attn q/k/v input", n);
        assertThatThrownBy(() -> acc.add(backend, x, 64))
                .isInstanceOf(NumericsException.class).hasMessageContaining("row 10, feature 3")
                .hasMessageContaining("model.layers.4.self_attn q/k/v input");
        assertThat(acc.count()).isZero();
    }

    @Test
    void indefiniteHessianIsRetriedWithMoreDampeningAndLogged() {
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 96;
        // rank-deficient Gram matrix (24 samples in 96 dimensions) with a negative perturbation of
        // 5% of the mean diagonal, as a badly rounded Hessian would have: d = 0.01 cannot fix it,
        // d = 0.1 can
        float[] x = TestMath.correlatedActivations(r, 24, n);
        double[] h = TestMath.naiveHessian(x, 24, n);
        double mean = 0;
        for (int i = 0; i < n; i++) {
            mean += h[i * n + i] / n;
        }
        for (int i = 0; i < n; i++) {
            h[i * n + i] -= 0.05 * mean;
        }
        PrintStream old = System.err;
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        InverseFactor f;
        try {
            System.setErr(new PrintStream(log, true, StandardCharsets.UTF_8));
            f = InverseFactor.compute(backend, "model.layers.7.mlp.down_proj input", h, n, Dampening.DEFAULT);
        } finally {
            System.setErr(old);
        }
        assertThat(f.dampeningsTried()).as("seed=%d", SEED).containsExactly(0.01, 0.1);
        assertThat(f.dampening()).isEqualTo(0.1);
        assertThat(f.lambda()).isCloseTo(0.1 * mean * 0.95, org.assertj.core.data.Percentage.withPercentage(1e-9));
        assertThat(log.toString(StandardCharsets.UTF_8))
                .contains("WARN").contains("model.layers.7.mlp.down_proj input").contains("failed with dampening 0.01");
        // the factor is usable
        float[] w = TestMath.randomWeights(r, 4, n);
        PruneResult res = new SparseGptSolver(backend, SolverOptions.DEFAULT).prune("w", w, 4, n, f, new SparsityPattern.NofM(2, 4), Optional.empty());
        assertThat(res.dampening()).isEqualTo(0.1);
    }

    @Test
    void hopelessHessianNamesTheTensorAndTheDampeningsTried() {
        int n = 16;
        double[] h = new double[n * n];
        for (int i = 0; i < n; i++) {
            h[i * n + i] = 1.0;
        }
        h[3 * n + 3] = -100.0; // far below -mean(diag H)
        assertThatThrownBy(() -> InverseFactor.compute(backend, "model.layers.1.mlp gate/up input", h, n, Dampening.DEFAULT))
                .isInstanceOf(NumericsException.class)
                .hasMessageContaining("model.layers.1.mlp gate/up input")
                .hasMessageContaining("0.01, 0.1, 1.0")
                .hasMessageContaining("dampening");
    }

    @Test
    void shapesThatDoNotFitThePatternAreTypedErrorsNamingTheTensor() {
        SplittableRandom r = new SplittableRandom(SEED);
        int cols = 1030;
        InverseFactor f = goodFactor(r, cols);
        float[] w = TestMath.randomWeights(r, 4, cols);
        SparseGptSolver solver = new SparseGptSolver(backend, SolverOptions.DEFAULT);
        assertThatThrownBy(() -> solver.prune("model.layers.3.mlp.down_proj", w, 4, cols, f, SparsityPattern.parse("2:4"), Optional.empty()))
                .isInstanceOf(SparsityPatternException.class)
                .hasMessageStartingWith("2:4 pruning needs in_features divisible by 4, got 1030 for model.layers.3.mlp.down_proj");
        assertThatThrownBy(() -> solver.prune("model.layers.3.mlp.down_proj", w, 4, cols, f, SparsityPattern.parse("block:4x16:0.5"), Optional.empty()))
                .isInstanceOf(SparsityPatternException.class)
                .hasMessageContaining("in_features divisible by 16, got 1030 for model.layers.3.mlp.down_proj");
        // unstructured works on any shape, with a partial last block
        PruneResult ok = solver.prune("model.layers.3.mlp.down_proj", w, 4, cols, f, SparsityPattern.parse("unstructured:0.5"), Optional.empty());
        assertThat(ok.mask().count()).isPositive();

        InverseFactor f256 = goodFactor(r, 256);
        float[] w6 = TestMath.randomWeights(r, 6, 256);
        assertThatThrownBy(() -> solver.prune("model.layers.3.self_attn.o_proj", w6, 6, 256, f256, SparsityPattern.parse("block:4x16:0.5"), Optional.empty()))
                .isInstanceOf(SparsityPatternException.class)
                .hasMessageContaining("out_features divisible by 4, got 6 for model.layers.3.self_attn.o_proj");
        SparseGptSolver small = new SparseGptSolver(backend, new SolverOptions(96, io.sparkprune.calibration.sparsity.MaskScope.ALL_ROWS));
        assertThatThrownBy(() -> small.prune("t", w6, 6, 256, f256, SparsityPattern.parse("2:4"), Optional.of(QuantizationSpec.grouped(4, true, 64))))
                .isInstanceOf(CalibrationInputException.class)
                .hasMessageContaining("group size 64 must divide the solver block size 96 for t");
        assertThatThrownBy(() -> solver.prune("t", w6, 6, 256, f256, SparsityPattern.parse("2:4"), Optional.of(QuantizationSpec.grouped(4, true, 96))))
                .isInstanceOf(CalibrationInputException.class)
                .hasMessageContaining("in_features divisible by 96, got 256 for t");
        assertThatThrownBy(() -> solver.prune("model.layers.3.self_attn.o_proj", w, 4, cols, f256, SparsityPattern.parse("2:4"), Optional.empty()))
                .isInstanceOf(CalibrationInputException.class)
                .hasMessageContaining("in_features 1030").hasMessageContaining("256 x 256");
        assertThatThrownBy(() -> solver.prune("t", new float[10], 6, 256, f256, SparsityPattern.parse("2:4"), Optional.empty()))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("got 10");
    }
}
