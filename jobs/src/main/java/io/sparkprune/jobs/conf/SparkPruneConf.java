package io.sparkprune.jobs.conf;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

import org.apache.spark.SparkConf;

import scala.Tuple2;

/**
 * SparkPrune's Spark settings: the registry where every {@code spark.sparkprune.*} key is declared
 * once ({@link ConfEntry}: type, default, checks, doc), and a typed, validated view of one job's
 * settings. {@code docs/configuration.md} is generated from this registry by {@link ConfigDocs}.
 *
 * <p>Construct from a plain map (unit tests, the driver before a {@code SparkContext} exists) or
 * with {@link #fromSparkConf(SparkConf)}. Construction validates every {@code spark.sparkprune.*}
 * key present: an unknown key or an invalid value fails at once, so a typo does not surface hours
 * into a job or get silently ignored. Keys outside the prefix are ignored. Immutable.
 */
public final class SparkPruneConf {

    /** Prefix of every SparkPrune setting. */
    public static final String PREFIX = "spark.sparkprune.";

    private static final Map<String, ConfEntry<?>> REGISTRY = new LinkedHashMap<>();

    /**
     * Spark storage levels accepted for persisted activations ({@code NONE} excluded: unpersisted
     * activations would be recomputed through every earlier layer).
     */
    public static final Set<String> STORAGE_LEVELS = Set.of("DISK_ONLY", "DISK_ONLY_2", "DISK_ONLY_3",
            "MEMORY_ONLY", "MEMORY_ONLY_2", "MEMORY_ONLY_SER", "MEMORY_ONLY_SER_2", "MEMORY_AND_DISK",
            "MEMORY_AND_DISK_2", "MEMORY_AND_DISK_SER", "MEMORY_AND_DISK_SER_2", "OFF_HEAP");

    /** {@code spark.sparkprune.backend}. */
    public static final ConfEntry<BackendChoice> BACKEND = conf("spark.sparkprune.backend")
            .doc("Compute backend of the executors: auto uses CUDA where the task has a GPU and the CUDA backend is "
                    + "available, else the pure-Java CPU backend; cpu always uses the CPU backend; cuda requires a GPU "
                    + "and fails the task without one.")
            .enumConf(BackendChoice.class)
            .createWithDefault(BackendChoice.AUTO);

    /** {@code spark.sparkprune.gpu.device}. */
    public static final ConfEntry<Integer> GPU_DEVICE = conf("spark.sparkprune.gpu.device")
            .doc("CUDA device ordinal used in local mode (local[N], where tasks get no gpu resource). On a cluster "
                    + "(standalone, YARN, Kubernetes) the address of the task's gpu resource is used instead.")
            .intConf()
            .checkValue(v -> v >= 0, "Must be ≥ 0.")
            .createWithDefault(0);

    /** {@code spark.sparkprune.gpu.concurrentTasks}. */
    public static final ConfEntry<Integer> GPU_CONCURRENT_TASKS = conf("spark.sparkprune.gpu.concurrentTasks")
            .doc("Tasks of one executor that may use its GPU at the same time (permits of the executor's GPU "
                    + "semaphore); the other tasks wait. Raise it when one task leaves the GPU idle.")
            .intConf()
            .checkValue(v -> v >= 1, "Must be ≥ 1.")
            .createWithDefault(1);

    /** {@code spark.sparkprune.rowShard.maxRows}. */
    public static final ConfEntry<Integer> ROW_SHARD_MAX_ROWS = conf("spark.sparkprune.rowShard.maxRows")
            .doc("Most output rows of a weight solved at once (a row shard); a calibration group's task solves the "
                    + "shards of its weights one after the other. Smaller shards need less executor memory (a shard of "
                    + "r rows x c inputs holds r*c fp32 values, besides the group's c x c Hessian and inverse factor "
                    + "that the task holds). Shard boundaries are aligned to the sparsity pattern (multiples of a "
                    + "block pattern's tile height). 0 means 16384 when spark.sparkprune.backend is cuda (whole "
                    + "weights up to that height: one upload of the group's inverse factor per weight, and rows enough "
                    + "to fill the GPU), else 1024. With the default per-row mask scope the output does not depend on "
                    + "it (SparseGPT solves every row independently given the inverse factor); with mask_scope "
                    + "all_rows it selects each block's mask over the shard's rows.")
            .intConf()
            .checkValue(v -> v >= 0, "Must be ≥ 0.")
            .createWithDefault(0);

