package io.sparkprune.jobs.prune;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.jobs.SparkFailures;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.jobs.conf.SparkPruneConf;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.recipe.GatesSpec;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.report.QualityGates;
import io.sparkprune.pipeline.report.ReportFiles;
import io.sparkprune.pipeline.report.ReportFormat;
import io.sparkprune.pipeline.report.TensorSummary;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.time.Instant;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

/**
 * {@code sparkprune validate}: recomputes the checkable part of a report for any pair of an
 * original and a compressed Hugging Face checkpoint, independently of the run that made it.
 * <ul>
 *   <li>Per target tensor (the recipe's targets among the original's 2-D block weights), read from
 *       the files: zeros, sparsity, pattern violations ({@link PatternCheck}, without dead-input
 *       information, so a block tile holding a column that SparseGPT zeroed as dead may count as a
 *       violation), all values finite, dense bytes. The reconstruction error is not recomputed: it
 *       needs the calibration inputs of the run.</li>
 *   <li>Quality, dense vs compressed, exactly as the job computes it ({@link QualityEvaluator}) on
 *       the recipe's evaluation data.</li>
 * </ul>
 * The recipe is the one given, else the one recorded in {@code <compressed>/report.json}, else the
 * default — without the recorded one's gates (validate cannot recompute the reconstruction error, so
 * a recorded {@code max_layer_error} would always fail as unmeasured); overrides (command-line
 * flags, gate flags included) apply on top. When {@code <compressed>/report.json}
 * exists, the new report's {@code comparison} lists each recomputed number beside the recorded one.
 */
public final class ValidateJob {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Recomputed quality values must equal the recorded ones within this relative tolerance to count as matching. */
    static final double QUALITY_TOLERANCE = 1e-6;

    /**
     * What to validate.
     *
     * @param original the dense checkpoint directory, an {@code .onnx} export, or {@code default}
     * @param compressed the compressed Hugging Face checkpoint directory (local path or Hadoop URI)
     * @param reportDir where to write report.json, metrics.parquet and report.html, or null for none
     * @param recipe the recipe, or null for the one in {@code <compressed>/report.json} (else the default)
     * @param overrides recipe key path → value, applied on top (e.g. {@code evaluation.source})
     */
    public record Request(String original, String compressed, String reportDir, Recipe recipe,
                          Map<String, String> overrides) {
    }

    private ValidateJob() {
    }

