package io.sparkprune.pipeline.formats;

import io.sparkprune.pipeline.formats.compressed.CompressedTensorsCheckpoint;
import io.sparkprune.pipeline.formats.parquet.ParquetShards;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;

/** The checkpoint formats SparkPrune reads, and how to tell them apart on disk. */
public enum CheckpointFormat {
    /** Dense Hugging Face directory (or a single .safetensors file). */
    HF,
    /** SparkPrune's sparse format: safetensors whose {@code __metadata__} holds the sparse manifest. */
    SPARSE,
    /** compressed-tensors: config.json's {@code quantization_config.quant_method} is {@code compressed-tensors}. */
    COMPRESSED_TENSORS,
    /** An ONNX model file (BERT family). */
    ONNX,
    /** Parquet shards: a directory with {@code sparkprune-parquet.json} (docs/formats.md, "Parquet shards"). */
    PARQUET;

    /**
     * @param path a checkpoint directory or file
     * @return its format: ONNX for a {@code .onnx} file; PARQUET for a directory with the Parquet
     *     shards manifest; compressed-tensors when config.json says so;
     *     sparse when the first safetensors file carries the manifest; otherwise HF
     * @throws io.sparkprune.kernels.InvalidInputException when the checkpoint cannot be opened
     */
    public static CheckpointFormat detect(Path path) {
        if (Files.isRegularFile(path) && path.getFileName().toString().endsWith(".onnx")) {
            return ONNX;
        }
        if (ParquetShards.isParquetShards(path)) {
            return PARQUET;
        }
        Path config = Files.isDirectory(path) ? path.resolve("config.json") : path.resolveSibling("config.json");
        if (Files.isRegularFile(config)) {
            byte[] cfg = SideFiles.read(config.getParent()).get("config.json");
            if (cfg != null && CompressedTensorsCheckpoint.quantizationConfig(cfg, config.toString()).isPresent()) {
                return COMPRESSED_TENSORS;
            }
        }
        try (ShardedCheckpoint ckpt = ShardedCheckpoint.open(path)) {
            return SparseCheckpoint.readManifest(ckpt).isPresent() ? SPARSE : HF;
        }
    }

    /** @return the CLI name: {@code hf}, {@code sparse}, {@code compressed-tensors}, {@code onnx}, {@code parquet} */
    public String cliName() {
        return this == COMPRESSED_TENSORS ? "compressed-tensors" : name().toLowerCase(java.util.Locale.ROOT);
    }
}
