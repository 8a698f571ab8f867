package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The fused Cholesky panel ({@link CudaBackend.PanelSteps#FUSED}, chol_panel_f64) against the three-launch
 * steps ({@link CudaBackend.PanelSteps#STEPS}) and the host fp64 inverse factor of {@link CpuBackend} on
 * fresh random well-conditioned SPD matrices (the seed is in every message): partial blocks and panels,
 * one to four panels of 512 columns, and fewer thread blocks than row slabs; and the same failure
 * semantics (false on a non-positive or NaN pivot, the same dampening attempt). Skipped, with the reason,
 * when no CUDA device is usable.
 */
@Tag("gpu")
class CudaCholPanelTest extends CudaSuite {
    @AfterEach
    void restore() {
        if (gpu != null) {
            gpu.panelSteps(CudaBackend.PanelSteps.STEPS);
            gpu.cholPanelGridLimit(Integer.MAX_VALUE);
        }
    }

    /** U of (a's upper triangle and diagonal) on the device with the given panel mode; a is not changed. */
    private static double[] deviceFactor(CudaBackend.PanelSteps mode, int n, double[] a) {
        gpu.panelSteps(mode);
        double[] u = a.clone();
        assertThat(gpu.inverseCholeskyUpper(n, u, 0, n)).as("%s n=%d seed=%d", mode, n, SEED).isTrue();
        return u;
    }

    @Test
    void fusedPanelMatchesTheStepsAndTheHost() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED);
        // 1 .. 4 panels of 512 columns; partial 64-column blocks (63, 65, 130, 1000, 1601) and panels
        for (int n : new int[] {1, 63, 64, 65, 130, 511, 512, 513, 1000, 1601}) {
            double[] a = CudaBackendParityTest.spd(r, n, 48, 1.0);
            double[] steps = deviceFactor(CudaBackend.PanelSteps.STEPS, n, a);
            double[] fused = deviceFactor(CudaBackend.PanelSteps.FUSED, n, a);
            double[] host = a.clone();
            assertThat(cpu.inverseCholeskyUpper(n, host, 0, n)).isTrue();
            double eSteps = CudaBackendParityTest.relErr(fused, steps);
            double eHost = CudaBackendParityTest.relErr(fused, host);
            System.out.printf("chol panel n=%d: fused vs steps %.2e, fused vs host %.2e seed=%d%n", n, eSteps, eHost,
                    SEED);
            assertThat(eSteps).as("fused vs steps n=%d seed=%d", n, SEED).isLessThanOrEqualTo(1e-12);
            assertThat(eHost).as("fused vs host n=%d seed=%d", n, SEED).isLessThanOrEqualTo(1e-12);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < i; j++) {
                    assertThat(fused[i * n + j]).isZero();
                }
            }
        }
    }

    @Test
    void fusedPanelWithFewerBlocksThanSlabs() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        int n = 1100; // 18 row slabs in the first panel, 8 of them diagonal
        double[] a = CudaBackendParityTest.spd(r, n, 48, 1.0);
        double[] host = a.clone();
        assertThat(cpu.inverseCholeskyUpper(n, host, 0, n)).isTrue();
        for (int limit : new int[] {1, 3, 7}) {
            gpu.cholPanelGridLimit(limit);
            double[] fused = deviceFactor(CudaBackend.PanelSteps.FUSED, n, a);
            double e = CudaBackendParityTest.relErr(fused, host);
            assertThat(e).as("grid limit %d seed=%d", limit, SEED).isLessThanOrEqualTo(1e-12);
        }
    }

    @Test
    void fusedPanelRefusesWhatTheStepsRefuse() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        gpu.panelSteps(CudaBackend.PanelSteps.FUSED);
        double[] bad = CudaBackendParityTest.spd(r, 70, 70, 0.0);
        bad[5 * 70 + 5] = -1.0;
        assertThat(gpu.inverseCholeskyUpper(70, bad.clone(), 0, 70)).isFalse();
        // a pivot that fails in the second panel (reversed order: pivot 799), after a trailing update
        double[] late = CudaBackendParityTest.spd(r, 1100, 1100, 0.0);
        late[300 * 1100 + 300] = -1.0;
        assertThat(gpu.inverseCholeskyUpper(1100, late.clone(), 0, 1100)).isFalse();
        // a NaN in the upper triangle (row 1099 of the reversed factor)
        double[] nan = CudaBackendParityTest.spd(r, 1100, 48, 1.0);
        nan[1100 / 3] = Double.NaN;
        assertThat(gpu.inverseCholeskyUpper(1100, nan.clone(), 0, 1100)).isFalse();
        gpu.panelSteps(CudaBackend.PanelSteps.STEPS);
        assertThat(gpu.inverseCholeskyUpper(1100, nan.clone(), 0, 1100)).isFalse();
    }

    @Test
    void fusedPanelTakesTheSameDampeningAttempt() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        int n = 600;
        double[] a = CudaBackendParityTest.spd(r, n, 40, 0.0); // rank 40: needs dampening
        double[] diag = CudaBackendParityTest.diagonal(a, n);
        double[] lambdas = CudaBackendParityTest.dampeningLadder(CudaBackendParityTest.mean(diag));
        float[] us = new float[n * n];
        float[] uf = new float[n * n];
        gpu.panelSteps(CudaBackend.PanelSteps.STEPS);
        int ks = gpu.dampedInverseCholeskyUpper(n, a, diag, lambdas, us);
        gpu.panelSteps(CudaBackend.PanelSteps.FUSED);
        int kf = gpu.dampedInverseCholeskyUpper(n, a, diag, lambdas, uf);
        assertThat(kf).as("seed %d", SEED).isEqualTo(ks).isEqualTo(1);
        assertThat(CudaBackendParityTest.relErr(uf, us)).as("seed %d", SEED).isLessThanOrEqualTo(1e-6);
    }
}
