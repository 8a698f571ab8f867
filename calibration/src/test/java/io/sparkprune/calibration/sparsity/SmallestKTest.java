package io.sparkprune.calibration.sparsity;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SmallestKTest {
    private static final long SEED = new Random().nextLong();

    @Test
    void marksExactlyTheKSmallestWithTiesByPosition() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (int n : new int[] {1, 5, 16, 17, 300, 4095, 4096, 20000}) {
            for (int trial = 0; trial < 3; trial++) {
                float[] s = new float[n + 3];
                for (int i = 0; i < s.length; i++) {
                    // few distinct values so that ties straddle the threshold; some zeros and -0
                    s[i] = trial == 0 ? (float) r.nextDouble() : (float) r.nextInt(5) * (trial == 2 ? 1e-30f : 0.5f);
                    if (r.nextInt(20) == 0) {
                        s[i] = -0.0f;
                    }
                }
                int k = r.nextInt(n + 1);
                byte[] out = new byte[n + 5];
                SmallestK.mark(s, 3, n, k, out, 2);
                Integer[] order = IntStream.range(0, n).boxed().toArray(Integer[]::new);
                Arrays.sort(order, Comparator.comparingDouble((Integer i) -> s[3 + i] + 0.0f).thenComparingInt(i -> i));
                byte[] expected = new byte[n + 5];
                for (int i = 0; i < k; i++) {
                    expected[2 + order[i]] = 1;
                }
                assertThat(out).as("n %d k %d trial %d seed %d", n, k, trial, SEED).containsExactly(expected);
            }
        }
        assertThatThrownBy(() -> SmallestK.mark(new float[] {1, -1}, 0, 2, 1, new byte[2], 0))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
