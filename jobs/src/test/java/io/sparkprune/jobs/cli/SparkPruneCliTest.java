package io.sparkprune.jobs.cli;

import static io.sparkprune.jobs.cli.CliRun.run;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.onnx.ImportedModel;
import io.sparkprune.pipeline.onnx.OnnxImporter;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** Runs the CLI in-process and checks exit codes, output and files. */
class SparkPruneCliTest {

    @TempDir
    Path tmp;

    @Test
    void helpListsCommandsAndExitCodes() {
        CliRun r = run("--help");
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("inspect", "convert", "quickstart", "Exit codes:", "3   bad input");
    }

    @Test
    void usageErrorsExitWith2() {
        assertThat(run("--no-such-option").code()).isEqualTo(ExitCodes.USAGE);
        assertThat(run("convert", "--from", "pytorch", "a", "b").code()).isEqualTo(ExitCodes.USAGE);
        assertThat(run().code()).isEqualTo(ExitCodes.USAGE);
    }

    @Test
    void aBadHessianPrecisionIsBadInputNamingTheKeyAndTheAllowedValues() {
        CliRun r = run("prune", tmp.resolve("no-model").toString(), "-o", tmp.resolve("no-out").toString(),
                "--hessian-precision", "fp16");
        assertThat(r.code()).as(r.err()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).contains("calibration.hessian_precision").contains("unknown value 'fp16'; allowed: exact, tf32")
                .doesNotContain("\tat ");
        assertThat(tmp.resolve("no-out")).doesNotExist();
    }

    @Test
    void aBadForwardPrecisionIsBadInputNamingTheKeyAndTheAllowedValues() {
        CliRun r = run("prune", tmp.resolve("no-model").toString(), "-o", tmp.resolve("no-out").toString(),
                "--forward-precision", "bf16");
        assertThat(r.code()).as(r.err()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).contains("calibration.forward_precision").contains("unknown value 'bf16'; allowed: fp32, tf32")
                .doesNotContain("\tat ");
        assertThat(tmp.resolve("no-out")).doesNotExist();
    }

    @Test
    void theForwardPrecisionFlagOverridesTheRecipeAndIsExplainedInTheHelp() throws Exception {
        Path recipe = tmp.resolve("tf32.yaml");
        Files.writeString(recipe, "calibration:\n  forward_precision: tf32\n  samples: 16\n");
        assertThat(parsedPrune().resolvedRecipe().calibration().forwardPrecision()).isEqualTo(ForwardPrecision.FP32);
        assertThat(parsedPrune("--forward-precision", "tf32").resolvedRecipe().calibration().forwardPrecision())
                .isEqualTo(ForwardPrecision.TF32);
        Recipe fromFile = parsedPrune("--recipe", recipe.toString()).resolvedRecipe();
        assertThat(fromFile.calibration().forwardPrecision()).isEqualTo(ForwardPrecision.TF32);
        Recipe overridden = parsedPrune("--recipe", recipe.toString(), "--forward-precision", "FP32").resolvedRecipe();
        assertThat(overridden.calibration().forwardPrecision()).isEqualTo(ForwardPrecision.FP32);
        assertThat(overridden.calibration().samples()).isEqualTo(16);
        assertThat(overridden.toTree().path("calibration").path("forward_precision").asText()).isEqualTo("fp32");

        CliRun help = run("prune", "--help");
        assertThat(help.code()).as(help.err()).isZero();
        // picocli wraps the description anywhere, even after "calibration.": compare without white space
        String expected = "--forward-precision=<value> Overrides recipe key calibration.forward_precision: products of "
                + "the linear layers in calibration forwards: fp32 (default) or tf32 (tensor cores on the GPU; operands "
                + "rounded to TF32).";
        assertThat(help.out().replaceAll("\\s+", "")).contains(expected.replaceAll("\\s+", ""));
    }

    /** The prune command after parsing {@code prune m -o out} plus {@code flags}, not run (no Spark). */
    private PruneCommand parsedPrune(String... flags) {
        CommandLine cl = SparkPruneCli.commandLine();
        List<String> args = new ArrayList<>(List.of("prune", tmp.resolve("m").toString(), "-o", tmp.resolve("o").toString()));
        args.addAll(List.of(flags));
        cl.parseArgs(args.toArray(String[]::new));
        return cl.getSubcommands().get("prune").getCommand();
    }

