package io.sparkprune.jobs.cli;

import static io.sparkprune.jobs.cli.CliRun.run;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.onnx.OnnxImporter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code convert --to onnx}: onnx → hf → sparse → onnx reproduces the default model's file byte for byte. */
class OnnxConvertCliTest {

    @TempDir
    Path tmp;

    @Test
    void onnxToHfToSparseToOnnxIsByteIdentical() throws Exception {
        Path src = tmp.resolve("src");
        Path onnx = DefaultAssets.copyModelOnnx(src);
        DefaultAssets.copyModelTokenizer(src);
        Path hf = tmp.resolve("hf");
        CliRun a = run("convert", "--from", "onnx", "--to", "hf", onnx.toString(), hf.toString());
        assertThat(a.code()).as(a.err()).isZero();
        Path sparse = tmp.resolve("sparse");
        CliRun b = run("convert", "--from", "hf", "--to", "sparse", hf.toString(), sparse.toString());
        assertThat(b.code()).as(b.err()).isZero();

        Path out = tmp.resolve("out");
        CliRun c = run("convert", "--from", "sparse", "--to", "onnx", "--onnx-template", onnx.toString(),
                sparse.toString(), out.toString());
        assertThat(c.code()).as(c.err()).isZero();
        assertThat(c.out()).contains("101 parameters written");
        assertThat(Files.readAllBytes(out.resolve("model.onnx"))).isEqualTo(Files.readAllBytes(onnx));
        assertThat(Files.readAllBytes(out.resolve("tokenizer.json"))).isEqualTo(Files.readAllBytes(src.resolve("tokenizer.json")));
        assertThat(Files.readAllBytes(out.resolve("config.json"))).isEqualTo(Files.readAllBytes(hf.resolve("config.json")));
        assertThat(OnnxImporter.importModel(out.resolve("model.onnx")).configJson())
                .isEqualTo(Files.readString(hf.resolve("config.json")));
    }

    @Test
    void missingTemplateIsAUsageErrorAndACorruptTemplateExits3LeavingNothing() throws Exception {
        Path hf = tmp.resolve("hf");
        Files.createDirectories(hf);
        CliRun noTemplate = run("convert", "--from", "hf", "--to", "onnx", hf.toString(), tmp.resolve("o").toString());
        assertThat(noTemplate.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(noTemplate.err()).contains("--onnx-template");

        Path src = tmp.resolve("src");
        Path onnx = DefaultAssets.copyModelOnnx(src);
        Path realHf = tmp.resolve("realhf");
        assertThat(run("convert", "--from", "onnx", "--to", "hf", onnx.toString(), realHf.toString()).code()).isZero();
        byte[] bytes = Files.readAllBytes(onnx);
        Path truncated = tmp.resolve("truncated.onnx");
        Files.write(truncated, java.util.Arrays.copyOf(bytes, bytes.length / 2));
        Path out = tmp.resolve("out");
        CliRun r = run("convert", "--from", "hf", "--to", "onnx", "--onnx-template", truncated.toString(), realHf.toString(),
                out.toString());
        assertThat(r.code()).as(r.err()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).contains("truncated.onnx");
        assertThat(out).doesNotExist();
        try (var s = Files.list(tmp)) {
            assertThat(s.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder("hf", "src", "realhf", "truncated.onnx");
        }
    }
}
