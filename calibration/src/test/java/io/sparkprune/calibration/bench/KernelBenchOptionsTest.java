package io.sparkprune.calibration.bench;

import io.sparkprune.calibration.CalibrationInputException;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** {@link KernelBench}'s option checks: bad values are typed errors naming the option, before any GPU is opened. */
class KernelBenchOptionsTest {
    @Test
    void numbersInRangeAreAccepted() {
        assertThat(KernelBench.number("--lazy-blocks", " 8", 1, 64, true)).isEqualTo(8.0);
        assertThat(KernelBench.number("--tc-tflops", "733.5", 0, 1e6, false)).isEqualTo(733.5);
    }

    @Test
    void badNumbersNameTheOptionAndTheRange() {
        assertThatThrownBy(() -> KernelBench.number("--lazy-blocks", "x", 1, 64, true))
                .isInstanceOf(CalibrationInputException.class)
                .hasMessageContaining("--lazy-blocks").hasMessageContaining("'x'").hasMessageContaining("1 to 64");
        assertThatThrownBy(() -> KernelBench.number("--lazy-blocks", "65", 1, 64, true))
                .isInstanceOf(CalibrationInputException.class);
        assertThatThrownBy(() -> KernelBench.number("--repeat", "2.5", 1, 1000, true))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("an integer");
        assertThatThrownBy(() -> KernelBench.number("--tc-tflops", "NaN", 0, 1e6, false))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("a number");
    }

    @Test
    void badOptionsFailBeforeTheDeviceIsOpened() {
        // each fails in argument parsing (no CUDA device here, so reaching CudaBackend.create would fail otherwise)
        assertThatThrownBy(() -> KernelBench.main(new String[] {"--lazy-blocks", "4,0"}))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("--lazy-blocks");
        assertThatThrownBy(() -> KernelBench.main(new String[] {"--patterns", "60%"}))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("60%");
        assertThatThrownBy(() -> KernelBench.main(new String[] {"--repeat"}))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("needs a value");
        assertThatThrownBy(() -> KernelBench.main(new String[] {"--frobnicate"}))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("unknown option");
        assertThatThrownBy(() -> KernelBench.main(new String[] {"--solve-forms", "cholesky,ldl"}))
                .isInstanceOf(CalibrationInputException.class).hasMessageContaining("--solve-forms")
                .hasMessageContaining("'ldl'");
    }

    @Test
    void solveFormsAreNamedCaseInsensitively() {
        assertThat(KernelBench.solveForm(" Inverse")).isEqualTo(io.sparkprune.kernels.cuda.CudaBackend.SolveForm.INVERSE);
        assertThat(KernelBench.solveForm("cholesky")).isEqualTo(io.sparkprune.kernels.cuda.CudaBackend.SolveForm.CHOLESKY);
    }
}
