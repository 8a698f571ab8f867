package io.sparkprune.jobs.cli;

import io.sparkprune.jobs.convert.ConvertJob;
import io.sparkprune.pipeline.formats.CheckpointFormat;
import io.sparkprune.pipeline.formats.Decompressor;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code sparkprune decompress}: any checkpoint (hf, sparse, parquet, compressed-tensors) to a dense Hugging Face
 * directory; hf, sparse and parquet inputs through the Spark job {@link ConvertJob#toHf}, compressed-tensors in
 * process ({@link Decompressor}).
 */
@Command(name = "decompress", mixinStandardHelpOptions = true,
        description = "Write a sparse, parquet or compressed-tensors checkpoint (or an hf one) as a dense Hugging Face directory. "
                + "A sparse or parquet checkpoint comes back bit for bit (a Spark job, one task per safetensors file, "
                + "as for hf); compressed-tensors is dequantized. The format is detected.")
final class DecompressCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<input>", description = "The checkpoint directory.")
    Path input;

    @Parameters(index = "1", paramLabel = "<output>", description = "The output directory; must not exist.")
    Path output;

    @Option(names = "--master", paramLabel = "<url>", description = "hf, sparse or parquet input: Spark master of the "
            + "decompression job, one task per safetensors file (default: local[*], or what spark-submit set).")
    String master;

    @Override
    public Integer call() {
        CheckpointFormat f = CheckpointFormat.detect(input);
        if (ConvertJob.SPARK_HF_SOURCES.contains(f)) {
            ConvertJob.HfOutcome o = ConvertCommand.toHfWithSpark(master, input, f, output);
            spec.commandLine().getOut().printf("decompressed %s (%s) to %s (hf): %d tensors, %d safetensors files "
                    + "written by %d Spark tasks%n", input, f.cliName(), output, o.tensors(), o.files(), o.tasks());
            spec.commandLine().getOut().flush();
            return ExitCodes.OK;
        }
        Decompressor.toHf(input, output, HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES);
        spec.commandLine().getOut().printf("decompressed %s (%s) to %s (hf)%n", input, f.cliName(), output);
        spec.commandLine().getOut().flush();
        return ExitCodes.OK;
    }

    static byte[] withoutQuantizationConfig(byte[] config, String where) {
        return Decompressor.withoutQuantizationConfig(config, where);
    }
}
