package io.sparkprune.jobs.cli;

import io.sparkprune.jobs.prune.PruneJob;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.hf.CheckpointInspector;
import io.sparkprune.pipeline.recipe.Recipe;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code sparkprune quickstart}: the default job on real inputs from Maven Central —
 * all-MiniLM-L6-v2 (ONNX, converted on the fly) pruned 2:4 with SparseGPT, calibrated on the English
 * Europarl lines, checked on their held-out split, in Spark local mode. Equivalent to
 * {@code sparkprune prune default -o out/quickstart}, except that it replaces its own previous output.
 */
@Command(name = "quickstart", mixinStandardHelpOptions = true,
        description = "Run the default job: all-MiniLM-L6-v2 (ONNX from Maven Central) pruned 2:4 with SparseGPT on "
                + "Spark local mode, calibrated on English Europarl lines; writes the pruned checkpoint, report.json, metrics.parquet and report.html.")
final class QuickstartCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--out", defaultValue = "out/quickstart", description = "Output directory (default: ${DEFAULT-VALUE}).")
    Path out;

    @Option(names = "--samples", defaultValue = "128", description = "Calibration sentences (default: ${DEFAULT-VALUE}).")
    int samples;

    @Option(names = "--master", defaultValue = "local[*]", description = "Spark master (default: ${DEFAULT-VALUE}).")
    String master;

    @Override
    public Integer call() {
        PrintWriter pw = spec.commandLine().getOut();
        deletePreviousRun(out);
        pw.println("pruning " + DefaultAssets.MODEL_COORDINATES + " (2:4, SparseGPT) with calibration text from "
                + DefaultAssets.TEXT_COORDINATES);
        pw.flush();
        Map<String, String> overrides = new LinkedHashMap<>();
        overrides.put("calibration.samples", Integer.toString(samples));
        Recipe recipe = Recipe.defaults().withOverrides(overrides);
        SparkSession spark = PruneCommand.session(master, Map.of("spark.ui.enabled", "false"));
        PruneJob.Outcome o;
        try {
            o = PruneJob.run(spark, new PruneJob.Request("default", out.toString(), recipe, false));
        } finally {
            spark.stop();
        }
        SummaryPrinter.print(CheckpointInspector.inspect(out), false, pw);
        pw.println(PruneCommand.QualitySummary.line(o.report()));
        pw.println("done: pruned checkpoint in " + out.toAbsolutePath() + ", report in " + out.toAbsolutePath().resolve("report.json")
                + " (and metrics.parquet, report.html)");
        pw.flush();
        return ExitCodes.OK;
    }

    /** Removes this command's own previous output so quickstart can be re-run. */
    private static void deletePreviousRun(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        if (!Files.isRegularFile(dir.resolve("report.json")) && !Files.isDirectory(dir.resolve("_staging"))) {
            throw new InvalidInputException(dir + " exists and is not a previous quickstart output; pass another --out");
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.delete(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
