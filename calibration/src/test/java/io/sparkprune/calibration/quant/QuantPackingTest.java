package io.sparkprune.calibration.quant;

import io.sparkprune.calibration.CalibrationInputException;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class QuantPackingTest {
    private static final long SEED = new Random().nextLong();

    @Test
    void int8MatchesTheCompressedTensorsExample() {
        // compressed_tensors pack_to_int32 docstring: num_bits=8, [1, 2] -> [129, 130] -> 33409
        assertThat(QuantPacking.packRows(new byte[] {1, 2}, 1, 2, 8)).containsExactly(33409);
        assertThat(QuantPacking.unpackRows(new int[] {33409}, 1, 2, 8)).containsExactly(1, 2);
    }

    @Test
    void int4PacksEightNibblesLeastSignificantFirstWithOffsetBinary() {
        byte[] codes = new byte[16];
        for (int i = 0; i < 16; i++) {
            codes[i] = (byte) (i - 8); // -8 .. 7 -> unsigned 0 .. 15
        }
        int[] packed = QuantPacking.packRows(codes, 1, 16, 4);
        assertThat(packed).containsExactly(0x76543210, 0xFEDCBA98);
        assertThat(QuantPacking.unpackRows(packed, 1, 16, 4)).containsExactly(codes);
        // padding: 3 values -> one word, upper nibbles 0
        assertThat(QuantPacking.packRows(new byte[] {-1, 0, 7}, 1, 3, 4)).containsExactly(0x00000F87);
        // along columns (zero points): value i of a word comes from row i
        assertThat(QuantPacking.packColumns(new byte[] {-8, 5, 0, -1}, 2, 2, 4)).containsExactly(0x80, 0x7D); // column 0: -8 -> 0, 0 -> 8; column 1: 5 -> 13, -1 -> 7
    }

    @Test
    void randomCodesRoundTripBitExactlyIncludingNegativeOnes() {
        SplittableRandom r = new SplittableRandom(SEED);
        for (int bits : new int[] {2, 4, 8}) {
            for (int trial = 0; trial < 5; trial++) {
                int rows = 1 + r.nextInt(20);
                int cols = 1 + r.nextInt(70);
                byte[] codes = new byte[rows * cols];
                for (int i = 0; i < codes.length; i++) {
                    codes[i] = (byte) (r.nextInt(1 << bits) - (1 << (bits - 1)));
                }
                int f = 32 / bits;
                int[] p = QuantPacking.packRows(codes, rows, cols, bits);
                assertThat(p).hasSize(rows * ((cols + f - 1) / f));
                assertThat(QuantPacking.unpackRows(p, rows, cols, bits)).as("bits %d seed %d", bits, SEED).containsExactly(codes);
                int[] q = QuantPacking.packColumns(codes, rows, cols, bits);
                assertThat(q).hasSize(((rows + f - 1) / f) * cols);
                assertThat(QuantPacking.unpackColumns(q, rows, cols, bits)).as("bits %d seed %d", bits, SEED).containsExactly(codes);
                // every word holds the values at their documented bit positions
                for (int row = 0; row < rows; row++) {
                    for (int c = 0; c < cols; c++) {
                        int word = p[row * ((cols + f - 1) / f) + c / f];
                        int field = (word >>> (bits * (c % f))) & ((1 << bits) - 1);
                        assertThat(field).isEqualTo(codes[row * cols + c] + (1 << (bits - 1)));
                    }
                }
            }
        }
    }

    @Test
    void outOfRangeCodesAndUnsupportedWidthsAreRejected() {
        assertThatThrownBy(() -> QuantPacking.packRows(new byte[] {8}, 1, 1, 4)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("code 8 at index 0");
        assertThatThrownBy(() -> QuantPacking.packRows(new byte[] {0}, 1, 1, 3)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> QuantPacking.toCodes(new int[] {-9}, 4)).isInstanceOf(IllegalArgumentException.class);
        assertThat(QuantPacking.toCodes(new int[] {-8, 7}, 4)).containsExactly(-8, 7);
    }

    @Test
    void specValidatesBitsAndGroups() {
        assertThatThrownBy(() -> QuantizationSpec.perChannel(9, false)).isInstanceOf(CalibrationInputException.class)
                .hasMessageContaining("2..8, got 9");
        assertThatThrownBy(() -> QuantizationSpec.grouped(4, true, 0)).isInstanceOf(CalibrationInputException.class);
        QuantizationSpec s = QuantizationSpec.grouped(4, true, 128);
        assertThat(s.groups(4096)).isEqualTo(32);
        assertThat(s.minCode()).isEqualTo(-8);
        assertThat(s.maxCode()).isEqualTo(7);
        assertThat(s.describe()).isEqualTo("int4 symmetric group 128");
        assertThat(QuantizationSpec.perChannel(8, false).groups(4096)).isEqualTo(1);
    }
}
