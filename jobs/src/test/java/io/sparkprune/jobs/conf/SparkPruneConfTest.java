package io.sparkprune.jobs.conf;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.sparkprune.kernels.InvalidInputException;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.apache.spark.SparkConf;
import org.apache.spark.storage.StorageLevel;
import org.junit.jupiter.api.Test;

/** The spark.sparkprune.* registry: defaults, parsing, checks, unknown keys, the SparkConf adapter. */
class SparkPruneConfTest {

    private static SparkPruneConf conf(String... kv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return new SparkPruneConf(m);
    }

    @Test
    void defaults() {
        SparkPruneConf c = conf();
        assertThat(c.backend()).isEqualTo(BackendChoice.AUTO);
        assertThat(c.gpuDevice()).isZero();
        assertThat(c.gpuConcurrentTasks()).isEqualTo(1);
        assertThat(c.rowShardMaxRows()).isEqualTo(1024);
        assertThat(conf("spark.sparkprune.backend", "cuda").rowShardMaxRows()).isEqualTo(16384); // 0 resolved per backend
        assertThat(conf("spark.sparkprune.backend", "cpu").rowShardMaxRows()).isEqualTo(1024);
        assertThat(c.calibrationPartitions()).isZero();
        assertThat(c.activationsStorageLevel()).isEqualTo("MEMORY_AND_DISK_SER");
        assertThat(c.threads()).isZero();
        assertThat(c.cpuThreads(16, 2)).isEqualTo(8);
        assertThat(c.cpuThreads(1, 4)).isEqualTo(1);
        assertThat(c.explicitSettings()).isEmpty();
        assertThat(c.activationsDeviceCacheBytes()).isEqualTo(-1); // auto
    }

    @Test
    void deviceCacheBytesReadsSizesAsSparkDoes() {
        String key = "spark.sparkprune.activations.deviceCacheBytes";
        assertThat(conf(key, "AUTO").activationsDeviceCacheBytes()).isEqualTo(-1);
        assertThat(conf(key, "0").activationsDeviceCacheBytes()).isZero();
        assertThat(conf(key, "1048576").activationsDeviceCacheBytes()).isEqualTo(1L << 20);
        assertThat(conf(key, "512m").activationsDeviceCacheBytes()).isEqualTo(512L << 20);
        assertThat(conf(key, " 8G ").activationsDeviceCacheBytes()).isEqualTo(8L << 30);
        assertThat(conf(key, "2kb").activationsDeviceCacheBytes()).isEqualTo(2048);
        assertThat(conf(key, "8g").effectiveSettings()).containsEntry(key, "8g");
        invalid(key, "-1", "Must be auto or a size ≥ 0", "default auto");
        invalid(key, "1.5g", "Must be auto or a size ≥ 0");
        invalid(key, "lots", "Must be auto or a size ≥ 0");
        invalid(key, "8x", "Must be auto or a size ≥ 0");
    }

    @Test
    void explicitValuesAreParsed() {
        SparkPruneConf c = conf("spark.sparkprune.backend", "CPU", "spark.sparkprune.gpu.device", "3",
                "spark.sparkprune.gpu.concurrentTasks", "2", "spark.sparkprune.rowShard.maxRows", " 256 ",
                "spark.sparkprune.calibration.partitions", "8",
                "spark.sparkprune.activations.storageLevel", "disk_only",
                "spark.sparkprune.threads", "4",
                "spark.executor.memory", "4g", "spark.sparkprunex.other", "ignored too");
        assertThat(c.backend()).isEqualTo(BackendChoice.CPU);
        assertThat(c.gpuDevice()).isEqualTo(3);
        assertThat(c.gpuConcurrentTasks()).isEqualTo(2);
        assertThat(c.rowShardMaxRows()).isEqualTo(256);
        assertThat(c.calibrationPartitions()).isEqualTo(8);
        assertThat(c.activationsStorageLevel()).isEqualTo("DISK_ONLY");
        assertThat(c.threads()).isEqualTo(4);
        assertThat(c.cpuThreads(16, 1)).isEqualTo(4);
        assertThat(c.explicitSettings()).hasSize(7).doesNotContainKey("spark.executor.memory");
        assertThat(c.effectiveSettings()).containsEntry("spark.sparkprune.backend", "cpu")
                .containsEntry("spark.sparkprune.activations.storageLevel", "DISK_ONLY");
    }

