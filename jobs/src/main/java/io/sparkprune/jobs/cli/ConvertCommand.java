package io.sparkprune.jobs.cli;

import io.sparkprune.jobs.convert.ConvertJob;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.AtomicDirectory;
import io.sparkprune.pipeline.formats.CheckpointFormat;
import io.sparkprune.pipeline.formats.DenseHfWriter;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.formats.compressed.CompressedTensorsCheckpoint;
import io.sparkprune.pipeline.formats.parquet.ParquetShardManifest;
import io.sparkprune.pipeline.formats.parquet.ParquetShardWriter;
import io.sparkprune.pipeline.formats.parquet.ParquetShards;
import io.sparkprune.pipeline.formats.sparse.PayloadCodec;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.onnx.ImportedModel;
import io.sparkprune.pipeline.onnx.OnnxExporter;
import io.sparkprune.pipeline.onnx.OnnxImporter;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.recipe.TensorSelector;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code sparkprune convert}: checkpoint format conversion. Sources: hf, sparse, onnx (BERT family),
 * compressed-tensors (dequantized), parquet; targets: hf (dense; a Spark job for hf, sparse and parquet
 * inputs), sparse and parquet (Spark jobs for hf and sparse inputs, {@link ConvertJob}) and onnx (BERT family, onto the graph given with
 * {@code --onnx-template}, see {@link OnnxExporter}). Output is all-or-nothing.
 */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = "Convert a checkpoint between formats: --from hf|sparse|onnx|compressed-tensors|parquet --to hf|sparse|parquet|onnx. "
                + "--to sparse compresses the targets (2-D weights of the numbered blocks by default) with the pattern "
                + "found in the data (2:4, then 4:8, else the smaller of block and unstructured) or the one given with "
                + "--pattern; compressed-tensors inputs are dequantized. --to onnx (BERT family) writes <output>/model.onnx: the graph of "
                + "--onnx-template with the checkpoint's parameters in place of its initializers. The output directory must not exist.")
final class ConvertCommand implements Callable<Integer> {

    /** Source format names. */
    static final List<String> FROM = List.of("hf", "sparse", "onnx", "compressed-tensors", "parquet");
    /** Target format names. */
    static final List<String> TO = List.of("hf", "sparse", "parquet", "onnx");

    @Spec
    CommandSpec spec;

    @Option(names = "--from", required = true, description = "Input format: hf, sparse, onnx, compressed-tensors, parquet.")
    String from;

    @Option(names = "--to", defaultValue = "hf", description = "Output format: hf, sparse, parquet or onnx (default: ${DEFAULT-VALUE}).")
    String to;

    @Option(names = "--master", paramLabel = "<url>", description = "parquet or sparse from hf or sparse, hf from hf, sparse or "
            + "parquet: Spark master of the conversion job, one task per part, container or safetensors file "
            + "(default: local[*], or what spark-submit set).")
    String master;

    @Parameters(index = "0", paramLabel = "<input>", description = "The input checkpoint directory or model file (e.g. model.onnx).")
    Path input;

    @Parameters(index = "1", paramLabel = "<output>", description = "The output directory; must not exist.")
    Path output;

    @Option(names = "--tokenizer", paramLabel = "<tokenizer.json>",
            description = "onnx only: tokenizer.json to copy into the output (default: found next to the ONNX file, if any).")
    Path tokenizer;

    @Option(names = "--onnx-template", paramLabel = "<model.onnx>",
            description = "onnx only (required with --to onnx): the ONNX file the checkpoint was imported from; its graph is "
                    + "written to <output>/model.onnx with the checkpoint's parameters in place of its initializers.")
    Path onnxTemplate;

    @Option(names = "--pattern", paramLabel = "<pattern>",
            description = "sparse, parquet: store every target with this pattern (2:4, 4:8, block:RxC, unstructured, dense) "
                    + "instead of detecting it; a target that is not N:M under an N:M pattern is refused.")
    String pattern;

    @Option(names = "--sparse-codec", paramLabel = "none|deflate", defaultValue = "none",
            description = "sparse only: how N:M indices and unstructured masks are stored: none (raw, mmap-able per element) "
                    + "or deflate (raw DEFLATE, Huffman-only, in chunks of whole rows; docs/formats.md) "
                    + "(default: ${DEFAULT-VALUE}).")
    String sparseCodec;

    @Option(names = "--targets", paramLabel = "<name|re:regex>", split = ",",
            description = "sparse, parquet: tensors to compress (default: weights of numbered blocks, re:.*layers?\\\\.\\\\d+\\\\..+\\\\.weight$).")
    List<String> targets;

