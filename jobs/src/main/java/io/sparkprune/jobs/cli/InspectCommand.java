package io.sparkprune.jobs.cli;

import io.sparkprune.pipeline.formats.StorageInspector;
import io.sparkprune.pipeline.hf.CheckpointInspector;
import java.io.PrintWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;
import org.apache.hadoop.conf.Configuration;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code sparkprune inspect}: what a checkpoint holds, and for a compressed one the bytes per tensor. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a checkpoint's family, layers, tensors (dtype, shape, bytes), parameter count and the "
                + "sparsity already present (exact zeros, 2:4 / 4:8 conformance). For a sparse or compressed-tensors "
                + "checkpoint (local), also the storage of every tensor, bytes stored against dense, and the compression ratio.")
final class InspectCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<model>",
            description = "Hugging Face checkpoint directory (config.json + safetensors, sharded or not) or a "
                    + ".safetensors file: a local path or a Hadoop URI (hdfs://, s3a://, file://).")
    String model;

    @Option(names = "--summary", description = "Print the summary only, not one line per tensor.")
    boolean summaryOnly;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        Optional<Path> local = localDir(model);
        Optional<StorageInspector.Storage> storage = local.flatMap(StorageInspector::inspect);
        if (storage.isPresent()) {
            printStorage(storage.get(), !summaryOnly, out);
            return ExitCodes.OK;
        }
        SummaryPrinter.print(CheckpointInspector.inspect(model, new Configuration()), !summaryOnly, out);
        return ExitCodes.OK;
    }

    private static Optional<Path> localDir(String model) {
        Path p;
        if (model.startsWith("file:")) {
            p = Path.of(URI.create(model));
        } else if (model.matches("^[a-zA-Z][a-zA-Z0-9+.-]*://.*")) {
            return Optional.empty();
        } else {
            p = Path.of(model);
        }
        return Files.isDirectory(p) ? Optional.of(p) : Optional.empty();
    }

    static void printStorage(StorageInspector.Storage s, boolean listTensors, PrintWriter out) {
        out.printf(Locale.ROOT, "format: %s, tensors: %d, dense bytes: %,d, stored bytes: %,d, ratio: %.4f "
                        + "(compressed tensors only: %.4f)%n", s.format().cliName(), s.tensors().size(), s.denseBytes(),
                s.storedBytes(), s.ratio(), s.compressedRatio());
        if (listTensors) {
            out.printf(Locale.ROOT, "%-60s %-24s %14s %14s %7s%n", "tensor", "storage", "dense bytes", "stored bytes", "ratio");
            for (StorageInspector.TensorStorage t : s.tensors()) {
                out.printf(Locale.ROOT, "%-60s %-24s %,14d %,14d %7.4f%n", t.name(), t.storage(), t.denseBytes(),
                        t.storedBytes(), t.ratio());
            }
        }
        out.flush();
    }
}
