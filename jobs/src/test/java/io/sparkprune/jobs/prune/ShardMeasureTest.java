package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.quant.GridCheck;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The solve stage's fused host pass ({@link ShardMeasure#encode}) and its two-operand reconstruction
 * error ({@link ShardSolver#reconstructionError}) against the code they replace, kept here as the
 * reference: {@code HostTensor.fromFloats} → {@code toFloatArray} → byte copy → one pass per count, and the
 * error over one stacked {@code 2·rows × cols} array. Inputs are random with planted zeros, −0, NaN,
 * infinities, values that round to 0 or overflow in the dtype, and dead columns; sizes span one and several
 * parallel chunks and the CPU product's tile edges. Every byte, value and count must be identical.
 */
class ShardMeasureTest {
    private static Backend cpu;

    @BeforeAll
    static void open() {
        cpu = CpuBackend.create(2);
    }

    @AfterAll
    static void close() throws Exception {
        cpu.close();
    }

    /** The measurements of the old ShardSolver.solve, pass by pass. */
    record Old(byte[] bytes, float[] written, long zeros, long nonFinite, long pattern, long grid) {
    }

    static Old oldMeasure(DType dtype, float[] pruned, float[] dense, int rows, int cols, SparsityPattern p,
                          boolean[] dead, QuantizedWeights grid) {
        HostTensor out = HostTensor.fromFloats(dtype, new long[] {rows, cols}, pruned);
        float[] written = out.toFloatArray();
        byte[] bytes = new byte[(int) out.byteLength()];
        out.data().duplicate().get(bytes);
        long zeros = java.util.stream.IntStream.range(0, written.length).filter(i -> written[i] == 0f).count();
        long nonFinite = java.util.stream.IntStream.range(0, written.length).filter(i -> !Float.isFinite(written[i])).count();
        long gridViolations = grid == null ? -1 : GridCheck.violations(written, grid, dtype);
        long violations = PatternCheck.violations(p, dense, written, rows, cols, dead);
        return new Old(bytes, written, zeros, nonFinite, violations, gridViolations);
    }

    /** The old ShardSolver.reconstructionError on its host (workspace) path: one stacked product. */
    static double[] oldError(Backend be, float[] hDense, float[] w, float[] written, int rows, int cols) {
        float[] a = new float[2 * rows * cols];
        for (int i = 0; i < rows * cols; i++) {
            a[i] = w[i] - written[i];
            a[rows * cols + i] = w[i];
        }
        double[] quad = new double[2 * rows];
        float[] t;
        try (ForwardWorkspace ws = ForwardWorkspace.open(be, ForwardPrecision.FP32, "reference")) {
            ForwardWorkspace.Matrix tm = ws.allocate(2 * rows, cols);
            ws.linear(ws.upload(a, 2 * rows, cols), ws.weight(hDense, cols, cols), null, tm);
            t = ws.download(tm);
        }
        for (int r = 0; r < 2 * rows; r++) {
            double s = 0;
            for (int c = 0; c < cols; c++) {
                s += (double) a[r * cols + c] * t[r * cols + c];
            }
            quad[r] = s;
        }
        double num = 0;
        double den = 0;
        for (int r = 0; r < 2 * rows; r++) {
            if (r < rows) {
                num += quad[r];
            } else {
                den += quad[r];
            }
        }
        return new double[] {num, den};
    }

    /** Dense weights with a few exact zeros, and a pruned copy with special values planted. */
    static float[][] shard(SplittableRandom r, int rows, int cols, SparsityPattern p, boolean specials) {
        float[] dense = new float[rows * cols];
        for (int i = 0; i < dense.length; i++) {
            dense[i] = r.nextInt(50) == 0 ? 0f : (float) (r.nextGaussian() * 0.05);
        }
        float[] pruned = dense.clone();
        for (int row = 0; row < rows; row++) {
            for (int c = 0; c < cols; c++) {
                int i = row * cols + c;
                boolean drop = p instanceof SparsityPattern.NofM nm ? c % nm.m() >= nm.n()
                        : p instanceof SparsityPattern.Block b ? ((row / b.rows()) + (c / b.cols())) % 2 == 0
                        : r.nextBoolean();
                if (drop) {
                    pruned[i] = 0f;
                } else {
                    pruned[i] += (float) (r.nextGaussian() * 1e-3); // the solver moves kept weights
                }
            }
        }
        // planted violations (a kept value where the pattern prunes) and special values
        float[] special = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -0f, 0f, 1e-40f, -1e-40f,
            1e-8f, 7e4f, -7e4f, 3.4e38f, Float.MIN_VALUE, 65504f, 65520f};
        for (int k = 0; k < Math.max(3, rows * cols / 500); k++) {
            int i = r.nextInt(pruned.length);
            pruned[i] = specials ? special[r.nextInt(special.length)] : 0.5f;
        }
        return new float[][] {dense, pruned};
    }

    @Test
    void fusedPassEqualsTheSeparatePasses() {
        SplittableRandom r = new SplittableRandom(11);
        SparsityPattern[] patterns = {new SparsityPattern.NofM(2, 4), new SparsityPattern.Block(4, 8, 0.5),
            new SparsityPattern.Unstructured(0.5)};
        for (DType dtype : new DType[] {DType.BF16, DType.F16, DType.F32, DType.F64}) {
            for (SparsityPattern p : patterns) {
                for (int[] shape : new int[][] {{8, 32}, {1500, 96}, {36, 4096}}) {
                    int rows = shape[0];
                    int cols = shape[1];
                    float[][] s = shard(r, rows, cols, p, true);
                    boolean[] dead = null;
                    if (r.nextBoolean()) {
                        dead = new boolean[cols];
                        for (int j = 0; j < cols; j += 7) {
                            dead[j] = true;
                        }
                    }
                    Old ref = oldMeasure(dtype, s[1], s[0], rows, cols, p, dead, null);
                    float[] values = s[1].clone();
                    ShardMeasure.Encoded e = ShardMeasure.encode(dtype, values, s[0], rows, cols, p, dead, null);
                    String what = dtype + " " + p + " " + rows + "x" + cols;
                    assertThat(e.bytes()).as(what).isEqualTo(ref.bytes());
                    assertThat(bits(values)).as(what).isEqualTo(bits(ref.written()));
                    assertThat(e.zeros()).as(what).isEqualTo(ref.zeros()).isPositive();
                    assertThat(e.nonFinite()).as(what).isEqualTo(ref.nonFinite());
                    assertThat(e.patternViolations()).as(what).isEqualTo(ref.pattern());
                    assertThat(e.gridViolations()).isEqualTo(-1);
                    if (rows * cols > 10_000) { // enough planted values for every kind of count to be tested
                        assertThat(e.nonFinite()).as(what).isPositive();
                        if (!(p instanceof SparsityPattern.Unstructured)) {
                            assertThat(e.patternViolations()).as(what).isPositive();
                        }
                    }
                }
            }
        }
    }

    @Test
    void fusedGridCheckEqualsTheOldOne() {
        SplittableRandom r = new SplittableRandom(5);
        for (DType dtype : new DType[] {DType.BF16, DType.F16, DType.F32}) {
            for (QuantizationSpec spec : new QuantizationSpec[] {QuantizationSpec.perChannel(4, true),
                QuantizationSpec.grouped(4, false, 32)}) {
                int rows = 900;
                int cols = 128;
                int groups = spec.groupSize() == 0 ? 1 : cols / spec.groupSize();
                byte[] codes = new byte[rows * cols];
                float[] scales = new float[rows * groups];
                int[] zps = new int[rows * groups];
                for (int i = 0; i < codes.length; i++) {
                    codes[i] = (byte) (r.nextInt(16) - 8);
                }
                for (int g = 0; g < scales.length; g++) {
                    scales[g] = (float) (0.001 + r.nextDouble() * 0.01);
                    zps[g] = spec.symmetric() ? 0 : r.nextInt(5) - 2;
                }
                QuantizedWeights q = new QuantizedWeights(spec, rows, cols, codes, scales, zps);
                float[] pruned = q.dequantize();
                float[] dense = pruned.clone();
                for (int k = 0; k < 200; k++) { // values moved off their grid, and specials
                    int i = r.nextInt(pruned.length);
                    pruned[i] = k % 10 == 0 ? Float.NaN : pruned[i] + scales[0] * 0.37f;
                }
                SparsityPattern p = new SparsityPattern.Unstructured(0.5);
                Old ref = oldMeasure(dtype, pruned, dense, rows, cols, p, null, q);
                float[] values = pruned.clone();
                ShardMeasure.Encoded e = ShardMeasure.encode(dtype, values, dense, rows, cols, p, null, q);
                assertThat(e.gridViolations()).as(dtype + " " + spec).isEqualTo(ref.grid()).isPositive();
                assertThat(e.bytes()).isEqualTo(ref.bytes());
                assertThat(e.nonFinite()).isEqualTo(ref.nonFinite());
            }
        }
    }

    @Test
    void twoOperandErrorEqualsTheStackedProduct() {
        SplittableRandom r = new SplittableRandom(7);
        for (int[] shape : new int[][] {{37, 300}, {150, 300}, {3, 64}}) {
            int rows = shape[0];
            int cols = shape[1];
            HessianAccumulator h = new HessianAccumulator("test input", cols);
            int tokens = 2 * cols;
            float[] x = new float[tokens * cols];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            h.add(cpu, x, tokens);
            GroupStats gs = new GroupStats(h, null);
            float[] hDense = new float[cols * cols];
            h.copyHessianTo(hDense);
            for (String kind : new String[] {"random", "unpruned", "nan"}) {
                float[][] s = shard(r, rows, cols, new SparsityPattern.Unstructured(0.5), false);
                float[] w = s[0];
                float[] written = kind.equals("unpruned") ? w.clone() : s[1];
                if (kind.equals("nan")) {
                    written[r.nextInt(written.length)] = Float.NaN;
                }
                double[] ref = oldError(cpu, hDense, w, written, rows, cols);
                float[] diff = written.clone();
                ShardMeasure.subtractFrom(w, diff, rows, cols);
                double[] got = ShardSolver.reconstructionError(cpu, gs, diff, w, rows, cols);
                String what = kind + " " + rows + "x" + cols;
                assertThat(Double.doubleToRawLongBits(got[0])).as(what).isEqualTo(Double.doubleToRawLongBits(ref[0]));
                assertThat(Double.doubleToRawLongBits(got[1])).as(what).isEqualTo(Double.doubleToRawLongBits(ref[1]));
                assertThat(ref[1]).isPositive();
                if (kind.equals("unpruned")) {
                    assertThat(got[0]).isZero();
                } else if (kind.equals("nan")) {
                    assertThat(got[0]).isNaN();
                } else {
                    assertThat(got[0]).isPositive();
                }
            }
        }
    }

    private static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = Float.floatToRawIntBits(v[i]);
        }
        return b;
    }

    @Test
    void rejectsNonFloatDtypes() {
        float[] v = new float[4];
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> ShardMeasure.encode(DType.I8, v, v, 2, 2,
                new SparsityPattern.Unstructured(0.5), null, null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("I8");
        assertThat(Arrays.equals(v, new float[4])).isTrue();
    }
}
