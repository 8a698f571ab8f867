package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.cpu.CpuBackend;

import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Quick timings of the GPU kernels on device 0 (not the full {@code sparkprune bench kernels} table):
 * the fp32 product and the Hessian update on device-resident operands, and the SparseGPT pruning step
 * of a 4096 × 4096 weight with 2:4 sparsity ({@link CudaBackend#sparseGptSolveNofM}: upload, every block
 * and lazy update, download), with the inverse factor computed on the CPU and timed separately.
 * Each figure is the median of several runs after a warm-up; wall-clock time around synchronous calls.
 *
 * <p>Usage: {@code java -cp ... io.sparkprune.kernels.cuda.CudaKernelBench [size=4096] [reps=5]}
 */
public final class CudaKernelBench {
    private CudaKernelBench() {
    }

    /**
     * @param args optional size and repetitions
     */
    public static void main(String[] args) {
        int size = args.length > 0 ? Integer.parseInt(args[0]) : 4096;
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        int cpuThreads = Runtime.getRuntime().availableProcessors();
        SplittableRandom r = new SplittableRandom(42);
        try (CudaBackend gpu = CudaBackend.create(0, cpuThreads)) {
            System.out.println("device: " + gpu.name());
            int n = size;
            // ---- sgemm, device resident
            float[] a = random(r, n * n);
            try (DeviceBuffer da = gpu.allocate(4L * n * n, "bench A");
                 DeviceBuffer db = gpu.allocate(4L * n * n, "bench B");
                 DeviceBuffer dc = gpu.allocate(4L * n * n, "bench C")) {
                gpu.makeCurrent();
                da.upload(a, 0, n * n, 0);
                db.upload(a, 0, n * n, 0);
                double[] t = new double[reps];
                for (int i = -1; i < reps; i++) {
                    long t0 = System.nanoTime();
                    synchronized (gpu) {
                        gpu.makeCurrent();
                        gpu.sgemmDevice(false, false, n, n, n, 1f, da.pointer(), n, db.pointer(), n, 0f, dc.pointer(), n,
                                "bench");
                    }
                    if (i >= 0) {
                        t[i] = (System.nanoTime() - t0) / 1e6;
                    }
                }
                double ms = median(t);
                System.out.printf(Locale.ROOT, "sgemm fp32 %dx%dx%d: %.2f ms  %.1f TFLOP/s%n", n, n, n, ms,
                        2.0 * n * n * n / ms / 1e9);
            }
            // ---- syrk, device resident: n features, 8192 tokens
            int k = 8192;
            float[] x = random(r, k * n);
            long packed = (long) n * (n + 1) / 2;
            try (DeviceBuffer dx = gpu.allocate(4L * k * n, "bench X");
                 DeviceBuffer dh = gpu.allocate(8L * packed, "bench H")) {
                gpu.makeCurrent();
                dx.upload(x, 0, k * n, 0);
                dh.zero(0, 8L * packed);
                double[] t = new double[reps];
                for (int i = -1; i < reps; i++) {
                    long t0 = System.nanoTime();
                    synchronized (gpu) {
                        gpu.makeCurrent();
                        gpu.syrkDevice(n, k, dx.pointer(), dh.pointer());
                    }
                    if (i >= 0) {
                        t[i] = (System.nanoTime() - t0) / 1e6;
                    }
                }
                double ms = median(t);
                System.out.printf(Locale.ROOT, "syrk fp64-accumulate n=%d k=%d: %.2f ms  %.1f TFLOP/s (n²k flops)"
                        + "  -> %.0f ms per 262144 tokens%n", n, k, ms, (double) n * n * k / ms / 1e9, ms * 262144 / k);
            }
            // ---- pruning step 4096x4096 2:4: inverse factor on the CPU, the solve on the GPU
            double[] h = new double[n * n];
            try (CpuBackend cpu = CpuBackend.create(cpuThreads)) {
                int tokens = 2 * n;
                float[] xs = random(r, tokens * n);
                double[] hp = new double[(int) packed];
                gpu.syrkPackedUpper(n, tokens, xs, 0, n, hp);
                int p = 0;
                for (int i = 0; i < n; i++) {
                    for (int j = i; j < n; j++) {
                        h[i * n + j] = hp[p++] / tokens;
                    }
                    h[i * n + i] += 0.01;
                }
                long t0 = System.nanoTime();
                if (!cpu.inverseCholeskyUpper(n, h, 0, n)) {
                    throw new IllegalStateException("bench Hessian is not positive definite");
                }
                System.out.printf(Locale.ROOT, "inverse factor %dx%d on the CPU (%d threads): %.0f ms%n", n, n, cpuThreads,
                        (System.nanoTime() - t0) / 1e6);
            }
            float[] u = new float[n * n];
            for (int i = 0; i < u.length; i++) {
                u[i] = (float) h[i];
            }
            float[] w0 = random(r, n * n);
            double[] t = new double[reps];
            for (int i = -1; i < reps; i++) {
                float[] w = w0.clone();
                byte[] mask = new byte[n * n];
                double[] loss = new double[n];
                long t0 = System.nanoTime();
                gpu.sparseGptSolveNofM(n, n, w, u, 128, 2, 4, mask, loss);
                if (i >= 0) {
                    t[i] = (System.nanoTime() - t0) / 1e6;
                }
            }
            System.out.printf(Locale.ROOT, "sparsegpt 2:4 solve %dx%d on the GPU (upload + %d blocks + lazy updates +"
                    + " download): median %.1f ms of %s%n", n, n, n / 128, median(t), Arrays.toString(round(t)));
        }
    }

    private static float[] random(SplittableRandom r, int len) {
        float[] x = new float[len];
        for (int i = 0; i < len; i++) {
            x[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return x;
    }

    private static double median(double[] t) {
        double[] s = t.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    private static long[] round(double[] t) {
        long[] o = new long[t.length];
        for (int i = 0; i < t.length; i++) {
            o[i] = Math.round(t[i]);
        }
        return o;
    }
}
