package io.sparkprune.jobs.cli;

import io.sparkprune.jobs.tools.RandomLlama;
import io.sparkprune.kernels.DType;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code sparkprune generate llama -o <dir> ...}: writes a random-initialised checkpoint with a
 * byte-level tokenizer ({@link RandomLlama}), for trying the prune job on any model shape.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Write a random-initialised checkpoint (config.json, safetensors, a byte-level tokenizer.json) "
                + "that `sparkprune prune` can calibrate and evaluate on any text. Weights ~ N(0, 0.02), norms 1, "
                + "deterministic per seed; memory stays bounded for any size.")
final class GenerateCommand implements Callable<Integer> {

    /** Model families the generator writes. */
    enum Family { llama }

    /** Dtypes of generated weights. */
    enum Dtype {
        bf16(DType.BF16), f16(DType.F16), f32(DType.F32);

        final DType dtype;

        Dtype(DType d) {
            this.dtype = d;
        }
    }

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<family>", description = "Model family: ${COMPLETION-CANDIDATES}.")
    Family family;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "<dir>",
            description = "Output directory; must not exist (or be empty).")
    Path output;

    @Option(names = "--hidden", defaultValue = "768", description = "hidden_size (default: ${DEFAULT-VALUE}).")
    int hidden;

    @Option(names = "--layers", defaultValue = "12", description = "num_hidden_layers (default: ${DEFAULT-VALUE}).")
    int layers;

    @Option(names = "--heads", defaultValue = "12", description = "num_attention_heads (default: ${DEFAULT-VALUE}).")
    int heads;

    @Option(names = "--kv-heads", description = "num_key_value_heads (default: --heads).")
    Integer kvHeads;

    @Option(names = "--intermediate", defaultValue = "2048", description = "intermediate_size (default: ${DEFAULT-VALUE}).")
    int intermediate;

    @Option(names = "--vocab", defaultValue = "32000", description = "vocab_size, ≥ 256 (default: ${DEFAULT-VALUE}).")
    int vocab;

    @Option(names = "--dtype", defaultValue = "bf16", description = "Weight dtype: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    Dtype dtype;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of every weight (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--max-shard-bytes", paramLabel = "<bytes>",
            description = "Largest tensor bytes per safetensors file; more makes model-0000k-of-0000n files and an index "
                    + "(default: 5000000000, as transformers).")
    Long maxShardBytes;

    @Option(names = "--tie-word-embeddings", description = "Reuse the embedding as the LM head (no lm_head.weight).")
    boolean tied;

    @Option(names = "--max-position-embeddings", defaultValue = "2048",
            description = "max_position_embeddings (default: ${DEFAULT-VALUE}).")
    int maxPositions;

    @Override
    public Integer call() {
        RandomLlama.Spec s = new RandomLlama.Spec(hidden, layers, heads, kvHeads == null ? heads : kvHeads, intermediate,
                vocab, dtype.dtype, seed, maxShardBytes == null ? HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES : maxShardBytes,
                tied, maxPositions);
        long t0 = System.nanoTime();
        RandomLlama.Summary r = RandomLlama.write(s, output);
        PrintWriter out = spec.commandLine().getOut();
        out.printf(Locale.ROOT, "generated %s: %d tensors, %,d parameters, %,d bytes in %d safetensors file(s), %.1f s%n",
                RandomLlama.describe(s), r.tensors(), r.parameters(), r.tensorBytes(), r.files().size(),
                (System.nanoTime() - t0) / 1e9);
        out.println("checkpoint: " + r.dir());
        out.flush();
        return ExitCodes.OK;
    }
}