    private static void invalid(String key, String value, String... fragments) {
        SparkPruneConfException e = catchThrowableOfType(SparkPruneConfException.class, () -> conf(key, value));
        assertThat(e).as(key + "=" + value).isNotNull().isInstanceOf(InvalidInputException.class);
        assertThat(e.key()).isEqualTo(key);
        assertThat(e.getMessage()).startsWith(key + "=" + value + " is invalid: ")
                .contains("set it with --conf " + key + "=<value>");
        for (String f : fragments) {
            assertThat(e.getMessage()).contains(f);
        }
    }

    @Test
    void invalidValuesNameKeyValueAndWhatIsAllowed() {
        invalid("spark.sparkprune.backend", "gpu", "allowed values are auto, cpu, cuda", "default auto");
        invalid("spark.sparkprune.gpu.device", "-1", "Must be ≥ 0.");
        invalid("spark.sparkprune.gpu.device", "first", "not an integer");
        invalid("spark.sparkprune.gpu.concurrentTasks", "0", "Must be ≥ 1.");
        invalid("spark.sparkprune.rowShard.maxRows", "-1", "Must be ≥ 0.", "default 0");
        invalid("spark.sparkprune.rowShard.maxRows", "1e3", "not an integer");
        invalid("spark.sparkprune.rowShard.maxRows", "3000000000", "not an integer");
        invalid("spark.sparkprune.calibration.partitions", "-4", "Must be ≥ 0.");
        invalid("spark.sparkprune.activations.storageLevel", "NONE", "Must be one of DISK_ONLY, DISK_ONLY_2");
        invalid("spark.sparkprune.activations.storageLevel", "MEMORY", "MEMORY_AND_DISK_SER");
        invalid("spark.sparkprune.threads", "-2", "Must be ≥ 0.");
    }

    @Test
    void unknownKeysAreRejectedWithTheNearestKnownOne() {
        SparkPruneConfException e = catchThrowableOfType(SparkPruneConfException.class,
                () -> conf("spark.sparkprune.gpu.devcie", "1"));
        assertThat(e.key()).isEqualTo("spark.sparkprune.gpu.devcie");
        assertThat(e).hasMessageStartingWith("spark.sparkprune.gpu.devcie is not a SparkPrune setting (did you mean "
                + "spark.sparkprune.gpu.device?); known settings: spark.sparkprune.backend, ")
                .hasMessageContaining("docs/configuration.md");
        assertThatThrownBy(() -> conf("spark.sparkprune.rowshard.maxrows", "5"))
                .hasMessageContaining("did you mean spark.sparkprune.rowShard.maxRows?");
        assertThatThrownBy(() -> conf("spark.sparkprune.completely.different", "5"))
                .isInstanceOf(SparkPruneConfException.class).hasMessageNotContaining("did you mean");
    }

    @Test
    void readsASparkConf() {
        SparkConf sc = new SparkConf(false).set("spark.sparkprune.backend", "cuda")
                .set("spark.sparkprune.rowShard.maxRows", "64").set("spark.master", "local[2]");
        SparkPruneConf c = SparkPruneConf.fromSparkConf(sc);
        assertThat(c.backend()).isEqualTo(BackendChoice.CUDA);
        assertThat(c.rowShardMaxRows()).isEqualTo(64);
        assertThat(c.explicitSettings()).containsOnlyKeys("spark.sparkprune.backend", "spark.sparkprune.rowShard.maxRows");
        assertThatThrownBy(() -> SparkPruneConf.fromSparkConf(new SparkConf(false).set("spark.sparkprune.threads", "x")))
                .isInstanceOf(SparkPruneConfException.class).hasMessageContaining("spark.sparkprune.threads=x");
    }

    @Test
    void acceptedStorageLevelsAreSparkStorageLevels() {
        for (String level : SparkPruneConf.STORAGE_LEVELS) {
            StorageLevel l = StorageLevel.fromString(level);
            assertThat(l.isValid()).as(level).isTrue();
            assertThat(conf("spark.sparkprune.activations.storageLevel", level.toLowerCase()).activationsStorageLevel())
                    .isEqualTo(level);
        }
        assertThat(StorageLevel.fromString("NONE").isValid()).isFalse();
    }

