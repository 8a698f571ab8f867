package io.sparkprune.pipeline.formats;

import io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter;
import java.nio.file.Path;
import java.util.Map;

/**
 * Writes any {@link DenseTensors} as a dense Hugging Face directory (side files plus
 * {@code model.safetensors} or shards with an index), all-or-nothing, reading one tensor at a time.
 */
public final class DenseHfWriter {
    private DenseHfWriter() {
    }

    /**
     * @param tensors the tensors, in the order to store them
     * @param sideFiles config.json, tokenizer files etc., written byte for byte
     * @param metadata safetensors {@code __metadata__} of every shard (e.g. {@code {"format": "pt"}})
     * @param maxShardBytes largest shard before splitting (5 GB as transformers by default)
     * @param target output directory; must not exist
     * @throws io.sparkprune.kernels.InvalidInputException when the target exists or a tensor is malformed
     * @throws java.io.UncheckedIOException on an I/O failure (nothing is left behind)
     */
    public static void write(DenseTensors tensors, Map<String, byte[]> sideFiles, Map<String, String> metadata,
                             long maxShardBytes, Path target) {
        AtomicDirectory.write(target, tmp -> {
            SideFiles.write(tmp, sideFiles);
            try (ShardedCheckpointWriter w = ShardedCheckpointWriter.create(tmp, maxShardBytes)) {
                boolean ok = false;
                try {
                    for (String n : tensors.names()) {
                        w.declare(n, tensors.dtype(n), tensors.shape(n));
                    }
                    w.metadata(metadata);
                    w.planShards();
                    for (String n : tensors.names()) {
                        w.write(n, tensors.read(n));
                    }
                    ok = true;
                } finally {
                    if (!ok) {
                        w.abort();
                    }
                }
            }
        });
    }
}
