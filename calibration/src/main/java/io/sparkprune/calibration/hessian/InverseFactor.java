package io.sparkprune.calibration.hessian;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.Finite;
import io.sparkprune.calibration.NumericsException;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.DampedFactorizer;
import io.sparkprune.kernels.ResidentFactorizer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

/**
 * SparseGPT's inverse Hessian factor {@code U}: the upper Cholesky factor of {@code (H + λI)⁻¹}
 * (SparseGPT Algorithm 1, {@code Hinv = Cholesky(H⁻¹)ᵀ}; GPTQ §4 step 3), {@code n × n}
 * row-major fp32, zero below the diagonal. The solver reads {@code U[i,i]} and row {@code i} of U.
 * One factor serves every linear that shares the Hessian.
 *
 * <p>Computation, as the reference (sparsegpt.py {@code fasterprune}):
 * <ol>
 *   <li>dead inputs: {@code H_ii = 0 → H_ii = 1} (the solver zeroes those weight columns);
 *   <li>{@code λ = d · mean(diag H)} with d from {@link Dampening} (0.01 first);
 *   <li>U from {@code H + λI} in fp64: the reference computes {@code cholesky → cholesky_inverse →
 *       cholesky(upper)}; we compute the same U with {@link Backend#inverseCholeskyUpper} (one
 *       Cholesky and one triangular inverse, half the work; the kernels' tests check it equals the
 *       reference path to 1e-12) and round it to fp32;
 *   <li>when the Cholesky fails (H not numerically positive definite, e.g. rank deficient with
 *       rounding noise), retry with {@code d × 10} up to the cap, logging a warning each time; when
 *       every d fails, throw {@link NumericsException} naming the Hessian and the dampenings tried.
 * </ol>
 * A backend that implements {@link DampedFactorizer} (the GPU backend) runs steps 3–4 where the matrix
 * lives: H goes to the device once and every attempt runs there.
 *
 * <p><b>Resident factors.</b> {@link #computeResident} on a backend that implements
 * {@link ResidentFactorizer} (the GPU backend) uploads H once, as its packed upper triangle (half the
 * bytes of the dense matrix; steps 1–2 run on the packed host array, no dense host copy is built),
 * factors it there and keeps U there — or, on the CUDA backend by default, the Cholesky factor of H and
 * U's diagonal band, from which its solves compute the same function (rounded differently): the solves of
 * the group read it in place ({@link #residentOn}, {@code SparseGptSolver}), the finiteness check of what
 * they read runs on the device, and {@link #upper()} downloads U (computing it first in that form) only
 * when a caller asks for the host array. Such a factor holds device
 * memory until {@link #close()}; a factor from {@link #compute} holds none and its {@code close()} does
 * nothing.
 */
public final class InverseFactor implements Serializable, AutoCloseable {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(InverseFactor.class);

    private final String name;
    private final int n;
    private transient float[] upper;   // (n, n) row-major fp32, zero below the diagonal; written in bulk;
                                       // null while U is only on the device (downloaded on first upper())
    private transient ResidentFactorizer.Factor device; // resident H and U, or null (host factor, or closed)
    private transient Backend deviceOwner;              // the backend that holds device, or null
    private final boolean[] dead;      // (n) inputs whose H_ii was 0
    private final double dampening;    // relative d that worked
    private final double lambda;       // absolute λ added to the diagonal
    private final List<Double> tried;  // relative dampenings tried, in order (the last one worked)
    private final long nanos;

    private InverseFactor(String name, int n, float[] upper, boolean[] dead, double dampening, double lambda,
                          List<Double> tried, long nanos) {
        this.name = name;
        this.n = n;
        this.upper = upper;
        this.dead = dead;
        this.dampening = dampening;
        this.lambda = lambda;
        this.tried = List.copyOf(tried);
        this.nanos = nanos;
    }

