package io.sparkprune.jobs.cli;

import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.onnx.ImportedModel;
import io.sparkprune.pipeline.onnx.OnnxImporter;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code sparkprune convert}: checkpoint format conversion (today: BERT-family ONNX → Hugging Face). */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = "Convert a checkpoint between formats. Supported today: --from onnx --to hf "
                + "(BERT-family ONNX export to a Hugging Face directory with config.json, model.safetensors, tokenizer.json).")
final class ConvertCommand implements Callable<Integer> {

    /** Source formats. */
    enum From { onnx }

    /** Target formats. */
    enum To { hf }

    @Spec
    CommandSpec spec;

    @Option(names = "--from", required = true, description = "Input format: ${COMPLETION-CANDIDATES}.")
    From from;

    @Option(names = "--to", defaultValue = "hf", description = "Output format: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    To to;

    @Parameters(index = "0", paramLabel = "<input>", description = "The input model file (e.g. model.onnx).")
    Path input;

    @Parameters(index = "1", paramLabel = "<output>", description = "The output directory; must not exist.")
    Path output;

    @Option(names = "--tokenizer", paramLabel = "<tokenizer.json>",
            description = "tokenizer.json to copy into the output (default: found next to the ONNX file, if any).")
    Path tokenizer;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        ImportedModel model = OnnxImporter.importModel(input);
        Optional<Path> tok = tokenizer != null ? Optional.of(tokenizer) : OnnxImporter.findTokenizer(input);
        writeHf(model, tok.map(ConvertCommand::readTokenizer), output);
        out.printf("converted %s (%d tensors) to %s%n", input, model.tensors().size(), output);
        if (tok.isEmpty()) {
            out.println("note: no tokenizer.json found next to the ONNX file; pass --tokenizer to include one");
        }
        out.flush();
        return ExitCodes.OK;
    }

    static byte[] readTokenizer(Path p) {
        if (!Files.isRegularFile(p)) {
            throw new InvalidInputException(p + ": tokenizer file not found; pass an existing tokenizer.json with --tokenizer");
        }
        try {
            return Files.readAllBytes(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes an imported model as a Hugging Face directory, all-or-nothing. */
    static void writeHf(ImportedModel model, Optional<byte[]> tokenizerJson, Path output) {
        Map<String, byte[]> extra = new LinkedHashMap<>();
        tokenizerJson.ifPresent(t -> extra.put("tokenizer.json", t));
        HfDirectoryWriter.write(output, model.configJson(), extra, model.tensors(), Map.of("format", "pt"),
                HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES);
    }
}
