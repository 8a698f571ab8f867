package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.sparsity.SparsityPattern;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@link PatternCheck} counts exactly the violations planted in otherwise valid shards, for N:M and
 * block patterns, in small shards and in shards large enough for its parallel row scan.
 */
class PatternCheckTest {

    @Test
    void countsPlantedNofMViolations() {
        SplittableRandom r = new SplittableRandom(3);
        for (int rows : new int[] {7, 600}) {
            int cols = 64;
            float[] dense = new float[rows * cols];
            float[] pruned = new float[rows * cols];
            for (int i = 0; i < dense.length; i++) {
                dense[i] = 1f + r.nextInt(9);
            }
            for (int row = 0; row < rows; row++) { // keep two of every four: valid 2:4
                for (int g = 0; g < cols; g += 4) {
                    int a = r.nextInt(4);
                    int b = (a + 1 + r.nextInt(3)) % 4;
                    pruned[row * cols + g + a] = dense[row * cols + g + a];
                    pruned[row * cols + g + b] = dense[row * cols + g + b];
                }
            }
            SparsityPattern p = new SparsityPattern.NofM(2, 4);
            assertThat(PatternCheck.violations(p, dense, pruned, rows, cols, null)).isZero();
            int planted = 0;
            for (int row = 0; row < rows; row += 3) { // a third kept entry in one group of every third row
                int g = 4 * r.nextInt(cols / 4);
                for (int j = 0; j < 4; j++) {
                    if (pruned[row * cols + g + j] == 0f) {
                        pruned[row * cols + g + j] = 5f;
                        planted++;
                        break;
                    }
                }
            }
            assertThat(PatternCheck.violations(p, dense, pruned, rows, cols, null)).as("rows %d", rows).isEqualTo(planted);
        }
    }

    @Test
    void countsPlantedBlockViolations() {
        for (int rows : new int[] {8, 1024}) {
            int cols = 32;
            float[] dense = new float[rows * cols];
            java.util.Arrays.fill(dense, 2f);
            float[] pruned = dense.clone();
            int tiles = 0;
            for (int r0 = 0; r0 < rows; r0 += 4) { // prune every other 4 × 4 tile whole: valid
                for (int c0 = (r0 / 4) % 2 * 4; c0 < cols; c0 += 8) {
                    for (int r = r0; r < r0 + 4; r++) {
                        for (int c = c0; c < c0 + 4; c++) {
                            pruned[r * cols + c] = 0f;
                        }
                    }
                    tiles++;
                }
            }
            SparsityPattern p = new SparsityPattern.Block(4, 4, 0.5);
            assertThat(PatternCheck.violations(p, dense, pruned, rows, cols, null)).isZero();
            int planted = 0;
            for (int r0 = 0; r0 < rows; r0 += 12) { // one kept entry inside a pruned tile every third tile row
                int c0 = (r0 / 4) % 2 * 4;
                pruned[(r0 + 1) * cols + c0 + 2] = 7f;
                planted++;
            }
            assertThat(tiles).isPositive();
            assertThat(PatternCheck.violations(p, dense, pruned, rows, cols, null)).as("rows %d", rows).isEqualTo(planted);
        }
    }
}
