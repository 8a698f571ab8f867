package io.sparkprune.pipeline.hf;

import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.AtomicDirectory;
import io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes a Hugging Face checkpoint directory all-or-nothing ({@link AtomicDirectory}: a hidden
 * temporary sibling renamed to the target only when every file is complete; on any failure it is
 * deleted and the target never appears).
 *
 * <p>Layout written: {@code config.json}, optional extra files (e.g. {@code tokenizer.json}), and
 * the tensors as {@code model.safetensors}, or as {@code model-0000k-of-0000n.safetensors} plus
 * {@code model.safetensors.index.json} when they exceed {@code maxShardBytes} (Hugging Face's
 * sharding convention, {@link ShardedCheckpointWriter}).
 */
public final class HfDirectoryWriter {

    /** Default shard size: 5 GB, as transformers' {@code save_pretrained(max_shard_size="5GB")}. */
    public static final long DEFAULT_MAX_SHARD_BYTES = 5_000_000_000L;

    private HfDirectoryWriter() {
    }

    /**
     * Writes a complete checkpoint directory.
     *
     * @param target directory to create; must not exist yet
     * @param configJson config.json text
     * @param extraFiles other files by name (e.g. {@code "tokenizer.json"} → bytes), written as they are
     * @param tensors tensors in the order to store them (Hugging Face names and layouts)
     * @param metadata safetensors {@code __metadata__} (e.g. {@code {"format": "pt"}})
     * @param maxShardBytes largest shard in bytes before splitting into several files
     * @throws io.sparkprune.kernels.InvalidInputException when the target already exists
     * @throws UncheckedIOException when writing fails (nothing is left behind)
     */
    public static void write(Path target, String configJson, Map<String, byte[]> extraFiles,
                             LinkedHashMap<String, HostTensor> tensors, Map<String, String> metadata,
                             long maxShardBytes) {
        AtomicDirectory.write(target, tmp -> {
            try {
                Files.writeString(tmp.resolve("config.json"), configJson, StandardCharsets.UTF_8);
                for (Map.Entry<String, byte[]> e : extraFiles.entrySet()) {
                    if (e.getKey().contains("/") || e.getKey().startsWith(".")) {
                        throw new IllegalArgumentException("extra file name must be a plain file name: " + e.getKey());
                    }
                    Files.write(tmp.resolve(e.getKey()), e.getValue());
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write checkpoint directory " + target + ": " + e.getMessage(), e);
            }
            ShardedCheckpointWriter.write(tmp, maxShardBytes, metadata, tensors);
        });
    }
}
