package io.sparkprune.jobs.cli;

import io.sparkprune.pipeline.formats.CheckpointFormat;
import io.sparkprune.pipeline.formats.Decompressor;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code sparkprune decompress}: any checkpoint (hf, sparse, compressed-tensors) to a dense Hugging Face directory. */
@Command(name = "decompress", mixinStandardHelpOptions = true,
        description = "Write a sparse or compressed-tensors checkpoint (or an hf one) as a dense Hugging Face directory. "
                + "A sparse checkpoint comes back bit for bit; compressed-tensors is dequantized. The format is detected.")
final class DecompressCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<input>", description = "The checkpoint directory.")
    Path input;

    @Parameters(index = "1", paramLabel = "<output>", description = "The output directory; must not exist.")
    Path output;

    @Override
    public Integer call() {
        CheckpointFormat f = Decompressor.toHf(input, output, HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES);
        spec.commandLine().getOut().printf("decompressed %s (%s) to %s (hf)%n", input, f.cliName(), output);
        spec.commandLine().getOut().flush();
        return ExitCodes.OK;
    }

    static byte[] withoutQuantizationConfig(byte[] config, String where) {
        return Decompressor.withoutQuantizationConfig(config, where);
    }
}
