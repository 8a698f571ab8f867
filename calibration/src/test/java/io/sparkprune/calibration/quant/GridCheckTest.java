package io.sparkprune.calibration.quant;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.solver.PruneResult;
import io.sparkprune.calibration.solver.SolverOptions;
import io.sparkprune.calibration.solver.SparseGptSolver;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HalfFloats;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link GridCheck} on SparseGPT 2:4 + int4 output written in bf16 / f16 / f32: every value passes;
 * a value moved by one ulp of the dtype, a value from another group's grid, a code out of range and
 * a NaN each fail, and only they do.
 */
class GridCheckTest {

    @ParameterizedTest
    @CsvSource({"BF16,0,false", "F16,32,true", "F32,32,false", "BF16,0,true"})
    void solverOutputIsOnItsGridAndTamperedValuesAreNot(String dtypeName, int groupSize, boolean symmetric) {
        DType dtype = DType.valueOf(dtypeName);
        int rows = 8;
        int cols = 64;
        SplittableRandom rnd = new SplittableRandom(7);
        float[] x = new float[256 * cols];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (0.05 * rnd.nextGaussian());
        }
        QuantizationSpec spec = new QuantizationSpec(4, symmetric, groupSize);
        PruneResult r;
        try (CpuBackend be = CpuBackend.create(1)) {
            HessianAccumulator h = new HessianAccumulator("in", cols);
            h.add(be, x, 256);
            InverseFactor f = InverseFactor.compute(be, h, Dampening.DEFAULT);
            r = new SparseGptSolver(be, SolverOptions.DEFAULT).prune("w", w, rows, cols, f, SparsityPattern.parse("2:4"),
                    Optional.of(spec));
        }
        QuantizedWeights q = r.quantization().orElseThrow();
        float[] written = HostTensor.fromFloats(dtype, new long[] {rows, cols}, r.weights()).toFloatArray();
        assertThat(GridCheck.violations(written, q, dtype)).isZero();

        // a kept (non-zero) value nudged to the next representable value of the dtype
        int k = 0;
        while (written[k] == 0f) {
            k++;
        }
        float[] t = written.clone();
        t[k] = nextUp(written[k], dtype);
        assertThat(GridCheck.violations(t, q, dtype)).isEqualTo(1);

        // NaN, and a value beyond the largest code of its grid
        t = written.clone();
        t[3] = Float.NaN;
        int g = 5 * q.groups();
        float far = q.scales()[g] * (spec.maxCode() - q.zeroPoints()[g] + 3);
        t[5 * cols] = HostTensor.fromFloats(dtype, new long[] {1}, new float[] {far}).toFloatArray()[0];
        assertThat(GridCheck.violations(t, q, dtype)).isEqualTo(2);
    }

    private static float nextUp(float v, DType dtype) {
        return switch (dtype) {
            case BF16 -> HalfFloats.bf16ToFloat((short) (HalfFloats.floatToBf16(v) + 1));
            case F16 -> HalfFloats.f16ToFloat((short) (HalfFloats.floatToF16(v) + 1));
            default -> Math.nextUp(v);
        };
    }
}
