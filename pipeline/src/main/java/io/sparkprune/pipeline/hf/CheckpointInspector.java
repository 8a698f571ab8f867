package io.sparkprune.pipeline.hf;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.apache.hadoop.conf.Configuration;

/**
 * Summarises a checkpoint: its config (when a config.json is beside the weights), every tensor
 * with dtype, shape and bytes, the parameter count, and the sparsity already present — the
 * fraction of exact zeros (±0) per floating-point tensor and whether every row satisfies 2:4 or
 * 4:8 (at most N non-zeros in each group of M consecutive inputs).
 *
 * <p>Tensors are streamed in row ranges of at most {@link #CHUNK_BYTES}, so memory stays bounded
 * for any checkpoint size.
 */
public final class CheckpointInspector {

    /** Largest slice read at once while counting zeros: 16 MiB. */
    public static final int CHUNK_BYTES = 16 << 20;

    /** Largest config.json accepted: 16 MiB. */
    public static final long MAX_CONFIG_BYTES = 16 << 20;

    private CheckpointInspector() {
    }

    /**
     * Per-tensor facts.
     *
     * @param name tensor name
     * @param file shard file holding it
     * @param dtype element type
     * @param shape dimensions
     * @param bytes payload bytes
     * @param zeros number of elements equal to ±0 (floating point only, else 0)
     * @param nmPattern {@code "2:4"} or {@code "4:8"} when every row satisfies it and the tensor has zeros, else empty
     */
    public record TensorSummary(String name, String file, DType dtype, long[] shape, long bytes, long zeros,
                                Optional<String> nmPattern) {
        /** @return number of elements */
        public long numel() {
            return HostTensor.numel(shape);
        }

        /** @return zeros / elements, 0 for an empty tensor */
        public double sparsity() {
            return numel() == 0 ? 0 : (double) zeros / numel();
        }
    }

    /**
     * Whole-checkpoint facts.
     *
     * @param source directory or file label
     * @param config the parsed config.json, when present
     * @param tensors per-tensor facts in checkpoint order
     */
    public record Summary(String source, Optional<ModelConfig> config, List<TensorSummary> tensors) {
        /** @return total elements over all tensors */
        public long parameters() {
            return tensors.stream().mapToLong(TensorSummary::numel).sum();
        }

        /** @return total payload bytes */
        public long bytes() {
            return tensors.stream().mapToLong(TensorSummary::bytes).sum();
        }

        /** @return zeros / elements over the 2-D floating-point tensors (the linear weights and embeddings) */
        public double matrixSparsity() {
            long n = 0;
            long z = 0;
            for (TensorSummary t : tensors) {
                if (t.shape().length == 2 && t.dtype().isFloatingPoint()) {
                    n += t.numel();
                    z += t.zeros();
                }
            }
            return n == 0 ? 0 : (double) z / n;
        }
    }

    /**
     * Inspects a local checkpoint directory (or single .safetensors file).
     *
     * @param dirOrFile checkpoint directory or safetensors file
     * @return the summary
     * @throws io.sparkprune.kernels.InvalidInputException on a malformed checkpoint or config
     */
    public static Summary inspect(Path dirOrFile) {
        try (ShardedCheckpoint ckpt = ShardedCheckpoint.open(dirOrFile)) {
            return inspect(ckpt);
        }
    }

    /**
     * Inspects a checkpoint given as a local path or any Hadoop URI ({@code hdfs://}, {@code s3a://}, ...).
     *
     * @param uriOrPath checkpoint directory or safetensors file
     * @param conf Hadoop configuration for the file system
     * @return the summary
     * @throws io.sparkprune.kernels.InvalidInputException on a malformed checkpoint or config
     */
    public static Summary inspect(String uriOrPath, Configuration conf) {
        try (ShardedCheckpoint ckpt = ShardedCheckpoint.open(uriOrPath, conf)) {
            return inspect(ckpt);
        }
    }

    /**
     * Inspects an open checkpoint; reads {@code config.json} beside it when present.
     *
     * @param ckpt the checkpoint (not closed here)
     * @return the summary
     * @throws io.sparkprune.kernels.InvalidInputException on a malformed checkpoint or config
     */
    public static Summary inspect(ShardedCheckpoint ckpt) {
        Optional<ModelConfig> config = ckpt.readSideFile("config.json", MAX_CONFIG_BYTES)
                .map(bytes -> ModelConfigs.parse(bytes, ckpt.sideFileLabel("config.json")));
        List<TensorSummary> out = new ArrayList<>();
        for (String name : ckpt.tensorNames()) {
            out.add(summarise(ckpt, ckpt.info(name)));
        }
        return new Summary(ckpt.source(), config, out);
    }

    private static TensorSummary summarise(ShardedCheckpoint ckpt, TensorInfo info) {
        String file = ckpt.fileOf(info.name());
        long[] shape = info.shape();
        if (!info.dtype().isFloatingPoint() || info.numel() == 0) {
            return new TensorSummary(info.name(), file, info.dtype(), shape, info.byteLength(), 0, Optional.empty());
        }
        long rows = shape.length == 0 ? 1 : shape[0];
        long rowElems = rows == 0 ? 0 : info.numel() / rows;
        long rowBytes = rowElems * info.dtype().byteSize();
        long rowsPerChunk = Math.max(1, CHUNK_BYTES / Math.max(1, rowBytes));
        long cols = shape.length == 2 ? shape[1] : -1;
        boolean twoFour = cols > 0 && cols % 4 == 0;
        boolean fourEight = cols > 0 && cols % 8 == 0;
        long zeros = 0;
        for (long r = 0; r < rows; r += rowsPerChunk) {
            long count = Math.min(rowsPerChunk, rows - r);
            HostTensor chunk = shape.length == 0 ? ckpt.read(info.name()) : ckpt.readRows(info.name(), r, count);
            ByteBuffer b = chunk.data().duplicate().order(ByteOrder.LITTLE_ENDIAN);
            long n = chunk.numel();
            int groupNonZeros4 = 0;
            int groupNonZeros8 = 0;
            for (long i = 0; i < n; i++) {
                boolean zero = isZero(info.dtype(), b, (int) i);
                if (zero) {
                    zeros++;
                }
                if (cols > 0) {
                    long c = i % cols;
                    if (c % 4 == 0) {
                        groupNonZeros4 = 0;
                    }
                    if (c % 8 == 0) {
                        groupNonZeros8 = 0;
                    }
                    if (!zero) {
                        groupNonZeros4++;
                        groupNonZeros8++;
                        twoFour &= groupNonZeros4 <= 2;
                        fourEight &= groupNonZeros8 <= 4;
                    }
                }
            }
        }
        Optional<String> nm = zeros == 0 ? Optional.empty()
                : twoFour ? Optional.of("2:4") : fourEight ? Optional.of("4:8") : Optional.empty();
        return new TensorSummary(info.name(), file, info.dtype(), shape, info.byteLength(), zeros, nm);
    }

    private static boolean isZero(DType dtype, ByteBuffer b, int i) {
        return switch (dtype) {
            case F32 -> (b.getInt(4 * i) & 0x7fffffff) == 0;
            case F64 -> (b.getLong(8 * i) & 0x7fffffffffffffffL) == 0;
            case F16, BF16 -> (b.getShort(2 * i) & 0x7fff) == 0;
            default -> false;
        };
    }
}
