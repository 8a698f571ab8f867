package io.sparkprune.calibration.bench;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.kernels.GridMath;
import io.sparkprune.kernels.ResidentSolver;
import io.sparkprune.kernels.cuda.CudaBackend;
import io.sparkprune.kernels.cuda.DeviceBuffer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * {@code sparkprune bench kernels}: the GPU pruning step per Llama-7B/8B layer shape and pattern
 * against the reference figures of {@code ../shared/reference/README.md} (the SparseGPT authors' code,
 * fp32, TF32 off, one H200), the Hessian update per 128 × 2048 tokens, and the measured copy-bandwidth
 * ceiling (GPU: {@link CudaBackend}). The pruning step is what the reference times: with the Hessian and W already on the device,
 * the factor of the damped H plus every column block of the SparseGPT solve (the unstructured mask of each
 * block is selected on the device), in the backend's {@link CudaBackend.SolveForm}: by default the
 * Cholesky form (fp64 Cholesky of H and U's diagonal band, {@link CudaBackend#hessianFactorDevice}, then
 * {@link CudaBackend#solveOnDeviceCholesky}), or the inverse form (fp64 Cholesky and triangular inverse,
 * {@link CudaBackend#inverseFactorDevice}, then {@link CudaBackend#solveOnDevice}).
 * Weights and Hessians are random (a Hessian of {@code n + 512} random tokens, so it is full rank);
 * times are wall-clock medians after a warm-up, each run synchronized.
 *
 * <p>Usage: {@code KernelBench [--shapes 4096x4096,...] [--patterns 50%,2:4,2:4+int4] [--repeat R]
 * [--tc-tflops T] [--profile] [--lazy-blocks B,...] [--solve-forms cholesky,inverse]} where T is PyTorch's
 * measured tensor-core rate, printed for reference; {@code --lazy-blocks} times each pruning step once per
 * listed super-block size of the solve's lazy updates ({@link CudaBackend#lazyUpdateBlocks(int)}; default:
 * the backend's); {@code --solve-forms} once per listed form (default: the backend's), and with both forms
 * listed also compares one step of each (mask agreement, weight difference on rows with equal masks);
 * {@code --profile} adds, per shape and pattern, one more pruning step with every kernel launch and
 * device allocation timed on its own ({@link CudaBackend#profileLaunches}): where the step's time goes.
 */
public final class KernelBench {
    /** Reference pruning-step seconds (shape → 50%, 2:4, 2:4 + int4) and Hessian seconds per 128 × 2048 tokens. */
    static final Object[][] REFERENCE = {
        {"4096x4096", 1.05, 0.75, 0.86, 0.29},
        {"11008x4096", 0.48, 0.55, 0.80, 0.19},
        {"4096x11008", 1.46, 1.55, 2.19, 1.30},
        {"14336x4096", 0.50, 0.54, 0.77, 0.19},
        {"4096x14336", 1.75, 2.03, 2.84, 2.15},
    };
    private static final String[] PATTERNS = {"50%", "2:4", "2:4+int4"};
    private static final int TOKENS = 128 * 2048;

    private KernelBench() {
    }

    /**
     * @param args see the class comment
     */
    public static void main(String[] args) {
        List<String> shapes = new ArrayList<>();
        for (Object[] r : REFERENCE) {
            shapes.add((String) r[0]);
        }
        List<String> patterns = List.of(PATTERNS);
        int repeat = 3;
        double tc = Double.NaN;
        boolean profile = false;
        List<Integer> lazy = List.of(CudaBackend.DEFAULT_LAZY_BLOCKS);
        List<CudaBackend.SolveForm> forms = null; // null: the backend's
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--shapes" -> shapes = List.of(value(args, ++i).split(","));
                case "--patterns" -> patterns = List.of(value(args, ++i).split(","));
                case "--repeat" -> repeat = (int) number(args[i], value(args, ++i), 1, 1000, true);
                case "--tc-tflops" -> tc = number(args[i], value(args, ++i), 0, 1e6, false);
                case "--profile" -> profile = true;
                case "--lazy-blocks" -> {
                    List<Integer> l = new ArrayList<>();
                    for (String v : value(args, ++i).split(",")) {
                        l.add((int) number("--lazy-blocks", v, 1, 64, true));
                    }
                    lazy = l;
                }
                case "--solve-forms" -> {
                    List<CudaBackend.SolveForm> l = new ArrayList<>();
                    for (String v : value(args, ++i).split(",")) {
                        l.add(solveForm(v));
                    }
                    forms = l;
                }
                default -> throw new CalibrationInputException("unknown option " + args[i]
                        + "; use --shapes, --patterns, --repeat, --tc-tflops, --profile, --lazy-blocks, --solve-forms");
            }
        }
        for (String p : patterns) {
            if (!Arrays.asList(PATTERNS).contains(p)) {
                throw new CalibrationInputException("option --patterns has '" + p + "': use " + String.join(", ", PATTERNS));
            }
        }
        SplittableRandom rnd = new SplittableRandom(7);
        List<String> table = new ArrayList<>();
        List<String> profiles = new ArrayList<>();
        List<String> agreement = new ArrayList<>();
        try (CudaBackend gpu = CudaBackend.create(0, Runtime.getRuntime().availableProcessors())) {
            System.out.println("device: " + gpu.name());
            double copyGBs = copyBandwidth(gpu);
            table.add(String.format(Locale.ROOT, "ceiling: device-to-device copy %.0f GB/s (read + write)%s", copyGBs,
                    Double.isNaN(tc) ? "" : String.format(Locale.ROOT, "; PyTorch tensor-core rate %.0f TFLOP/s", tc)));
            table.add(String.format(Locale.ROOT, "%-11s %-9s %10s %10s %8s %8s   %s", "shape", "pattern", "ours ms",
                    "ref ms", "speedup", "target", "split: factor ms + solve ms"));
            for (String shape : shapes) {
                String[] rc = shape.split("x");
                if (rc.length != 2) {
                    throw new CalibrationInputException("option --shapes has '" + shape + "': give rows x cols, e.g. 4096x11008");
                }
                int rows = (int) number("--shapes", rc[0], 1, 65536, true);
                int cols = (int) number("--shapes", rc[1], 1, 46340, true);
                Object[] ref = reference(shape);
                try (Case c = new Case(gpu, rnd, rows, cols)) {
                    if (ref != null) {
                        double hMs = c.hessianMs(repeat, false);
                        double tMs = c.hessianMs(repeat, true);
                        table.add(String.format(Locale.ROOT, "%-11s %-9s %10.1f %10.1f %7.2fx %8s   fp32 products, fp64 sums",
                                shape, "Hessian", hMs, 1000 * (double) ref[4], 1000 * (double) ref[4] / hMs, ">= 1x"));
                        table.add(String.format(Locale.ROOT, "%-11s %-9s %10.1f %10.1f %7.2fx %8s   TF32 tensor cores",
                                shape, "H TF32", tMs, 1000 * (double) ref[4], 1000 * (double) ref[4] / tMs, ">= 4x"));
                    }
                    List<CudaBackend.SolveForm> fs = forms == null ? List.of(gpu.solveForm()) : forms;
                    for (String pat : patterns) {
                        for (CudaBackend.SolveForm form : fs) {
                            for (int lb : lazy) {
                                gpu.lazyUpdateBlocks(lb);
                                gpu.solveForm(form);
                                String label = (lazy.size() > 1 ? pat + " lb" + lb : pat)
                                        + (fs.size() > 1 ? " " + form.name().toLowerCase(Locale.ROOT).substring(0, 3) : "");
                                double[] t = c.pruneStep(pat, repeat);
                                double refMs = ref == null ? Double.NaN
                                        : 1000 * (double) ref[1 + Arrays.asList(PATTERNS).indexOf(pat)];
                                table.add(String.format(Locale.ROOT, "%-11s %-9s %10.1f %10.1f %7.1fx %8s   %.1f + %.1f", shape,
                                        label, t[0], refMs, refMs / t[0], ">= 20x", t[1], t[2]));
                                if (profile) {
                                    profiles.add("-- " + shape + " " + label + ": launch profile of one pruning step\n"
                                            + c.profiledStep(pat));
                                }
                            }
                        }
                        if (fs.size() > 1) {
                            agreement.add(String.format(Locale.ROOT, "%-11s %-9s %s", shape, pat, c.formAgreement(pat)));
                        }
                    }
                }
            }
        }
        System.out.println();
        System.out.println("== bench kernels: pruning step (factor of H + all blocks) and Hessian update, 128 x 2048 tokens");
        table.forEach(System.out::println);
        if (!agreement.isEmpty()) {
            System.out.println();
            System.out.println("== the same pruning step in the Cholesky and the inverse form: masks and weights");
            agreement.forEach(System.out::println);
        }
        profiles.forEach(System.out::print);
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            throw new CalibrationInputException("option " + args[i - 1] + " needs a value");
        }
        return args[i];
    }

    /**
     * @param option the option's name, for the message
     * @param v the option's value
     * @param min smallest allowed value
     * @param max largest allowed value
     * @param integer whether only whole numbers are allowed
     * @return {@code v} as a number in [min, max]
     * @throws CalibrationInputException naming the option, the value and the range otherwise
     */
    static double number(String option, String v, double min, double max, boolean integer) {
        double d;
        try {
            d = Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            d = Double.NaN;
        }
        if (!(d >= min && d <= max) || (integer && d != Math.rint(d))) {
            throw new CalibrationInputException("option " + option + " is '" + v + "': give " + (integer
                    ? "an integer from " + (long) min + " to " + (long) max : "a number from " + min + " to " + max));
        }
        return d;
    }

    /**
     * @param v one value of {@code --solve-forms}
     * @return the named form (case-insensitive)
     * @throws CalibrationInputException naming the option and the allowed values otherwise
     */
    static CudaBackend.SolveForm solveForm(String v) {
        try {
            return CudaBackend.SolveForm.valueOf(v.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new CalibrationInputException("option --solve-forms has '" + v
                    + "': use cholesky, inverse or both, comma-separated");
        }
    }

    private static Object[] reference(String shape) {
        for (Object[] r : REFERENCE) {
            if (r[0].equals(shape)) {
                return r;
            }
        }
        return null;
    }

    private static double copyBandwidth(CudaBackend gpu) {
        long bytes = 1L << 30;
        try (DeviceBuffer a = gpu.allocate(bytes, "copy src"); DeviceBuffer b = gpu.allocate(bytes, "copy dst")) {
            gpu.zero(a, 0, bytes);
            double[] t = new double[5];
            for (int i = -1; i < t.length; i++) {
                long t0 = System.nanoTime();
                gpu.copy(a, b, bytes);
                if (i >= 0) {
                    t[i] = (System.nanoTime() - t0) / 1e9;
                }
            }
            return 2.0 * bytes / median(t) / 1e9;
        }
    }

    static double median(double[] t) {
        double[] s = t.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    /** Device state of one shape: H (fp64, full), its diagonal, pristine W and a working W, U. */
    private static final class Case implements AutoCloseable {
        final CudaBackend gpu;
        final int rows;
        final int cols;
        final float[] w;
        final DeviceBuffer dx;
        final DeviceBuffer dhp;
        final DeviceBuffer dh;
        final DeviceBuffer ddiag;
        final DeviceBuffer dw0;
        final DeviceBuffer dw;
        final DeviceBuffer du;
        final DeviceBuffer dband;
        final int chunk;
        double mean;

        Case(CudaBackend gpu, SplittableRandom r, int rows, int cols) {
            this.gpu = gpu;
            this.rows = rows;
            this.cols = cols;
            chunk = 8192;
            float[] x = new float[chunk * cols];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (r.nextDouble() * 2 - 1);
            }
            w = new float[rows * cols];
            for (int i = 0; i < w.length; i++) {
                w[i] = (float) (r.nextGaussian() * 0.02);
            }
            long nn = (long) cols * cols;
            dx = gpu.allocate(4L * chunk * cols, "bench X");
            dhp = gpu.allocate(8L * cols * (cols + 1) / 2, "bench packed H");
            dh = gpu.allocate(8L * nn, "bench H");
            ddiag = gpu.allocate(8L * cols, "bench diag");
            dw0 = gpu.allocate(4L * rows * cols, "bench W0");
            dw = gpu.allocate(4L * rows * cols, "bench W");
            du = gpu.allocate(4L * nn, "bench U or R");
            dband = gpu.allocate(4L * cols * CudaBackend.U_BAND, "bench band of U");
            gpu.upload(x, dx);
            gpu.upload(w, dw0);
            gpu.zero(dhp, 0, dhp.bytes());
            // H of cols + 512 random tokens (full rank), from the device syrk
            int tokens = 0;
            while (tokens < cols + 512) {
                int k = Math.min(chunk, cols + 512 - tokens);
                gpu.syrkDevice(cols, k, dx.pointer(), dhp.pointer());
                tokens += k;
            }
            gpu.unpackUpperDevice(cols, dhp.pointer(), 1.0 / tokens, dh.pointer(), ddiag.pointer());
            double[] diag = new double[cols];
            gpu.download(ddiag, diag);
            for (double d : diag) {
                mean += d / cols;
            }
        }

        /**
         * Hessian update time scaled to 128 × 2048 tokens (chunks of {@code chunk} tokens, device-resident),
         * exact (fp32 products, fp64 sums) or with TF32 tensor cores.
         */
        double hessianMs(int repeat, boolean tf32) {
            double[] t = new double[repeat];
            for (int i = -1; i < repeat; i++) {
                long t0 = System.nanoTime();
                if (tf32) {
                    gpu.syrkTf32Device(cols, chunk, dx.pointer(), cols, dhp.pointer());
                } else {
                    gpu.syrkDevice(cols, chunk, dx.pointer(), dhp.pointer());
                }
                if (i >= 0) {
                    t[i] = (System.nanoTime() - t0) / 1e6;
                }
            }
            return median(t) * TOKENS / chunk;
        }

        /** @return {total, factor, solve} median ms */
        double[] pruneStep(String pattern, int repeat) {
            double[][] t = new double[3][repeat];
            for (int i = -1; i < repeat; i++) {
                long[] ns = runStep(pattern);
                if (i >= 0) {
                    t[0][i] = (ns[0] + ns[1]) / 1e6;
                    t[1][i] = ns[0] / 1e6;
                    t[2][i] = ns[1] / 1e6;
                }
            }
            return new double[] {median(t[0]), median(t[1]), median(t[2])};
        }

        /**
         * One pruning step with every launch timed on its own ({@link CudaBackend#profileLaunches}).
         *
         * @return the profile's lines, then the step's wall time with the profile on
         */
        String profiledStep(String pattern) {
            gpu.profileLaunches(true);
            long[] ns;
            String lines;
            try {
                ns = runStep(pattern);
                lines = gpu.launchProfile();
            } finally {
                gpu.profileLaunches(false);
            }
            return lines + String.format(Locale.ROOT, "  %9.2f ms in all (factor %.2f + solve %.2f), launches synchronized one by one%n",
                    (ns[0] + ns[1]) / 1e6, ns[0] / 1e6, ns[1] / 1e6);
        }

        /**
         * One pruning step in each form from the same pristine W and H: the fraction of equal mask
         * entries, and the relative difference of the pruned weights on the rows whose masks agree (the
         * forms are the same function in exact arithmetic; a row with a flipped near-tie follows another
         * path).
         */
        String formAgreement(String pattern) {
            CudaBackend.SolveForm before = gpu.solveForm();
            long[][] masks = new long[2][];
            float[][] ws = new float[2][rows * cols];
            try {
                CudaBackend.SolveForm[] both = {CudaBackend.SolveForm.CHOLESKY, CudaBackend.SolveForm.INVERSE};
                for (int f = 0; f < 2; f++) {
                    gpu.solveForm(both[f]);
                    masks[f] = new long[ResidentSolver.SolveJob.maskWords(rows, cols)];
                    runStep(pattern, masks[f]);
                    gpu.download(dw, ws[f]);
                }
            } finally {
                gpu.solveForm(before);
            }
            long differ = 0;
            double num = 0;
            double den = 0;
            int sameRows = 0;
            int wpr = ResidentSolver.SolveJob.wordsPerRow(cols);
            for (int r = 0; r < rows; r++) {
                long rowDiffer = 0;
                for (int k = r * wpr; k < (r + 1) * wpr; k++) {
                    rowDiffer += Long.bitCount(masks[0][k] ^ masks[1][k]);
                }
                differ += rowDiffer;
                if (rowDiffer == 0) {
                    sameRows++;
                    for (int i = r * cols; i < (r + 1) * cols; i++) {
                        double d = (double) ws[0][i] - ws[1][i];
                        num += d * d;
                        den += (double) ws[1][i] * ws[1][i];
                    }
                }
            }
            return String.format(Locale.ROOT, "masks %.6f equal, %d of %d rows with equal masks, W relative difference"
                    + " on those %.2e", 1 - (double) differ / ((long) rows * cols), sameRows, rows,
                    den == 0 ? 0 : Math.sqrt(num / den));
        }

        /** @return {factor, solve} wall ns of one pruning step from the pristine W */
        private long[] runStep(String pattern) {
            return runStep(pattern, new long[ResidentSolver.SolveJob.maskWords(rows, cols)]);
        }

        /** {@link #runStep(String)} with the solve's mask bits into {@code mask}. */
        private long[] runStep(String pattern, long[] mask) {
            double[] loss = new double[rows];
            ResidentSolver.SolveJob.Quant q = null;
            int nmKeep = 0;
            int nmGroup = 0;
            if (pattern.startsWith("2:4")) {
                nmKeep = 2;
                nmGroup = 4;
            }
            if (pattern.endsWith("int4")) {
                float[] scale = new float[rows];
                float[] zero = new float[rows];
                float[] g = new float[2];
                for (int r = 0; r < rows; r++) {
                    GridMath.fit(w, r * cols, cols, 1, 4, false, g, 0);
                    scale[r] = g[0];
                    zero[r] = g[1];
                }
                q = new ResidentSolver.SolveJob.Quant(4, false, 0, scale, zero, new byte[rows * cols]);
            }
            ResidentSolver.SolveJob job = new ResidentSolver.SolveJob(rows, cols, 128, w, new float[0], nmKeep,
                    nmGroup, null, q, mask, loss, pattern.equals("50%") ? 0.5 : 0.0);
            gpu.copy(dw0, dw, 4L * rows * cols);
            boolean chol = gpu.solveForm() == CudaBackend.SolveForm.CHOLESKY;
            long t0 = System.nanoTime();
            if (!(chol ? gpu.hessianFactorDevice(cols, dh.pointer(), ddiag.pointer(), 0.01 * mean, du.pointer(),
                    dband.pointer()) : gpu.inverseFactorDevice(cols, dh.pointer(), ddiag.pointer(), 0.01 * mean, du.pointer()))) {
                throw new IllegalStateException("bench Hessian " + cols + " not positive definite");
            }
            long t1 = System.nanoTime();
            if (chol) {
                gpu.solveOnDeviceCholesky(job, dw.pointer(), du.pointer(), dband.pointer());
            } else {
                gpu.solveOnDevice(job, dw.pointer(), du.pointer());
            }
            long t2 = System.nanoTime();
            return new long[] {t1 - t0, t2 - t1};
        }

        @Override
        public void close() {
            for (DeviceBuffer b : new DeviceBuffer[] {dband, du, dw, dw0, ddiag, dh, dhp, dx}) {
                b.close();
            }
        }
    }


}
