package io.sparkprune.jobs.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.jobs.prune.ValidateJob;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.recipe.RecipeKeys;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code sparkprune validate <original> <compressed>}: recomputes the quality and the per-tensor
 * sparsity and pattern checks of a compressed checkpoint against its original ({@link ValidateJob}),
 * compares them with {@code <compressed>/report.json} when there is one, and with {@code -o} writes
 * a new report.json, metrics.parquet and report.html. The recipe flags of {@code prune}
 * ({@code --eval}, {@code --eval-samples}, the gate flags, ...) are accepted too.
 */
@Command(name = "validate", mixinStandardHelpOptions = true,
        description = "Recompute the quality check and the per-tensor sparsity/pattern checks for an original and a "
                + "compressed checkpoint; exits with 4 when a quality gate fails.")
final class ValidateCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<original>", description = "The dense checkpoint directory, a BERT-family "
            + ".onnx export, or 'default'.")
    String original;

    @Parameters(index = "1", paramLabel = "<compressed>", description = "The compressed Hugging Face checkpoint directory.")
    String compressed;

    @Option(names = {"-o", "--output"}, paramLabel = "<report-dir>", description = "Write report.json, metrics.parquet "
            + "and report.html here.")
    String reportDir;

    @Option(names = "--recipe", paramLabel = "<recipe.yaml>", description = "Recipe (default: the one recorded in "
            + "<compressed>/report.json, else the default recipe).")
    Path recipe;

    @Option(names = "--master", paramLabel = "<url>", description = "Spark master (default: local[*]).")
    String master;

    @Option(names = "--conf", paramLabel = "<key=value>", description = "Spark or spark.sparkprune.* setting (repeatable).")
    Map<String, String> sparkConf = new LinkedHashMap<>();

    @Override
    public Integer call() {
        Map<String, String> overrides = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : RecipeKeys.CLI_FLAGS.entrySet()) {
            OptionSpec o = spec.findOption(e.getKey());
            if (o != null && o.getValue() != null) {
                overrides.put(e.getValue(), o.getValue());
            }
        }
        Recipe r = recipe == null ? null : Recipe.read(recipe);
        PrintWriter out = spec.commandLine().getOut();
        SparkSession spark = PruneCommand.session(master, sparkConf);
        try {
            ObjectNode report = ValidateJob.run(spark, new ValidateJob.Request(original, compressed, reportDir, r, overrides));
            out.println(PruneCommand.QualitySummary.line(report));
            JsonNode c = report.get("comparison");
            if (c != null) {
                out.println("recorded report " + c.path("report").asText() + ": "
                        + (c.path("matches").asBoolean() ? "reproduced" : "DIFFERS (see comparison in the new report)"));
            }
            if (reportDir != null) {
                out.println("report: " + reportDir + "/report.json, metrics.parquet, report.html");
            }
            out.flush();
            return PruneCommand.gateExit(report, spec.commandLine().getErr());
        } finally {
            spark.stop();
        }
    }
}
