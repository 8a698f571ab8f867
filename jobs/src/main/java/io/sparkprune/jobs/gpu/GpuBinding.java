package io.sparkprune.jobs.gpu;

import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.regex.Pattern;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;

/**
 * The GPU a Spark task should use: a CUDA device ordinal, and the executor-wide permit that caps
 * concurrent GPU tasks.
 *
 * <p>Resolution, in order (ARCHITECTURE.md section 4; Spark's resource scheduling):
 * <ol>
 *   <li>Inside a task that Spark gave a {@value #RESOURCE} resource (standalone, YARN or Kubernetes
 *       with {@code spark.executor.resource.gpu.amount} and {@code spark.task.resource.gpu.amount}
 *       set): {@code TaskContext.get().resourcesJMap().get("gpu").addresses()} must hold exactly one
 *       address, a non-negative integer (the index a discovery script such as
 *       {@code conf/gpu-discovery.sh} prints). Zero or several addresses, or a non-numeric one, are
 *       a {@link GpuBindingException} naming {@code spark.task.resource.gpu.amount} or the discovery
 *       script.</li>
 *   <li>Otherwise (no TaskContext: driver code; or a task without a gpu resource: {@code local[N]},
 *       or a cluster run without GPU scheduling): the ordinal in {@value #DEVICE_KEY} (default
 *       {@value #DEFAULT_DEVICE}), read from the Spark configuration of the running
 *       {@link SparkEnv}.</li>
 * </ol>
 * Spark's addresses are nvidia-smi indices, which follow PCI bus order; CUDA numbers devices the
 * same way only with {@code CUDA_DEVICE_ORDER=PCI_BUS_ID} (conf/spark-defaults.conf.template sets it
 * for executors).
 *
 * <p>The permit: {@link #acquire()} takes one of {@value #CONCURRENT_TASKS_KEY} (default
 * {@value #DEFAULT_CONCURRENT_TASKS}) permits of the executor's {@link GpuSemaphore}; hold it for the
 * GPU part of a task only, in try-with-resources.
 *
 * <p>This class does not talk to CUDA: the CUDA backend (a later issue) creates or binds its
 * context on {@link #device()}. Until then executors run the CPU backend and the binding only says
 * which device a task would use.
 */
public final class GpuBinding {
    /** Spark resource name of GPUs. */
    public static final String RESOURCE = "gpu";
    /** Device ordinal used when Spark assigned no GPU to the task ({@code local[N]}, driver). */
    public static final String DEVICE_KEY = "spark.sparkprune.gpu.device";
    /** Default of {@link #DEVICE_KEY}. */
    public static final int DEFAULT_DEVICE = 0;
    /** Tasks of one executor allowed to run GPU work at once. */
    public static final String CONCURRENT_TASKS_KEY = "spark.sparkprune.gpu.concurrentTasks";
    /** Default of {@link #CONCURRENT_TASKS_KEY}. */
    public static final int DEFAULT_CONCURRENT_TASKS = 1;
    /** The Spark setting that gives each task exactly one GPU. */
    public static final String TASK_AMOUNT_KEY = "spark.task.resource.gpu.amount";

    private static final Pattern ORDINAL = Pattern.compile("0|[1-9][0-9]{0,8}");

    /** Where the device ordinal came from. */
    public enum Source {
        /** The task's {@code gpu} resource assigned by Spark's scheduler. */
        TASK_RESOURCE,
        /** {@value GpuBinding#DEVICE_KEY} (no gpu resource for this task). */
        CONFIG
    }

    /** The GPU addresses Spark assigned to the current task; injectable for tests. */
    public interface TaskResources {
        /**
         * @return the addresses of the task's {@code gpu} resource, or empty when there is no task
         *     context or the task has no {@code gpu} resource
         */
        Optional<List<String>> gpuAddresses();

        /** @return the task for error messages, e.g. {@code "task 7 (stage 2.0, partition 3)"} */
        default String describe() {
            return "the task";
        }
    }

    /** Spark settings by key; injectable for tests. */
    @FunctionalInterface
    public interface Settings {
        /**
         * @param key a Spark configuration key
         * @return its value, if set
         */
        Optional<String> get(String key);
    }

    private final int device;
    private final Source source;
    private final GpuSemaphore semaphore;

    private GpuBinding(int device, Source source, GpuSemaphore semaphore) {
        this.device = device;
        this.source = source;
        this.semaphore = semaphore;
    }

    /**
     * Resolves the binding of the calling thread's Spark task (or of driver code, from the
     * configuration) with the executor-wide {@link GpuSemaphore}.
     *
     * @return the binding
     * @throws GpuBindingException if the task got zero or several GPU addresses, a non-numeric
     *     address, or a {@code spark.sparkprune.gpu.*} value is invalid
     */
    public static GpuBinding forTask() {
        Settings settings = GpuBinding::sparkSetting;
        return resolve(SPARK_TASK, settings, GpuSemaphore.executorWide(concurrentTasks(settings)));
    }