    /**
     * @param spark the session
     * @param req what to validate
     * @return the report (also written to {@code reportDir} when given), with {@code gates} and {@code passed}
     * @throws InvalidInputException on a bad checkpoint, recipe, or tensors whose shapes differ
     */
    public static ObjectNode run(SparkSession spark, Request req) {
        try {
            return execute(spark, req);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (Exception e) { // Spark actions throw the checked SparkException undeclared
            throw SparkFailures.rethrow(e); // an executor's typed error, as the prune job reports it
        }
    }

    private static ObjectNode execute(SparkSession spark, Request req) throws IOException {
        Instant start = Instant.now();
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        SparkPruneConf conf = SparkPruneConf.fromSparkConf(jsc.getConf());
        Configuration hconf = jsc.hadoopConfiguration();
        Path compressedDir = new Path(req.compressed());
        FileSystem cfs = compressedDir.getFileSystem(hconf);
        Path recorded = new Path(compressedDir, ReportFormat.REPORT_JSON);
        JsonNode recordedReport = null;
        if (cfs.exists(recorded)) {
            try (InputStream in = cfs.open(recorded)) {
                recordedReport = JSON.readTree(in);
            }
        }
        Recipe recipe = req.recipe();
        if (recipe == null) {
            recipe = recordedReport != null && recordedReport.hasNonNull("recipe")
                    ? Recipe.fromTree(recordedReport.get("recipe"), recorded + " (recipe)").withGates(GatesSpec.NONE)
                    : Recipe.defaults();
        }
        recipe = recipe.withOverrides(req.overrides());

        // an ONNX original (or 'default') is converted into a scratch directory, removed at the end
        java.nio.file.Path scratch = Files.createTempDirectory("sparkprune-validate-");
        Path scratchDir = new Path(scratch.toUri());
        try (ShardedCheckpoint packed = ShardedCheckpoint.open(req.compressed(), hconf)) {
            String originalUri = ModelInput.resolve(req.original(), scratchDir, scratchDir.getFileSystem(hconf));
            try (ShardedCheckpoint original = ShardedCheckpoint.open(originalUri, hconf)) {
                byte[] configJson = original.readSideFile("config.json", 16 << 20).orElseThrow(() ->
                        new InvalidInputException(original.sideFileLabel("config.json") + ": the original checkpoint has "
                                + "no config.json; pass a Hugging Face checkpoint directory, an .onnx export or default"));
                byte[] tokenizerJson = original.readSideFile("tokenizer.json", 256L << 20)
                        .or(() -> packed.readSideFile("tokenizer.json", 256L << 20)).orElseThrow(() ->
                                new InvalidInputException(req.compressed() + ": neither checkpoint has a tokenizer.json, "
                                        + "which the quality check needs; copy the model's tokenizer.json beside it"));
                ModelConfig config = ModelConfigs.parse(configJson, original.sideFileLabel("config.json"));
                ModelAdapter adapter = ModelAdapter.of(config);
                LayerPlan plan = LayerPlan.of(adapter, original, recipe, Integer.MAX_VALUE);

                ObjectNode r = JsonNodeFactory.instance.objectNode();
                JobReport.addRunFacts(r, ReportFormat.KIND_VALIDATE, jsc);
                r.put("model", req.original());
                r.put("model_checkpoint", originalUri);
                r.put("model_type", config.modelType());
                r.put("model_fingerprint_sha256", PruneJob.modelFingerprint(original, configJson));
                r.put("compressed", req.compressed());
                r.put("compressed_fingerprint_sha256", PruneJob.modelFingerprint(packed,
                        packed.readSideFile("config.json", 16 << 20).orElse(configJson)));
                r.put("output", req.reportDir() == null ? "" : req.reportDir());
                r.set("recipe", recipe.toTree());
                ArrayNode ts = r.putArray("tensors");
                for (int layer = 0; layer < adapter.numLayers(); layer++) {
                    for (LayerPlan.Target t : plan.targets(layer)) {
                        ts.add(tensor(t, original, packed, recipe));
                    }
                }
                if (ts.isEmpty()) {
                    throw new InvalidInputException("no tensor of " + originalUri + " matches the recipe's targets "
                            + recipe.prune().selector() + "; check prune.targets and prune.ignore");
                }
                r.set("summary", TensorSummary.of(ts));
                JobContext ctx = new JobContext(originalUri, configJson, recipe, new HadoopConf(hconf),
                        conf.backend().name().toLowerCase(java.util.Locale.ROOT), conf.threads(),
                        conf.activationsDeviceCacheBytes());
                jsc.setJobGroup("validate", "quality check, original vs compressed", false);
                r.set("quality", QualityEvaluator.evaluate(jsc, ctx, config, tokenizerJson, req.compressed(), hconf));
                JobReport.addStorage(r, packed);
                ObjectNode run = (ObjectNode) r.get("run");
                run.put("start", start.toString());
                run.put("end", Instant.now().toString());
                if (recordedReport != null) {
                    r.set("comparison", compare(r, recordedReport, recorded.toString()));
                }
                if (req.reportDir() != null) {
                    Path dir = new Path(req.reportDir());
                    FileSystem fs = dir.getFileSystem(hconf);
                    fs.mkdirs(dir);
                    JobReport.finish(r, recipe.gates(), fs, dir, hconf);
                } else {
                    QualityGates.apply(r, recipe.gates());
                }
                return r;
            }
        } finally {
            scratchDir.getFileSystem(hconf).delete(scratchDir, true);
        }
    }

    private static ObjectNode tensor(LayerPlan.Target t, ShardedCheckpoint original, ShardedCheckpoint packed, Recipe recipe) {
        String name = t.name();
        if (!packed.tensorNames().contains(name)) {
            throw new InvalidInputException(name + ": missing from the compressed checkpoint; compare checkpoints of the "
                    + "same model (a sparse or compressed-tensors one must be decompressed first: sparkprune decompress)");
        }
        TensorInfo a = t.info();
        TensorInfo b = packed.info(name);
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw new InvalidInputException(name + ": shape " + Arrays.toString(b.shape()) + " in the compressed "
                    + "checkpoint, " + Arrays.toString(a.shape()) + " in the original; compare checkpoints of the same model");
        }
        int rows = (int) a.rows();
        int cols = (int) a.cols();
        float[] dense = original.read(name).toFloatArray();
        float[] pruned = packed.read(name).toFloatArray();
        long zeros = 0;
        long nonFinite = 0;
        for (float v : pruned) {
            if (v == 0f) {
                zeros++;
            } else if (!Float.isFinite(v)) {
                nonFinite++;
            }
        }
        SparsityPattern pattern = recipe.prune().pattern();
        long violations = PatternCheck.violations(pattern, dense, pruned, rows, cols, null);
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("layer", t.layer());
        n.put("tensor", name);
        n.put("group", t.group());
        n.put("rows", a.rows());
        n.put("cols", a.cols());
        n.put("dtype", b.dtype().safetensorsName());
        n.put("pattern", pattern.spec());
        n.put("elements", (long) pruned.length);
        n.put("zeros", zeros);
        n.put("sparsity", pruned.length == 0 ? 0 : (double) zeros / pruned.length);
        n.put("pattern_violations", violations);
        n.put("pattern_verified", violations == 0);
        n.put("all_finite", nonFinite == 0);
        n.put("bytes_dense", a.rows() * a.cols() * a.dtype().byteSize());
        return n;
    }

