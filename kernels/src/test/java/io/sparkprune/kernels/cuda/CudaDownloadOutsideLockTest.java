package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.ForwardWorkspace.Matrix;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@link CudaBackend#downloadOutsideLock} (the forward workspace's downloads, which leave the backend's
 * lock while the bytes move): the same bits as the locked download over several pinned chunks, and
 * correct while other threads run kernels on the same backend. The products are of small integers, so
 * every fp32 sum is exact in any order and the expected outputs are computed here exactly: a download that
 * did not wait for the kernels that wrote its buffer (the free list hands the buffer of the previous
 * iteration back) would return the previous iteration's values and fail.
 */
@Tag("gpu")
class CudaDownloadOutsideLockTest extends CudaSuite {

    /** Small pinned chunks so that outputs of a few hundred KB cross many chunks. */
    private static CudaBackend smallChunks() {
        return CudaBackend.create(0, 2, 64 << 10, 4 << 10);
    }

    @Test
    void sameBitsAsTheLockedDownloadAcrossChunks() {
        device.require();
        try (CudaBackend be = smallChunks()) {
            SplittableRandom r = new SplittableRandom(SEED);
            float[] host = new float[300_001]; // not a multiple of the chunk's floats
            for (int i = 0; i < host.length; i++) {
                host[i] = (float) r.nextGaussian();
            }
            try (DeviceBuffer b = be.allocate(4L * host.length, "test")) {
                be.upload(host, b);
                float[] locked = new float[host.length];
                be.download(b, locked);
                float[] outside = new float[host.length];
                be.downloadOutsideLock(b, outside);
                assertThat(bits(outside)).isEqualTo(bits(locked)).isEqualTo(bits(host));
                float[] head = new float[1000]; // below the staging threshold: the locked path
                be.downloadOutsideLock(b, head);
                assertThat(bits(head)).isEqualTo(bits(java.util.Arrays.copyOf(host, 1000)));
            }
        }
    }

    @Test
    void workspaceOutputsAreRightWhileOtherThreadsRunKernels() throws Exception {
        device.require();
        int threads = 3;
        int iterations = 12;
        try (CudaBackend be = smallChunks()) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<Integer>> runs = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    runs.add(pool.submit(() -> chain(be, id, iterations)));
                }
                for (Future<Integer> f : runs) {
                    assertThat(f.get()).isEqualTo(iterations);
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }

    /**
     * In one workspace: per iteration, Y = X·Wᵀ of small integers (X's values shifted by the iteration), then
     * downloaded and released (its buffer goes back to the free list for the next iteration's Y) and compared
     * with the exact product. Returns the iterations that matched.
     */
    private static int chain(CudaBackend be, int id, int iterations) {
        int rows = 256;
        int in = 64;
        int out = 320;
        float[] w = new float[out * in];
        for (int i = 0; i < w.length; i++) {
            w[i] = ((i * 7 + id) % 5) - 2;
        }
        int ok = 0;
        try (ForwardWorkspace ws = be.openWorkspace(ForwardPrecision.FP32, "download test " + id)) {
            Matrix wm = ws.weight(w, out, in);
            for (int it = 0; it < iterations; it++) {
                float[] x = new float[rows * in];
                for (int i = 0; i < x.length; i++) {
                    x[i] = ((i * 3 + it * 11 + id) % 9) - 4;
                }
                Matrix xm = ws.upload(x, rows, in);
                Matrix y = ws.allocate(rows, out);
                ws.linear(xm, wm, null, y);
                ws.release(xm);
                float[] got = ws.downloadAndRelease(y);
                float[] want = new float[rows * out];
                for (int r = 0; r < rows; r++) {
                    for (int o = 0; o < out; o++) {
                        float s = 0;
                        for (int k = 0; k < in; k++) {
                            s += x[r * in + k] * w[o * in + k];
                        }
                        want[r * out + o] = s;
                    }
                }
                assertThat(bits(got)).as("thread " + id + " iteration " + it).isEqualTo(bits(want));
                ok++;
            }
        }
        return ok;
    }

    private static int[] bits(float[] a) {
        int[] b = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            b[i] = Float.floatToRawIntBits(a[i]);
        }
        return b;
    }
}
