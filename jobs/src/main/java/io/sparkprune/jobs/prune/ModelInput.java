package io.sparkprune.jobs.prune;

import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.onnx.ImportedModel;
import io.sparkprune.pipeline.onnx.OnnxImporter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Turns the job's model argument into a Hugging Face checkpoint directory: a directory is used as
 * it is; an ONNX export (or {@code default}, the all-MiniLM-L6-v2 export from Maven Central) is
 * converted on the fly into {@code <output>/_source}, which the executors read like any
 * checkpoint and which is removed when the job succeeds.
 */
final class ModelInput {
    static final String SOURCE_DIR = "_source";

    private ModelInput() {
    }

    static String resolve(String model, Path out, FileSystem fs) throws IOException {
        boolean isDefault = model.equals("default");
        if (!isDefault && !model.toLowerCase(java.util.Locale.ROOT).endsWith(".onnx")) {
            return model;
        }
        if (!"file".equals(fs.getUri().getScheme())) {
            throw new InvalidInputException(model + ": an ONNX model is converted into the output directory, which must be "
                    + "local for that; convert it first with `sparkprune convert --from onnx` and pass the directory");
        }
        java.nio.file.Path target = java.nio.file.Path.of(fs.makeQualified(new Path(out, SOURCE_DIR)).toUri());
        if (Files.isRegularFile(target.resolve("config.json"))) {
            return target.toString(); // converted by an earlier attempt of this run (deterministic)
        }
        ImportedModel imported;
        byte[] tokenizer;
        if (isDefault) {
            try (InputStream in = DefaultAssets.modelOnnx().openStream()) {
                imported = OnnxImporter.importModel(in, DefaultAssets.MODEL_COORDINATES);
            }
            try (InputStream in = DefaultAssets.modelTokenizer().openStream()) {
                tokenizer = in.readAllBytes();
            }
        } else {
            java.nio.file.Path onnx = java.nio.file.Path.of(model);
            imported = OnnxImporter.importModel(onnx);
            Optional<java.nio.file.Path> tok = OnnxImporter.findTokenizer(onnx);
            tokenizer = tok.isPresent() ? Files.readAllBytes(tok.get()) : null;
        }
        Files.createDirectories(target.getParent());
        Map<String, byte[]> extra = new LinkedHashMap<>();
        if (tokenizer != null) {
            extra.put("tokenizer.json", tokenizer);
        }
        HfDirectoryWriter.write(target, imported.configJson(), extra, imported.tensors(), Map.of("format", "pt"),
                HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES);
        return target.toString();
    }

    static void cleanUp(Path out, FileSystem fs) throws IOException {
        Path src = new Path(out, SOURCE_DIR);
        if (fs.exists(src)) {
            fs.delete(src, true);
        }
    }
}
