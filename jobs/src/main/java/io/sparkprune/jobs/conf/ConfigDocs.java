package io.sparkprune.jobs.conf;

import io.sparkprune.pipeline.formats.AtomicFile;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Generates {@code docs/configuration.md} from the {@link SparkPruneConf} registry: a hand-written
 * header (in this class) and a table of every setting (key, type, default, description).
 * {@code ConfigDocsTest} fails when the checked-in file differs from {@link #render()}.
 */
public final class ConfigDocs {

    /** The command that rewrites docs/configuration.md, quoted in the stale-docs test failure. */
    public static final String REGENERATE_COMMAND = "mvn -B -o -q -pl kernels,calibration,pipeline,jobs test "
            + "-Dtest=ConfigDocsTest -Dsurefire.failIfNoSpecifiedTests=false -Dsparkprune.updateDocs=true";

    private static final String HEADER = """
            # Configuration

            SparkPrune's Spark settings all start with `spark.sparkprune.`. Set them as any Spark setting:
            `--conf key=value` on `spark-submit` or `bin/sparkprune`, or a line in `spark-defaults.conf`.
            The driver reads them once when the job starts and stops with an error (exit code 3) on an
            unknown `spark.sparkprune.*` key or an invalid value, naming the key, the value and what is
            allowed; other Spark settings are left to Spark.

            What to prune and on which data is not a Spark setting: that is the recipe, see
            [recipes.md](recipes.md). GPU scheduling uses Spark's own resource settings
            (`spark.executor.resource.gpu.amount`, `spark.task.resource.gpu.amount`, a discovery script).

            Example:

            ```
            bin/sparkprune prune --conf spark.sparkprune.rowShard.maxRows=512 \\
                --conf spark.sparkprune.activations.storageLevel=DISK_ONLY ...
            ```

            <!-- Generated from io.sparkprune.jobs.conf.SparkPruneConf by io.sparkprune.jobs.conf.ConfigDocs;
                 do not edit by hand. Regenerate with:
                 %s -->

            | key | type | default | description |
            |---|---|---|---|
            """.formatted(REGENERATE_COMMAND);

    private ConfigDocs() {
    }

    /** @return the whole markdown file, ending with a newline */
    public static String render() {
        StringBuilder sb = new StringBuilder(HEADER);
        for (ConfEntry<?> e : SparkPruneConf.entries()) {
            StringBuilder desc = new StringBuilder(e.doc());
            for (String r : e.requirements()) {
                desc.append(' ').append(r);
            }
            sb.append("| `").append(e.key()).append("` | ").append(e.type()).append(" | `")
                    .append(cell(e.defaultText())).append("` | ").append(cell(desc.toString())).append(" |\n");
        }
        return sb.toString();
    }

    private static String cell(String s) {
        return s.replace("|", "\\|").replace("\n", " ");
    }

    /**
     * Writes the file atomically (temporary file, then rename).
     *
     * @param target e.g. {@code docs/configuration.md}
     * @throws IOException when it cannot be written
     */
    public static void write(Path target) throws IOException {
        String md = render();
        try {
            AtomicFile.write(target, true, tmp -> Files.writeString(tmp, md, StandardCharsets.UTF_8));
        } catch (java.io.UncheckedIOException e) {
            throw e.getCause();
        }
    }

    /**
     * Prints the markdown, or writes it to the file given as the only argument.
     *
     * @param args nothing, or the target file
     * @throws IOException when the file cannot be written
     */
    public static void main(String[] args) throws IOException {
        if (args.length == 1) {
            write(Path.of(args[0]));
        } else {
            PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
            out.print(render());
            out.flush();
        }
    }
}
