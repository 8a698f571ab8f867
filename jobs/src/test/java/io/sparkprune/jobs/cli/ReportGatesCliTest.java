package io.sparkprune.jobs.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.pipeline.report.MetricsParquet;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * The three report files and the quality gates end to end through the CLI, on the real default
 * model with small sizes: the default recipe (SparseGPT 2:4) passes the gates, a deliberately bad
 * one (magnitude, 70 % unstructured) breaks them, still writes everything and exits with 4;
 * {@code validate} reproduces the job's numbers from the files; metrics.parquet read by Spark SQL
 * equals report.json's tensors.
 */
class ReportGatesCliTest {
    /**
     * The same gates for both runs. Measured at these sizes: the default gives mean cosine ≈ 0.82 and a
     * largest layer error ≈ 0.24; magnitude 70 % ≈ 0.34 and ≈ 0.56.
     */
    static final String[] GATES = {"--min-embedding-cosine", "0.7", "--max-layer-error", "0.4"};
    static final String[] SMALL = {"--samples", "16", "--seq-len", "64", "--eval-samples", "32", "--master", "local[2]",
        "--conf", "spark.ui.enabled=false"};

    @TempDir
    static Path tmp;
    static Result good;
    static Result bad;
    static final ObjectMapper JSON = new ObjectMapper();

    record Result(int code, String out, String err) {
    }

    static Result run(String... args) {
        CommandLine cl = SparkPruneCli.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        return new Result(cl.execute(args), out.toString(), err.toString());
    }

    static String[] args(String[] head, String[]... rest) {
        List<String> l = new java.util.ArrayList<>(List.of(head));
        for (String[] r : rest) {
            l.addAll(List.of(r));
        }
        return l.toArray(String[]::new);
    }

    @BeforeAll
    static void prune() {
        good = run(args(new String[] {"prune", "default", "-o", tmp.resolve("good").toString()}, SMALL, GATES));
        bad = run(args(new String[] {"prune", "default", "-o", tmp.resolve("bad").toString(), "--method", "magnitude",
            "--pattern", "unstructured:0.7"}, SMALL, GATES));
    }

    static JsonNode report(String dir) throws Exception {
        return JSON.readTree(tmp.resolve(dir).resolve("report.json").toFile());
    }

    @Test
    void theDefaultRecipePassesAndWritesAllThreeFiles() throws Exception {
        assertThat(good.code()).as(good.err()).isEqualTo(ExitCodes.OK);
        assertThat(good.out()).contains("report.json, metrics.parquet, report.html");
        for (String f : List.of("report.json", "metrics.parquet", "report.html")) {
            assertThat(tmp.resolve("good").resolve(f)).isNotEmptyFile();
        }
        JsonNode r = report("good");
        assertThat(r.get("format").asText()).isEqualTo("sparkprune.report.v3");
        assertThat(r.get("passed").asBoolean()).isTrue();
        assertThat(r.get("gates")).hasSize(2);
        double worst = 0;
        for (JsonNode t : r.get("tensors")) {
            worst = Math.max(worst, t.get("relative_reconstruction_error").asDouble());
            assertThat(t.get("bytes_dense").asLong()).isEqualTo(t.get("rows").asLong() * t.get("cols").asLong() * 4);
            assertThat(t.get("backend").asText()).isNotEmpty();
        }
        assertThat(r.at("/gates/1/value").asDouble()).isEqualTo(worst);
        assertThat(r.at("/gates/0/value").asDouble()).isEqualTo(r.at("/quality/mean_cosine").asDouble());
        assertThat(r.at("/run/versions/java").asText()).startsWith(System.getProperty("java.version"));
        assertThat(r.at("/recipe/gates/min_embedding_cosine").asDouble()).isEqualTo(0.7);
        String html = Files.readString(tmp.resolve("good").resolve("report.html"));
        assertThat(Pattern.compile("<figure data-chart=").matcher(html).results().count()).isEqualTo(4);
        assertThat(html).contains("Quality gates PASSED");
    }

    @Test
    void aBadRecipeBreaksTheGatesButStillWritesItsOutputsAndExitsWith4() throws Exception {
        assertThat(bad.code()).as(bad.out() + bad.err()).isEqualTo(ExitCodes.QUALITY_GATE_FAILED);
        assertThat(bad.err()).contains("quality gate");
        for (String f : List.of("report.json", "metrics.parquet", "report.html", "config.json")) {
            assertThat(tmp.resolve("bad").resolve(f)).isNotEmptyFile();
        }
        JsonNode r = report("bad");
        assertThat(r.get("passed").asBoolean()).isFalse();
        assertThat(r.at("/summary/target_sparsity").asDouble()).isCloseTo(0.7, within(0.01));
        assertThat(r.get("gates")).hasSize(2).allSatisfy(g -> assertThat(g.get("passed").asBoolean()).isFalse());
        assertThat(r.at("/gates/0/value").asDouble()).isEqualTo(r.at("/quality/mean_cosine").asDouble()).isLessThan(0.7);
        assertThat(Files.readString(tmp.resolve("bad").resolve("report.html"))).contains("Quality gates FAILED")
                .contains("data-gates=\"failed\"");
    }