    @Option(names = "--ignore", paramLabel = "<name|re:regex>", split = ",",
            description = "sparse, parquet: tensors never compressed (default: re:.*lm_head.*, re:.*embed.*).")
    List<String> ignore;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        String f = from.toLowerCase(Locale.ROOT);
        String t = to.toLowerCase(Locale.ROOT);
        if (!FROM.contains(f)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--from must be one of " + FROM + ", got '" + from + "'");
        }
        if (!TO.contains(t)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--to must be one of " + TO + ", got '" + to
                    + "' (compressed-tensors is a source only: it is written by quantized prune runs)");
        }
        if (t.equals("onnx") && (f.equals("onnx") || onnxTemplate == null)) {
            throw new CommandLine.ParameterException(spec.commandLine(), f.equals("onnx")
                    ? "--to onnx needs an hf, sparse or compressed-tensors source, got --from onnx"
                    : "--to onnx needs --onnx-template <model.onnx>: the ONNX file the checkpoint was imported from");
        }
        if (f.equals("onnx")) {
            ImportedModel model = OnnxImporter.importModel(input);
            Optional<Path> tok = tokenizer != null ? Optional.of(tokenizer) : OnnxImporter.findTokenizer(input);
            Map<String, byte[]> side = new LinkedHashMap<>();
            side.put("config.json", model.configJson().getBytes(StandardCharsets.UTF_8));
            tok.ifPresent(p -> side.put("tokenizer.json", readTokenizer(p)));
            if (t.equals("hf")) {
                writeHf(model, tok.map(ConvertCommand::readTokenizer), output);
            } else {
                emit(DenseTensors.of(model.tensors(), input.toString()), side, Map.of("format", "pt"), t, out);
            }
            out.printf("converted %s (%d tensors) to %s (%s)%n", input, model.tensors().size(), output, t);
            if (tok.isEmpty()) {
                out.println("note: no tokenizer.json found next to the ONNX file; pass --tokenizer to include one");
            }
            out.flush();
            return ExitCodes.OK;
        }
        CheckpointFormat actual = CheckpointFormat.detect(input);
        if (!actual.cliName().equals(f)) {
            throw new FormatException(input.toString(), "is a " + actual.cliName() + " checkpoint, not " + f
                    + "; pass --from " + actual.cliName());
        }
        if (t.equals("parquet") && (actual == CheckpointFormat.HF || actual == CheckpointFormat.SPARSE)) {
            return toParquetWithSpark(actual == CheckpointFormat.SPARSE, out);
        }
        if (t.equals("sparse") && (actual == CheckpointFormat.HF || actual == CheckpointFormat.SPARSE)) {
            return toSparseWithSpark(actual == CheckpointFormat.SPARSE, out);
        }
        if (t.equals("hf") && ConvertJob.SPARK_HF_SOURCES.contains(actual)) {
            ConvertJob.HfOutcome o = toHfWithSpark(master, input, actual, output);
            out.printf("converted %s (%s) to %s (hf): %d tensors, %d safetensors files written by %d Spark tasks%n", input,
                    f, output, o.tensors(), o.files(), o.tasks());
            out.flush();
            return ExitCodes.OK;
        }
        Map<String, byte[]> side = SideFiles.read(input);
        switch (actual) {
            case PARQUET -> {
                try (ParquetShards p = ParquetShards.open(input)) {
                    emit(p, side, p.originalMetadata(), t, out);
                }
            }
            case SPARSE -> {
                try (SparseCheckpoint s = SparseCheckpoint.open(input)) {
                    emit(s, side, s.originalMetadata(), t, out);
                }
            }
            case COMPRESSED_TENSORS -> {
                try (CompressedTensorsCheckpoint c = CompressedTensorsCheckpoint.open(input)) {
                    Map<String, byte[]> s2 = new LinkedHashMap<>(side);
                    s2.put("config.json", DecompressCommand.withoutQuantizationConfig(side.get("config.json"),
                            input + "/config.json"));
                    emit(c, s2, Map.of("format", "pt"), t, out);
                }
            }
            default -> {
                try (ShardedCheckpoint c = ShardedCheckpoint.open(input)) {
                    Map<String, String> md = c.files().isEmpty() ? Map.of() : c.shard(c.files().get(0)).metadata();
                    emit(DenseTensors.of(c), side, md, t, out);
                }
            }
        }
        out.printf("converted %s (%s) to %s (%s)%n", input, f, output, t);
        out.flush();
        return ExitCodes.OK;
    }

    private void emit(DenseTensors src, Map<String, byte[]> side, Map<String, String> md, String t, PrintWriter out) {
        if (t.equals("hf")) {
            DenseHfWriter.write(src, side, md, HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES, output);
        } else if (t.equals("parquet")) {
            ParquetShardManifest m = ParquetShardWriter.write(src, side, md, parquetOptions(), output);
            out.printf("parquet: %d tensors in %d part files%n", m.tensors().size(), m.parts().size());
        } else if (t.equals("onnx")) {
            writeOnnx(src, side, out);
        } else {
            writeSparse(src, side, md, out);
        }
    }

    private void writeSparse(DenseTensors src, Map<String, byte[]> side, Map<String, String> md, PrintWriter out) {
        TensorSelector sel = TensorSelector.of(targets == null ? TensorSelector.DEFAULT_TARGETS : targets,
                ignore == null ? TensorSelector.DEFAULT_IGNORE : ignore, "command line", "");
        Optional<SparseEncoding> enc = pattern == null ? Optional.empty() : Optional.of(SparseEncoding.parse(pattern));
        List<SparseWriter.TensorReport> rep = SparseWriter.write(src, side, md,
                new SparseWriter.Options(sel, enc, HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES, PayloadCodec.parse(sparseCodec)),
                output);
        printSparse(rep, out);
    }

    private static void printSparse(List<SparseWriter.TensorReport> rep, PrintWriter out) {
        long dense = 0;
        long stored = 0;
        List<String> kinds = new ArrayList<>();
        for (SparseWriter.TensorReport r : rep) {
            dense += r.denseBytes();
            stored += r.storedBytes();
            if (!(r.encoding() instanceof SparseEncoding.Dense) && !kinds.contains(r.encoding().spec())) {
                kinds.add(r.encoding().spec());
            }
        }
        out.printf(Locale.ROOT, "sparse: %d of %d tensors compressed (%s); %,d bytes stored for %,d dense (%.4f)%n",
                rep.stream().filter(r -> !(r.encoding() instanceof SparseEncoding.Dense)).count(), rep.size(),
                kinds.isEmpty() ? "none" : String.join(", ", kinds), stored, dense, dense == 0 ? 1.0 : (double) stored / dense);
    }

    /** A sparse checkpoint written by {@link ConvertJob#toSparse} on Spark (local[*] unless --master or spark-submit says otherwise). */
    private int toSparseWithSpark(boolean sparse, PrintWriter out) {
        ConvertJob.SparseRequest req = new ConvertJob.SparseRequest(input.toString(), sparse, output,
                targets == null ? TensorSelector.DEFAULT_TARGETS : targets,
                ignore == null ? TensorSelector.DEFAULT_IGNORE : ignore, pattern, HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES,
                PayloadCodec.parse(sparseCodec));
        SparkSession spark = PruneCommand.session(master, Map.of());
        try {
            ConvertJob.SparseOutcome o = ConvertJob.toSparse(spark, req);
            printSparse(o.reports(), out);
            out.printf("converted %s (%s) to %s (sparse): %d container files, %d Spark tasks%n", input,
                    sparse ? "sparse" : "hf", output, o.files(), o.tasks());
            out.flush();
            return ExitCodes.OK;
        } finally {
            spark.stop();
        }
    }

    /**
     * A dense hf directory written by {@link ConvertJob#toHf} on Spark (local[*] unless {@code master} or
     * spark-submit says otherwise), transformers' default shard size; the session is stopped after.
     */
    static ConvertJob.HfOutcome toHfWithSpark(String master, Path input, CheckpointFormat format, Path output) {
        ConvertJob.HfRequest req = new ConvertJob.HfRequest(input.toString(), format, output,
                HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES);
        SparkSession spark = PruneCommand.session(master, Map.of());
        try {
            return ConvertJob.toHf(spark, req);
        } finally {
            spark.stop();
        }
    }

    /** Parquet shards written by {@link ConvertJob} on Spark (local[*] unless --master or spark-submit says otherwise). */
    private int toParquetWithSpark(boolean sparse, PrintWriter out) {
        SparkSession spark = PruneCommand.session(master, Map.of());
        try {
            ConvertJob.Outcome o = ConvertJob.toParquet(spark, new ConvertJob.Request(input.toString(), sparse, output,
                    parquetOptions()));
            out.printf("converted %s (%s) to %s (parquet): %d tensors, %d part files written by %d Spark tasks%n", input,
                    sparse ? "sparse" : "hf", output, o.manifest().tensors().size(), o.manifest().parts().size(), o.tasks());
            out.flush();
            return ExitCodes.OK;
        } finally {
            spark.stop();
        }
    }

    private ParquetShardWriter.Options parquetOptions() {
        ParquetShardWriter.Options d = ParquetShardWriter.Options.defaults();
        return new ParquetShardWriter.Options(targets == null ? TensorSelector.DEFAULT_TARGETS : targets,
                ignore == null ? TensorSelector.DEFAULT_IGNORE : ignore, pattern, d.maxItemBytes(), d.maxPartBytes());
    }

    /** {@code --to onnx}: the template's graph with the source's parameters, plus config and tokenizer, all-or-nothing. */
    private void writeOnnx(DenseTensors src, Map<String, byte[]> side, PrintWriter out) {
        ModelProto template = OnnxImporter.parseModel(onnxTemplate);
        OnnxExporter.Result r = OnnxExporter.export(template, onnxTemplate.toString(), src);
        Map<String, byte[]> files = new LinkedHashMap<>(side);
        Optional<Path> tok = tokenizer != null ? Optional.of(tokenizer) : OnnxImporter.findTokenizer(onnxTemplate);
        if (tokenizer != null || !files.containsKey("tokenizer.json")) {
            tok.ifPresent(p -> files.put("tokenizer.json", readTokenizer(p)));
        }
        AtomicDirectory.write(output, dir -> {
            OnnxExporter.write(r.model(), dir.resolve("model.onnx"));
            SideFiles.write(dir, files);
        });
        out.printf("onnx: %d parameters written into the graph of %s%s%n", r.replaced().size(), onnxTemplate,
                r.unused().isEmpty() ? "" : "; not in the graph, left out: " + r.unused());
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
