package io.sparkprune.pipeline.bench;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.HessianPrecision;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.kernels.cuda.CudaBackend;
import io.sparkprune.pipeline.forward.CalibrationGroup;
import io.sparkprune.pipeline.forward.HessianObserver;
import io.sparkprune.pipeline.forward.HiddenStates;
import io.sparkprune.pipeline.forward.LinearObserver;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.ParameterSpec;
import io.sparkprune.pipeline.forward.SequenceLayout;
import io.sparkprune.pipeline.forward.TensorSource;
import io.sparkprune.pipeline.forward.Weights;
import io.sparkprune.pipeline.model.LlamaConfig;
import io.sparkprune.pipeline.model.RopeScaling;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * {@code sparkprune bench layer}: the GPU work of one layer of the prune job's sequential loop on one
 * calibration partition, without Spark, so that its time can be split from the job's scheduling,
 * shuffle and host copies. For a random BF16 Llama block ({@code --hidden}, {@code --intermediate},
 * {@code --heads}; default Llama-2-7B: 4096, 11008, 32) and {@code --batches} batches of
 * {@code --sequences} × {@code --seq-len} tokens (default 4 × 16 × 2048: one of the 7B benchmark's two
 * partitions), it times, as the job's tasks run them:
 * <ol>
 *   <li>{@code forward}: the block's forward pass over every batch in a
 *       {@link ForwardWorkspace.Handoff#PIPELINE} workspace (the job's {@code forward.compute}: each input
 *       uploaded, each output downloaded into a new host array and kept on the device);</li>
 *   <li>{@code observe}: the Hessian pass over those outputs ({@code hessians.forward}: the block up to
 *       the last calibration group's input, Σ xᵀx of each group accumulated on the device, the inputs
 *       found in the activation cache);</li>
 *   <li>{@code flush}: the device Hessian sums folded into the host partials ({@code hessians.flush}).</li>
 * </ol>
 * Each phase's wall time is the median of {@code --repeat} runs (after one warm-up). With
 * {@code --profile}, one more run times every kernel launch on its own
 * ({@link CudaBackend#profileLaunches}) and prints the call sites, largest total first.
 *
 * <p>Usage: {@code LayerBench [--backend cuda|cpu] [--hidden H] [--intermediate I] [--heads N]
 * [--batches B] [--sequences S] [--seq-len L] [--forward fp32|tf32] [--hessian exact|tf32] [--repeat R]
 * [--profile]}.
 */
public final class LayerBench {
    private LayerBench() {
    }

    /**
     * @param args see the class comment
     * @throws IllegalArgumentException for an unknown option or a bad value
     */
    public static void main(String[] args) {
        String backendName = "cuda";
        int hidden = 4096;
        int inter = 11008;
        int heads = 32;
        int batches = 4;
        int sequences = 16;
        int seqLen = 2048;
        int repeat = 2;
        boolean profile = false;
        ForwardPrecision fp = ForwardPrecision.TF32;
        HessianPrecision hp = HessianPrecision.TF32;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--backend" -> backendName = value(args, ++i);
                case "--hidden" -> hidden = Integer.parseInt(value(args, ++i));
                case "--intermediate" -> inter = Integer.parseInt(value(args, ++i));
                case "--heads" -> heads = Integer.parseInt(value(args, ++i));
                case "--batches" -> batches = Integer.parseInt(value(args, ++i));
                case "--sequences" -> sequences = Integer.parseInt(value(args, ++i));
                case "--seq-len" -> seqLen = Integer.parseInt(value(args, ++i));
                case "--repeat" -> repeat = Integer.parseInt(value(args, ++i));
                case "--forward" -> fp = ForwardPrecision.valueOf(value(args, ++i).toUpperCase(Locale.ROOT));
                case "--hessian" -> hp = HessianPrecision.valueOf(value(args, ++i).toUpperCase(Locale.ROOT));
                case "--profile" -> profile = true;
                default -> throw new IllegalArgumentException("unknown option " + args[i] + "; see LayerBench's"
                        + " class comment for the options");
            }
        }
        if (hidden % heads != 0) {
            throw new IllegalArgumentException("--hidden " + hidden + " is not a multiple of --heads " + heads);
        }
        LlamaConfig cfg = new LlamaConfig("llama", hidden, inter, 1, heads, heads, hidden / heads, 32000,
                Math.max(2048, seqLen), 1e-5, RopeScaling.plain(10000), false, false, false, false, 0, "bfloat16");
        ModelAdapter a = ModelAdapter.of(cfg);
        Weights w = randomBlock(a, 1);
        List<HiddenStates> inputs = new ArrayList<>();
        SplittableRandom r = new SplittableRandom(2);
        for (int b = 0; b < batches; b++) {
            float[] x = new float[sequences * seqLen * hidden];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            inputs.add(new HiddenStates(SequenceLayout.uniform(sequences, seqLen), hidden, x));
        }
        System.out.printf(Locale.ROOT, "# layer bench: hidden %d, intermediate %d, heads %d, %d batches of %d x %d"
                + " tokens (%d tokens), forward %s, Hessians %s, Java %s%n", hidden, inter, heads, batches, sequences,
                seqLen, (long) batches * sequences * seqLen, fp.name().toLowerCase(Locale.ROOT),
                hp.id(), System.getProperty("java.version"));
        try (Backend be = "cpu".equals(backendName) ? CpuBackend.create(Runtime.getRuntime().availableProcessors())
                : CudaBackend.create(0, Runtime.getRuntime().availableProcessors())) {
            System.out.println("# backend: " + be.name());
            double[][] runs = new double[repeat][];
            run(a, w, inputs, be, fp, hp); // warm-up
            for (int i = 0; i < repeat; i++) {
                runs[i] = run(a, w, inputs, be, fp, hp);
            }
            String[] names = {"forward", "observe", "flush"};
            System.out.println("| phase | median s | runs s |");
            System.out.println("|---|---|---|");
            for (int p = 0; p < names.length; p++) {
                double[] v = new double[repeat];
                StringBuilder all = new StringBuilder();
                for (int i = 0; i < repeat; i++) {
                    v[i] = runs[i][p];
                    all.append(i == 0 ? "" : ", ").append(String.format(Locale.ROOT, "%.3f", v[i]));
                }
                java.util.Arrays.sort(v);
                System.out.printf(Locale.ROOT, "| %s | %.3f | %s |%n", names[p], v[repeat / 2], all);
            }
            if (profile && be instanceof CudaBackend cuda) {
                cuda.profileLaunches(true);
                double[] t = run(a, w, inputs, be, fp, hp);
                cuda.profileLaunches(false);
                System.out.printf(Locale.ROOT, "# profiled run (every launch synchronized): forward %.3f s, observe"
                        + " %.3f s, flush %.3f s%n", t[0], t[1], t[2]);
                System.out.println(cuda.launchProfile());
            }
        }
    }

    /** One forward pass and one Hessian pass over every batch; returns {forward, observe, flush} seconds. */
    private static double[] run(ModelAdapter a, Weights w, List<HiddenStates> inputs, Backend be, ForwardPrecision fp,
                                HessianPrecision hp) {
        List<HiddenStates> outputs = new ArrayList<>();
        long t0 = System.nanoTime();
        try (ForwardWorkspace ws = ForwardWorkspace.open(be, fp, "bench forward", ForwardWorkspace.Handoff.PIPELINE)) {
            for (HiddenStates h : inputs) {
                outputs.add(a.block(ws, 0, w, h, LinearObserver.NONE));
            }
        }
        long t1 = System.nanoTime();
        Map<String, HessianAccumulator> acc = new LinkedHashMap<>();
        for (CalibrationGroup g : a.calibrationGroups()) {
            acc.put(g.name(), new HessianAccumulator(g.name() + " input", g.inFeatures(), hp));
        }
        HessianObserver obs = new HessianObserver(be, acc);
        long t2;
        try (ForwardWorkspace ws = ForwardWorkspace.open(be, fp, "bench Hessians")) {
            for (HiddenStates h : outputs) {
                a.observe(ws, 0, w, h, obs);
            }
            t2 = System.nanoTime();
            for (HessianAccumulator h : acc.values()) {
                h.flush();
            }
        } finally {
            for (HessianAccumulator h : acc.values()) {
                h.discard();
            }
        }
        long t3 = System.nanoTime();
        return new double[] {(t1 - t0) / 1e9, (t2 - t1) / 1e9, (t3 - t2) / 1e9};
    }

    /**
     * Random block weights: N(0, 0.02) linears, unit norms, in BF16 (as {@code sparkprune generate llama
     * --dtype bf16}), kept in BF16 by {@link Weights#load} as the job's are (a resident workspace widens them
     * on the device on first use).
     */
    private static Weights randomBlock(ModelAdapter a, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        for (ParameterSpec p : a.blockParameters()) {
            float[] v = new float[Math.toIntExact(p.numel())];
            boolean norm = p.name().endsWith("norm.weight");
            for (int i = 0; i < v.length; i++) {
                v[i] = norm ? 1f : (float) (r.nextGaussian() * 0.02);
            }
            tensors.put(p.name(), HostTensor.fromFloats(DType.BF16, p.shape(), v));
        }
        return Weights.load(TensorSource.of(tensors, "random block"), "", a.blockParameters());
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a value");
        }
        return args[i];
    }
}