    /** {@code spark.sparkprune.calibration.partitions}. */
    public static final ConfEntry<Integer> CALIBRATION_PARTITIONS = conf("spark.sparkprune.calibration.partitions")
            .doc("Partitions of the calibration sequences (and of the activations that flow between layers). "
                    + "0 means min(16, number of calibration batches): a fixed number, not the executor count, because the "
                    + "Hessian sums are reduced in partition order and must not depend on the cluster.")
            .intConf()
            .checkValue(v -> v >= 0, "Must be ≥ 0.")
            .createWithDefault(0);

    /** {@code spark.sparkprune.calibration.batchTokens}. */
    public static final ConfEntry<Integer> CALIBRATION_BATCH_TOKENS = conf("spark.sparkprune.calibration.batchTokens")
            .doc("Most tokens per calibration batch: whole sequences are packed into batches of at most this many "
                    + "tokens (a longer sequence is a batch of its own), and each layer's forward pass and Hessian update "
                    + "run once per batch. Every batch moves the layer's weights to the device once per linear layer, so "
                    + "GPU executors want large batches. 0 means 32768 when spark.sparkprune.backend is cuda, else 4096. "
                    + "Part of the run fingerprint: the batching fixes the order of the Hessian sums.")
            .intConf()
            .checkValue(v -> v >= 0, "Must be ≥ 0.")
            .createWithDefault(0);

    /** {@code spark.sparkprune.activations.storageLevel}. */
    public static final ConfEntry<String> ACTIVATIONS_STORAGE_LEVEL = conf("spark.sparkprune.activations.storageLevel")
            .doc("Spark storage level of the per-layer activations persisted on the executors between layers "
                    + "(read case-insensitively). Serialized levels keep memory predictable; *_2 levels replicate "
                    + "to survive a lost executor without recomputation.")
            .stringConf()
            .transform(s -> s.toUpperCase(Locale.ROOT))
            .checkValues(STORAGE_LEVELS)
            .createWithDefault("MEMORY_AND_DISK_SER");

    /** {@code spark.sparkprune.activations.deviceCacheBytes}. */
    public static final ConfEntry<String> ACTIVATIONS_DEVICE_CACHE_BYTES = conf("spark.sparkprune.activations.deviceCacheBytes")
            .doc("GPU memory per executor for keeping calibration activations on the device between passes (CUDA "
                    + "backend only): the forward pass of block l keeps each output batch's device copy, so the Hessian "
                    + "pass of block l+1 copies it on the device instead of uploading it from the host, and the forward "
                    + "pass of block l+1 takes it over without any copy. The persisted activations stay the source of "
                    + "truth: an evicted, lost or re-read batch is uploaded as before, with the same result. Hits need a "
                    + "deserialized storage level (spark.sparkprune.activations.storageLevel MEMORY_ONLY or "
                    + "MEMORY_AND_DISK): a serialized level hands every pass fresh arrays, so the cache is not used "
                    + "then. auto means a quarter of the GPU's free memory when the first batch is kept; 0 turns it "
                    + "off; else a size in bytes or with a unit (512m, 8g). The least recently used batches are evicted "
                    + "beyond it, and all of them when another GPU allocation would fail.")
            .stringConf()
            .transform(s -> s.toLowerCase(Locale.ROOT))
            .checkValue(s -> s.equals("auto") || parseBytes(s) >= 0,
                    "Must be auto or a size ≥ 0 in bytes, or with a unit k, m, g or t (e.g. 0, 1073741824, 512m, 8g).")
            .createWithDefault("auto");

