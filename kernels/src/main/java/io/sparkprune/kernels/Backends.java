package io.sparkprune.kernels;

import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.kernels.cuda.CudaBackend;

import java.util.Locale;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Chooses the compute backend at run time ({@code --backend auto|cpu|cuda},
 * {@code spark.sparkprune.backend}): {@code cpu} is {@link CpuBackend}; {@code cuda} is
 * {@link CudaBackend} on the given device and fails when it cannot be opened; {@code auto} tries CUDA
 * and falls back to the CPU with one warning per JVM when there is no driver, no device, or the build
 * has no CUDA kernels.
 */
public final class Backends {
    private static final System.Logger LOG = System.getLogger(Backends.class.getName());
    private static final AtomicBoolean WARNED = new AtomicBoolean();

    private Backends() {
    }

    /** The backend choices. */
    public enum Choice {
        /** CUDA when available, else CPU. */
        AUTO,
        /** Always the pure-Java CPU backend. */
        CPU,
        /** The CUDA backend; fails without a usable device. */
        CUDA;

        /**
         * @param s {@code auto}, {@code cpu} or {@code cuda} (any case)
         * @return the choice
         * @throws InvalidInputException for any other value
         */
        public static Choice parse(String s) {
            if (s != null) {
                switch (s.trim().toLowerCase(Locale.ROOT)) {
                    case "auto": return AUTO;
                    case "cpu": return CPU;
                    case "cuda": return CUDA;
                    default: break;
                }
            }
            throw new InvalidInputException("unknown backend '" + s + "': use one of auto, cpu, cuda");
        }
    }

    /**
     * @param choice {@code auto}, {@code cpu} or {@code cuda}
     * @param device CUDA device ordinal, ≥ 0 (ignored for cpu)
     * @param threads CPU threads (the CPU backend, or the CUDA backend's delegated operations), ≥ 1
     * @return a new backend; close it
     * @throws InvalidInputException for an unknown choice, or (cuda or auto) a bad CUDA backend setting
     *     ({@link io.sparkprune.kernels.cuda.CudaSettingException}, e.g.
     *     {@value io.sparkprune.kernels.cuda.CudaBackend#CHOL_PANEL_PROPERTY}): never a reason to fall back
     * @throws IllegalStateException for {@code cuda} when no CUDA device can be used
     */
    public static Backend create(String choice, int device, int threads) {
        return create(Choice.parse(choice), device, threads);
    }

    /**
     * @param choice the backend choice
     * @param device CUDA device ordinal, ≥ 0 (ignored for cpu)
     * @param threads CPU threads, ≥ 1
     * @return a new backend; close it
     * @throws InvalidInputException (cuda or auto) for a bad CUDA backend setting
     *     ({@link io.sparkprune.kernels.cuda.CudaSettingException}, e.g.
     *     {@value io.sparkprune.kernels.cuda.CudaBackend#CHOL_PANEL_PROPERTY}), which {@code auto} does not
     *     answer with the CPU backend
     * @throws IllegalStateException for {@link Choice#CUDA} when no CUDA device can be used
     */
    public static Backend create(Choice choice, int device, int threads) {
        switch (choice) {
            case CPU:
                return CpuBackend.create(threads);
            case CUDA:
                try {
                    return CudaBackend.create(device, threads);
                } catch (InvalidInputException e) {
                    throw e; // a bad setting (e.g. -Dsparkprune.cuda.cholPanel): the user's to fix, not a reason to fall back
                } catch (RuntimeException | LinkageError e) {
                    throw new IllegalStateException("--backend cuda: cannot use CUDA device " + device + ": "
                            + e.getMessage() + " (use --backend cpu or auto to run on the CPU)", e);
                }
            default:
                try {
                    return CudaBackend.create(device, threads);
                } catch (InvalidInputException e) {
                    throw e; // a bad setting (e.g. -Dsparkprune.cuda.cholPanel): the user's to fix, not a reason to fall back
                } catch (RuntimeException | LinkageError e) {
                    if (WARNED.compareAndSet(false, true)) {
                        LOG.log(System.Logger.Level.WARNING, "backend auto: CUDA device " + device
                                + " is not usable (" + e.getMessage() + "); using the CPU backend");
                    }
                    return CpuBackend.create(threads);
                }
        }
    }
}