    /**
     * Resolves a binding from explicit sources (the logic of {@link #forTask()}).
     *
     * @param task the task's GPU addresses
     * @param settings Spark settings, for {@value #DEVICE_KEY}
     * @param semaphore the permits {@link #acquire()} takes
     * @return the binding
     * @throws GpuBindingException as {@link #forTask()}
     */
    public static GpuBinding resolve(TaskResources task, Settings settings, GpuSemaphore semaphore) {
        Objects.requireNonNull(semaphore, "semaphore");
        Optional<List<String>> addresses = task.gpuAddresses();
        if (addresses.isPresent()) {
            List<String> a = addresses.get();
            if (a.size() != 1) {
                throw new GpuBindingException(task.describe() + " was given " + a.size() + " GPU addresses " + a
                        + "; SparkPrune runs each task on exactly one GPU: set " + TASK_AMOUNT_KEY
                        + "=1 (or a fraction such as 0.5 to share one GPU between tasks) and "
                        + "spark.executor.resource.gpu.amount >= 1");
            }
            String address = a.get(0).strip();
            if (!ORDINAL.matcher(address).matches()) {
                throw new GpuBindingException(task.describe() + " was given GPU address '" + a.get(0)
                        + "', which is not a CUDA device ordinal; the GPU discovery script "
                        + "(spark.executor.resource.gpu.discoveryScript, or spark.worker.resource.gpu.discoveryScript"
                        + " in standalone mode) must print device indices, as conf/gpu-discovery.sh does");
            }
            return new GpuBinding(Integer.parseInt(address), Source.TASK_RESOURCE, semaphore);
        }
        return new GpuBinding(intSetting(settings, DEVICE_KEY, DEFAULT_DEVICE, 0, "a CUDA device ordinal"),
                Source.CONFIG, semaphore);
    }

    /**
     * @param settings Spark settings
     * @return {@value #CONCURRENT_TASKS_KEY}, default {@value #DEFAULT_CONCURRENT_TASKS}
     * @throws GpuBindingException if the value is not an integer &gt;= 1
     */
    public static int concurrentTasks(Settings settings) {
        return intSetting(settings, CONCURRENT_TASKS_KEY, DEFAULT_CONCURRENT_TASKS, 1,
                "the number of tasks per executor allowed on the GPU at once");
    }

    private static int intSetting(Settings settings, String key, int dflt, int min, String meaning) {
        Optional<String> v = settings.get(key);
        if (v.isEmpty()) {
            return dflt;
        }
        String s = v.get().strip();
        try {
            int n = Integer.parseInt(s);
            if (n >= min) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new GpuBindingException(key + " must be an integer >= " + min + " (" + meaning + "), got '" + v.get()
                + "'; fix it in spark-defaults.conf or --conf " + key + "=<n>");
    }

    /** @return the CUDA device ordinal the task should use, &gt;= 0 */
    public int device() {
        return device;
    }

    /** @return where {@link #device()} came from */
    public Source source() {
        return source;
    }

    /** @return the executor's semaphore this binding's permits come from */
    public GpuSemaphore semaphore() {
        return semaphore;
    }

    /**
     * Blocks until the executor lets one more task use the GPU.
     *
     * @return the permit; close it (try-with-resources) when the GPU work is done
     * @throws InterruptedException if the task is interrupted (killed) while waiting
     */
    public GpuSemaphore.Permit acquire() throws InterruptedException {
        return semaphore.acquire();
    }

    @Override
    public String toString() {
        return "GpuBinding[device=" + device + ", source=" + source + ", permits=" + semaphore.permits() + "]";
    }

    private static Optional<String> sparkSetting(String key) {
        SparkEnv env = SparkEnv.get();
        if (env == null) {
            return Optional.empty();
        }
        SparkConf conf = env.conf();
        return conf.contains(key) ? Optional.of(conf.get(key)) : Optional.empty();
    }

    /** Reads Spark's {@link TaskContext} of the calling thread. */
    private static final TaskResources SPARK_TASK = new TaskResources() {
        @Override
        public Optional<List<String>> gpuAddresses() {
            TaskContext tc = TaskContext.get();
            if (tc == null) {
                return Optional.empty();
            }
            ResourceInformation gpu = tc.resourcesJMap().get(RESOURCE);
            return gpu == null ? Optional.empty() : Optional.of(List.of(gpu.addresses()));
        }

        @Override
        public String describe() {
            TaskContext tc = TaskContext.get();
            return tc == null ? "driver code" : "task " + tc.taskAttemptId() + " (stage " + tc.stageId() + "."
                    + tc.stageAttemptNumber() + ", partition " + tc.partitionId() + ")";
        }
    };
}