    /** {@code spark.sparkprune.threads}. */
    public static final ConfEntry<Integer> THREADS = conf("spark.sparkprune.threads")
            .doc("Threads of the CPU backend in one task. 0 means the executor's cores divided by spark.task.cpus "
                    + "(at least 1), so concurrent tasks do not oversubscribe the cores.")
            .intConf()
            .checkValue(v -> v >= 0, "Must be ≥ 0.")
            .createWithDefault(0);

    private final Map<String, String> settings;

    /**
     * @param conf Spark settings (key → text); keys outside {@value #PREFIX} are ignored
     * @throws SparkPruneConfException for an unknown {@value #PREFIX} key or an invalid value, naming
     *     the key, the value and what is allowed
     */
    public SparkPruneConf(Map<String, String> conf) {
        Objects.requireNonNull(conf, "conf");
        Map<String, String> own = new TreeMap<>();
        for (Map.Entry<String, String> e : conf.entrySet()) {
            if (e.getKey().startsWith(PREFIX)) {
                own.put(e.getKey(), Objects.requireNonNull(e.getValue(), () -> "value of " + e.getKey()));
            }
        }
        for (Map.Entry<String, String> e : own.entrySet()) {
            ConfEntry<?> entry = REGISTRY.get(e.getKey());
            if (entry == null) {
                throw unknownKey(e.getKey());
            }
            entry.parse(e.getValue());
        }
        this.settings = Collections.unmodifiableMap(own);
    }

    /**
     * @param conf a Spark configuration (driver or executor side)
     * @return its {@value #PREFIX} settings, validated
     * @throws SparkPruneConfException as {@link #SparkPruneConf(Map)}
     */
    public static SparkPruneConf fromSparkConf(SparkConf conf) {
        Map<String, String> m = new LinkedHashMap<>();
        for (Tuple2<String, String> t : conf.getAll()) {
            m.put(t._1(), t._2());
        }
        return new SparkPruneConf(m);
    }

    /** @return every declared setting, in declaration order */
    public static List<ConfEntry<?>> entries() {
        return List.copyOf(REGISTRY.values());
    }

    /**
     * @param entry a declared setting
     * @param <T> its value type
     * @return its value in this configuration, or its default
     * @throws IllegalStateException for a setting without a default value (use {@link #getOptional})
     */
    public <T> T get(ConfEntry<T> entry) {
        return entry.get(settings);
    }

    /**
     * @param entry a declared setting
     * @param <T> its value type
     * @return its value in this configuration, its default, or empty when it has neither
     */
    public <T> Optional<T> getOptional(ConfEntry<T> entry) {
        return entry.getOptional(settings);
    }

    /** @return {@link #BACKEND} */
    public BackendChoice backend() {
        return get(BACKEND);
    }

    /** @return {@link #GPU_DEVICE}: the CUDA device ordinal in local mode, ≥ 0 */
    public int gpuDevice() {
        return get(GPU_DEVICE);
    }

    /** @return {@link #GPU_CONCURRENT_TASKS}: GPU permits per executor, ≥ 1 */
    public int gpuConcurrentTasks() {
        return get(GPU_CONCURRENT_TASKS);
    }

    /**
     * @return {@link #ROW_SHARD_MAX_ROWS} resolved: most output rows per row shard, ≥ 1 — the value
     *     when set, else 16384 for the {@code cuda} backend and 1024 otherwise
     */
    public int rowShardMaxRows() {
        int v = get(ROW_SHARD_MAX_ROWS);
        return v > 0 ? v : backend() == BackendChoice.CUDA ? 16384 : 1024;
    }

    /** @return {@link #CALIBRATION_PARTITIONS}: partitions of the calibration data, 0 = one per executor core */
    public int calibrationPartitions() {
        return get(CALIBRATION_PARTITIONS);
    }

