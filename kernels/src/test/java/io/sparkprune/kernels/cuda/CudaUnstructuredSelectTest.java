package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.MaskBits;
import io.sparkprune.kernels.ResidentSolver.SolveJob;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The one-launch unstructured selection ({@link CudaBackend.UnstructuredSelect#FUSED}: unstr_select_r16 /
 * unstr_select_g) against the 11-launch chain ({@link CudaBackend.UnstructuredSelect#RADIX4}) through whole
 * resident solves with the in-solve 50 % unstructured rule (mask scope all_rows): the mask bits, the pruned
 * W and the per-row losses must be bitwise equal (the solve is deterministic given the masks, so any
 * difference is a selection difference). Fresh random inputs (the seed is in every message): 4096, 11008
 * and 14336 rows × 256 columns (two 128-column blocks), few distinct values (many ties at the threshold),
 * bf16-rounded weights, 60 % exact zeros, all-equal keys, blocks 6 and 100 columns wide, and the grid
 * capped at 1, 3 and 7 thread blocks (the global-memory variant with long ranges per block). The first
 * block's mask is also checked against an independent host selection (a stable sort of the fp32 keys
 * {@code (w·w)/(d·d)}: Java's float arithmetic rounds as the kernels' {@code __f*_rn}). Skipped, with the
 * reason, when no CUDA device is usable.
 */
@Tag("gpu")
class CudaUnstructuredSelectTest extends CudaSuite {
    @AfterEach
    void restore() {
        if (gpu != null) {
            gpu.unstructuredSelect(CudaBackend.UnstructuredSelect.FUSED);
            gpu.selectGridLimit(Integer.MAX_VALUE);
        }
    }

    /** The inputs of one solve and how W was drawn. */
    private record Input(String kind, int rows, int cols, int bs, float[] w, float[] u) {
    }

    /** One solve's outputs. */
    private record Output(long[] bits, float[] w, double[] loss) {
    }

    private static Input input(SplittableRandom r, String kind, int rows, int cols, int bs) {
        float[] u = CudaBackendParityTest.inverseFactor(r, cols);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            switch (kind) {
                case "few" -> w[i] = 0.25f * (r.nextInt(5) - 2);
                case "bf16" -> w[i] = Float.intBitsToFloat(Float.floatToRawIntBits((float) r.nextGaussian()) & 0xFFFF0000);
                case "zeros" -> w[i] = r.nextInt(10) < 6 ? 0f : (float) r.nextGaussian();
                case "equal" -> w[i] = 0.5f;
                default -> w[i] = (float) r.nextGaussian();
            }
        }
        if (kind.equals("equal")) {
            for (int i = 0; i < cols; i++) {
                u[i * cols + i] = 1f; // every key of the first block equal
            }
        }
        return new Input(kind, rows, cols, bs, w, u);
    }

    private static Output solve(Input in, CudaBackend.UnstructuredSelect mode, double p) {
        gpu.unstructuredSelect(mode);
        float[] w = in.w().clone();
        long[] bits = new long[SolveJob.maskWords(in.rows(), in.cols())];
        double[] loss = new double[in.rows()];
        gpu.sparseGptSolve(new SolveJob(in.rows(), in.cols(), in.bs(), w, in.u(), 0, 0, null, null, bits, loss, p));
        return new Output(bits, w, loss);
    }

    /** Both modes on one input: bitwise equal outputs, and the first block's mask equal to the host selection. */
    private static void compare(Input in, double p, String tag) {
        Output radix = solve(in, CudaBackend.UnstructuredSelect.RADIX4, p);
        Output fused = solve(in, CudaBackend.UnstructuredSelect.FUSED, p);
        String what = tag + " " + in.kind() + " " + in.rows() + "x" + in.cols() + " bs " + in.bs() + " seed " + SEED;
        assertThat(fused.bits()).as("mask bits, fused vs radix4, " + what).isEqualTo(radix.bits());
        assertThat(fused.w()).as("pruned W, fused vs radix4, " + what).isEqualTo(radix.w());
        assertThat(fused.loss()).as("row losses, fused vs radix4, " + what).isEqualTo(radix.loss());
        int width = Math.min(in.bs(), in.cols());
        byte[] m = MaskBits.unpack(fused.bits(), in.rows(), in.cols());
        byte[] got = new byte[in.rows() * width];
        for (int row = 0; row < in.rows(); row++) {
            System.arraycopy(m, row * in.cols(), got, row * width, width);
        }
        assertThat(got).as("first block's mask vs the host selection, " + what)
                .isEqualTo(hostSelection(in, width, SolveJob.prunedPerBlock(p, in.rows() * width)));
        System.out.printf("unstructured select %s: fused == radix4 bitwise%n", what);
    }

    /** The k smallest keys (w·w)/(d·d) of the first block, ties to the lower row-major index; 1 = pruned. */
    private static byte[] hostSelection(Input in, int width, int k) {
        int n = in.rows() * width;
        long[] order = new long[n];
        for (int row = 0; row < in.rows(); row++) {
            for (int c = 0; c < width; c++) {
                float d = in.u()[c * in.cols() + c];
                float v = in.w()[row * in.cols() + c];
                float s = (v * v) / (d * d) + 0f;
                int e = row * width + c;
                order[e] = ((long) Float.floatToRawIntBits(s) << 32) | e; // keys ≥ 0: sorting the pair = by key, then index
            }
        }
        Arrays.sort(order);
        byte[] m = new byte[n];
        for (int j = 0; j < k; j++) {
            m[(int) (order[j] & 0xFFFFFFFFL)] = 1;
        }
        return m;
    }

    @Test
    void fusedEqualsRadix4OnTheBenchShapes() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED);
        for (int rows : new int[] {4096, 11008, 14336}) {
            compare(input(r, "random", rows, 256, 128), 0.5, "bench shape");
        }
    }

    @Test
    void fusedEqualsRadix4OnTiesZerosAndBf16() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        for (String kind : new String[] {"few", "bf16", "zeros", "equal"}) {
            compare(input(r, kind, 4096, 256, 128), 0.5, "ties");
        }
        compare(input(r, "few", 4096, 256, 128), 0.3, "ties at 30 %");
        compare(input(r, "few", 4096, 256, 128), 0.9, "ties at 90 %");
    }

    @Test
    void fusedEqualsRadix4OnNarrowBlocksAndFewRows() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        compare(input(r, "random", 4096, 12, 6), 0.5, "width 6");
        compare(input(r, "few", 4096, 12, 6), 0.5, "width 6");
        compare(input(r, "random", 11008, 200, 100), 0.5, "width 100");
        compare(input(r, "few", 37, 200, 100), 0.5, "width 100, 37 rows");
        compare(input(r, "random", 1, 12, 6), 0.5, "one row");
    }

    @Test
    void fusedEqualsRadix4WithFewThreadBlocks() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        for (int limit : new int[] {1, 3, 7}) {
            gpu.selectGridLimit(limit);
            compare(input(r, "few", 4096, 256, 128), 0.5, "grid limit " + limit);
            compare(input(r, "random", 1000, 200, 100), 0.5, "grid limit " + limit);
        }
    }
}