    /**
     * @param backend kernels
     * @param accumulator the Hessian
     * @param dampening dampening schedule
     * @return the factor of {@code accumulator.hessian()}, named after the accumulator
     * @throws NumericsException when the Hessian is not finite or no dampening makes it factorable
     */
    public static InverseFactor compute(Backend backend, HessianAccumulator accumulator, Dampening dampening) {
        int n = accumulator.features();
        // the backends read only H's upper triangle: no transposed copy into the lower one
        return compute(backend, accumulator.name(), n, dampening, accumulator::copyUpperTo);
    }

    /**
     * {@link #compute(Backend, HessianAccumulator, Dampening)} with H and U kept where the backend
     * computes when it implements {@link ResidentFactorizer} (see the class comment): the packed sum is
     * uploaded once, the dead-input rule, mean diagonal and finiteness check of H run on the packed host
     * array, the dampening attempts and the finiteness check of U (or of the factor held in its place) on
     * the device. The result is the same (same U bits as {@link #compute} on that backend, same dead
     * inputs, dampening and λ; solves through the factor may round differently, see the class comment). On any other
     * backend this is {@link #compute}. Close the factor (try-with-resources) when the group's solves are
     * done; it is freed here when this method throws.
     *
     * @param backend kernels
     * @param accumulator the Hessian (its device partial, if any, is folded in first)
     * @param dampening dampening schedule
     * @return the factor, named after the accumulator; holds device memory until closed
     * @throws CalibrationInputException when the accumulator has no rows
     * @throws NumericsException when H or U is not finite, or no dampening makes H factorable
     */
    public static InverseFactor computeResident(Backend backend, HessianAccumulator accumulator, Dampening dampening) {
        if (!(backend instanceof ResidentFactorizer resident)) {
            return compute(backend, accumulator, dampening);
        }
        long t0 = System.nanoTime();
        String name = accumulator.name();
        int n = accumulator.features();
        if ((long) n * n > Integer.MAX_VALUE - 8) {
            throw new CalibrationInputException("Hessian of " + name + ": " + n + " input features; the inverse factor U ("
                    + n + " x " + n + " fp32) must fit one Java array (n <= 46340): prune this layer with fewer input"
                    + " features per Hessian");
        }
        double[] packed = accumulator.packedSumShared();
        double s = accumulator.hessianScale();
        checkPackedFinite("Hessian of " + name, packed, s, n);
        boolean[] dead = new boolean[n];
        double[] diag = new double[n];
        // the diagonal with the bits of copyUpperTo
        double mean = deadInputs(n, i -> packed[(int) ((long) i * n - (long) i * (i - 1) / 2)] * s, dead, diag);
        double[] schedule = dampening.schedule().stream().mapToDouble(Double::doubleValue).toArray();
        double[] lambdas = lambdas(schedule, mean);
        ResidentFactorizer.Factor f = resident.openFactor(n, packed, s, name);
        try {
            int k = f.factor(diag, lambdas);
            List<Double> tried = attempts(name, schedule, lambdas, k);
            if (k < 0) {
                throw failed(name, tried, mean);
            }
            long bad = f.firstNonFinite();
            if (bad >= 0 && !f.holdsInverseFactor()) {
                // the backend's solves read another factor of H (CUDA's Cholesky form: R and U's band)
                throw new NumericsException("the device factor of the Hessian of " + name + " has a non-finite"
                        + " element (index " + bad + " of what the solves read): " + U_NOT_FINITE_FIX);
            }
            if (bad >= 0) {
                // rare: bring U to the host for the message of the host path (the value and its position)
                float[] u = new float[n * n];
                f.download(u);
                Finite.check("inverse Hessian factor of " + name, u, n, U_NOT_FINITE_FIX);
                throw new IllegalStateException("the device found a non-finite element in the inverse Hessian factor"
                        + " of " + name + " that its host copy does not have");
            }
            InverseFactor r = new InverseFactor(name, n, null, dead, schedule[k], lambdas[k], tried,
                    System.nanoTime() - t0);
            r.device = f;
            r.deviceOwner = backend;
            return r;
        } catch (RuntimeException | Error e) {
            try {
                f.close();
            } catch (RuntimeException suppressed) { // e.g. a sticky CUDA error: keep the first failure
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /**
     * The finiteness check of {@link Finite#check(String, double[], int, String)} on the dense upper
     * triangle {@code scale · S}, read from the packed sum: the same first bad element (row-major) and message.
     */
    private static void checkPackedFinite(String what, double[] packed, double scale, int n) {
        int bad = java.util.stream.IntStream.range(0, n).parallel().filter(i -> {
            int p = (int) ((long) i * n - (long) i * (i - 1) / 2);
            for (int j = i; j < n; j++, p++) {
                double v = packed[p] * scale;
                if (v - v != 0.0) {
                    return true;
                }
            }
            return false;
        }).findFirst().orElse(-1);
        if (bad < 0) {
            return;
        }
        int p = (int) ((long) bad * n - (long) bad * (bad - 1) / 2);
        for (int j = bad; j < n; j++, p++) {
            double v = packed[p] * scale;
            if (Double.isNaN(v) || Double.isInfinite(v)) {
                throw Finite.nonFinite(what, v, bad, j, NON_FINITE_FIX);
            }
        }
    }

    /**
     * @param backend kernels
     * @param name the Hessian's name for messages (layer and the linears it feeds)
     * @param hessian {@code n × n} symmetric row-major fp32 (only the upper triangle is used)
     * @param n in_features
     * @param dampening dampening schedule
     * @return the factor
     * @throws CalibrationInputException when the array length is not {@code n²}
     * @throws NumericsException when H is not finite or no dampening makes it factorable
     */
    public static InverseFactor compute(Backend backend, String name, float[] hessian, int n, Dampening dampening) {
        checkShape(name, hessian.length, n);
        return compute(backend, name, n, dampening, work -> {
            for (int i = 0; i < work.length; i++) {
                work[i] = hessian[i];
            }
        });
    }

    /**
     * @param backend kernels
     * @param name the Hessian's name for messages (layer and the linears it feeds)
     * @param hessian {@code n × n} symmetric row-major fp64 (only the upper triangle is used); not
     *     modified
     * @param n in_features
     * @param dampening dampening schedule
     * @return the factor
     * @throws CalibrationInputException when the array length is not {@code n²}
     * @throws NumericsException when H is not finite or no dampening makes it factorable
     */
    public static InverseFactor compute(Backend backend, String name, double[] hessian, int n, Dampening dampening) {
        checkShape(name, hessian.length, n);
        return compute(backend, name, n, dampening, work -> System.arraycopy(hessian, 0, work, 0, work.length));
    }

    private static final String NON_FINITE_FIX = "the calibration activations feeding it were not finite;"
            + " run calibration in fp32 and check the checkpoint for non-finite weights";
    private static final String U_NOT_FINITE_FIX = "H + λI is too ill-conditioned for fp32; raise the dampening";

    private static void checkShape(String name, long length, int n) {
        if (n < 1 || length != (long) n * n) {
            throw new CalibrationInputException("Hessian of " + name + " must be " + n + " x " + n + " (" + (long) n * n
                    + " values), got " + length);
        }
    }

    /**
     * Factors with one fp64 work array of {@code n²}: {@code source} fills (at least) its upper
     * triangle with H before each attempt (so no second copy of H is kept); the backends read only
     * the upper triangle, and the finiteness check covers it.
     */
    private static InverseFactor compute(Backend backend, String name, int n, Dampening dampening,
                                         java.util.function.Consumer<double[]> source) {
        long t0 = System.nanoTime();
        double[] work = new double[n * n];
        source.accept(work);
        Finite.check("Hessian of " + name, work, n, NON_FINITE_FIX);
        boolean[] dead = new boolean[n];
        double[] diag = new double[n];
        double mean = deadInputs(n, i -> work[i * n + i], dead, diag);
        List<Double> tried = new ArrayList<>();
        if (backend instanceof DampedFactorizer device) {
            double[] schedule = dampening.schedule().stream().mapToDouble(Double::doubleValue).toArray();
            double[] lambdas = lambdas(schedule, mean);
            float[] u = new float[n * n];
            int k = device.dampedInverseCholeskyUpper(n, work, diag, lambdas, u);
            tried.addAll(attempts(name, schedule, lambdas, k));
            if (k >= 0) {
                Finite.check("inverse Hessian factor of " + name, u, n, U_NOT_FINITE_FIX);
                return new InverseFactor(name, n, u, dead, schedule[k], lambdas[k], tried, System.nanoTime() - t0);
            }
            throw failed(name, tried, mean);
        }
        for (double d : dampening.schedule()) {
            if (!tried.isEmpty()) {
                source.accept(work);
            }
            tried.add(d);
            double lambda = d * mean;
            for (int i = 0; i < n; i++) {
                work[i * n + i] = diag[i] + lambda;
            }
            if (backend.inverseCholeskyUpper(n, work, 0, n)) {
                float[] u = new float[n * n];
                for (int i = 0; i < u.length; i++) {
                    u[i] = (float) work[i];
                }
                Finite.check("inverse Hessian factor of " + name, u, n, U_NOT_FINITE_FIX);
                if (tried.size() > 1) {
                    LOG.info("Hessian of {} factored with dampening {} after {} failed attempt(s)", name, d, tried.size() - 1);
                }
                return new InverseFactor(name, n, u, dead, d, lambda, tried, System.nanoTime() - t0);
            }
            LOG.warn("Cholesky of the Hessian of {} failed with dampening {} (λ = {}); H is not positive definite,"
                    + " retrying with more dampening", name, d, lambda);
        }
        throw failed(name, tried, mean);
    }

    /**
     * SparseGPT's dead inputs: {@code H_ii = 0 → H_ii = 1}.
     *
     * @param n order
     * @param hii H's diagonal element i
     * @param dead receives which inputs are dead
     * @param diag receives the diagonal with dead inputs set to 1
     * @return mean(diag) after that, the base of λ
     */
    private static double deadInputs(int n, java.util.function.IntToDoubleFunction hii, boolean[] dead, double[] diag) {
        double trace = 0.0;
        for (int i = 0; i < n; i++) {
            double h = hii.applyAsDouble(i);
            if (h == 0.0) {
                dead[i] = true;
                h = 1.0;
            }
            diag[i] = h;
            trace += h;
        }
        return trace / n;
    }

    /** @return λ_k = schedule_k · mean */
    private static double[] lambdas(double[] schedule, double mean) {
        double[] lambdas = new double[schedule.length];
        for (int k = 0; k < schedule.length; k++) {
            lambdas[k] = schedule[k] * mean;
        }
        return lambdas;
    }

    /**
     * The dampenings a device factorization tried (all of them when none worked, k &lt; 0), with a
     * warning for each failed one.
     */
    private static List<Double> attempts(String name, double[] schedule, double[] lambdas, int k) {
        List<Double> tried = new ArrayList<>();
        for (int t = 0; t < (k < 0 ? schedule.length : k + 1); t++) {
            tried.add(schedule[t]);
            if (t != k) {
                LOG.warn("Cholesky of the Hessian of {} failed with dampening {} (λ = {}); H is not positive"
                        + " definite, retrying with more dampening", name, schedule[t], lambdas[t]);
            }
        }
        return tried;
    }

    private static NumericsException failed(String name, List<Double> tried, double mean) {
        return new NumericsException("Cholesky of the Hessian of " + name + " failed at every dampening tried ("
                + tried.stream().map(d -> Double.toString(d)).collect(Collectors.joining(", "))
                + " x mean(diag H) = " + mean + "): H is not positive semi-definite; check the calibration"
                + " activations of this layer (overflow, too few samples), or start from a higher dampening"
                + " (e.g. 0.1) or raise its cap");
    }

    /** @return the Hessian's name */
    public String name() {
        return name;
    }

    /** @return in_features */
    public int size() {
        return n;
    }

    /**
     * @return U, {@code n × n} row-major fp32, zero below the diagonal; the array itself, shared —
     *     do not modify. A resident factor downloads it on the first call (n² floats) and keeps the copy.
     * @throws IllegalStateException when U is only on the device and the factor was closed
     */
    public synchronized float[] upper() {
        if (upper == null) {
            if (device == null) {
                throw new IllegalStateException("inverse factor of " + name + " was closed before its U was copied to"
                        + " the host; call upper() before close()");
            }
            float[] u = new float[n * n];
            device.download(u);
            upper = u;
        }
        return upper;
    }

    /**
     * @return U's diagonal {@code U[i,i]}, n fp32 (a new array), from the host copy when there is one,
     *     otherwise from the device (n floats moved, not n²)
     * @throws IllegalStateException when U is only on the device and the factor was closed
     */
    public synchronized float[] upperDiagonal() {
        float[] d = new float[n];
        if (upper == null && device != null) {
            device.diagonal(d);
            return d;
        }
        float[] u = upper();
        for (int i = 0; i < n; i++) {
            d[i] = u[i * n + i];
        }
        return d;
    }

    /**
     * The resident H and U of a {@link #computeResident} factor, for solves and products on the same
     * backend: the handle stays owned by this factor (do not close it; it is valid until {@link #close()}).
     *
     * @param backend the backend that will use it
     * @return the handle when this factor's H and U are held by {@code backend}; null otherwise (a host
     *     factor, another backend, or closed)
     */
    public synchronized ResidentFactorizer.Factor residentOn(Backend backend) {
        return device != null && deviceOwner == backend ? device : null;
    }

    /**
     * Frees the device memory of a resident factor ({@link #computeResident}); idempotent, and nothing
     * to do for a host factor. A host copy of U made by {@link #upper()} before stays usable.
     */
    @Override
    public synchronized void close() {
        ResidentFactorizer.Factor d = device;
        device = null;
        deviceOwner = null;
        if (d != null) {
            d.close();
        }
    }

    /**
     * @param i input index
     * @return whether input i was dead ({@code H_ii = 0})
     */
    public boolean isDead(int i) {
        return dead[i];
    }

    /** @return the number of dead inputs */
    public int deadCount() {
        int c = 0;
        for (boolean d : dead) {
            if (d) {
                c++;
            }
        }
        return c;
    }

    /** @return the relative dampening d that succeeded */
    public double dampening() {
        return dampening;
    }

    /** @return the absolute λ added to the diagonal */
    public double lambda() {
        return lambda;
    }

    /** @return relative dampenings tried, in order; the last one succeeded */
    public List<Double> dampeningsTried() {
        return tried;
    }

    /** @return wall time of {@link #compute}, nanoseconds */
    public long nanos() {
        return nanos;
    }

    /**
     * Java serialization: the fields, then U in bulk ({@link io.sparkprune.kernels.BulkArrays}). A
     * resident factor's U is downloaded for the stream only (not kept, so serializing does not leave a
     * second copy of U on the host); the copy read back is a host factor.
     *
     * @throws java.io.NotSerializableException when the factor was closed before U reached the host
     */
    private void writeObject(java.io.ObjectOutputStream out) throws java.io.IOException {
        float[] u;
        synchronized (this) {
            if (upper != null) {
                u = upper;
            } else if (device != null) {
                u = new float[n * n];
                device.download(u);
            } else {
                throw new java.io.NotSerializableException("inverse factor of " + name + " was closed before its U"
                        + " was copied to the host");
            }
        }
        out.defaultWriteObject();
        io.sparkprune.kernels.BulkArrays.writeFloats(out, u);
    }

    private void readObject(java.io.ObjectInputStream in) throws java.io.IOException, ClassNotFoundException {
        in.defaultReadObject();
        upper = io.sparkprune.kernels.BulkArrays.readFloats(in, (long) n * n);
        if (upper.length != (long) n * n) {
            throw new java.io.InvalidObjectException("inverse factor of " + name + ": " + upper.length
                    + " values for " + n + " x " + n);
        }
    }
}
