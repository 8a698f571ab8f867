package io.sparkprune.jobs.conf;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;

/**
 * docs/configuration.md must be what {@link ConfigDocs} generates from the registry. Run with
 * {@code -Dsparkprune.updateDocs=true} to rewrite it ({@link ConfigDocs#REGENERATE_COMMAND}).
 */
class ConfigDocsTest {

    /** docs/ relative to the jobs module directory (surefire's working directory). */
    private static final Path DOC = Path.of("..", "docs", "configuration.md");

    @Test
    void configurationMdIsUpToDate() throws IOException {
        String expected = ConfigDocs.render();
        if (Boolean.getBoolean("sparkprune.updateDocs")) {
            ConfigDocs.write(DOC);
        }
        assertThat(Files.exists(DOC)).as(DOC.toAbsolutePath() + " is missing; generate it with: "
                + ConfigDocs.REGENERATE_COMMAND).isTrue();
        String actual = Files.readString(DOC, StandardCharsets.UTF_8);
        assertThat(actual).as(DOC.toAbsolutePath() + " is stale (it must equal ConfigDocs.render()); regenerate it with: "
                + ConfigDocs.REGENERATE_COMMAND).isEqualTo(expected);
    }

    @Test
    void everySettingHasARowWithTypeDefaultAndItsChecks() {
        String md = ConfigDocs.render();
        for (ConfEntry<?> e : SparkPruneConf.entries()) {
            String row = md.lines().filter(l -> l.startsWith("| `" + e.key() + "` |")).findFirst().orElseThrow();
            assertThat(row).contains("| " + e.type() + " |").contains("`" + e.defaultText() + "`");
            e.requirements().forEach(r -> assertThat(row).contains(r));
        }
        assertThat(md).contains("| `spark.sparkprune.backend` | enum | `auto` |")
                .contains("One of auto, cpu, cuda.")
                .contains("| `spark.sparkprune.calibration.partitions` | int | `0` |")
                .contains("| `spark.sparkprune.rowShard.maxRows` | int | `0` |")
                .endsWith("|\n");
        assertThat(md.lines().filter(l -> l.startsWith("| `spark.sparkprune.")).count())
                .isEqualTo(SparkPruneConf.entries().size());
    }
}
