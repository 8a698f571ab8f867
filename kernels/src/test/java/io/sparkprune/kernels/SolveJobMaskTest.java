package io.sparkprune.kernels;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The bit mask of {@link ResidentSolver.SolveJob}: its size, block writes against {@link MaskBits}, and validation. */
class SolveJobMaskTest {

    @Test
    void maskWordsIsRowsTimesCeilColsOver64() {
        assertThat(ResidentSolver.SolveJob.maskWords(3, 64)).isEqualTo(3);
        assertThat(ResidentSolver.SolveJob.maskWords(3, 65)).isEqualTo(6);
        assertThat(ResidentSolver.SolveJob.maskWords(200, 900)).isEqualTo(200 * 15);
        assertThat(ResidentSolver.SolveJob.maskWords(0, 900)).isZero();
        assertThatThrownBy(() -> ResidentSolver.SolveJob.maskWords(1 << 20, 1 << 20))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("1048576 x 1048576");
    }

    /** Blocks of 48 columns (not word aligned, the last one 36 wide) written one by one equal the whole mask packed bit by bit. */
    @Test
    void blockBitsEqualTheWholeMaskPacked() {
        SplittableRandom r = new SplittableRandom(17);
        int rows = 13;
        int cols = 900;
        int bs = 48;
        byte[] full = new byte[rows * cols];
        for (int i = 0; i < full.length; i++) {
            full[i] = (byte) (r.nextInt(3) == 0 ? 1 + r.nextInt(255) : 0);
        }
        long[] words = new long[ResidentSolver.SolveJob.maskWords(rows, cols)];
        for (int i1 = 0; i1 < cols; i1 += bs) {
            int width = Math.min(bs, cols - i1);
            byte[] block = new byte[rows * width];
            for (int row = 0; row < rows; row++) {
                System.arraycopy(full, row * cols + i1, block, row * width, width);
            }
            ResidentSolver.SolveJob.setBlockBits(words, rows, cols, i1, width, block);
        }
        assertThat(words).containsExactly(MaskBits.pack(full, rows, cols));
        assertThat(MaskBits.unpack(words, rows, cols)).isEqualTo(nonZeroToOne(full));
    }

    @Test
    void blockOutsideTheMaskIsRefused() {
        long[] words = new long[ResidentSolver.SolveJob.maskWords(2, 100)];
        assertThatThrownBy(() -> ResidentSolver.SolveJob.setBlockBits(words, 2, 100, 64, 40, new byte[80]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("[64, 104)");
        assertThatThrownBy(() -> ResidentSolver.SolveJob.setBlockBits(new long[3], 2, 100, 0, 10, new byte[20]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("2 x 100");
    }

    @Test
    void validateRefusesAShortBitMask() {
        int rows = 5;
        int cols = 132;
        ResidentSolver.SolveJob ok = new ResidentSolver.SolveJob(rows, cols, 64, new float[rows * cols],
                new float[cols * cols], 2, 4, null, null, new long[rows * 3], new double[rows]);
        ok.validate();
        ResidentSolver.SolveJob shortMask = new ResidentSolver.SolveJob(rows, cols, 64, new float[rows * cols],
                new float[cols * cols], 2, 4, null, null, new long[rows * 3 - 1], new double[rows]);
        assertThatThrownBy(shortMask::validate).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("14 words").hasMessageContaining("needs rows * ceil(cols / 64) = 15");
    }

    private static byte[] nonZeroToOne(byte[] b) {
        byte[] o = new byte[b.length];
        for (int i = 0; i < b.length; i++) {
            o[i] = (byte) (b[i] != 0 ? 1 : 0);
        }
        return o;
    }
}
