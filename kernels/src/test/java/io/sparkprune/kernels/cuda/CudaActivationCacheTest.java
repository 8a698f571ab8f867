package io.sparkprune.kernels.cuda;

import static io.sparkprune.kernels.cuda.CudaBackendParityTest.randomF;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ForwardWorkspace.Matrix;
import io.sparkprune.kernels.ResidentForward;
import java.util.Random;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The activation cache on a real {@link CudaBackend} ({@link ActivationCache}'s logic is tested on a
 * fake device in {@link ActivationCacheTest}): a {@link ForwardWorkspace.Handoff#PIPELINE} workspace
 * keeps its output's device buffer; an upload of the returned array in a {@code NONE} workspace is a
 * device-to-device copy that leaves it cached, in a PIPELINE workspace a hand-over that removes it; the
 * uploaded matrix holds exactly the host array's bits either way (compared with a download), and is
 * writable; an array with equal values but another identity is a miss; budget 0 and a budget below the
 * buffer keep nothing; a device allocation that only fits without the cache frees it and succeeds;
 * closing the backend frees the cache.
 */
@Tag("gpu")
class CudaActivationCacheTest {
    private static final long SEED = new Random().nextLong();
    private static CudaBackend gpu;
    private static CudaTestDevice device;

    @BeforeAll
    static void open() {
        device = CudaTestDevice.open("CUDA activation cache tests", SEED, () -> CudaBackend.create(0, 4));
        gpu = device.backend(0);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    @AfterEach
    void emptyTheCache() {
        if (gpu != null) {
            gpu.activationCacheBytes(0); // frees what a test kept
            gpu.activationCacheBytes(ResidentForward.ACTIVATION_CACHE_AUTO);
        }
    }

    /**
     * Runs a PIPELINE pass x → 3·x (two adds, exact in fp32 for values in [-1, 1]) in a fresh workspace
     * (its output buffer is exactly {@code 4·rows·cols} bytes) and returns its output; {@code stats[0]}
     * gets the workspace's cache traffic (two uploads of x from the host).
     */
    private static float[] pipelineOutput(float[] x, int rows, int cols, CudaWorkspace.CacheStats[] stats) {
        try (ForwardWorkspace ws = gpu.openWorkspace(ForwardPrecision.FP32, "producer", ForwardWorkspace.Handoff.PIPELINE)) {
            Matrix a = ws.upload(x, rows, cols);
            Matrix y = ws.upload(x, rows, cols); // y = x
            ws.add(a, y); // y = 2x
            ws.add(a, y); // y = 3x
            ws.release(a);
            float[] out = ws.downloadAndRelease(y);
            stats[0] = ((CudaWorkspace) ws).cacheStats();
            return out;
        }
    }

    @Test
    void keptOutputsAreCopiedOrHandedOverWithTheHostArraysBits() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED);
        int rows = 300;
        int cols = 257;
        float[] x = randomF(r, rows * cols);
        gpu.activationCacheBytes(64L << 20);
        long before = gpu.cachedActivationBytes();
        CudaWorkspace.CacheStats[] st = new CudaWorkspace.CacheStats[1];
        float[] out = pipelineOutput(x, rows, cols, st);
        for (int i = 0; i < x.length; i++) {
            assertThat(out[i]).isEqualTo(3 * x[i]);
        }
        assertThat(st[0].kept).isEqualTo(1);
        assertThat(st[0].missed).as("x was uploaded from the host").isEqualTo(2);
        assertThat(gpu.cachedActivationBytes() - before).isGreaterThanOrEqualTo(4L * out.length);

        // a NONE workspace (the Hessian pass): copied on the device, the entry stays
        try (ForwardWorkspace ws = gpu.openWorkspace(ForwardPrecision.FP32, "reader")) {
            Matrix m = ws.upload(out, rows, cols);
            assertThat(ws.download(m)).containsExactly(out);
            Matrix prefix = ws.upload(out, rows - 1, cols); // the first rows - 1 rows
            float[] want = new float[(rows - 1) * cols];
            System.arraycopy(out, 0, want, 0, want.length);
            assertThat(ws.download(prefix)).containsExactly(want);
            Matrix other = ws.upload(out.clone(), rows, cols); // equal values, another array
            assertThat(ws.download(other)).containsExactly(out);
            CudaWorkspace.CacheStats s = ((CudaWorkspace) ws).cacheStats();
            assertThat(s.copied).isEqualTo(2);
            assertThat(s.missed).isEqualTo(1);
            assertThat(s.taken).isZero();
            ws.add(other, m); // the copy is the workspace's own: writable, and the cached entry is untouched
            assertThat(ws.download(m)[1]).isEqualTo(out[1] + out[1]);
        }
        long cached = gpu.cachedActivationBytes();
        assertThat(cached - before).isGreaterThanOrEqualTo(4L * out.length);

        // a PIPELINE workspace (the next forward pass, the array's last reader): handed over, the entry goes
        try (ForwardWorkspace ws = gpu.openWorkspace(ForwardPrecision.FP32, "consumer", ForwardWorkspace.Handoff.PIPELINE)) {
            Matrix m = ws.upload(out, rows, cols);
            CudaWorkspace.CacheStats s = ((CudaWorkspace) ws).cacheStats();
            assertThat(s.taken).isEqualTo(1);
            assertThat(gpu.cachedActivationBytes()).isLessThan(cached);
            assertThat(ws.download(m)).containsExactly(out);
            ws.add(m, m); // ours now: writable
            assertThat(ws.download(m)[0]).isEqualTo(2 * out[0]);
            Matrix again = ws.upload(out, rows, cols); // no longer cached
            assertThat(s.missed).isEqualTo(1);
            assertThat(ws.download(again)).containsExactly(out);
        }
        assertThat(gpu.cachedActivationBytes()).isEqualTo(before);
    }

    @Test
    void budgetZeroOrBelowTheBufferKeepsNothing() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 1);
        float[] x = randomF(r, 64 * 64);
        CudaWorkspace.CacheStats[] st = new CudaWorkspace.CacheStats[1];
        gpu.activationCacheBytes(0);
        float[] out = pipelineOutput(x, 64, 64, st);
        assertThat(st[0].kept).isZero();
        assertThat(st[0].notKept).isEqualTo(1);
        assertThat(gpu.cachedActivationBytes()).isZero();
        gpu.activationCacheBytes(4L * 64 * 64 - 4); // one float short of the buffer
        pipelineOutput(x, 64, 64, st);
        assertThat(st[0].kept).isZero();
        assertThat(gpu.cachedActivationBytes()).isZero();
        try (ForwardWorkspace ws = gpu.openWorkspace(ForwardPrecision.FP32, "reader")) {
            ws.upload(out, 64, 64);
            assertThat(((CudaWorkspace) ws).cacheStats().missed).isEqualTo(1);
        }
    }

    /**
     * An allocation that fails frees the cache and is tried once more. The allocation asked for here
     * cannot succeed even then (more than the device's total memory): an allocation that succeeds only
     * after the eviction needs the device filled to its edge, and such a test hung on an H200 (over
     * 200 s); what the eviction frees is checked by {@link ActivationCacheTest}, on a fake device.
     */
    @Test
    void aFailedAllocationFreesTheCacheAndIsRetried() {
        device.require();
        SplittableRandom r = new SplittableRandom(SEED + 2);
        int rows = 256;
        int cols = 4096; // 4 MiB per output
        gpu.activationCacheBytes(1L << 40); // no budget limit
        CudaWorkspace.CacheStats[] st = new CudaWorkspace.CacheStats[1];
        float[][] kept = new float[4][];
        float[] x = randomF(r, rows * cols);
        for (int i = 0; i < kept.length; i++) {
            kept[i] = pipelineOutput(x, rows, cols, st);
            assertThat(st[0].kept).isEqualTo(1);
        }
        assertThat(gpu.cachedActivationBytes()).isGreaterThanOrEqualTo(4L * 4 * rows * cols);
        long total;
        synchronized (gpu) {
            gpu.makeCurrent();
            long[] f = new long[1];
            long[] t = new long[1];
            Driver.check("cuMemGetInfo", () -> jcuda.driver.JCudaDriver.cuMemGetInfo(f, t));
            total = t[0];
        }
        assertThatThrownBy(() -> gpu.allocate(total + (1L << 30), "more than the device holds").close())
                .isInstanceOf(CudaCallException.class);
        assertThat(gpu.cachedActivationBytes()).isZero();
        for (float[] k : kept) {
            assertSameBits(k, x, 3, "a kept output");
        }
        try (ForwardWorkspace ws = gpu.openWorkspace(ForwardPrecision.FP32, "reader")) {
            float[] back = ws.download(ws.upload(kept[0], rows, cols));
            assertThat(((CudaWorkspace) ws).cacheStats().missed).isEqualTo(1);
            assertSameBits(back, kept[0], 1, "read back after the eviction");
        }
    }

    @Test
    void closingTheBackendFreesTheCache() {
        device.require();
        CudaBackend own = CudaBackend.create(0, 2);
        float[] out;
        try (ForwardWorkspace ws = own.openWorkspace(ForwardPrecision.FP32, "p", ForwardWorkspace.Handoff.PIPELINE)) {
            own.activationCacheBytes(16L << 20);
            Matrix m = ws.upload(randomF(new SplittableRandom(SEED + 3), 1000), 10, 100);
            out = ws.downloadAndRelease(m);
        }
        assertThat(own.cachedActivationBytes()).isEqualTo(4000);
        own.close();
        assertThat(own.cachedActivationBytes()).isZero();
        assertThat(out).hasSize(1000);
    }

    /**
     * Fails unless {@code actual[i] == factor · expected[i]} bit for bit, naming the first differing index and the
     * count (AssertJ's containsExactly computes an O(n²) diff of a million-element array on failure).
     */
    private static void assertSameBits(float[] actual, float[] expected, float factor, String what) {
        assertThat(actual).as(what + ": length").hasSameSizeAs(expected);
        int first = -1;
        int count = 0;
        for (int i = 0; i < actual.length; i++) {
            if (Float.floatToRawIntBits(actual[i]) != Float.floatToRawIntBits(factor * expected[i])) {
                count++;
                if (first < 0) {
                    first = i;
                }
            }
        }
        if (count > 0) {
            throw new AssertionError(what + ": " + count + " of " + actual.length + " values differ, the first at " + first
                    + ": " + actual[first] + " instead of " + factor * expected[first]);
        }
    }
}