    /**
     * @return {@link #CALIBRATION_BATCH_TOKENS} resolved: the value when set, else 32768 for the
     *     {@code cuda} backend and 4096 otherwise
     */
    public int calibrationBatchTokens() {
        int v = get(CALIBRATION_BATCH_TOKENS);
        return v > 0 ? v : backend() == BackendChoice.CUDA ? 32768 : 4096;
    }

    /** @return {@link #ACTIVATIONS_STORAGE_LEVEL}: an upper-case Spark storage level name from {@link #STORAGE_LEVELS} */
    public String activationsStorageLevel() {
        return get(ACTIVATIONS_STORAGE_LEVEL);
    }

    /**
     * @return {@link #ACTIVATIONS_DEVICE_CACHE_BYTES} in bytes: ≥ 0 (0 = off), or −1 for {@code auto}
     *     ({@code io.sparkprune.kernels.ResidentForward.ACTIVATION_CACHE_AUTO})
     */
    public long activationsDeviceCacheBytes() {
        String v = get(ACTIVATIONS_DEVICE_CACHE_BYTES);
        return v.equals("auto") ? -1 : parseBytes(v);
    }

    /**
     * A size as Spark reads one ({@code JavaUtils.byteStringAsBytes}: a number of bytes, or with a unit
     * {@code k}, {@code m}, {@code g}, {@code t}, {@code p}, optionally followed by {@code b}; binary units).
     *
     * @param s the text, lower case
     * @return bytes, or −1 when it is not a size
     */
    private static long parseBytes(String s) {
        try {
            return org.apache.spark.network.util.JavaUtils.byteStringAsBytes(s);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** @return {@link #THREADS} as set: CPU backend threads per task, 0 = derived (see {@link #cpuThreads}) */
    public int threads() {
        return get(THREADS);
    }

    /**
     * @param executorCores the executor's cores ({@code spark.executor.cores}, or the local machine's)
     * @param taskCpus {@code spark.task.cpus}, ≥ 1
     * @return {@link #THREADS} when positive, else {@code max(1, executorCores / taskCpus)}
     */
    public int cpuThreads(int executorCores, int taskCpus) {
        int t = threads();
        return t > 0 ? t : Math.max(1, executorCores / Math.max(1, taskCpus));
    }

    /**
     * @return every declared key with its effective value as text (the default's text where unset),
     *     in declaration order, for reports and logs
     */
    public Map<String, String> effectiveSettings() {
        Map<String, String> out = new LinkedHashMap<>();
        for (ConfEntry<?> e : REGISTRY.values()) {
            out.put(e.key(), effectiveText(e));
        }
        return Collections.unmodifiableMap(out);
    }

    private <T> String effectiveText(ConfEntry<T> e) {
        return e.getOptional(settings).map(e::format).orElse(e.defaultText());
    }

    /** @return the {@value #PREFIX} settings given explicitly, key → text */
    public Map<String, String> explicitSettings() {
        return settings;
    }

    private static SparkPruneConfException unknownKey(String key) {
        List<String> known = new ArrayList<>(REGISTRY.keySet());
        String hint = null;
        int best = 4;
        for (String k : known) {
            int d = editDistance(key.toLowerCase(Locale.ROOT), k.toLowerCase(Locale.ROOT));
            if (d < best) {
                best = d;
                hint = k;
            }
        }
        return new SparkPruneConfException(key, key + " is not a SparkPrune setting" + (hint == null ? ""
                : " (did you mean " + hint + "?)") + "; known settings: " + String.join(", ", known)
                + " (see docs/configuration.md)");
    }

    private static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }

    private static ConfEntry.Builder conf(String key) {
        if (!key.startsWith(PREFIX)) {
            throw new IllegalStateException("SparkPrune settings start with " + PREFIX + ", got " + key);
        }
        return ConfEntry.conf(key, e -> {
            if (REGISTRY.putIfAbsent(e.key(), e) != null) {
                throw new IllegalStateException(e.key() + " is declared twice");
            }
        });
    }

    @Override
    public String toString() {
        return "SparkPruneConf" + settings;
    }
}
