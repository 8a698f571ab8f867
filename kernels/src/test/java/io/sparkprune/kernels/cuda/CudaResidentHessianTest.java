package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.ResidentHessian;
import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link CudaBackend}'s device-resident Hessian ({@link ResidentHessian}) against
 * {@link CpuBackend#syrkPackedUpper} over the same batches (fp64 sums of the same exact fp32
 * products: ≤ 1e-12 relative Frobenius error), for orders that are and are not multiples of the
 * kernel's 64-wide tile, batches of 0, 1 and many rows, strided rows; on the default backend and on
 * one whose pinned staging has 64 KiB chunks (so the download of the sum goes in many chunks); and
 * the handle's life cycle. Skipped, with the reason, when no CUDA device is usable.
 */
@Tag("gpu")
class CudaResidentHessianTest {
    private static final long SEED = new Random().nextLong();
    private static final long SMALL_CHUNK = 64 * 1024;
    private static CudaBackend gpu;
    private static CudaBackend smallChunks;
    private static CpuBackend cpu;
    private static CudaTestDevice device;

    @BeforeAll
    static void open() {
        cpu = CpuBackend.create(4);
        device = CudaTestDevice.open("CUDA resident Hessian tests", SEED,
                () -> CudaBackend.create(0, 2), () -> CudaBackend.create(0, 2, SMALL_CHUNK, 1024));
        gpu = device.backend(0);
        smallChunks = device.backend(1);
    }

    @AfterAll
    static void close() {
        device.close();
        cpu.close();
    }

    private static void requireDevice() {
        device.require();
    }

    private static float[] randomF(SplittableRandom r, int n) {
        return CudaBackendParityTest.randomF(r, n);
    }

    private static void check(CudaBackend be, SplittableRandom r, int n, int[] batches) {
        int ldx = n + r.nextInt(3);
        int total = Arrays.stream(batches).sum();
        float[] x = randomF(r, 3 + total * ldx);
        int packed = n * (n + 1) / 2;
        double[] c0 = new double[packed];
        for (int i = 0; i < packed; i++) {
            c0[i] = r.nextDouble() * 4 - 2;
        }
        double[] ref = c0.clone();
        double[] refFromZero = new double[packed];
        double[] got = c0.clone();
        double[] gotFromZero = new double[packed];
        String tag = "resident syrk n=" + n + " batches=" + Arrays.toString(batches) + " ldx=" + ldx + " seed=" + SEED
                + " on " + (be == gpu ? "default staging" : "64 KiB staging chunks");
        try (ResidentHessian.Accumulator h = be.openHessian(n, "test n=" + n)) {
            assertThat(h.features()).isEqualTo(n);
            int row = 0;
            for (int k : batches) {
                h.add(k, x, 3 + row * ldx, ldx);
                cpu.syrkPackedUpper(n, k, x, 3 + row * ldx, ldx, ref);
                cpu.syrkPackedUpper(n, k, x, 3 + row * ldx, ldx, refFromZero);
                row += k;
            }
            h.addTo(got);
            h.addTo(gotFromZero); // the sum stays on the device after addTo
        }
        double e1 = CudaBackendParityTest.relErr(got, ref);
        double e2 = CudaBackendParityTest.relErr(gotFromZero, refFromZero);
        System.out.printf("%s rel err %.3e / %.3e%n", tag, e1, e2);
        assertThat(e1).as(tag).isLessThanOrEqualTo(1e-12);
        assertThat(e2).as(tag).isLessThanOrEqualTo(1e-12);
    }

    @Test
    void residentSumOverSeveralBatchesEqualsCpuSyrk() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED);
        int[] orders = {1, 63, 64, 65, 130, 200 + r.nextInt(300), 1100};
        for (CudaBackend be : new CudaBackend[] {gpu, smallChunks}) {
            for (int n : orders) {
                check(be, r, n, new int[] {0, 1, 7, 0, 64, 257, 1 + r.nextInt(300)});
            }
            check(be, r, 77, new int[] {0});
            check(be, r, 77, new int[] {1});
            check(be, r, 1100, new int[] {600});
        }
    }

    @Test
    void residentTf32SumEqualsTheHostArrayTf32Path() {
        // addTf32 runs syrk_packed_tf32 into the resident sum: per batch the same chunks and kernel as
        // syrkPackedUpperTf32 on a host array, so the sums agree to fp64 rounding of the additions
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        for (int n : new int[] {1, 65, 130, 517}) {
            int ldx = n + 1;
            int[] batches = {0, 1, 300, 257, 1 + r.nextInt(600)};
            int total = Arrays.stream(batches).sum();
            float[] x = randomF(r, total * ldx);
            int packed = n * (n + 1) / 2;
            double[] ref = new double[packed];
            double[] got = new double[packed];
            try (ResidentHessian.Accumulator h = gpu.openHessian(n, "tf32 test n=" + n)) {
                int row = 0;
                for (int k : batches) {
                    h.addTf32(k, x, row * ldx, ldx);
                    gpu.syrkPackedUpperTf32(n, k, x, row * ldx, ldx, ref);
                    row += k;
                }
                h.addTo(got);
            }
            double e = CudaBackendParityTest.relErr(got, ref);
            System.out.printf("resident TF32 syrk n=%d batches=%s seed=%d rel err %.3e%n", n, Arrays.toString(batches), SEED, e);
            assertThat(e).as("n=" + n).isLessThanOrEqualTo(1e-12);
        }
    }

    @Test
    void handlesRefuseUseAfterCloseAndTheBackendFreesOpenOnes() {
        requireDevice();
        float[] x = new float[40];
        ResidentHessian.Accumulator h = gpu.openHessian(10, "life cycle");
        assertThatThrownBy(() -> h.add(4, x, 1, 10)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("life cycle");
        assertThatThrownBy(() -> h.addTo(new double[54])).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("55");
        h.close();
        h.close();
        assertThatThrownBy(() -> h.add(1, x, 0, 10)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("closed");
        assertThatThrownBy(() -> h.addTo(new double[55])).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> gpu.openHessian(0, "empty")).isInstanceOf(IllegalArgumentException.class);

        CudaBackend own = CudaBackend.create(0, 1);
        ResidentHessian.Accumulator left = own.openHessian(300, "left open");
        left.add(4, new float[1200], 0, 300);
        own.close();
        assertThatThrownBy(() -> left.addTo(new double[300 * 301 / 2])).isInstanceOf(IllegalStateException.class);
        left.close(); // no-op once the backend freed it
    }
}