    @Test
    void metricsParquetEqualsTheReportsTensorsReadByParquetJavaAndSparkSql() throws Exception {
        JsonNode r = report("good");
        Path file = tmp.resolve("good").resolve("metrics.parquet");
        List<com.fasterxml.jackson.databind.node.ObjectNode> rows = MetricsParquet.read(
                new org.apache.hadoop.fs.Path(file.toUri()), new Configuration());
        // bytes per written format (an object keyed by format) is in report.json only (docs/report.md)
        com.fasterxml.jackson.databind.node.ArrayNode tensors = r.get("tensors").deepCopy();
        tensors.forEach(t -> ((com.fasterxml.jackson.databind.node.ObjectNode) t).remove("bytes_stored"));
        assertThat(JSON.readTree(JSON.writeValueAsString(rows))).isEqualTo(tensors);
        SparkSession spark = SparkSession.builder().master("local[1]").appName("read").config("spark.ui.enabled", "false")
                .getOrCreate();
        try {
            List<Row> sql = spark.read().parquet(file.toString()).orderBy("layer", "tensor").collectAsList();
            Map<String, JsonNode> byName = new HashMap<>();
            r.get("tensors").forEach(t -> byName.put(t.get("tensor").asText(), t));
            assertThat(sql).hasSize(byName.size());
            for (Row row : sql) {
                JsonNode t = byName.get(row.<String>getAs("tensor"));
                assertThat(row.<Integer>getAs("layer")).isEqualTo(t.get("layer").asInt());
                assertThat(row.<Long>getAs("zeros")).isEqualTo(t.get("zeros").asLong());
                assertThat(row.<Double>getAs("sparsity")).isEqualTo(t.get("sparsity").asDouble());
                assertThat(row.<Double>getAs("relative_reconstruction_error"))
                        .isEqualTo(t.get("relative_reconstruction_error").asDouble());
                assertThat(row.<Boolean>getAs("pattern_verified")).isEqualTo(t.get("pattern_verified").asBoolean());
                assertThat(row.<Long>getAs("bytes_dense")).isEqualTo(t.get("bytes_dense").asLong());
            }
        } finally {
            spark.stop();
        }
    }

    @Test
    void validateReproducesTheJobsNumbersFromTheFiles() throws Exception {
        Path dir = tmp.resolve("validated");
        Result v = run("validate", "default", tmp.resolve("good").toString(), "-o", dir.toString(), "--master", "local[2]",
                "--conf", "spark.ui.enabled=false", "--min-embedding-cosine", "0.7");
        assertThat(v.code()).as(v.out() + v.err()).isEqualTo(ExitCodes.OK);
        assertThat(v.out()).contains("reproduced");
        JsonNode job = report("good");
        JsonNode val = JSON.readTree(dir.resolve("report.json").toFile());
        assertThat(val.get("kind").asText()).isEqualTo("validate");
        assertThat(val.at("/comparison/matches").asBoolean()).isTrue();
        for (String k : List.of("mean_cosine", "min_cosine", "top10_neighbour_agreement", "sentences")) {
            assertThat(val.at("/quality/" + k).asDouble()).as(k).isCloseTo(job.at("/quality/" + k).asDouble(), within(1e-9));
        }
        assertThat(val.get("model_fingerprint_sha256")).isEqualTo(job.get("model_fingerprint_sha256"));
        assertThat(val.get("tensors")).hasSameSizeAs(job.get("tensors"));
        for (int i = 0; i < job.get("tensors").size(); i++) {
            JsonNode a = job.get("tensors").get(i);
            JsonNode b = val.get("tensors").get(i);
            assertThat(b.get("tensor")).isEqualTo(a.get("tensor"));
            assertThat(b.get("zeros")).isEqualTo(a.get("zeros"));
            assertThat(b.get("pattern_verified")).isEqualTo(a.get("pattern_verified"));
            assertThat(b.get("all_finite")).isEqualTo(a.get("all_finite"));
        }
        // the recorded recipe's gates are not inherited; the flag's gate is checked
        assertThat(val.get("gates")).hasSize(1);
        assertThat(val.at("/gates/0/value").asDouble()).isEqualTo(val.at("/quality/mean_cosine").asDouble());
        assertThat(val.get("passed").asBoolean()).isTrue();
        assertThat(Files.exists(dir.resolve("metrics.parquet"))).isTrue();
    }
}
