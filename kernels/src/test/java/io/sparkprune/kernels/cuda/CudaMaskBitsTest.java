package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.ByteView;
import io.sparkprune.kernels.FloatView;
import io.sparkprune.kernels.MaskBits;
import io.sparkprune.kernels.ResidentSolver.BlockSelector;
import io.sparkprune.kernels.ResidentSolver.SolveJob;
import io.sparkprune.kernels.SparseGptBlock;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The resident solve's mask comes back as bits ({@link SolveJob#mask()}): the {@code pack_mask_bits}
 * kernel against {@link MaskBits#pack} on random byte masks, and whole solves of 200 × 900 (900 columns:
 * 15 words per row, the last one 4 columns wide) against the block-wise CPU loop for 2:4, the in-solve
 * unstructured selection and a host-selected mask.
 */
@Tag("gpu")
class CudaMaskBitsTest extends CudaSuite {
    @Test
    void packKernelEqualsBitByBitPacking() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED);
        // rows, cols, ldm: ragged last words, one column, exact words, a row stride wider than cols
        int[][] shapes = {{200, 900, 900}, {7, 1, 1}, {33, 64, 64}, {5, 130, 200}, {3, 127, 127}};
        for (int[] s : shapes) {
            int rows = s[0];
            int cols = s[1];
            int ldm = s[2];
            byte[] m = new byte[rows * ldm];
            for (int i = 0; i < m.length; i++) {
                m[i] = (byte) (r.nextInt(2) == 0 ? 0 : 1 + r.nextInt(255)); // any non-zero byte is "pruned"
            }
            byte[] dense = new byte[rows * cols];
            for (int row = 0; row < rows; row++) {
                System.arraycopy(m, row * ldm, dense, row * cols, cols);
            }
            int words = SolveJob.maskWords(rows, cols);
            long[] got = new long[words];
            try (DeviceBuffer dm = gpu.allocate(m.length, "test byte mask");
                 DeviceBuffer dout = gpu.allocate(8L * words, "test mask words")) {
                dm.upload(m, 0, m.length, 0);
                byte[] junk = new byte[8 * words];
                Arrays.fill(junk, (byte) 0xA5); // every word must be overwritten
                dout.upload(junk, 0, junk.length, 0);
                gpu.packMaskBits(rows, cols, dm.pointer(), ldm, dout.pointer(), true);
                dout.download(0, got, 0, words);
            }
            assertThat(got).as("%d x %d ldm %d seed %d", rows, cols, ldm, SEED).containsExactly(MaskBits.pack(dense, rows, cols));
        }
    }

    @Test
    void twoFourSolveMaskBitsEqualTheCpuMask() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        int rows = 200;
        int cols = 900;
        int bs = 128;
        float[] w0 = CudaBackendParityTest.randomF(r, rows * cols);
        float[] u = CudaBackendParityTest.inverseFactor(r, cols);
        long[] bits = new long[SolveJob.maskWords(rows, cols)];
        gpu.sparseGptSolve(new SolveJob(rows, cols, bs, w0.clone(), u, 2, 4, null, null, bits, new double[rows]));
        byte[] mc = cpuSolve(rows, cols, bs, w0.clone(), u, 2, 4, 0.0);
        byte[] mg = MaskBits.unpack(bits, rows, cols); // fails on a bit beyond column 900
        for (int row = 0; row < rows; row++) {
            for (int g = 0; g < cols; g += 4) {
                int n = mg[row * cols + g] + mg[row * cols + g + 1] + mg[row * cols + g + 2] + mg[row * cols + g + 3];
                assertThat(n).as("row %d group %d seed %d", row, g, SEED).isEqualTo(2);
            }
        }
        assertAgree("2:4 " + rows + "x" + cols, mg, mc);
    }

    @Test
    void inSolveUnstructuredMaskBitsEqualTheCpuMask() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        int rows = 200;
        int cols = 900;
        int bs = 128;
        double p = 0.5;
        float[] w0 = CudaBackendParityTest.randomF(r, rows * cols);
        float[] u = CudaBackendParityTest.inverseFactor(r, cols);
        long[] bits = new long[SolveJob.maskWords(rows, cols)];
        gpu.sparseGptSolve(new SolveJob(rows, cols, bs, w0.clone(), u, 0, 0, null, null, bits, new double[rows], p));
        byte[] mc = cpuSolve(rows, cols, bs, w0.clone(), u, 0, 0, p);
        byte[] mg = MaskBits.unpack(bits, rows, cols);
        for (int i1 = 0; i1 < cols; i1 += bs) {
            int width = Math.min(bs, cols - i1);
            int n = 0;
            for (int row = 0; row < rows; row++) {
                for (int i = 0; i < width; i++) {
                    n += mg[row * cols + i1 + i];
                }
            }
            assertThat(n).as("block %d seed %d", i1, SEED).isEqualTo(SolveJob.prunedPerBlock(p, rows * width));
        }
        assertAgree("unstructured 50% " + rows + "x" + cols, mg, mc);
    }

    /** A host selector whose mask does not depend on the weights: the bits must equal it exactly; blocks of 96 columns cross words. */
    @Test
    void hostSelectedMaskBitsEqualTheSelection() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        int rows = 200;
        int cols = 900;
        int bs = 96;
        byte[] chosen = new byte[rows * cols];
        for (int i = 0; i < chosen.length; i++) {
            chosen[i] = (byte) (r.nextInt(5) < 2 ? 1 : 0);
        }
        BlockSelector sel = (i1, width, bw, bm) -> {
            for (int row = 0; row < rows; row++) {
                System.arraycopy(chosen, row * cols + i1, bm, row * width, width);
            }
        };
        float[] w0 = CudaBackendParityTest.randomF(r, rows * cols);
        float[] u = CudaBackendParityTest.inverseFactor(r, cols);
        float[] wg = w0.clone();
        long[] bits = new long[SolveJob.maskWords(rows, cols)];
        gpu.sparseGptSolve(new SolveJob(rows, cols, bs, wg, u, 0, 0, sel, null, bits, new double[rows]));
        assertThat(bits).as("seed %d", SEED).containsExactly(MaskBits.pack(chosen, rows, cols));
        for (int i = 0; i < chosen.length; i++) {
            if (chosen[i] != 0) {
                assertThat(wg[i]).as("pruned weight %d seed %d", i, SEED).isZero();
            }
        }
    }

    /** The block-wise CPU loop (block solve, then the lazy update of every column right of the block); returns its byte mask. */
    private static byte[] cpuSolve(int rows, int cols, int bs, float[] w, float[] u, int nmKeep, int nmGroup,
                                   double unstructured) {
        byte[] mask = new byte[rows * cols];
        float[] err = new float[rows * bs];
        double[] loss = new double[rows];
        for (int i1 = 0; i1 < cols; i1 += bs) {
            int width = Math.min(bs, cols - i1);
            int i2 = i1 + width;
            if (unstructured > 0) {
                selectSmallest(rows, cols, i1, width, w, u, SolveJob.prunedPerBlock(unstructured, rows * width), mask, i1,
                        cols);
            }
            cpu.sparseGptBlock(new SparseGptBlock(rows, width, new FloatView(w, i1, cols), new FloatView(u, i1 * cols + i1, cols),
                    new FloatView(err, 0, width), new ByteView(mask, i1, cols), nmKeep, nmGroup, null, loss, 0));
            if (i2 < cols) {
                cpu.sgemm(false, false, rows, cols - i2, width, -1f, err, 0, width, u, i1 * cols + i2, cols, 1f, w, i2, cols);
            }
        }
        return mask;
    }

    /**
     * The in-solve unstructured rule: the k smallest {@code w² / U[i,i]²} (fp32) of the block (columns
     * {@code i1 .. i1 + width} of the rows × cols W and U) over all rows, ties to the lower row-major index;
     * marks them with 1 in {@code mask} at {@code maskOff + row·ldm + column in the block}.
     */
    static void selectSmallest(int rows, int cols, int i1, int width, float[] w, float[] u, int k, byte[] mask,
                               int maskOff, int ldm) {
        Integer[] idx = new Integer[rows * width];
        float[] s = new float[rows * width];
        for (int row = 0; row < rows; row++) {
            for (int i = 0; i < width; i++) {
                float d = u[(i1 + i) * cols + i1 + i];
                float v = w[row * cols + i1 + i];
                s[row * width + i] = (v * v) / (d * d);
                idx[row * width + i] = row * width + i;
            }
        }
        Arrays.sort(idx, (a, b) -> {
            int c = Float.compare(s[a], s[b]);
            return c != 0 ? c : Integer.compare(a, b);
        });
        for (int j = 0; j < k; j++) {
            int e = idx[j];
            mask[maskOff + (e / width) * ldm + e % width] = 1;
        }
    }

    /** At least 99.9 % of the entries agree (the device's lazy update rounds differently, so a near tie may flip). */
    private static void assertAgree(String tag, byte[] gpuMask, byte[] cpuMask) {
        int same = 0;
        for (int i = 0; i < gpuMask.length; i++) {
            same += gpuMask[i] == cpuMask[i] ? 1 : 0;
        }
        double agree = (double) same / gpuMask.length;
        System.out.printf("%s: device bits vs CPU mask %.6f seed=%d%n", tag, agree, SEED);
        assertThat(agree).as(tag + " seed " + SEED).isGreaterThanOrEqualTo(0.999);
    }
}
