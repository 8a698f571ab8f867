package io.sparkprune.jobs.cli;

import io.sparkprune.jobs.prune.PruneJob;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.recipe.RecipeKeys;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
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
 * {@code sparkprune prune}: the main job. Runs Spark in local mode by default ({@code --master}
 * chooses another master; under {@code spark-submit} the submitted master is used).
 *
 * <p>Every recipe key that has a command-line flag ({@link RecipeKeys#CLI_FLAGS}: {@code --pattern},
 * {@code --method}, {@code --samples}, ...) is added to this command from that table, so the flags
 * and the recipe schema cannot drift apart; a flag overrides the recipe file's value.
 */
@Command(name = "prune", mixinStandardHelpOptions = true,
        description = "Prune (and optionally quantize) a checkpoint with SparseGPT on Spark; writes a Hugging Face "
                + "directory with exact zeros, report.json, metrics.parquet and report.html; exits with 4 when a "
                + "quality gate fails.")
final class PruneCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<model>", description = "Hugging Face checkpoint directory (local path or "
            + "Hadoop URI), a BERT-family .onnx export, or 'default' (all-MiniLM-L6-v2 from Maven Central).")
    String model;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "<dir>",
            description = "Output directory (local path or Hadoop URI).")
    String output;

    @Option(names = "--recipe", paramLabel = "<recipe.yaml>", description = "Recipe file (default: sparsegpt 2:4); "
            + "see docs/recipes.md and conf/recipes/.")
    Path recipe;

    @Option(names = "--resume", description = "Continue a killed run from its first uncommitted layer.")
    boolean resume;

    @Option(names = "--master", paramLabel = "<url>", description = "Spark master (default: local[*], or what spark-submit set).")
    String master;

    @Option(names = "--conf", paramLabel = "<key=value>", description = "Spark or spark.sparkprune.* setting (repeatable).")
    Map<String, String> sparkConf = new LinkedHashMap<>();

    /**
     * What a recipe flag sets, for the flags whose key name alone does not say it; appended to the
     * generic "Overrides recipe key ..." help text. Keyed by flag, a subset of {@link RecipeKeys#CLI_FLAGS}.
     */
    static final Map<String, String> FLAG_HELP = Map.of(
            "--forward-precision", "products of the linear layers in calibration forwards: fp32 (default) or tf32 "
                    + "(tensor cores on the GPU; operands rounded to TF32)");

    /**
     * Adds one option per entry of {@link RecipeKeys#CLI_FLAGS} to the prune command.
     *
     * @param prune the command's spec
     */
    static void addRecipeFlags(CommandSpec prune) {
        for (Map.Entry<String, String> e : RecipeKeys.CLI_FLAGS.entrySet()) {
            String help = FLAG_HELP.get(e.getKey());
            prune.addOption(OptionSpec.builder(e.getKey()).paramLabel("<value>").type(String.class)
                    .description("Overrides recipe key " + e.getValue() + (help == null ? "." : ": " + help + "."))
                    .build());
        }
    }

    /**
     * The recipe this command runs: the {@code --recipe} file (or the default recipe) with every given
     * recipe flag applied as an override ({@link Recipe#withOverrides(Map)}).
     *
     * @return the resolved recipe
     * @throws io.sparkprune.pipeline.recipe.RecipeException (exit code 3) for an unreadable or invalid
     *     recipe file or a bad flag value, naming the key, the value and the allowed values
     */
    Recipe resolvedRecipe() {
        Map<String, String> overrides = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : RecipeKeys.CLI_FLAGS.entrySet()) {
            OptionSpec o = spec.findOption(e.getKey());
            if (o != null && o.getValue() != null) {
                overrides.put(e.getValue(), o.getValue());
            }
        }
        Recipe r = (recipe == null ? Recipe.defaults() : Recipe.read(recipe));
        return overrides.isEmpty() ? r : r.withOverrides(overrides);
    }

    @Override
    public Integer call() {
        Recipe r = resolvedRecipe();
        PrintWriter out = spec.commandLine().getOut();
        SparkSession spark = session(master, sparkConf);
        try {
            PruneJob.Outcome o = PruneJob.run(spark, new PruneJob.Request(model, output, r, resume));
            out.println("pruned checkpoint: " + o.outputDir());
            out.println("report: " + o.outputDir() + "/report.json, metrics.parquet, report.html");
            out.println(QualitySummary.line(o.report()));
            out.flush();
            return gateExit(o.report(), spec.commandLine().getErr());
        } finally {
            spark.stop();
        }
    }

    /**
     * Prints each failed quality gate of a report and chooses the exit code.
     *
     * @param report a report with {@code gates} and {@code passed}
     * @param err where failed gates are printed
     * @return {@link ExitCodes#OK} when every gate passed (or none is set), else {@link ExitCodes#QUALITY_GATE_FAILED}
     */
    static int gateExit(com.fasterxml.jackson.databind.JsonNode report, PrintWriter err) {
        if (report.path("passed").asBoolean(true)) {
            return ExitCodes.OK;
        }
        for (com.fasterxml.jackson.databind.JsonNode g : report.path("gates")) {
            if (!g.path("passed").asBoolean()) {
                err.println("sparkprune: quality gate " + g.path("name").asText() + " failed: " + g.path("detail").asText());
            }
        }
        err.flush();
        return ExitCodes.QUALITY_GATE_FAILED;
    }

    /** Builds the session: the given master, else spark-submit's, else local[*]. */
    static SparkSession session(String master, Map<String, String> conf) {
        SparkSession.Builder b = SparkSession.builder().appName("sparkprune prune");
        if (master != null) {
            b.master(master);
        } else if (System.getProperty("spark.master") == null) {
            b.master("local[*]");
        }
        withDefaults(conf, System.getProperties()).forEach(b::config);
        return b.getOrCreate();
    }

    /**
     * The session's settings: {@code conf}, plus each of {@link #DEFAULTS} that neither {@code conf} nor
     * spark-submit (a system property of the driver JVM, e.g. from spark-defaults.conf) sets.
     *
     * @param conf the user's {@code --conf} settings
     * @param submitted spark-submit's settings (the driver's system properties)
     * @return a new map, the user's settings first
     */
    static Map<String, String> withDefaults(Map<String, String> conf, java.util.Properties submitted) {
        Map<String, String> all = new java.util.LinkedHashMap<>(conf);
        new java.util.TreeMap<>(DEFAULTS).forEach((k, v) -> {
            if (!conf.containsKey(k) && submitted.getProperty(k) == null) {
                all.put(k, v);
            }
        });
        return all;
    }

    /** Spark's cap on the results collected by one job. */
    static final String MAX_RESULT_SIZE = "spark.driver.maxResultSize";
    /** What this job sets it to when nobody else did. */
    static final String DEFAULT_MAX_RESULT_SIZE = "8g";
    /** Spark's codec for shuffle files, broadcasts and spills. */
    static final String COMPRESSION_CODEC = "spark.io.compression.codec";

    /** Spark's extra JVM flags of each executor. */
    static final String EXECUTOR_JAVA_OPTIONS = "spark.executor.extraJavaOptions";
    /**
     * Transparent huge pages for the Java heap: the executors allocate tens of GB of fresh arrays (weights
     * widened to fp32, activations, Hessian partials), and with 4 KiB pages the kernel's first-touch
     * faults limited a 7B quality check to about 1.4 GB/s of new arrays (on an H200 machine: 274 s → 243 s
     * for the whole 7B job, docs/benchmarks.md). Uses madvise, so it works where THP is "madvise" or
     * "always"; the JVM warns and goes on without it where THP is off.
     */
    static final String HUGE_PAGES = "-XX:+UseTransparentHugePages";
    /**
     * The executors' flags when nobody set {@link #EXECUTOR_JAVA_OPTIONS}: {@link #HUGE_PAGES}. Spark 4 puts
     * its own module options in front (JavaModuleOptions: the --add-opens list, the Vector API module and
     * -XX:+IgnoreUnrecognizedVMOptions), and spark.executor.defaultJavaOptions before that.
     */
    static final String DEFAULT_EXECUTOR_JAVA_OPTIONS = HUGE_PAGES;

    /**
     * Spark settings this job changes when nobody else set them: the executors' JVM flags
     * ({@link #DEFAULT_EXECUTOR_JAVA_OPTIONS}), the result cap (headroom for the group tasks' shard
     * records and the quality check's collected scores) and the codec,
     * {@link io.sparkprune.jobs.prune.BufferedPassThroughCodec}, which only buffers. The job no longer
     * shuffles its partial Hessians (they wait in the executors' block stores, uncompressed:
     * {@code spark.rdd.compress} is off by default), so the codec now serves the broadcasts (task
     * binaries) and any shuffle a user adds; it stays the default so that configurations made from
     * conf/spark-defaults.conf.template keep one behaviour. It was introduced because LZ4 cannot shrink
     * the partials (670 MB in, 670 MB out for a 7B layer's partition) yet cost about 1 s of executor CPU
     * per partition and layer to compress them (measured on the GPU machine; docs/benchmarks.md).
     */
    static final Map<String, String> DEFAULTS = Map.of(MAX_RESULT_SIZE, DEFAULT_MAX_RESULT_SIZE,
            COMPRESSION_CODEC, io.sparkprune.jobs.prune.BufferedPassThroughCodec.class.getName(),
            EXECUTOR_JAVA_OPTIONS, DEFAULT_EXECUTOR_JAVA_OPTIONS);

    /** One line summarising report.json's quality section. */
    static final class QualitySummary {
        private QualitySummary() {
        }

        static String line(com.fasterxml.jackson.databind.node.ObjectNode report) {
            var q = report.get("quality");
            var s = report.get("summary");
            String sparsity = String.format(Locale.ROOT, "target sparsity %.2f%%, patterns verified: %s",
                    100 * s.get("target_sparsity").asDouble(), s.get("all_patterns_verified").asBoolean())
                    + (s.has("all_quantization_grids_verified") ? ", quantization grids verified: "
                    + s.get("all_quantization_grids_verified").asBoolean() : "");
            if (q.has("error")) {
                return sparsity + "; quality check skipped: " + q.get("error").asText();
            }
            if (q.has("perplexity_dense")) {
                return sparsity + String.format(Locale.ROOT, "; perplexity %.3f -> %.3f (%+.1f%%) on %d held-out windows",
                        q.get("perplexity_dense").asDouble(), q.get("perplexity_pruned").asDouble(),
                        100 * q.get("perplexity_increase").asDouble(), q.get("windows").asInt()) + baselines(q);
            }
            return sparsity + String.format(Locale.ROOT, "; embedding cosine mean %.4f (min %.4f), top-10 neighbour agreement %.3f on %d held-out sentences",
                    q.get("mean_cosine").asDouble(), q.get("min_cosine").asDouble(),
                    q.get("top10_neighbour_agreement").asDouble(), q.get("sentences").asInt()) + baselines(q);
        }

        /** {@code "; baselines: magnitude 41.203, wanda 30.118"} (perplexity or mean cosine), empty without baselines. */
        static String baselines(com.fasterxml.jackson.databind.JsonNode q) {
            java.util.List<String> parts = new java.util.ArrayList<>();
            for (var b : q.path("baselines")) {
                String v = b.has("perplexity") ? String.format(Locale.ROOT, "perplexity %.3f", b.get("perplexity").asDouble())
                        : b.has("mean_cosine") ? String.format(Locale.ROOT, "cosine %.4f, top-10 %.3f",
                        b.get("mean_cosine").asDouble(), b.path("top10_neighbour_agreement").asDouble())
                        : "not scored";
                parts.add(b.path("method").asText() + " " + v);
            }
            return parts.isEmpty() ? "" : "; baselines at the same pattern: " + String.join(", ", parts);
        }
    }
}