    @Test
    void calibrationBatchTokensDefaultsByBackendAndTakesAnExplicitValue() {
        assertThat(conf().calibrationBatchTokens()).isEqualTo(4096);
        assertThat(conf("spark.sparkprune.backend", "cpu").calibrationBatchTokens()).isEqualTo(4096);
        assertThat(conf("spark.sparkprune.backend", "cuda").calibrationBatchTokens()).isEqualTo(32768);
        assertThat(conf("spark.sparkprune.backend", "cuda", "spark.sparkprune.calibration.batchTokens", "2048")
                .calibrationBatchTokens()).isEqualTo(2048);
        assertThatThrownBy(() -> conf("spark.sparkprune.calibration.batchTokens", "-1").calibrationBatchTokens())
                .hasMessageContaining("spark.sparkprune.calibration.batchTokens");
    }

    @Test
    void everyEntryIsDeclaredOnceWithDocAndAValidDefault() {
        List<ConfEntry<?>> entries = SparkPruneConf.entries();
        assertThat(entries).extracting(ConfEntry::key).containsExactly("spark.sparkprune.backend",
                "spark.sparkprune.gpu.device", "spark.sparkprune.gpu.concurrentTasks", "spark.sparkprune.rowShard.maxRows",
                "spark.sparkprune.calibration.partitions", "spark.sparkprune.calibration.batchTokens",
                "spark.sparkprune.activations.storageLevel", "spark.sparkprune.activations.deviceCacheBytes",
                "spark.sparkprune.threads");
        for (ConfEntry<?> e : entries) {
            assertThat(e.doc()).as(e.key()).isNotBlank();
            assertThat(e.type()).isIn("int", "boolean", "string", "enum");
            if (e.hasDefault()) {
                roundTripDefault(e);
            }
        }
        ConfEntry<String> optional = ConfEntry.conf("spark.sparkprune.test.optional", e -> { })
                .doc("An optional test entry.").stringConf().createOptional("<none>");
        assertThat(optional.hasDefault()).isFalse();
        assertThatThrownBy(() -> optional.get(Map.of())).isInstanceOf(IllegalStateException.class);
    }

    private static <T> void roundTripDefault(ConfEntry<T> e) {
        T d = e.get(Map.of());
        assertThat(e.defaultText()).isEqualTo(e.format(d));
        assertThat(e.parse(e.format(d))).isEqualTo(d);
    }

    @Test
    void builderRejectsDuplicatesMissingDocsAndInvalidDefaults() {
        Map<String, ConfEntry<?>> registry = new HashMap<>();
        java.util.function.Consumer<ConfEntry<?>> register = e -> {
            if (registry.putIfAbsent(e.key(), e) != null) {
                throw new IllegalStateException(e.key() + " is declared twice");
            }
        };
        ConfEntry<Integer> a = ConfEntry.conf("spark.sparkprune.test.a", register).doc("A.").intConf()
                .checkValue(v -> v % 2 == 0, "Must be even.").createWithDefault(2);
        assertThat(a.get(Map.of("spark.sparkprune.test.a", "6"))).isEqualTo(6);
        assertThatThrownBy(() -> a.get(Map.of("spark.sparkprune.test.a", "7"))).hasMessageContaining("Must be even.");
        assertThatThrownBy(() -> ConfEntry.conf("spark.sparkprune.test.a", register).doc("again").intConf()
                .createWithDefault(0)).hasMessageContaining("declared twice");
        assertThatThrownBy(() -> ConfEntry.conf("spark.sparkprune.test.b", register).intConf().createWithDefault(0))
                .hasMessageContaining("without documentation");
        assertThatThrownBy(() -> ConfEntry.conf("spark.sparkprune.test.c", register).doc("C.").intConf()
                .checkValue(v -> v > 0, "Must be > 0.").createWithDefault(0)).isInstanceOf(SparkPruneConfException.class);
        assertThat(registry).containsOnlyKeys("spark.sparkprune.test.a");
        assertThat(ConfEntry.conf("spark.sparkprune.test.d", register).doc("D.").stringConf().createOptional("none")
                .getOptional(Map.of())).isEqualTo(Optional.empty());
    }
}
