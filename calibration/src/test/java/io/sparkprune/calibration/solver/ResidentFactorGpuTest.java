package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.NumericsException;
import io.sparkprune.calibration.TestMath;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.sparsity.MaskScope;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ResidentFactorizer;
import io.sparkprune.kernels.cuda.CudaBackend;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Optional;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The device-resident group path on {@link CudaBackend} ({@link InverseFactor#computeResident}: packed H
 * uploaded once, U kept on the device for the solves, H's device copy for the reconstruction-error
 * product) gives the same U, pruned weights, masks, row losses and {@code A·H} as the host path on the
 * same backend ({@link InverseFactor#compute} with its downloaded U, the dense fp32 H of
 * {@link HessianAccumulator#copyHessianTo(float[])} through an FP32 forward workspace), on random SPD
 * Hessians with a dead input, and on a rank-deficient one that needs the dampening retry; and that the
 * resident handles are released (the backend's {@link CudaBackend#openFactorCount()} returns to where it
 * was), also when factoring fails. The same kernels run in the same order on both paths, so equality is
 * exact. Skipped, with the reason, without a CUDA device.
 */
@Tag("gpu")
class ResidentFactorGpuTest extends io.sparkprune.calibration.GpuSuite {
    private static HessianAccumulator accumulator(SplittableRandom r, int tokens, int n, int dead) {
        float[] x = TestMath.correlatedActivations(r, tokens, n);
        if (dead >= 0) {
            for (int t = 0; t < tokens; t++) {
                x[t * n + dead] = 0f;
            }
        }
        HessianAccumulator acc = new HessianAccumulator("model.layers.0.mlp.down_proj input", n);
        acc.add(cpu, x, tokens); // the same host sum for both paths
        return acc;
    }

    static Stream<Arguments> cases() {
        return Stream.of(CudaBackend.SolveForm.values()).flatMap(form -> Stream.of(
                Arguments.of(form, new SparsityPattern.NofM(2, 4), MaskScope.ALL_ROWS, null),
                Arguments.of(form, new SparsityPattern.Unstructured(0.5), MaskScope.ALL_ROWS, null),
                Arguments.of(form, new SparsityPattern.Unstructured(0.5), MaskScope.PER_ROW, null),
                Arguments.of(form, new SparsityPattern.Block(4, 4, 0.5), MaskScope.ALL_ROWS, null),
                Arguments.of(form, new SparsityPattern.NofM(2, 4), MaskScope.ALL_ROWS, QuantizationSpec.grouped(4, true, 32))));
    }

    /**
     * The inverse form gives the host path's bits; the Cholesky form (R and U's band, another rounding of
     * the same function) agrees to fp32 accuracy: masks on ≥ 99.9 % of the entries, weights on the rows
     * whose masks agree.
     */
    @ParameterizedTest
    @MethodSource("cases")
    void residentGroupEqualsTheHostPath(CudaBackend.SolveForm form, SparsityPattern pattern, MaskScope scope,
                                        QuantizationSpec quant) {
        requireGpu();
        CudaBackend.SolveForm before0 = gpu.solveForm();
        gpu.solveForm(form);
        try {
            residentGroup(form, pattern, scope, quant);
        } finally {
            gpu.solveForm(before0);
        }
    }

    private void residentGroup(CudaBackend.SolveForm form, SparsityPattern pattern, MaskScope scope, QuantizationSpec quant) {
        SplittableRandom r = new SplittableRandom(SEED ^ pattern.hashCode() ^ scope.hashCode());
        int n = 320;
        int rows = 64;
        HessianAccumulator acc = accumulator(r, 900, n, 17);
        float[] w = TestMath.randomWeights(r, rows, n);
        SolverOptions opts = new SolverOptions(128, scope);
        int before = gpu.openFactorCount();

        InverseFactor fh = InverseFactor.compute(gpu, acc, Dampening.DEFAULT);
        PruneResult a = new SparseGptSolver(gpu, opts).prune("w", w, rows, n, fh, pattern, Optional.ofNullable(quant));
        float[] diff = new float[2 * rows * n];
        for (int i = 0; i < rows * n; i++) {
            diff[i] = w[i] - a.weights()[i];
            diff[rows * n + i] = w[i];
        }
        float[] hostH = new float[n * n];
        acc.copyHessianTo(hostH);
        float[] th;
        try (ForwardWorkspace ws = ForwardWorkspace.open(gpu, ForwardPrecision.FP32, "reconstruction error (host H)")) {
            ForwardWorkspace.Matrix tm = ws.allocate(2 * rows, n);
            ws.linear(ws.upload(diff, 2 * rows, n), ws.weight(hostH, n, n), null, tm);
            th = ws.download(tm);
        }

        PruneResult b;
        float[] tr = new float[2 * rows * n];
        try (InverseFactor fr = InverseFactor.computeResident(gpu, acc, Dampening.DEFAULT)) {
            assertThat(gpu.openFactorCount()).isEqualTo(before + 1);
            ResidentFactorizer.Factor dev = fr.residentOn(gpu);
            assertThat(dev).isNotNull();
            b = new SparseGptSolver(gpu, opts).prune("w", w, rows, n, fr, pattern, Optional.ofNullable(quant));
            dev.hessianProduct(2 * rows, diff, tr);
            double[] quad = new double[2 * rows];
            dev.rowQuadratics(2 * rows, diff, quad);
            // the device's fp64 row sums of the same products: equal to the host loop to fp64 rounding
            for (int qr = 0; qr < 2 * rows; qr++) {
                double s = 0;
                double mag = 0;
                for (int c = 0; c < n; c++) {
                    s += (double) diff[qr * n + c] * tr[qr * n + c];
                    mag += Math.abs((double) diff[qr * n + c] * tr[qr * n + c]);
                }
                assertThat(quad[qr]).as("row quadratic %d", qr).isCloseTo(s, org.assertj.core.data.Offset.offset(1e-12 * mag + 1e-300));
            }
            // the prune job's form: the two operands (w − ŵ, then w) in two calls, each row's sum the same bits as in
            // the stacked call (each output row of the product and each row sum depends on that row alone)
            double[] first = new double[rows];
            double[] second = new double[rows];
            dev.rowQuadratics(rows, java.util.Arrays.copyOfRange(diff, 0, rows * n), first);
            dev.rowQuadratics(rows, java.util.Arrays.copyOfRange(diff, rows * n, 2 * rows * n), second);
            assertThat(first).as("split row quadratics, w - w^").containsExactly(java.util.Arrays.copyOfRange(quad, 0, rows));
            assertThat(second).as("split row quadratics, w").containsExactly(java.util.Arrays.copyOfRange(quad, rows, 2 * rows));
            assertThat(fr.upperDiagonal()).as("seed %d", SEED).containsExactly(diagonal(fh.upper(), n));
            assertThat(fr.upper()).as("U, seed %d", SEED).containsExactly(fh.upper());
            assertThat(fr.dampening()).isEqualTo(fh.dampening());
            assertThat(fr.lambda()).isEqualTo(fh.lambda());
            assertThat(fr.deadCount()).isEqualTo(1);
            assertThat(fr.isDead(17)).isTrue();
        }
        assertThat(gpu.openFactorCount()).as("device memory released").isEqualTo(before);
        if (form == CudaBackend.SolveForm.INVERSE) {
            assertThat(b.weights()).as("pruned weights, seed %d", SEED).containsExactly(a.weights());
            assertThat(b.mask()).isEqualTo(a.mask());
            assertThat(b.rowLoss()).containsExactly(a.rowLoss());
            if (quant != null) {
                assertThat(b.quantization().orElseThrow().codes()).containsExactly(a.quantization().orElseThrow().codes());
            }
        } else {
            closeToTheHostPath(b, a, rows, n, quant != null);
        }
        assertThat(tr).as("A·H from the device H, seed %d", SEED).containsExactly(th);
        // and the metric is the right one: Σ_r a_r·(A·H)_r against fp64 on the host
        double num = 0;
        double ref = 0;
        for (int i = 0; i < rows * n; i++) {
            num += (double) diff[i] * tr[i];
        }
        for (int row = 0; row < rows; row++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int k = 0; k < n; k++) {
                    s += (double) hostH[j * n + k] * diff[row * n + k];
                }
                ref += diff[row * n + j] * s;
            }
        }
        assertThat(num).isCloseTo(ref, org.assertj.core.data.Percentage.withPercentage(1e-2));
    }

    /**
     * Masks on ≥ 99.9 % of the entries; weights (rel 1e-5) and row losses (rel 1e-4) on rows with equal masks
     * and, when quantized, equal codes (a code that rounds the other way at a tie moves its weight by a grid
     * step and every later column's update with it: that row follows another path, as a row with a flipped
     * mask does); codes on ≥ 99.9 % of the entries of rows with equal masks.
     */
    private static void closeToTheHostPath(PruneResult b, PruneResult a, int rows, int n, boolean quant) {
        int same = 0;
        double num = 0;
        double den = 0;
        double lNum = 0;
        double lDen = 0;
        int sameRows = 0;
        byte[] qb = quant ? b.quantization().orElseThrow().codes() : null;
        byte[] qa = quant ? a.quantization().orElseThrow().codes() : null;
        for (int r = 0; r < rows; r++) {
            boolean rowSame = true;
            for (int c = 0; c < n; c++) {
                boolean eq = b.mask().get(r, c) == a.mask().get(r, c);
                same += eq ? 1 : 0;
                rowSame &= eq && (!quant || qb[r * n + c] == qa[r * n + c]);
            }
            if (rowSame) {
                sameRows++;
                for (int c = 0; c < n; c++) {
                    double d = (double) b.weights()[r * n + c] - a.weights()[r * n + c];
                    num += d * d;
                    den += (double) a.weights()[r * n + c] * a.weights()[r * n + c];
                }
                double dl = b.rowLoss()[r] - a.rowLoss()[r];
                lNum += dl * dl;
                lDen += a.rowLoss()[r] * a.rowLoss()[r];
            }
        }
        String tag = String.format("Cholesky form vs host path: mask %.6f, %d of %d rows equal (masks and codes), seed %d",
                (double) same / (rows * n), sameRows, rows, SEED);
        assertThat((double) same / (rows * n)).as(tag).isGreaterThanOrEqualTo(0.999);
        assertThat(sameRows).as(tag).isGreaterThanOrEqualTo(rows * 95 / 100);
        assertThat(Math.sqrt(num / den)).as(tag).isLessThanOrEqualTo(1e-5);
        assertThat(Math.sqrt(lNum / Math.max(lDen, 1e-300))).as(tag).isLessThanOrEqualTo(1e-4);
        if (quant) { // on the rows whose masks agree (a row with a flipped mask follows another path)
            byte[] cb = b.quantization().orElseThrow().codes();
            byte[] ca = a.quantization().orElseThrow().codes();
            int eq = 0;
            int total = 0;
            for (int r = 0; r < rows; r++) {
                boolean rowSame = true;
                for (int c = 0; c < n && rowSame; c++) {
                    rowSame = b.mask().get(r, c) == a.mask().get(r, c);
                }
                for (int c = 0; rowSame && c < n; c++) {
                    eq += cb[r * n + c] == ca[r * n + c] ? 1 : 0;
                    total++;
                }
            }
            assertThat((double) eq / total).as(tag).isGreaterThanOrEqualTo(0.999);
        }
    }

    private static float[] diagonal(float[] u, int n) {
        float[] d = new float[n];
        for (int i = 0; i < n; i++) {
            d[i] = u[i * n + i];
        }
        return d;
    }

    @Test
    void rankDeficientHessianRetriesOnTheDeviceLikeTheHostPath() {
        requireGpu();
        SplittableRandom r = new SplittableRandom(SEED);
        int n = 192;
        HessianAccumulator acc = accumulator(r, 12, n, 5); // rank ≤ 12 in 192 dimensions, one dead input
        Dampening d = new Dampening(1e-300, 1e149, 1e-2); // λ ≈ 0 twice (the Cholesky fails), then 1e-2
        int before = gpu.openFactorCount();
        InverseFactor fh = InverseFactor.compute(gpu, acc, d);
        float[] w = TestMath.randomWeights(r, 32, n);
        // the retry and λ are the same in both forms; the exact comparison below needs the inverse form
        CudaBackend.SolveForm form0 = gpu.solveForm();
        try (InverseFactor fc = InverseFactor.computeResident(gpu, acc, d)) {
            assertThat(fc.dampeningsTried()).isEqualTo(fh.dampeningsTried());
            assertThat(fc.lambda()).isEqualTo(fh.lambda());
            assertThat(fc.upper()).as("U on demand from the Cholesky form").containsExactly(fh.upper());
        }
        PruneResult a = new SparseGptSolver(gpu, SolverOptions.DEFAULT).prune("w", w, 32, n, fh,
                new SparsityPattern.NofM(2, 4), Optional.empty());
        PruneResult b;
        gpu.solveForm(CudaBackend.SolveForm.INVERSE);
        try (InverseFactor fr = InverseFactor.computeResident(gpu, acc, d)) {
            assertThat(fr.dampeningsTried()).as("seed %d", SEED).hasSizeGreaterThanOrEqualTo(2)
                    .isEqualTo(fh.dampeningsTried());
            assertThat(fr.lambda()).isEqualTo(fh.lambda());
            b = new SparseGptSolver(gpu, SolverOptions.DEFAULT).prune("w", w, 32, n, fr, new SparsityPattern.NofM(2, 4),
                    Optional.empty());
            assertThat(fr.upper()).containsExactly(fh.upper());
        } finally {
            gpu.solveForm(form0);
        }
        assertThat(b.weights()).as("seed %d", SEED).containsExactly(a.weights());
        assertThat(b.mask()).isEqualTo(a.mask());
        assertThat(gpu.openFactorCount()).isEqualTo(before);
    }

    @Test
    void failedFactorReleasesTheDeviceMemory() {
        requireGpu();
        SplittableRandom r = new SplittableRandom(SEED);
        HessianAccumulator acc = accumulator(r, 12, 192, -1);
        int before = gpu.openFactorCount();
        assertThatThrownBy(() -> InverseFactor.computeResident(gpu, acc, new Dampening(1e-300, 10.0, 1e-299)))
                .isInstanceOf(NumericsException.class)
                .hasMessageContaining("model.layers.0.mlp.down_proj input")
                .hasMessageContaining("failed at every dampening");
        assertThat(gpu.openFactorCount()).isEqualTo(before);
    }

    @Test
    void upperAfterCloseWithoutACopyIsAClearError() {
        requireGpu();
        SplittableRandom r = new SplittableRandom(SEED);
        HessianAccumulator acc = accumulator(r, 300, 96, -1);
        InverseFactor f = InverseFactor.computeResident(gpu, acc, Dampening.DEFAULT);
        f.close();
        f.close(); // idempotent
        assertThatThrownBy(f::upper).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
    }
}
