package io.sparkprune.jobs.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.Test;

/** The prune job's Spark defaults apply only where neither the user's --conf nor spark-submit set a value. */
class PruneCommandDefaultsTest {

    @Test
    void unsetKeysGetTheJobsDefaults() {
        Map<String, String> all = PruneCommand.withDefaults(Map.of("spark.executor.memory", "8g"), new Properties());
        assertThat(all).containsEntry("spark.executor.memory", "8g")
                .containsEntry("spark.executor.extraJavaOptions", "-XX:+UseTransparentHugePages")
                .containsEntry("spark.io.compression.codec", "io.sparkprune.jobs.prune.BufferedPassThroughCodec")
                .containsEntry("spark.driver.maxResultSize", "8g")
                .doesNotContainKey("spark.shuffle.sort.bypassMergeThreshold") // no partials shuffled any more
                .hasSize(4);
    }

    @Test
    void theUsersOrSparkSubmitsValueWins() {
        Properties submitted = new Properties();
        submitted.setProperty("spark.io.compression.codec", "lz4");
        Map<String, String> all = PruneCommand.withDefaults(Map.of("spark.executor.extraJavaOptions", "-Xss4m"), submitted);
        assertThat(all).containsEntry("spark.executor.extraJavaOptions", "-Xss4m")
                .doesNotContainKey("spark.io.compression.codec")
                .containsEntry("spark.driver.maxResultSize", "8g")
                .hasSize(2);
    }
}
