package io.sparkprune.calibration.solver;

import io.sparkprune.calibration.ReferenceFile;
import io.sparkprune.calibration.TestMath;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.kernels.cuda.CudaBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.util.Optional;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The reference layer ({@code src/test/resources/reference/README.md}) pruned by
 * {@link SparseGptSolver} on {@link CudaBackend} (the fused block kernel and the lazy-update product
 * on the GPU; the inverse factor is delegated to the CPU): masks ≥ 99.9% equal to the authors' code,
 * weights within 1e-4 relative Frobenius error, and the same checks against the CPU backend's result.
 * Skipped, with the reason, without a CUDA device.
 */
@Tag("gpu")
class ReferenceParityGpuTest {
    private static final String TENSOR = "model.layers.2.mlp.down_proj.weight";
    private static final int ROWS = 384;
    private static final int COLS = 1024;
    private static ReferenceFile ref;
    private static CudaBackend gpu;
    private static CpuBackend cpu;
    private static InverseFactor factor;
    private static String unavailable;

    @BeforeAll
    static void load() throws IOException {
        ref = ReferenceFile.load();
        cpu = CpuBackend.create(4);
        try {
            gpu = CudaBackend.create(0, 4);
        } catch (RuntimeException | LinkageError e) {
            unavailable = "no usable CUDA device: " + e.getMessage();
            System.out.println("SKIPPED reference parity on the GPU: " + unavailable);
            return;
        }
        factor = InverseFactor.compute(gpu, "model.layers.2.mlp.down_proj input", ref.get("H"), COLS, Dampening.DEFAULT);
    }

    @AfterAll
    static void close() {
        if (gpu != null) {
            gpu.close();
        }
        cpu.close();
    }

    static Stream<Arguments> outputs() {
        Optional<QuantizationSpec> int4 = Optional.of(QuantizationSpec.perChannel(4, false));
        return Stream.of(
                Arguments.of("out_50pct", new SparsityPattern.Unstructured(0.5), Optional.empty()),
                Arguments.of("out_70pct", new SparsityPattern.Unstructured(0.7), Optional.empty()),
                Arguments.of("out_4of8", new SparsityPattern.NofM(4, 8), Optional.empty()),
                Arguments.of("out_2of4", new SparsityPattern.NofM(2, 4), Optional.empty()),
                Arguments.of("out_2of4_int4", new SparsityPattern.NofM(2, 4), int4),
                Arguments.of("out_50pct_int4", new SparsityPattern.Unstructured(0.5), int4));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("outputs")
    void gpuSolverMatchesTheReferenceAndTheCpu(String name, SparsityPattern pattern, Optional<QuantizationSpec> quant) {
        assumeTrue(gpu != null, () -> unavailable);
        PruneResult res = new SparseGptSolver(gpu, SolverOptions.DEFAULT).prune(TENSOR, ref.get("W"), ROWS, COLS, factor,
                pattern, quant);
        PruneResult onCpu = new SparseGptSolver(cpu, SolverOptions.DEFAULT).prune(TENSOR, ref.get("W"), ROWS, COLS, factor,
                pattern, quant);
        float[] expected = ref.get(name);
        double agreement = TestMath.zeroAgreement(res.weights(), expected);
        double rel = TestMath.relFrobenius(res.weights(), expected);
        double agreeCpu = TestMath.zeroAgreement(res.weights(), onCpu.weights());
        double relCpu = TestMath.relFrobenius(res.weights(), onCpu.weights());
        System.out.printf("gpu reference %-15s mask agreement %.6f  rel Frobenius %.3e | vs cpu: mask %.6f rel %.3e"
                + "  (gpu solve %.3f s, cpu %.3f s)%n", name, agreement, rel, agreeCpu, relCpu,
                res.solveNanos() / 1e9, onCpu.solveNanos() / 1e9);
        assertThat(agreement).as(name + " mask agreement").isGreaterThanOrEqualTo(0.999);
        assertThat(rel).as(name + " relative Frobenius error").isLessThanOrEqualTo(1e-4);
        assertThat(agreeCpu).as(name + " mask agreement with the CPU backend").isGreaterThanOrEqualTo(0.999);
        assertThat(relCpu).as(name + " relative error against the CPU backend").isLessThanOrEqualTo(1e-5);
    }
}
