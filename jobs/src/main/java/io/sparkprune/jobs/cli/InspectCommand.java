package io.sparkprune.jobs.cli;

import io.sparkprune.pipeline.hf.CheckpointInspector;
import java.util.concurrent.Callable;
import org.apache.hadoop.conf.Configuration;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code sparkprune inspect}: what a checkpoint holds. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a checkpoint's family, layers, tensors (dtype, shape, bytes), parameter count and the "
                + "sparsity already present (exact zeros, 2:4 / 4:8 conformance).")
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
        SummaryPrinter.print(CheckpointInspector.inspect(model, new Configuration()), !summaryOnly, spec.commandLine().getOut());
        return ExitCodes.OK;
    }
}
