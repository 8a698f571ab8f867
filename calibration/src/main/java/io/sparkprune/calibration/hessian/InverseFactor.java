package io.sparkprune.calibration.hessian;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.Finite;
import io.sparkprune.calibration.NumericsException;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.DampedFactorizer;
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
 */
public final class InverseFactor implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(InverseFactor.class);

    private final String name;
    private final int n;
    private transient float[] upper;   // (n, n) row-major fp32, zero below the diagonal; written in bulk
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
        double trace = 0.0;
        for (int i = 0; i < n; i++) {
            double hii = work[i * n + i];
            if (hii == 0.0) {
                dead[i] = true;
                hii = 1.0;
            }
            diag[i] = hii;
            trace += hii;
        }
        double mean = trace / n;
        List<Double> tried = new ArrayList<>();
        if (backend instanceof DampedFactorizer device) {
            double[] schedule = dampening.schedule().stream().mapToDouble(Double::doubleValue).toArray();
            double[] lambdas = new double[schedule.length];
            for (int k = 0; k < schedule.length; k++) {
                lambdas[k] = schedule[k] * mean;
            }
            float[] u = new float[n * n];
            int k = device.dampedInverseCholeskyUpper(n, work, diag, lambdas, u);
            for (int t = 0; t < (k < 0 ? schedule.length : k + 1); t++) {
                tried.add(schedule[t]);
                if (t != k) {
                    LOG.warn("Cholesky of the Hessian of {} failed with dampening {} (λ = {}); H is not positive"
                            + " definite, retrying with more dampening", name, schedule[t], lambdas[t]);
                }
            }
            if (k >= 0) {
                Finite.check("inverse Hessian factor of " + name, u, n, "H + λI is too ill-conditioned for fp32;"
                        + " raise the dampening");
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
                Finite.check("inverse Hessian factor of " + name, u, n, "H + λI is too ill-conditioned for fp32;"
                        + " raise the dampening");
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
     *     do not modify
     */
    public float[] upper() {
        return upper;
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

    /** Java serialization: the fields, then U in bulk ({@link io.sparkprune.kernels.BulkArrays}). */
    private void writeObject(java.io.ObjectOutputStream out) throws java.io.IOException {
        out.defaultWriteObject();
        io.sparkprune.kernels.BulkArrays.writeFloats(out, upper);
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