    /** A 2-layer toy Llama checkpoint whose first q_proj is exactly 2:4 sparse and whose mlp is dense. */
    private Path toyCheckpoint() {
        String config = "{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":2,"
                + "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":10}";
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        float[] q = new float[64];
        for (int i = 0; i < 64; i++) {
            q[i] = (i % 4 < 2) ? 0f : 1f + i; // two zeros in every group of four
        }
        t.put("model.layers.0.self_attn.q_proj.weight", HostTensor.fromFloats(DType.BF16, new long[] {8, 8}, q));
        float[] up = new float[16 * 8];
        java.util.Arrays.fill(up, 0.5f);
        up[3] = 0f; // one zero: 1 of 128
        t.put("model.layers.0.mlp.up_proj.weight", HostTensor.fromFloats(DType.F32, new long[] {16, 8}, up));
        t.put("model.norm.weight", HostTensor.fromFloats(DType.F16, new long[] {8}, new float[8]));
        Path dir = tmp.resolve("toy");
        HfDirectoryWriter.write(dir, config, Map.of(), t, Map.of("format", "pt"), 300); // 300 bytes: forces shards
        return dir;
    }

    @Test
    void inspectReportsShapesBytesAndSparsityOfAShardedCheckpoint() {
        Path dir = toyCheckpoint();
        assertThat(dir.resolve("model.safetensors.index.json")).exists();
        CliRun r = run("inspect", dir.toString());
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out())
                .contains("family: LLAMA (model_type llama), 2 layers, hidden 8")
                .contains("tensors: 3, parameters: 200, bytes: 656")
                .containsPattern("model\\.layers\\.0\\.self_attn\\.q_proj\\.weight\\s+BF16\\s+\\[8,8]\\s+128\\s+50\\.00% 2:4")
                .containsPattern("model\\.layers\\.0\\.mlp\\.up_proj\\.weight\\s+F32\\s+\\[16,8]\\s+512\\s+0\\.78% \n");
        // 2-D sparsity: (32 + 1) zeros of (64 + 128) elements
        assertThat(r.out()).contains(String.format(java.util.Locale.ROOT, "sparsity of 2-D weights: %.2f%%", 100.0 * 33 / 192));
        // the same checkpoint through Hadoop's FileSystem (file:// URI) gives the same report
        CliRun viaUri = run("inspect", dir.toUri().toString());
        assertThat(viaUri.code()).as(viaUri.err()).isZero();
        assertThat(viaUri.out().lines().skip(1).toList()).isEqualTo(r.out().lines().skip(1).toList());
    }

    @Test
    void inspectOfACorruptFileIsBadInputWithoutStackTrace() throws Exception {
        Path bad = tmp.resolve("bad.safetensors");
        Files.write(bad, new byte[] {(byte) 0xff, 0, 0, 0, 0, 0, 0, 0, '{', '}'});
        CliRun r = run("inspect", bad.toString());
        assertThat(r.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).contains("bad.safetensors").doesNotContain("\tat ");
        CliRun missing = run("inspect", tmp.resolve("nowhere").toString());
        assertThat(missing.code()).isEqualTo(ExitCodes.BAD_INPUT);
    }

    @Test
    void convertOnnxWritesAnHfDirectoryEqualToTheImport() throws Exception {
        Path onnx = DefaultAssets.copyModelOnnx(tmp.resolve("src"));
        Path tok = DefaultAssets.copyModelTokenizer(tmp.resolve("src"));
        Path out = tmp.resolve("hf");
        CliRun r = run("convert", "--from", "onnx", onnx.toString(), out.toString(), "--tokenizer", tok.toString());
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(out.resolve("config.json")).exists();
        assertThat(Files.readAllBytes(out.resolve("tokenizer.json"))).isEqualTo(Files.readAllBytes(tok));
        ImportedModel expected;
        try (InputStream in = Files.newInputStream(onnx)) {
            expected = OnnxImporter.importModel(in, "test");
        }
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(out)) {
            assertThat(ck.tensorNames()).containsExactlyElementsOf(expected.tensors().keySet());
            for (Map.Entry<String, HostTensor> e : expected.tensors().entrySet()) {
                assertThat(ck.read(e.getKey())).as(e.getKey()).isEqualTo(e.getValue());
            }
        }
        // the output exists now: converting again into it is refused, and leaves it unchanged
        CliRun again = run("convert", "--from", "onnx", onnx.toString(), out.toString());
        assertThat(again.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(again.err()).contains("already exists");
    }

    @Test
    void convertOfACorruptOnnxLeavesNoOutput() throws Exception {
        Path bad = tmp.resolve("bad.onnx");
        Files.write(bad, "not a protobuf at all".getBytes(StandardCharsets.UTF_8));
        Path out = tmp.resolve("never");
        CliRun r = run("convert", "--from", "onnx", bad.toString(), out.toString());
        assertThat(r.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).contains("bad.onnx");
        try (Stream<Path> s = Files.list(tmp)) {
            assertThat(s.map(p -> p.getFileName().toString())).containsExactly("bad.onnx");
        }
    }
}
