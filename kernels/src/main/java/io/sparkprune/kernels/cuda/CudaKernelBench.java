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
            tensorCoreTable(gpu, r, reps);
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

    /** Times one device call: a warm-up, then the median of {@code reps} synchronous runs, in ms. */
    private static double time(CudaBackend gpu, int reps, Runnable call) {
        double[] t = new double[reps];
        for (int i = -1; i < reps; i++) {
            long t0 = System.nanoTime();
            synchronized (gpu) {
                gpu.makeCurrent();
                call.run();
            }
            if (i >= 0) {
                t[i] = (System.nanoTime() - t0) / 1e6;
            }
        }
        return median(t);
    }

    /**
     * The tensor-core products, the TF32 Hessian and attention on device-resident random operands,
     * printed as one table (ms, TFLOP/s): GEMMs at 4096³ and 8192×4096×4096 (m×n×k), the TF32 Hessian
     * for n = 4096 over 262144 tokens (16 calls of 16384 tokens), and fp32 attention for 32
     * sequence-heads of 2048 tokens with head width 128 (causal and bidirectional).
     */
    private static void tensorCoreTable(CudaBackend gpu, SplittableRandom r, int reps) {
        System.out.println();
        System.out.println(String.format(Locale.ROOT, "%-44s %10s %10s", "kernel", "ms", "TFLOP/s"));
        int[][] shapes = {{4096, 4096, 4096}, {8192, 4096, 4096}};
        long maxElems = 8192L * 4096;
        float[] host = random(r, (int) maxElems);
        short[] hostBf = new short[(int) maxElems];
        for (int i = 0; i < hostBf.length; i++) {
            hostBf[i] = io.sparkprune.kernels.HalfFloats.floatToBf16(host[i]);
        }
        try (DeviceBuffer da = gpu.allocate(4L * maxElems, "bench tc A");
             DeviceBuffer db = gpu.allocate(4L * maxElems, "bench tc B");
             DeviceBuffer dc = gpu.allocate(4L * maxElems, "bench tc C");
             DeviceBuffer ha = gpu.allocate(2L * maxElems, "bench bf16 A");
             DeviceBuffer hb = gpu.allocate(2L * maxElems, "bench bf16 B")) {
            gpu.makeCurrent();
            da.upload(host, 0, (int) maxElems, 0);
            db.upload(host, 0, (int) maxElems, 0);
            jcuda.driver.JCudaDriver.cuMemcpyHtoD(ha.pointer(), jcuda.Pointer.to(hostBf), 2L * maxElems);
            jcuda.driver.JCudaDriver.cuMemcpyHtoD(hb.pointer(), jcuda.Pointer.to(hostBf), 2L * maxElems);
            for (int[] s : shapes) {
                int m = s[0];
                int n = s[1];
                int k = s[2];
                double flops = 2.0 * m * n * k;
                String shape = m + "x" + n + "x" + k;
                double ms = time(gpu, reps, () -> gpu.sgemmDevice(false, false, m, n, k, 1f, da.pointer(), k,
                        db.pointer(), n, 0f, dc.pointer(), n, "bench"));
                row("sgemm fp32 (FFMA) NN " + shape, ms, flops);
                for (boolean tb : new boolean[] {false, true}) {
                    double t32 = time(gpu, reps, () -> gpu.sgemmTf32Device(false, tb, m, n, k, 1f, da.pointer(), k,
                            db.pointer(), tb ? k : n, 0f, dc.pointer(), n));
                    row("sgemmTf32 " + (tb ? "NT " : "NN ") + shape, t32, flops);
                    double tbf = time(gpu, reps, () -> gpu.gemmBf16Device(false, tb, m, n, k, 1f, ha.pointer(), k,
                            hb.pointer(), tb ? k : n, 0f, dc.pointer(), n));
                    row("gemmBf16 " + (tb ? "NT " : "NN ") + shape, tbf, flops);
                }
            }
        }
        // TF32 Hessian: n = 4096, 262144 tokens as 16 calls of 16384
        int n = 4096;
        int k = 16384;
        long packed = (long) n * (n + 1) / 2;
        try (DeviceBuffer dx = gpu.allocate(4L * k * n, "bench syrk X");
             DeviceBuffer dh = gpu.allocate(8L * packed, "bench syrk H")) {
            gpu.makeCurrent();
            float[] xs = random(r, k * n);
            dx.upload(xs, 0, k * n, 0);
            dh.zero(0, 8L * packed);
            double ms = time(gpu, reps, () -> {
                for (int c = 0; c < 16; c++) {
                    gpu.syrkTf32Device(n, k, dx.pointer(), n, dh.pointer());
                }
            });
            row("syrkTf32 n=4096 tokens=262144 (16x16384)", ms, (double) n * n * k * 16);
            double ms64 = time(gpu, Math.min(reps, 3), () -> {
                for (int c = 0; c < 16; c++) {
                    gpu.syrkDevice(n, k, dx.pointer(), dh.pointer());
                }
            });
            row("syrk fp64-sum n=4096 tokens=262144", ms64, (double) n * n * k * 16);
        }
        // attention: 32 sequence-heads (2 sequences x 16 heads), seq 2048, head 128
        int seq = 2048;
        int heads = 16;
        int hd = 128;
        int seqs = 2;
        int rows = seq * seqs;
        int qc = heads * hd;
        int[] starts = {0, seq, 2 * seq};
        int[] tiles = CudaBackend.attentionTiles(seqs, starts);
        try (DeviceBuffer dq = gpu.allocate(4L * rows * qc, "bench q");
             DeviceBuffer dk = gpu.allocate(4L * rows * qc, "bench k");
             DeviceBuffer dv = gpu.allocate(4L * rows * qc, "bench v");
             DeviceBuffer dout = gpu.allocate(4L * rows * qc, "bench out");
             DeviceBuffer dmeta = gpu.allocate(4L * (tiles.length + 3), "bench tiles")) {
            gpu.makeCurrent();
            float[] h = random(r, rows * qc);
            dq.upload(h, 0, rows * qc, 0);
            dk.upload(h, 0, rows * qc, 0);
            dv.upload(h, 0, rows * qc, 0);
            int[] meta = Arrays.copyOf(tiles, tiles.length + 3);
            System.arraycopy(starts, 0, meta, tiles.length, 3);
            jcuda.driver.JCudaDriver.cuMemcpyHtoD(dmeta.pointer(), jcuda.Pointer.to(meta), 4L * meta.length);
            for (boolean causal : new boolean[] {true, false}) {
                double ms = time(gpu, reps, () -> gpu.attentionDevice(heads, heads, hd, 0.088f, causal, 0,
                        tiles.length / 2, dmeta.at(4L * tiles.length), new jcuda.driver.CUdeviceptr(), dmeta.pointer(),
                        dq.pointer(), qc, dk.pointer(), qc, dv.pointer(), qc, dout.pointer(), qc));
                double flops = 4.0 * seqs * heads * (double) seq * seq * hd * (causal ? 0.5 : 1.0);
                row("attention fp32 " + (causal ? "causal" : "bidir ") + " 32x2048x128", ms, flops);
            }
        }
        System.out.println();
    }

    private static void row(String what, double ms, double flops) {
        System.out.println(String.format(Locale.ROOT, "%-44s %10.3f %10.1f", what, ms, flops / ms / 1e9));
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
