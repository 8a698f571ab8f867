package io.sparkprune.calibration.sparsity;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** {@link BitMask#fromBytes} against bit-by-bit {@link BitMask#set}, across word edges and the parallel path. */
class BitMaskTest {

    @Test
    void fromBytesEqualsSettingEachNonZeroByte() {
        SplittableRandom r = new SplittableRandom(5);
        int[][] shapes = {{0, 7}, {3, 0}, {1, 1}, {5, 63}, {4, 64}, {7, 65}, {9, 130}, {1100, 1001}}; // last: parallel
        for (int[] s : shapes) {
            int rows = s[0];
            int cols = s[1];
            byte[] b = new byte[rows * cols];
            BitMask ref = new BitMask(rows, cols);
            for (int i = 0; i < b.length; i++) {
                if (r.nextInt(3) == 0) {
                    b[i] = (byte) (1 + r.nextInt(255));
                    ref.set(i / cols, i % cols);
                }
            }
            BitMask m = BitMask.fromBytes(b, rows, cols);
            assertThat(m.rows()).isEqualTo(rows);
            assertThat(m.cols()).isEqualTo(cols);
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    assertThat(m.get(i, j)).as("%dx%d (%d, %d)", rows, cols, i, j).isEqualTo(ref.get(i, j));
                }
            }
        }
        assertThatThrownBy(() -> BitMask.fromBytes(new byte[5], 2, 3)).isInstanceOf(IllegalArgumentException.class);
    }
}
