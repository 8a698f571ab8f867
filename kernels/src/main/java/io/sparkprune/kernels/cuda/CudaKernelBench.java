package io.sparkprune.kernels.cuda;

import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Timings of the GPU products and attention on device 0, beside {@code sparkprune bench kernels}
 * (the pruning-step table, {@code io.sparkprune.calibration.bench.KernelBench}): fp32 FFMA, TF32 and
 * bf16 GEMMs at 4096³ and 8192 × 4096 × 4096, the Hessian update in fp64 sums and TF32 over 262144
 * tokens, and flash-style attention in fp32 ({@code attention_f32}) and on the TF32 tensor cores
 * ({@code attention_tf32}) at 2 × 16 heads × 2048 × 128 and at the Llama-2-7B layer's 16 × 32 heads ×
 * 2048 × 128, all on device-resident operands.
 * Each figure is the median of several runs after a warm-up; wall-clock time around synchronous calls.
 * On a device where {@link CudaBackend#hopperKernels()} holds (compute capability 9.0), the NT GEMMs
 * and the TF32 Hessian get two rows each: the {@code mma.sync} kernels (forced with
 * {@code useHopperKernels(false)}) and the {@code wgmma} kernels of {@code hopper.cu} (the TF32 rows
 * include the {@code round_tf32} / {@code transpose_round_tf32} passes that the wgmma path adds).
 *
 * <p>Usage: {@code java -cp ... io.sparkprune.kernels.cuda.CudaKernelBench [reps=5]}
 */
public final class CudaKernelBench {
    private CudaKernelBench() {
    }

    /**
     * @param args optional repetitions
     */
    public static void main(String[] args) {
        int reps = args.length > 0 ? Integer.parseInt(args[0]) : 5;
        SplittableRandom r = new SplittableRandom(42);
        try (CudaBackend gpu = CudaBackend.create(0, Runtime.getRuntime().availableProcessors())) {
            System.out.println("device: " + gpu.name() + ", compute capability " + gpu.computeCapability() / 10 + "."
                    + gpu.computeCapability() % 10 + ", Hopper wgmma kernels " + (gpu.hopperKernels() ? "in use"
                    : "not in use"));
            tensorCoreTable(gpu, r, reps);
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

    /** {@link #time} with the Hopper kernels switched off for the call (the mma.sync kernels run). */
    private static double timeMmaSync(CudaBackend gpu, int reps, Runnable call) {
        boolean wg = gpu.hopperKernels();
        gpu.useHopperKernels(false);
        try {
            return time(gpu, reps, call);
        } finally {
            gpu.useHopperKernels(wg);
        }
    }

    /**
     * The tensor-core products, the TF32 Hessian and attention on device-resident random operands,
     * printed as one table (ms, TFLOP/s): GEMMs at 4096³ and 8192×4096×4096 (m×n×k), the TF32 Hessian
     * for n = 4096 over 262144 tokens (16 calls of 16384 tokens), and fp32 and TF32 attention for 32
     * and 512 sequence-heads of 2048 tokens with head width 128 (causal and bidirectional).
     */
    private static void tensorCoreTable(CudaBackend gpu, SplittableRandom r, int reps) {
        System.out.println();
        System.out.println(String.format(Locale.ROOT, "%-52s %10s %10s", "kernel", "ms", "TFLOP/s"));
        boolean wg = gpu.hopperKernels();
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
                    Runnable tf32 = () -> gpu.sgemmTf32Device(false, tb, m, n, k, 1f, da.pointer(), k, db.pointer(),
                            tb ? k : n, 0f, dc.pointer(), n);
                    Runnable bf16 = () -> gpu.gemmBf16Device(false, tb, m, n, k, 1f, ha.pointer(), k, hb.pointer(),
                            tb ? k : n, 0f, dc.pointer(), n);
                    String form = tb ? "NT " : "NN ";
                    row("sgemmTf32 " + form + shape + " mma.sync", timeMmaSync(gpu, reps, tf32), flops);
                    if (tb && wg) {
                        row("sgemmTf32 NT " + shape + " wgmma+round", time(gpu, reps, tf32), flops);
                    }
                    row("gemmBf16 " + form + shape + " mma.sync", timeMmaSync(gpu, reps, bf16), flops);
                    if (tb && wg) {
                        row("gemmBf16 NT " + shape + " wgmma", time(gpu, reps, bf16), flops);
                    }
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
            Runnable syrk = () -> {
                for (int c = 0; c < 16; c++) {
                    gpu.syrkTf32Device(n, k, dx.pointer(), n, dh.pointer());
                }
            };
            row("syrkTf32 n=4096 tokens=262144 (16x16384) mma.sync", timeMmaSync(gpu, reps, syrk),
                    (double) n * n * k * 16);
            if (wg) {
                row("syrkTf32 n=4096 tokens=262144 wgmma+transpose", time(gpu, reps, syrk), (double) n * n * k * 16);
            }
            double ms64 = time(gpu, Math.min(reps, 3), () -> {
                for (int c = 0; c < 16; c++) {
                    gpu.syrkDevice(n, k, dx.pointer(), dh.pointer());
                }
            });
            row("syrk fp64-sum n=4096 tokens=262144", ms64, (double) n * n * k * 16);
        }
        // attention: 32 sequence-heads (2 sequences x 16 heads), seq 2048, head 128; then the Llama-2-7B
        // layer's shape of `sparkprune bench layer` (16 sequences x 32 heads)
        attentionRows(gpu, r, reps, 2, 16);
        attentionRows(gpu, r, reps, 16, 32);
        System.out.println();
    }

    /**
     * Times attention_f32 and attention_tf32 (causal and bidirectional) over {@code seqs} sequences of
     * 2048 tokens with {@code heads} heads of width 128 (as many KV heads), on one random operand used
     * as q, k and v. FLOPs counted: 4·seqs·heads·2048²·128, halved under the causal mask.
     */
    private static void attentionRows(CudaBackend gpu, SplittableRandom r, int reps, int seqs, int heads) {
        int seq = 2048;
        int hd = 128;
        int rows = seq * seqs;
        int qc = heads * hd;
        int[] starts = new int[seqs + 1];
        for (int s = 0; s <= seqs; s++) {
            starts[s] = s * seq;
        }
        int[][] tileTables = {CudaBackend.attentionTiles(seqs, starts),
            CudaBackend.attentionTiles(seqs, starts, CudaBackend.ATTENTION_TF32_QUERY_TILE)};
        String shape = seqs * heads + "x" + seq + "x" + hd;
        try (DeviceBuffer dq = gpu.allocate(4L * rows * qc, "bench q");
             DeviceBuffer dk = gpu.allocate(4L * rows * qc, "bench k");
             DeviceBuffer dv = gpu.allocate(4L * rows * qc, "bench v");
             DeviceBuffer dout = gpu.allocate(4L * rows * qc, "bench out");
             DeviceBuffer dmeta = gpu.allocate(4L * (tileTables[0].length + seqs + 1), "bench tiles")) {
            gpu.makeCurrent();
            float[] h = random(r, rows * qc);
            dq.upload(h, 0, rows * qc, 0);
            dk.upload(h, 0, rows * qc, 0);
            dv.upload(h, 0, rows * qc, 0);
            for (int kind = 0; kind < 2; kind++) {
                boolean tf32 = kind == 1;
                int[] tiles = tileTables[kind];
                int[] meta = Arrays.copyOf(tiles, tiles.length + seqs + 1);
                System.arraycopy(starts, 0, meta, tiles.length, seqs + 1);
                jcuda.driver.JCudaDriver.cuMemcpyHtoD(dmeta.pointer(), jcuda.Pointer.to(meta), 4L * meta.length);
                for (boolean causal : new boolean[] {true, false}) {
                    Runnable call = tf32
                            ? () -> gpu.attentionTf32Device(heads, heads, hd, 0.088f, causal, 0, tiles.length / 2,
                                    dmeta.at(4L * tiles.length), new jcuda.driver.CUdeviceptr(), dmeta.pointer(),
                                    dq.pointer(), qc, dk.pointer(), qc, dv.pointer(), qc, dout.pointer(), qc)
                            : () -> gpu.attentionDevice(heads, heads, hd, 0.088f, causal, 0, tiles.length / 2,
                                    dmeta.at(4L * tiles.length), new jcuda.driver.CUdeviceptr(), dmeta.pointer(),
                                    dq.pointer(), qc, dk.pointer(), qc, dv.pointer(), qc, dout.pointer(), qc);
                    double ms = time(gpu, reps, call);
                    double flops = 4.0 * seqs * heads * (double) seq * seq * hd * (causal ? 0.5 : 1.0);
                    row("attention " + (tf32 ? "tf32 " : "fp32 ") + (causal ? "causal " : "bidir  ") + shape, ms,
                            flops);
                }
            }
        }
    }

    private static void row(String what, double ms, double flops) {
        System.out.println(String.format(Locale.ROOT, "%-52s %10.3f %10.1f", what, ms, flops / ms / 1e9));
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
}
