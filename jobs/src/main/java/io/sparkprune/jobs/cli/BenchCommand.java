package io.sparkprune.jobs.cli;

import io.sparkprune.calibration.bench.KernelBench;
import io.sparkprune.calibration.bench.SolverBench;
import io.sparkprune.pipeline.bench.ForwardBench;
import io.sparkprune.pipeline.bench.LayerBench;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;

/**
 * {@code sparkprune bench}: the benchmarks whose numbers docs/benchmarks.md records. Speed targets
 * live here, never in unit tests.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Run a benchmark and print its table.",
        subcommands = {BenchCommand.Solver.class, BenchCommand.Forward.class, BenchCommand.Kernels.class,
            BenchCommand.Assemble.class, BenchCommand.Layer.class})
final class BenchCommand implements Runnable {

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "missing benchmark: solver, forward, kernels, assemble or layer");
    }

    /** The pruning step on the CPU backend: inverse factor + SparseGPT solve per shape and pattern. */
    @Command(name = "solver", mixinStandardHelpOptions = true,
            description = "Inverse factor + SparseGPT solve on synthetic inputs (CPU backend). Options are SolverBench's: "
                    + "[--shapes 4096x4096,11008x4096] [--patterns 2:4,unstructured:0.5] [--quant none,int4,int4-g128] "
                    + "[--threads N] [--repeat R] [--plain]")
    static final class Solver implements Callable<Integer> {
        @picocli.CommandLine.Unmatched
        String[] args = new String[0];

        @Override
        public Integer call() throws Exception {
            SolverBench.main(args);
            return ExitCodes.OK;
        }
    }

    /** Forward-pass throughput on the CPU backend: the default MiniLM and a random ~110M-parameter Llama. */
    @Command(name = "forward", mixinStandardHelpOptions = true,
            description = "CPU forward-pass throughput (tokens/s): all-MiniLM-L6-v2 on 32 x 128 Europarl tokens and a random "
                    + "110M-parameter Llama on 2 x 512 tokens. Options are ForwardBench's: [--models minilm,llama] "
                    + "[--seconds S] [--threads N] [--plain]")
    static final class Forward implements Callable<Integer> {
        @picocli.CommandLine.Unmatched
        String[] args = new String[0];

        @Override
        public Integer call() throws Exception {
            ForwardBench.main(args);
            return ExitCodes.OK;
        }
    }

    /** The GPU pruning step and Hessian update against the reference figures (needs a CUDA device). */
    @Command(name = "kernels", mixinStandardHelpOptions = true,
            description = "GPU pruning step (factor of H + all SparseGPT blocks) per Llama-7B/8B layer shape and pattern "
                    + "and the Hessian update per 128 x 2048 tokens, against the reference implementation's H200 figures, "
                    + "with the measured copy-bandwidth ceiling. Options are KernelBench's: [--shapes 4096x4096,...] "
                    + "[--patterns 50%,2:4,2:4+int4] [--repeat R] [--tc-tflops T] [--profile: every launch of one step timed] "
                    + "[--lazy-blocks B,...: one row per super-block size of the solve's lazy updates] "
                    + "[--solve-forms cholesky,inverse: one row per form of the device solve, and how far they agree]")
    static final class Kernels implements Callable<Integer> {
        @picocli.CommandLine.Unmatched
        String[] args = new String[0];

        @Override
        public Integer call() throws Exception {
            KernelBench.main(args);
            return ExitCodes.OK;
        }
    }

    /** One layer's GPU work in the prune job (forward pass, Hessian pass, flush) on one calibration partition, without Spark. */
    @Command(name = "layer", mixinStandardHelpOptions = true,
            description = "One layer of the prune job's sequential loop on one calibration partition, without Spark: the "
                    + "block's forward pass, its Hessian pass and the flush of the device Hessian sums (default: Llama-2-7B "
                    + "shapes, 4 x 16 x 2048 tokens, TF32). Options are LayerBench's: [--backend cuda|cpu] [--hidden H] "
                    + "[--intermediate I] [--heads N] [--batches B] [--sequences S] [--seq-len L] [--forward fp32|tf32] "
                    + "[--hessian exact|tf32] [--repeat R] [--profile: every launch of one more run timed]")
    static final class Layer implements Callable<Integer> {
        @picocli.CommandLine.Unmatched
        String[] args = new String[0];

        @Override
        public Integer call() throws Exception {
            LayerBench.main(args);
            return ExitCodes.OK;
        }
    }

    /** The driver's output assembly: the sequential path against the pipeline's stream and positional paths. */
    @Command(name = "assemble", mixinStandardHelpOptions = true,
            description = "Dense output assembly (staged shards read and SHA-256-checked, other tensors copied) on a "
                    + "synthetic Llama-shaped checkpoint: the sequential path against the pipeline's stream path (one "
                    + "writer) and positional path (every thread writes at its offsets), outputs "
                    + "compared byte for byte. Options are AssembleBench's: [--layers L] [--hidden H] [--intermediate I] "
                    + "[--vocab V] [--shards S] [--repeat R] [--readers N] [--chunk-mib C] [--window-mib W] [--dir D] "
                    + "[--raw]")
    static final class Assemble implements Callable<Integer> {
        @picocli.CommandLine.Unmatched
        String[] args = new String[0];

        @Override
        public Integer call() throws Exception {
            io.sparkprune.jobs.prune.AssembleBench.main(args);
            return ExitCodes.OK;
        }
    }
}