    /**
     * The recomputed numbers beside the recorded report's: every numeric quality field, and the
     * tensors whose zeros or pattern verdict differ.
     *
     * @param now the recomputed report
     * @param recorded the recorded report.json
     * @param source where the recorded one was read, named in the result
     * @return the {@code comparison} object ({@code docs/report.md})
     */
    static ObjectNode compare(JsonNode now, JsonNode recorded, String source) {
        ObjectNode c = JsonNodeFactory.instance.objectNode();
        c.put("report", source);
        c.put("recorded_format", recorded.path("format").asText());
        ObjectNode q = c.putObject("quality");
        boolean matches = true;
        for (Iterator<Map.Entry<String, JsonNode>> it = now.path("quality").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode old = recorded.path("quality").get(e.getKey());
            if (e.getValue().isNumber() && old != null && old.isNumber()) {
                double a = e.getValue().asDouble();
                double b = old.asDouble();
                boolean same = Math.abs(a - b) <= QUALITY_TOLERANCE * Math.max(1, Math.abs(b));
                ObjectNode d = q.putObject(e.getKey());
                d.put("recorded", b);
                d.put("recomputed", a);
                d.put("matches", same);
                matches &= same;
            }
        }
        Map<String, JsonNode> byName = new java.util.HashMap<>();
        recorded.path("tensors").forEach(t -> byName.put(t.path("tensor").asText(), t));
        ArrayNode diff = c.putArray("tensor_differences");
        for (JsonNode t : now.path("tensors")) {
            JsonNode old = byName.get(t.get("tensor").asText());
            if (old == null || old.path("zeros").asLong() != t.get("zeros").asLong()
                    || old.path("pattern_verified").asBoolean() != t.get("pattern_verified").asBoolean()) {
                diff.add(t.get("tensor").asText());
            }
        }
        matches &= diff.isEmpty() && byName.size() == now.path("tensors").size();
        c.put("matches", matches);
        return c;
    }
}
