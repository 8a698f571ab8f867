package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.TestMath;
import io.sparkprune.calibration.baseline.MagnitudePruner;
import io.sparkprune.calibration.baseline.WandaPruner;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.calibration.sparsity.MaskScope;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Optional;
import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Properties of the solver on random, LLM-like inputs with a fresh seed per run (printed in every
 * assertion message; rerun a failure by fixing {@link #SEED}).
 */
class SolverPropertyTest {
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

    /** A random layer: activations X, their Hessian, its factor, and a weight. */
    private record Problem(int rows, int cols, int tokens, float[] x, float[] w, HessianAccumulator acc, InverseFactor factor) {
    }

    private static Problem problem(SplittableRandom r, int rows, int cols, int tokens) {
        float[] x = TestMath.correlatedActivations(r, tokens, cols);
        HessianAccumulator acc = new HessianAccumulator("test input", cols);
        acc.add(backend, x, tokens);
        InverseFactor f = InverseFactor.compute(backend, acc, Dampening.DEFAULT);
        return new Problem(rows, cols, tokens, x, TestMath.randomWeights(r, rows, cols), acc, f);
    }

    private static String seed() {
        return "seed=" + SEED;
    }

    private static PruneResult solve(Problem p, SparsityPattern pattern, Optional<QuantizationSpec> q, MaskScope scope) {
        return new SparseGptSolver(backend, SolverOptions.DEFAULT.withMaskScope(scope))
                .prune("test.weight", p.w(), p.rows(), p.cols(), p.factor(), pattern, q);
    }

    @Test
    void nOfMHoldsInEveryRow() {
        SplittableRandom r = new SplittableRandom(SEED);
        Problem p = problem(r, 48, 384, 512);
        for (SparsityPattern.NofM nm : new SparsityPattern.NofM[] {new SparsityPattern.NofM(2, 4), new SparsityPattern.NofM(4, 8)}) {
            for (Optional<QuantizationSpec> q : Arrays.asList(Optional.<QuantizationSpec>empty(),
                    Optional.of(QuantizationSpec.grouped(4, true, 64)))) {
                PruneResult res = solve(p, nm, q, MaskScope.ALL_ROWS);
                for (int row = 0; row < p.rows(); row++) {
                    for (int g = 0; g < p.cols(); g += nm.m()) {
                        int nonZeros = 0;
                        for (int j = g; j < g + nm.m(); j++) {
                            if (res.weights()[row * p.cols() + j] != 0f) {
                                nonZeros++;
                            }
                        }
                        assertThat(nonZeros).as("%s %s row %d group %d %s", nm.spec(), q, row, g, seed()).isLessThanOrEqualTo(nm.n());
                        assertThat(res.mask().count(row, g, g + nm.m())).as("%s row %d group %d %s", nm.spec(), row, g, seed())
                                .isEqualTo(nm.m() - nm.n());
                    }
                }
            }
        }
    }

    @Test
    void unstructuredBlocksHitTheTargetExactly() {
        SplittableRandom r = new SplittableRandom(SEED);
        Problem p = problem(r, 40, 320, 400); // 320 = 128 + 128 + 64: a partial last block
        double sparsity = 0.3 + 0.6 * r.nextDouble();
        SparsityPattern.Unstructured un = new SparsityPattern.Unstructured(sparsity);
        PruneResult all = solve(p, un, Optional.empty(), MaskScope.ALL_ROWS);
        PruneResult perRow = solve(p, un, Optional.empty(), MaskScope.PER_ROW);
        for (int i1 = 0; i1 < p.cols(); i1 += 128) {
            int i2 = Math.min(p.cols(), i1 + 128);
            int width = i2 - i1;
            long inBlock = 0;
            for (int row = 0; row < p.rows(); row++) {
                inBlock += all.mask().count(row, i1, i2);
                assertThat(perRow.mask().count(row, i1, i2)).as("per-row p=%f block %d row %d %s", sparsity, i1, row, seed())
                        .isEqualTo((int) Math.round(sparsity * width));
            }
            assertThat(inBlock).as("all-rows p=%f block %d %s", sparsity, i1, seed())
                    .isEqualTo(SparseGptSolver.prunedPerBlock(sparsity, p.rows() * width))
                    .isEqualTo((long) Math.floor(sparsity * p.rows() * width) + 1);
        }
        for (PruneResult res : new PruneResult[] {all, perRow}) {
            for (int i = 0; i < res.weights().length; i++) {
                if (res.mask().get(i / p.cols(), i % p.cols())) {
                    assertThat(res.weights()[i]).isZero();
                }
            }
        }
        PruneResult none = solve(p, new SparsityPattern.Unstructured(0.0), Optional.empty(), MaskScope.ALL_ROWS);
        assertThat(none.mask().count()).isZero();
        assertThat(none.weights()).as("p = 0 without quantization changes nothing").containsExactly(p.w());
    }

    @Test
    void blockTilesAreAllPrunedOrAllKept() {
        SplittableRandom r = new SplittableRandom(SEED);
        Problem p = problem(r, 64, 256, 320);
        double sparsity = 0.2 + 0.6 * r.nextDouble();
        for (MaskScope scope : MaskScope.values()) {
            SparsityPattern.Block bl = new SparsityPattern.Block(16, 16, sparsity);
            PruneResult res = solve(p, bl, Optional.empty(), scope);
            for (int i1 = 0; i1 < p.cols(); i1 += 128) {
                int prunedTiles = 0;
                for (int b = 0; b < p.rows() / 16; b++) {
                    int bandTiles = 0;
                    for (int t = i1; t < i1 + 128; t += 16) {
                        int c = 0;
                        for (int rr = b * 16; rr < b * 16 + 16; rr++) {
                            c += res.mask().count(rr, t, t + 16);
                        }
                        assertThat(c).as("%s %s tile (%d,%d) %s", bl.spec(), scope, b, t, seed()).isIn(0, 256);
                        if (c == 256) {
                            prunedTiles++;
                            bandTiles++;
                            for (int rr = b * 16; rr < b * 16 + 16; rr++) {
                                for (int cc = t; cc < t + 16; cc++) {
                                    assertThat(res.weights()[rr * p.cols() + cc]).isZero();
                                }
                            }
                        }
                    }
                    if (scope == MaskScope.PER_ROW) {
                        assertThat(bandTiles).as("band %d block %d %s", b, i1, seed()).isEqualTo((int) Math.round(sparsity * 8));
                    }
                }
                if (scope == MaskScope.ALL_ROWS) {
                    assertThat(prunedTiles).as("block %d %s", i1, seed()).isEqualTo((int) Math.round(sparsity * 4 * 8));
                }
            }
        }
    }

    @Test
    void quantizedValuesLieOnTheGridAndPrunedOnesAreExactlyZero() {
        SplittableRandom r = new SplittableRandom(SEED);
        Problem p = problem(r, 32, 384, 400);
        int[] groupSizes = {0, 32, 64, 128};
        for (int trial = 0; trial < 6; trial++) {
            int bits = 2 + r.nextInt(7);
            boolean sym = r.nextBoolean();
            int gs = groupSizes[r.nextInt(groupSizes.length)];
            QuantizationSpec spec = new QuantizationSpec(bits, sym, gs);
            SparsityPattern pattern = trial % 2 == 0 ? new SparsityPattern.NofM(2, 4) : new SparsityPattern.Unstructured(0.5);
            PruneResult res = solve(p, pattern, Optional.of(spec), MaskScope.ALL_ROWS);
            QuantizedWeights q = res.quantization().orElseThrow();
            String msg = spec.describe() + " " + pattern.spec() + " " + seed();
            assertThat(q.dequantize()).as(msg).containsExactly(res.weights());
            assertThat(q.groups()).isEqualTo(gs == 0 ? 1 : p.cols() / gs);
            for (int row = 0; row < p.rows(); row++) {
                for (int c = 0; c < p.cols(); c++) {
                    int code = q.codes()[row * p.cols() + c];
                    int g = row * q.groups() + (gs == 0 ? 0 : c / gs);
                    assertThat(code).as(msg).isBetween(spec.minCode(), spec.maxCode());
                    assertThat(q.scales()[g]).as(msg).isPositive();
                    if (sym) {
                        assertThat(q.zeroPoints()[g]).as(msg).isZero();
                    } else {
                        assertThat(q.zeroPoints()[g]).as(msg).isBetween(spec.minCode(), spec.maxCode());
                    }
                    float v = res.weights()[row * p.cols() + c];
                    // on the grid: an integer number of steps from the zero point
                    assertThat(v).as(msg).isEqualTo(q.scales()[g] * (float) (code - q.zeroPoints()[g]));
                    if (res.mask().get(row, c)) {
                        assertThat(v).as(msg).isZero();
                        assertThat(code).as(msg).isEqualTo(q.zeroPoints()[g]);
                    }
                }
            }
        }
    }

    /**
     * The OBS identity: with {@code H + λI = (UᵀU)⁻¹}, each row's errors satisfy
     * {@code w - ŵ = e·U}, so {@code Σ e_i² = (w - ŵ)(H + λI)(w - ŵ)ᵀ = ‖(w - ŵ)·L‖²} with L the lower
     * Cholesky factor of {@code H + λI}.
     */
    @Test
    void reportedLossEqualsTheMeasuredHessianError() {
        SplittableRandom r = new SplittableRandom(SEED);
        Problem p = problem(r, 24, 256, 300);
        int n = p.cols();
        double[] hd = p.acc().hessian();
        for (int i = 0; i < n; i++) {
            hd[i * n + i] += p.factor().lambda();
        }
        double[] l = hd.clone();
        assertThat(backend.cholesky(n, l, 0, n, false)).isTrue();
        SparsityPattern[] patterns = {new SparsityPattern.Unstructured(0.6), new SparsityPattern.NofM(2, 4),
            new SparsityPattern.Block(8, 16, 0.5)};
        for (SparsityPattern pattern : patterns) {
            for (Optional<QuantizationSpec> q : Arrays.asList(Optional.<QuantizationSpec>empty(),
                    Optional.of(QuantizationSpec.perChannel(4, false)))) {
                PruneResult res = solve(p, pattern, q, MaskScope.ALL_ROWS);
                double[] delta = new double[p.rows() * n];
                for (int i = 0; i < delta.length; i++) {
                    delta[i] = (double) p.w()[i] - res.weights()[i];
                }
                double[] quad = TestMath.rowQuadraticForms(delta, p.rows(), n, hd);
                for (int row = 0; row < p.rows(); row++) {
                    double dl = 0;
                    for (int j = 0; j < n; j++) {
                        double s = 0;
                        for (int i = j; i < n; i++) {
                            s += delta[row * n + i] * l[i * n + j];
                        }
                        dl += s * s;
                    }
                    String msg = pattern.spec() + " " + q + " row " + row + " " + seed();
                    assertThat(dl).as(msg).isCloseTo(quad[row], org.assertj.core.data.Percentage.withPercentage(1e-6));
                    assertThat(res.rowLoss()[row]).as(msg).isCloseTo(quad[row], org.assertj.core.data.Percentage.withPercentage(0.1));
                }
            }
        }
    }

    @Test
    void reconstructionErrorIsLowerThanMagnitudeAndWanda() {
        SplittableRandom r = new SplittableRandom(SEED);
        Problem p = problem(r, 64, 256, 512);
        for (SparsityPattern pattern : new SparsityPattern[] {new SparsityPattern.Unstructured(0.5), new SparsityPattern.NofM(2, 4),
            new SparsityPattern.NofM(4, 8), new SparsityPattern.Block(16, 16, 0.4)}) {
            PruneResult res = solve(p, pattern, Optional.empty(), MaskScope.ALL_ROWS);
            double ours = TestMath.outputError(p.w(), res.weights(), p.rows(), p.cols(), p.x(), p.tokens());
            double mag = TestMath.outputError(p.w(), MagnitudePruner.prune("w", p.w(), p.rows(), p.cols(), pattern).weights(),
                    p.rows(), p.cols(), p.x(), p.tokens());
            double wanda = TestMath.outputError(p.w(), WandaPruner.prune("w", p.w(), p.rows(), p.cols(), p.acc().inputNorms(),
                    pattern).weights(), p.rows(), p.cols(), p.x(), p.tokens());
            assertThat(ours).as("%s ||(W - What) X||^2 sparsegpt vs magnitude %s", pattern.spec(), seed()).isLessThan(mag);
            assertThat(ours).as("%s sparsegpt vs wanda %s", pattern.spec(), seed()).isLessThan(wanda);
        }
    }

    @Test
    void rowShardsReproduceRowIndependentPatternsExactly() {
        SplittableRandom r = new SplittableRandom(SEED);
        Problem p = problem(r, 48, 256, 300);
        int r0 = 16;
        int r1 = 40;
        float[] shard = Arrays.copyOfRange(p.w(), r0 * p.cols(), r1 * p.cols());
        for (SparsityPattern pattern : new SparsityPattern[] {new SparsityPattern.NofM(2, 4), new SparsityPattern.Unstructured(0.5)}) {
            MaskScope scope = MaskScope.PER_ROW;
            Optional<QuantizationSpec> q = Optional.of(QuantizationSpec.grouped(4, false, 32));
            SparseGptSolver solver = new SparseGptSolver(backend, SolverOptions.DEFAULT.withMaskScope(scope));
            PruneResult full = solver.prune("w", p.w(), p.rows(), p.cols(), p.factor(), pattern, q);
            PruneResult part = solver.prune("w", shard, r1 - r0, p.cols(), p.factor(), pattern, q);
            assertThat(part.weights()).as(pattern.spec() + " " + seed())
                    .containsExactly(Arrays.copyOfRange(full.weights(), r0 * p.cols(), r1 * p.cols()));
            assertThat(part.rowLoss()).containsExactly(Arrays.copyOfRange(full.rowLoss(), r0, r1));
        }
        // all-rows unstructured on a shard ranks the shard alone: still exactly p-sparse per block
        PruneResult part = solve(new Problem(r1 - r0, p.cols(), p.tokens(), p.x(), shard, p.acc(), p.factor()),
                new SparsityPattern.Unstructured(0.5), Optional.empty(), MaskScope.ALL_ROWS);
        for (int i1 = 0; i1 < p.cols(); i1 += 128) {
            long c = 0;
            for (int row = 0; row < r1 - r0; row++) {
                c += part.mask().count(row, i1, i1 + 128);
            }
            assertThat(c).isEqualTo(SparseGptSolver.prunedPerBlock(0.5, (r1 - r0) * 128));
        }
    }

    @Test
    void deadInputsGetZeroWeightColumns() {
        SplittableRandom r = new SplittableRandom(SEED);
        int cols = 128;
        int tokens = 200;
        float[] x = TestMath.correlatedActivations(r, tokens, cols);
        int dead1 = r.nextInt(cols);
        int dead2 = (dead1 + 1 + r.nextInt(cols - 1)) % cols;
        for (int t = 0; t < tokens; t++) {
            x[t * cols + dead1] = 0f;
            x[t * cols + dead2] = 0f;
        }
        HessianAccumulator acc = new HessianAccumulator("dead input", cols);
        acc.add(backend, x, tokens);
        InverseFactor f = InverseFactor.compute(backend, acc, Dampening.DEFAULT);
        assertThat(f.deadCount()).isEqualTo(2);
        assertThat(f.isDead(dead1)).isTrue();
        assertThat(f.isDead(dead2)).isTrue();
        float[] w = TestMath.randomWeights(r, 16, cols);
        PruneResult res = new SparseGptSolver(backend, SolverOptions.DEFAULT)
                .prune("w", w, 16, cols, f, new SparsityPattern.NofM(2, 4), Optional.empty());
        for (int row = 0; row < 16; row++) {
            assertThat(res.weights()[row * cols + dead1]).as(seed()).isZero();
            assertThat(res.weights()[row * cols + dead2]).as(seed()).isZero();
        }
    }
}
