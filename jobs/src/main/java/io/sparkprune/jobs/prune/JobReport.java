package io.sparkprune.jobs.prune;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.pipeline.formats.StorageInspector;
import io.sparkprune.pipeline.recipe.OutputFormat;
import io.sparkprune.pipeline.recipe.GatesSpec;
import io.sparkprune.pipeline.report.QualityGates;
import io.sparkprune.pipeline.report.ReportFiles;
import io.sparkprune.pipeline.report.ReportFormat;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * The parts of the v2 report ({@code docs/report.md}) that both {@code prune} and {@code validate}
 * add on the driver: the run facts (versions, executors, GPUs), the storage of the written
 * checkpoint, the quality gates; then the three report files.
 */
final class JobReport {
    private JobReport() {
    }

    /**
     * Adds {@code kind}, {@code run.versions}, {@code run.executors} and {@code run.gpus_per_executor}.
     *
     * @param report the report, changed in place (its {@code run} object is created if absent)
     * @param kind {@link ReportFormat#KIND_PRUNE} or {@link ReportFormat#KIND_VALIDATE}
     * @param jsc the Spark context
     */
    static void addRunFacts(ObjectNode report, String kind, JavaSparkContext jsc) {
        report.put("format", ReportFormat.FORMAT);
        report.put("kind", kind);
        ObjectNode run = report.has("run") ? (ObjectNode) report.get("run") : report.putObject("run");
        run.put("spark_master", jsc.master());
        run.put("spark_version", jsc.version());
        boolean local = jsc.isLocal();
        int infos = jsc.sc().statusTracker().getExecutorInfos().length;
        run.put("executors", local ? 1 : Math.max(0, infos - 1));
        SparkConf sc = jsc.getConf();
        run.put("gpus_per_executor", Double.parseDouble(sc.get("spark.executor.resource.gpu.amount", "0")));
        ObjectNode v = run.putObject("versions");
        String own = JobReport.class.getPackage().getImplementationVersion();
        v.put("sparkprune", own == null ? "development build" : own);
        v.put("spark", jsc.version());
        v.put("java", System.getProperty("java.version") + " (" + System.getProperty("java.vendor") + ")");
    }

    /**
     * Adds {@code storage} (one entry per written format: dense vs stored bytes of the target
     * tensors) and, per tensor, {@code bytes_stored} ({@code {format: bytes}}), measured on the
     * written files: safetensors headers for {@code hf}, the stored components for {@code sparse}
     * and {@code compressed-tensors} ({@link StorageInspector}).
     *
     * @param report the report, changed in place; its {@code tensors} must be present
     * @param written each written format's directory
     * @param fs the output file system
     * @throws IOException when a written checkpoint cannot be read
     */
    static void addStorage(ObjectNode report, Map<OutputFormat, Path> written, FileSystem fs) throws IOException {
        ArrayNode storage = report.putArray("storage");
        for (Map.Entry<OutputFormat, Path> e : written.entrySet()) {
            Map<String, Long> stored = new HashMap<>();
            if (e.getKey() == OutputFormat.HF) {
                try (ShardedCheckpoint ck = ShardedCheckpoint.open(fs, e.getValue())) {
                    for (String n : ck.tensorNames()) {
                        stored.put(n, ck.info(n).byteLength());
                    }
                }
            } else {
                StorageInspector.inspect(java.nio.file.Paths.get(fs.makeQualified(e.getValue()).toUri()))
                        .orElseThrow(() -> new IOException(e.getValue() + " is not a " + e.getKey().id() + " checkpoint"))
                        .tensors().forEach(t -> stored.put(t.name(), t.storedBytes()));
            }
            long dense = 0;
            long bytes = 0;
            int n = 0;
            for (JsonNode t : report.path("tensors")) {
                String name = t.get("tensor").asText();
                Long b = stored.get(name);
                if (b == null) {
                    throw new IOException(e.getValue() + " has no tensor " + name);
                }
                JsonNode per = t.get("bytes_stored");
                (per instanceof ObjectNode o ? o : ((ObjectNode) t).putObject("bytes_stored")).put(e.getKey().id(), b);
                dense += t.path("bytes_dense").asLong();
                bytes += b;
                n++;
            }
            ObjectNode s = storage.addObject();
            s.put("format", e.getKey().id());
            s.put("tensors", n);
            s.put("dense_bytes", dense);
            s.put("stored_bytes", bytes);
            s.put("ratio", dense == 0 ? 1 : (double) bytes / dense);
        }
    }

    /**
     * Adds {@code storage} with one {@code hf} entry: dense vs stored bytes of the report's tensors
     * in a dense checkpoint.
     *
     * @param report the report, changed in place
     * @param checkpoint the written dense checkpoint
     */
    static void addStorage(ObjectNode report, ShardedCheckpoint checkpoint) {
        long dense = 0;
        long stored = 0;
        int n = 0;
        for (JsonNode t : report.path("tensors")) {
            dense += t.path("bytes_dense").asLong();
            stored += checkpoint.info(t.get("tensor").asText()).byteLength();
            n++;
        }
        ObjectNode s = report.putArray("storage").addObject();
        s.put("format", "hf");
        s.put("tensors", n);
        s.put("dense_bytes", dense);
        s.put("stored_bytes", stored);
        s.put("ratio", dense == 0 ? 1 : (double) stored / dense);
    }

    /**
     * Evaluates the gates into the report, then writes report.json, metrics.parquet and report.html.
     *
     * @param report the complete report (quality and tensors included), changed in place
     * @param gates the recipe's gates
     * @param fs the output file system
     * @param dir the output directory
     * @param conf Hadoop configuration
     * @throws IOException when a file cannot be written
     */
    static void finish(ObjectNode report, GatesSpec gates, FileSystem fs, Path dir, Configuration conf) throws IOException {
        QualityGates.apply(report, gates);
        ReportFiles.write(fs, dir, report, conf);
    }
}
