package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Copies through {@link CudaBackend}'s pinned staging ({@link PinnedStaging}): host → device → host
 * round trips are bit exact for sizes just below, at and above one staging chunk and over several
 * chunks (floats, doubles, bytes, with array offsets; strided windows gathered and scattered by the
 * chunked copy; the add-into download), on a backend with 64 KiB chunks and on the default one
 * (32 MiB chunks, a 40 MiB copy); and operations whose operands go through the staging (the product
 * and the Hessian update, launched on the backend's stream) still match the CPU backend. Skipped,
 * with the reason, when no CUDA device is usable.
 */
@Tag("gpu")
class PinnedStagingTest {
    private static final long SEED = new Random().nextLong();
    private static final int CHUNK = 64 * 1024;
    private static CudaBackend gpu;
    private static CudaBackend small;
    private static CpuBackend cpu;
    private static CudaTestDevice device;

    @BeforeAll
    static void open() {
        cpu = CpuBackend.create(4);
        device = CudaTestDevice.open("pinned staging tests", SEED,
                () -> CudaBackend.create(0, 2), () -> CudaBackend.create(0, 2, CHUNK, 1024));
        gpu = device.backend(0);
        small = device.backend(1);
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

    @Test
    void roundTripsAroundAndAboveTheChunkSizeAreExact() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED);
        int[] floatCounts = {256, CHUNK / 4 - 1, CHUNK / 4, CHUNK / 4 + 1, 3 * CHUNK / 4 + 5, 2 * CHUNK / 4};
        for (int count : floatCounts) {
            float[] src = randomF(r, count + 3);
            try (DeviceBuffer d = small.allocate(4L * (count + 2), "float round trip " + count)) {
                small.makeCurrent();
                d.upload(src, 3, count, 2);
                float[] back = new float[count + 5];
                d.download(2, back, 5, count);
                assertThat(Arrays.copyOfRange(back, 5, 5 + count)).as("floats %d seed=%d", count, SEED)
                        .isEqualTo(Arrays.copyOfRange(src, 3, 3 + count));
                assertThat(Arrays.copyOf(back, 5)).containsOnly(0f);
            }
        }
        int[] doubleCounts = {CHUNK / 8 - 1, CHUNK / 8, CHUNK / 8 + 1, 5 * CHUNK / 8 + 3};
        for (int count : doubleCounts) {
            double[] src = new double[count + 1];
            for (int i = 0; i < src.length; i++) {
                src[i] = r.nextDouble() * 1e6 - 5e5;
            }
            try (DeviceBuffer d = small.allocate(8L * count, "double round trip " + count)) {
                small.makeCurrent();
                d.upload(src, 1, count, 0);
                double[] back = new double[count];
                d.download(0, back, 0, count);
                assertThat(back).as("doubles %d seed=%d", count, SEED).isEqualTo(Arrays.copyOfRange(src, 1, count + 1));
                double[] base = new double[count + 2];
                for (int i = 0; i < base.length; i++) {
                    base[i] = r.nextDouble();
                }
                double[] sum = base.clone();
                d.downloadAdd(0, sum, 2, count);
                for (int i = 0; i < count; i++) {
                    assertThat(sum[2 + i]).isEqualTo(base[2 + i] + src[1 + i]);
                }
                assertThat(sum[0]).isEqualTo(base[0]);
                assertThat(sum[1]).isEqualTo(base[1]);
            }
        }
        int[] byteCounts = {CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3};
        for (int count : byteCounts) {
            byte[] src = new byte[count];
            for (int i = 0; i < count; i++) {
                src[i] = (byte) r.nextInt();
            }
            try (DeviceBuffer d = small.allocate(count, "byte round trip " + count)) {
                small.makeCurrent();
                d.upload(src, 0, count, 0);
                byte[] back = new byte[count];
                d.download(0, back, 0, count);
                assertThat(back).as("bytes %d seed=%d", count, SEED).isEqualTo(src);
            }
        }
        assertThat(small.staging().pinnedBytes()).as("the copies went through the pinned buffers")
                .isPositive().isLessThanOrEqualTo(2L * CHUNK);
    }

    @Test
    void stridedWindowsAreGatheredAndScatteredAcrossChunks() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        int rows = 97;
        int cols = 301; // rows of 1204 bytes: chunk boundaries fall inside rows
        int ld = cols + 7;
        int off = 5;
        float[] a = randomF(r, off + rows * ld);
        try (DeviceBuffer d = small.allocate(4L * rows * cols, "window")) {
            small.makeCurrent();
            d.uploadWindow(a, off, ld, rows, cols);
            float[] dense = new float[rows * cols];
            d.download(0, dense, 0, rows * cols);
            for (int i = 0; i < rows; i++) {
                assertThat(Arrays.copyOfRange(dense, i * cols, (i + 1) * cols)).as("row %d seed=%d", i, SEED)
                        .isEqualTo(Arrays.copyOfRange(a, off + i * ld, off + i * ld + cols));
            }
            float[] back = new float[a.length];
            Arrays.fill(back, -7f);
            d.downloadWindow(back, off, ld, rows, cols);
            for (int i = 0; i < back.length; i++) {
                int rel = i - off;
                boolean inside = rel >= 0 && rel / ld < rows && rel % ld < cols;
                assertThat(back[i]).as("element %d seed=%d", i, SEED).isEqualTo(inside ? a[i] : -7f);
            }
        }
    }

    @Test
    void aCopyLargerThanTheDefaultPinnedBufferRoundTrips() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        int count = (int) (PinnedStaging.DEFAULT_CHUNK_BYTES / 4 + (8L << 20) / 4 + 3); // 40 MiB + 12 bytes
        float[] src = randomF(r, count);
        try (DeviceBuffer d = gpu.allocate(4L * count, "40 MiB round trip")) {
            gpu.makeCurrent();
            d.upload(src, 0, count, 0);
            float[] back = new float[count];
            d.download(0, back, 0, count);
            assertThat(back).as("seed=%d", SEED).isEqualTo(src);
        }
        assertThat(gpu.staging().pinnedBytes()).isPositive().isLessThanOrEqualTo(2 * PinnedStaging.DEFAULT_CHUNK_BYTES);
    }

    @Test
    void operationsThroughTheStagingStillMatchTheCpu() {
        requireDevice();
        SplittableRandom r = new SplittableRandom(SEED + 3);
        int m = 150;
        int n = 170;
        int k = 260; // A and B above one 64 KiB chunk
        float[] a = randomF(r, 2 + m * (k + 3));
        float[] b = randomF(r, k * n);
        float[] c0 = randomF(r, m * n);
        float[] cg = c0.clone();
        float[] cc = c0.clone();
        small.sgemm(false, false, m, n, k, 0.75f, a, 2, k + 3, b, 0, n, 0.5f, cg, 0, n);
        cpu.sgemm(false, false, m, n, k, 0.75f, a, 2, k + 3, b, 0, n, 0.5f, cc, 0, n);
        double err = CudaBackendParityTest.relErr(cg, cc);
        assertThat(err).as("sgemm through 64 KiB staging seed=%d", SEED).isLessThanOrEqualTo(1e-5);

        int f = 190;
        int tokens = 333;
        float[] x = randomF(r, 1 + tokens * (f + 2));
        double[] hg = new double[f * (f + 1) / 2];
        double[] hc = new double[hg.length];
        small.syrkPackedUpper(f, tokens, x, 1, f + 2, hg);
        cpu.syrkPackedUpper(f, tokens, x, 1, f + 2, hc);
        assertThat(CudaBackendParityTest.relErr(hg, hc)).as("syrk through 64 KiB staging seed=%d", SEED)
                .isLessThanOrEqualTo(1e-12);
    }
}
