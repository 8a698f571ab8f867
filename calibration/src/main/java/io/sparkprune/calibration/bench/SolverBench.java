package io.sparkprune.calibration.bench;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.solver.PruneResult;
import io.sparkprune.calibration.solver.SolverOptions;
import io.sparkprune.calibration.solver.SparseGptSolver;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.cpu.CpuBackend;

import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * Benchmark of the pruning step on synthetic inputs: for each case, the inverse factor of a
 * synthetic Hessian ({@link InverseFactor#compute}, timed as "factor") and the SparseGPT solve
 * ({@link SparseGptSolver#prune}, timed as "solve"), wall-clock seconds, repeated (the first run
 * includes JIT warm-up). The Hessian is {@code H = (2/t)·GᵀG} for t = 1024 synthetic tokens G with
 * correlated features and per-feature scales spread over two orders of magnitude (rank ≤ 1024, made
 * definite by the 1% dampening); weights are Gaussian. Timings depend only on the shapes, not the values.
 *
 * <p>Usage: {@code SolverBench [--shapes 4096x4096,11008x4096] [--patterns 2:4,unstructured:0.5]
 * [--quant none,int4] [--threads N] [--repeat R] [--plain]}; {@code --quant} items are
 * {@code none}, {@code intB} (asymmetric per channel, as the reference) or {@code intB-gG}
 * (asymmetric, groups of G); {@code --plain} forces the plain-Java kernels. Needs
 * {@code --add-modules jdk.incubator.vector} on the JVM for the SIMD kernels. Prints one table row
 * per run.
 */
public final class SolverBench {
    private SolverBench() {
    }

    /**
     * One benchmark case.
     *
     * @param rows out_features
     * @param cols in_features
     * @param pattern sparsity pattern
     * @param quant joint quantization or empty
     */
    public record Case(int rows, int cols, SparsityPattern pattern, Optional<QuantizationSpec> quant) {
        /** @return e.g. {@code 4096x4096} */
        public String shape() {
            return rows + "x" + cols;
        }

        /** @return e.g. {@code none} or {@code int4 asymmetric per-channel} */
        public String quantName() {
            return quant.map(QuantizationSpec::describe).orElse("none");
        }
    }

    /**
     * One timed run.
     *
     * @param benchCase the case
     * @param run 1-based run number
     * @param factorSeconds inverse factor wall time
     * @param solveSeconds solver wall time
     * @param sparsity fraction of zeros in the result
     */
    public record Row(Case benchCase, int run, double factorSeconds, double solveSeconds, double sparsity) {
        /** @return factor plus solve */
        public double totalSeconds() {
            return factorSeconds + solveSeconds;
        }
    }

    /**
     * Runs the cases.
     *
     * @param backend kernels
     * @param cases what to run
     * @param repeat runs per case, ≥ 1
     * @param seed seed of the synthetic data
     * @param out where to print the table (header and one row per run), or null
     * @return the rows
     */
    public static List<Row> run(Backend backend, List<Case> cases, int repeat, long seed, PrintStream out) {
        if (out != null) {
            out.printf(Locale.ROOT, "# SparseGPT solver benchmark: backend %s, Java %s, %d processors, load average %.2f%n",
                    backend.name(), System.getProperty("java.version"), Runtime.getRuntime().availableProcessors(),
                    ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
            out.printf(Locale.ROOT, "%-12s %-18s %-28s %3s %8s %8s %8s %8s%n",
                    "shape", "pattern", "quant", "run", "factor_s", "solve_s", "total_s", "zeros");
        }
        List<Row> rows = new ArrayList<>();
        Map<Integer, float[]> hessians = new HashMap<>();
        SparseGptSolver solver = new SparseGptSolver(backend, SolverOptions.DEFAULT);
        for (Case c : cases) {
            float[] h = hessians.computeIfAbsent(c.cols(), n -> syntheticHessian(backend, n, seed));
            float[] w = gaussian(c.rows() * c.cols(), seed + 1, 0.02);
            for (int run = 1; run <= repeat; run++) {
                InverseFactor f = InverseFactor.compute(backend, "synthetic " + c.cols(), h, c.cols(), Dampening.DEFAULT);
                PruneResult res = solver.prune("synthetic " + c.shape(), w, c.rows(), c.cols(), f, c.pattern(), c.quant());
                Row row = new Row(c, run, f.nanos() / 1e9, res.solveNanos() / 1e9, res.zeroFraction());
                rows.add(row);
                if (out != null) {
                    out.printf(Locale.ROOT, "%-12s %-18s %-28s %3d %8.3f %8.3f %8.3f %8.4f%n", c.shape(), c.pattern().spec(),
                            c.quantName(), run, row.factorSeconds(), row.solveSeconds(), row.totalSeconds(), row.sparsity());
                    out.flush();
                }
            }
        }
        return rows;
    }

    private static float[] gaussian(int n, long seed, double scale) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextGaussian() * scale);
        }
        return x;
    }

    /** {@code (2/t)·GᵀG} for t = 1024 tokens of correlated, unevenly scaled features; fp32 {@code n × n}. */
    static float[] syntheticHessian(Backend backend, int n, long seed) {
        int tokens = 1024;
        int latent = 64;
        SplittableRandom r = new SplittableRandom(seed);
        float[] z = gaussian(tokens * latent, seed + 2, 1.0);
        float[] mix = gaussian(latent * n, seed + 3, 1.0 / Math.sqrt(latent));
        float[] g = gaussian(tokens * n, seed + 4, 0.3);
        backend.sgemm(false, false, tokens, n, latent, 1f, z, 0, latent, mix, 0, n, 1f, g, 0, n);
        for (int j = 0; j < n; j++) {
            float s = (float) (Math.exp(r.nextGaussian() * 0.8) * (r.nextInt(50) == 0 ? 20 : 1));
            for (int t = 0; t < tokens; t++) {
                g[t * n + j] *= s;
            }
        }
        float[] h = new float[n * n];
        backend.sgemm(true, false, n, n, tokens, 2f / tokens, g, 0, n, g, 0, n, 0f, h, 0, n);
        for (int i = 0; i < n; i++) { // exact symmetry
            for (int j = i + 1; j < n; j++) {
                h[j * n + i] = h[i * n + j];
            }
        }
        return h;
    }

    /**
     * Parses {@code none}, {@code intB} or {@code intB-gG}.
     *
     * @param text the item
     * @return the spec or empty for none
     */
    static Optional<QuantizationSpec> parseQuant(String text) {
        String s = text.trim().toLowerCase(Locale.ROOT);
        if (s.equals("none")) {
            return Optional.empty();
        }
        try {
            if (s.startsWith("int")) {
                int dash = s.indexOf("-g");
                int bits = Integer.parseInt(dash < 0 ? s.substring(3) : s.substring(3, dash));
                int group = dash < 0 ? 0 : Integer.parseInt(s.substring(dash + 2));
                return Optional.of(new QuantizationSpec(bits, false, group));
            }
        } catch (NumberFormatException e) {
            // fall through
        }
        throw new CalibrationInputException("cannot parse quantization '" + text + "'; use none, int4 or int4-g128");
    }

    /**
     * Command-line entry point; see the class Javadoc.
     *
     * @param args options
     */
    public static void main(String[] args) {
        List<String> shapes = List.of("4096x4096", "11008x4096");
        List<String> patterns = List.of("2:4", "unstructured:0.5");
        List<String> quants = List.of("none");
        int threads = Runtime.getRuntime().availableProcessors();
        int repeat = 2;
        boolean plain = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--shapes" -> shapes = List.of(args[++i].split(","));
                case "--patterns" -> patterns = List.of(args[++i].split(","));
                case "--quant" -> quants = List.of(args[++i].split(","));
                case "--threads" -> threads = Integer.parseInt(args[++i]);
                case "--repeat" -> repeat = Integer.parseInt(args[++i]);
                case "--plain" -> plain = true;
                default -> throw new CalibrationInputException("unknown option " + args[i]
                        + "; options: --shapes RxC,... --patterns P,... --quant none,int4,... --threads N --repeat R --plain");
            }
        }
        List<Case> cases = new ArrayList<>();
        for (String shape : shapes) {
            String[] rc = shape.toLowerCase(Locale.ROOT).split("x");
            if (rc.length != 2) {
                throw new CalibrationInputException("shape '" + shape + "' must be ROWSxCOLS, e.g. 4096x4096");
            }
            for (String p : patterns) {
                for (String q : quants) {
                    cases.add(new Case(Integer.parseInt(rc[0]), Integer.parseInt(rc[1]), SparsityPattern.parse(p), parseQuant(q)));
                }
            }
        }
        try (CpuBackend backend = plain ? CpuBackend.create(threads, false) : CpuBackend.create(threads)) {
            run(backend, cases, repeat, 42L, System.out);
        }
    }
}
