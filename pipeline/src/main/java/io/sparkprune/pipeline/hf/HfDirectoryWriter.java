package io.sparkprune.pipeline.hf;

import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes a Hugging Face checkpoint directory all-or-nothing: everything goes to a hidden temporary
 * sibling directory ({@code .<name>.tmp-<nanos>}) which is renamed to the target only when every
 * file is complete and synced; on any failure the temporary directory is deleted and the target is
 * left as it was (absent).
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
     * @throws InvalidInputException when the target already exists
     * @throws UncheckedIOException when writing fails (nothing is left behind)
     */
    public static void write(Path target, String configJson, Map<String, byte[]> extraFiles,
                             LinkedHashMap<String, HostTensor> tensors, Map<String, String> metadata,
                             long maxShardBytes) {
        Path abs = target.toAbsolutePath().normalize();
        if (Files.exists(abs)) {
            throw new InvalidInputException(abs + " already exists; choose a new output directory or remove it first");
        }
        Path parent = abs.getParent();
        Path tmp = parent.resolve("." + abs.getFileName() + ".tmp-" + System.nanoTime());
        boolean done = false;
        try {
            Files.createDirectories(tmp);
            Files.writeString(tmp.resolve("config.json"), configJson, StandardCharsets.UTF_8);
            for (Map.Entry<String, byte[]> e : extraFiles.entrySet()) {
                if (e.getKey().contains("/") || e.getKey().startsWith(".")) {
                    throw new IllegalArgumentException("extra file name must be a plain file name: " + e.getKey());
                }
                Files.write(tmp.resolve(e.getKey()), e.getValue());
            }
            ShardedCheckpointWriter.write(tmp, maxShardBytes, metadata, tensors);
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs);
            }
            done = true;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write checkpoint directory " + abs + ": " + e.getMessage(), e);
        } finally {
            if (!done) {
                deleteTree(tmp);
            }
        }
    }

    /** Best-effort recursive delete of a temporary directory. */
    static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                if (Files.isDirectory(p)) {
                    deleteTree(p);
                } else {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(dir);
        } catch (IOException ignored) {
            // best effort: the directory is hidden and named .tmp-*
        }
    }
}
