package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.solver.PruneResult;
import io.sparkprune.calibration.solver.SolverOptions;
import io.sparkprune.calibration.solver.SparseGptSolver;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.cpu.CpuBackend;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The per-tensor row-loss summary of report.json on a small layer solved by SparseGPT: each row's
 * loss is first recomputed from its definition, (w − ŵ)(H + λI)(w − ŵ)ᵀ with the solver's λ
 * (PruneResult#rowLoss), and the summary of the solver's losses split into two row shards is
 * checked against order statistics taken by hand (n = 40 rows: p50 halfway between the 20th and
 * 21st smallest, p90 at rank 35.1).
 */
class RowLossSummaryTest {

    @Test
    void summaryOfTheSolversPerRowLosses() {
        int rows = 40;
        int cols = 32;
        int tokens = 200;
        SplittableRandom rnd = new SplittableRandom(11);
        float[] x = new float[tokens * cols];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian() * (1 + (i % cols) / 8f);
        }
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        PruneResult r;
        double[] h;
        try (CpuBackend be = CpuBackend.create(1)) {
            HessianAccumulator acc = new HessianAccumulator("in", cols);
            acc.add(be, x, tokens);
            h = acc.hessian();
            InverseFactor f = InverseFactor.compute(be, acc, Dampening.DEFAULT);
            r = new SparseGptSolver(be, SolverOptions.DEFAULT).prune("t", w, rows, cols, f, SparsityPattern.parse("2:4"),
                    Optional.empty());
        }
        double[] loss = r.rowLoss();
        assertThat(loss).hasSize(rows);
        for (int row = 0; row < rows; row++) {
            double s = 0;
            for (int i = 0; i < cols; i++) {
                double di = (double) w[row * cols + i] - r.weights()[row * cols + i];
                for (int j = 0; j < cols; j++) {
                    double dj = (double) w[row * cols + j] - r.weights()[row * cols + j];
                    s += di * (h[i * cols + j] + (i == j ? r.lambda() : 0)) * dj;
                }
            }
            assertThat(loss[row]).as("row %d", row).isCloseTo(s, within(1e-3 * s + 1e-9));
        }

        ObjectNode n = JsonNodeFactory.instance.objectNode();
        LayerMetrics.putRowLossSummary(n, List.of(Arrays.copyOfRange(loss, 24, 40), Arrays.copyOfRange(loss, 0, 24)));
        double[] sorted = loss.clone();
        Arrays.sort(sorted);
        assertThat(n.get("row_loss_min").asDouble()).isEqualTo(sorted[0]);
        assertThat(n.get("row_loss_max").asDouble()).isEqualTo(sorted[39]);
        assertThat(n.get("row_loss_p50").asDouble()).isCloseTo((sorted[19] + sorted[20]) / 2, within(1e-12 * sorted[39]));
        assertThat(n.get("row_loss_p90").asDouble()).isCloseTo(sorted[35] + 0.1 * (sorted[36] - sorted[35]),
                within(1e-12 * sorted[39]));
        assertThat(n.get("row_loss_mean").asDouble()).isCloseTo(r.totalLoss() / rows, within(1e-12 * r.totalLoss()));
        assertThat(n.get("row_loss_min").asDouble()).isPositive();
        assertThat(LayerMetrics.ROW_LOSS_FIELDS).allMatch(n::has);
    }
}
