package io.sparkprune.calibration.sparsity;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link BitMask#fromBytes} against bit-by-bit {@link BitMask#set}, across word edges and the parallel path;
 * {@link BitMask#ofWords} against {@link BitMask#fromBytes} and its refusals.
 */
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
    /** Words packed here bit by bit (column c of row r at bit c % 64 of word r·wpr + c / 64). */
    private static long[] packByHand(byte[] b, int rows, int cols) {
        int wpr = (cols + 63) / 64;
        long[] w = new long[rows * wpr];
        for (int i = 0; i < b.length; i++) {
            if (b[i] != 0) {
                int c = i % cols;
                w[(i / cols) * wpr + c / 64] |= 1L << (c % 64);
            }
        }
        return w;
    }

    @Test
    void ofWordsRoundTripsWithFromBytes() {
        SplittableRandom r = new SplittableRandom(6);
        int[][] shapes = {{0, 7}, {3, 0}, {1, 1}, {5, 63}, {4, 64}, {7, 65}, {200, 900}};
        for (int[] s : shapes) {
            int rows = s[0];
            int cols = s[1];
            byte[] b = new byte[rows * cols];
            for (int i = 0; i < b.length; i++) {
                b[i] = (byte) (r.nextInt(3) == 0 ? 1 + r.nextInt(255) : 0);
            }
            long[] words = packByHand(b, rows, cols);
            BitMask m = BitMask.ofWords(rows, cols, words);
            assertThat(m).as("%dx%d", rows, cols).isEqualTo(BitMask.fromBytes(b, rows, cols));
            long pruned = 0;
            for (int i = 0; i < b.length; i++) {
                assertThat(m.get(i / cols, i % cols)).as("%dx%d entry %d", rows, cols, i).isEqualTo(b[i] != 0);
                pruned += b[i] != 0 ? 1 : 0;
            }
            assertThat(m.count()).isEqualTo(pruned);
        }
    }

    @Test
    void ofWordsKeepsTheArray() {
        long[] words = new long[2 * 2];
        BitMask m = BitMask.ofWords(2, 100, words);
        m.set(1, 70);
        assertThat(words[3]).isEqualTo(1L << 6);
    }

    @Test
    void ofWordsRefusesAWrongLengthOrBitsBeyondTheColumns() {
        assertThatThrownBy(() -> BitMask.ofWords(3, 65, new long[5])).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("3 x 65").hasMessageContaining("= 6 words, got 5");
        assertThatThrownBy(() -> BitMask.ofWords(3, 64, new long[4])).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("3 x 64");
        long[] stray = new long[3 * 2];
        stray[3] = 1L << 1; // row 1, column 65 of a 65-column mask
        assertThatThrownBy(() -> BitMask.ofWords(3, 65, stray)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("3 x 65").hasMessageContaining("row 1").hasMessageContaining("column 65");
        long[] top = new long[2];
        top[1] = Long.MIN_VALUE; // bit 63 of row 1: column 63 of a 10-column mask
        assertThatThrownBy(() -> BitMask.ofWords(2, 10, top)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("row 1").hasMessageContaining("column 63");
        long[] full = {-1L, -1L};
        assertThat(BitMask.ofWords(1, 128, full).count()).isEqualTo(128); // no columns past 128: every bit is a column
        assertThatThrownBy(() -> BitMask.ofWords(-1, 4, new long[0])).isInstanceOf(IllegalArgumentException.class);
    }
}
