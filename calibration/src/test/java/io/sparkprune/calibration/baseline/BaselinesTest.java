package io.sparkprune.calibration.baseline;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.TestMath;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class BaselinesTest {
    private static final long SEED = new Random().nextLong();

    @Test
    void magnitudeUsesOneThresholdForTheMatrix() {
        SplittableRandom r = new SplittableRandom(SEED);
        int rows = 30;
        int cols = 200;
        float[] w = TestMath.randomWeights(r, rows, cols);
        double p = r.nextDouble();
        MaskedWeights m = MagnitudePruner.prune("w", w, rows, cols, new SparsityPattern.Unstructured(Math.min(p, 0.99)));
        assertThat(m.mask().count()).isEqualTo(Math.round(Math.min(p, 0.99) * rows * cols));
        float maxPruned = 0;
        float minKept = Float.MAX_VALUE;
        for (int i = 0; i < w.length; i++) {
            if (m.mask().get(i / cols, i % cols)) {
                maxPruned = Math.max(maxPruned, Math.abs(w[i]));
                assertThat(m.weights()[i]).isZero();
            } else {
                minKept = Math.min(minKept, Math.abs(w[i]));
                assertThat(m.weights()[i]).isEqualTo(w[i]);
            }
        }
        assertThat(maxPruned).as("seed=%d", SEED).isLessThanOrEqualTo(minKept);
    }

    @Test
    void wandaComparesWithinEachRowByWeightTimesInputNorm() {
        SplittableRandom r = new SplittableRandom(SEED);
        int rows = 12;
        int cols = 64;
        float[] w = TestMath.randomWeights(r, rows, cols);
        double[] norms = new double[cols];
        for (int j = 0; j < cols; j++) {
            norms[j] = Math.exp(r.nextGaussian());
        }
        MaskedWeights m = WandaPruner.prune("w", w, rows, cols, norms, new SparsityPattern.Unstructured(0.5));
        for (int row = 0; row < rows; row++) {
            assertThat(m.mask().countRow(row)).isEqualTo(32);
            double maxPruned = 0;
            double minKept = Double.MAX_VALUE;
            for (int j = 0; j < cols; j++) {
                double s = Math.abs(w[row * cols + j]) * (float) norms[j];
                if (m.mask().get(row, j)) {
                    maxPruned = Math.max(maxPruned, s);
                } else {
                    minKept = Math.min(minKept, s);
                }
            }
            assertThat(maxPruned).as("row %d seed %d", row, SEED).isLessThanOrEqualTo(minKept);
        }
        assertThatThrownBy(() -> WandaPruner.prune("w", w, rows, cols, new double[3], new SparsityPattern.NofM(2, 4)))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("needs 64 input norms, got 3");
    }

    @Test
    void nOfMAndBlocksPerGroup() {
        SplittableRandom r = new SplittableRandom(SEED);
        int rows = 16;
        int cols = 64;
        float[] w = TestMath.randomWeights(r, rows, cols);
        MaskedWeights nm = MagnitudePruner.prune("w", w, rows, cols, new SparsityPattern.NofM(2, 4));
        for (int row = 0; row < rows; row++) {
            for (int g = 0; g < cols; g += 4) {
                assertThat(nm.mask().count(row, g, g + 4)).isEqualTo(2);
                for (int j = g; j < g + 4; j++) {
                    for (int k = g; k < g + 4; k++) {
                        if (nm.mask().get(row, j) && !nm.mask().get(row, k)) {
                            assertThat(Math.abs(w[row * cols + j])).isLessThanOrEqualTo(Math.abs(w[row * cols + k]));
                        }
                    }
                }
            }
        }
        MaskedWeights bl = MagnitudePruner.prune("w", w, rows, cols, new SparsityPattern.Block(4, 8, 0.5));
        int tiles = 0;
        for (int b = 0; b < rows; b += 4) {
            for (int t = 0; t < cols; t += 8) {
                int c = 0;
                for (int rr = b; rr < b + 4; rr++) {
                    c += bl.mask().count(rr, t, t + 8);
                }
                assertThat(c).isIn(0, 32);
                tiles += c / 32;
            }
        }
        assertThat(tiles).isEqualTo(16);
    }
}
