package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.jobs.cli.ExitCodes;
import io.sparkprune.jobs.cli.SparkPruneCli;
import io.sparkprune.jobs.tools.RandomLlama;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code sparkprune prune} through the command line: a run, then the same run into its output (exit 3). */
class PruneCliTest {
    @TempDir
    Path tmp;

    private record Result(int code, String out, String err) {
    }

    private static Result cli(List<String> args) {
        CommandLine cl = SparkPruneCli.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        return new Result(cl.execute(args.toArray(new String[0])), out.toString(), err.toString());
    }

    @Test
    void pruneWritesTheOutputAndRefusesToOverwriteIt() {
        Path model = tmp.resolve("model");
        RandomLlama.write(JobFixtures.TINY, model);
        Path corpus = JobFixtures.writeCorpus(tmp);
        Path out = tmp.resolve("out");
        List<String> args = new ArrayList<>(List.of("prune", model.toString(), "-o", out.toString(), "--pattern", "2:4",
                "--samples", "8", "--seq-len", "32", "--calib", corpus.toString(), "--mode", "independent",
                "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.host=127.0.0.1",
                "--conf", "spark.driver.bindAddress=127.0.0.1"));
        JobFixtures.sparkPruneConf().forEach((k, v) -> {
            args.add("--conf");
            args.add(k + "=" + v);
        });

        Result r = cli(args);
        assertThat(r.code()).as(r.err()).isEqualTo(ExitCodes.OK);
        assertThat(r.out()).contains("pruned checkpoint: " + out, "report: " + out + "/report.json",
                "target sparsity 50.00%, patterns verified: true", "perplexity ");
        assertThat(JobFixtures.report(out).at("/recipe/prune/pipeline").asText()).isEqualTo("independent");
        TreeMap<String, byte[]> before = JobFixtures.files(out);

        Result again = cli(args);
        assertThat(again.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(again.err()).contains("sparkprune: error: output " + out + " already exists", "--resume")
                .doesNotContain("\tat ");
        TreeMap<String, byte[]> after = JobFixtures.files(out);
        assertThat(after.keySet()).isEqualTo(before.keySet());
        before.forEach((k, v) -> assertThat(after.get(k)).as(k).isEqualTo(v));
    }

    /**
     * A checkpoint whose first layer's attention norm is NaN: the executors' calibration forward makes
     * non-finite activations, and their typed error (naming the Hessian) reaches the command line as
     * a bad-input exit with its message, not as Spark's stack trace.
     */
    @Test
    void anExecutorsTypedErrorIsReportedAsBadInput() throws Exception {
        Path model = tmp.resolve("model");
        RandomLlama.write(JobFixtures.TINY, model);
        try (java.util.stream.Stream<Path> files = java.nio.file.Files.list(model)) {
            for (Path f : files.filter(f -> f.toString().endsWith(".safetensors")).toList()) {
                overwrite(f, "model.layers.0.input_layernorm.weight", (byte) 0xFF); // all-ones bits: NaN in f32 and bf16
            }
        }
        Path corpus = JobFixtures.writeCorpus(tmp);
        Path out = tmp.resolve("out");
        List<String> args = new ArrayList<>(List.of("prune", model.toString(), "-o", out.toString(), "--pattern", "2:4",
                "--samples", "8", "--seq-len", "32", "--calib", corpus.toString(),
                "--master", "local[2]", "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.host=127.0.0.1",
                "--conf", "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.task.maxFailures=1"));
        JobFixtures.sparkPruneConf().forEach((k, v) -> {
            args.add("--conf");
            args.add(k + "=" + v);
        });
        Result r = cli(args);
        assertThat(r.code()).as(r.err()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).startsWith("sparkprune: error: ").contains("model.layers.0.qkv input", "NaN")
                .doesNotContain("\tat ", "SparkException");
    }

    /** Sets every byte of one stored tensor (found by name in the safetensors header) to {@code value}, if the file has it. */
    private static void overwrite(Path file, String tensor, byte value) throws Exception {
        byte[] b = java.nio.file.Files.readAllBytes(file);
        int n = (int) java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(0);
        var header = new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(new String(b, 8, n, java.nio.charset.StandardCharsets.UTF_8));
        if (!header.has(tensor)) {
            return; // in another shard file
        }
        var off = header.get(tensor).get("data_offsets");
        java.util.Arrays.fill(b, 8 + n + off.get(0).asInt(), 8 + n + off.get(1).asInt(), value);
        java.nio.file.Files.write(file, b);
    }
}
