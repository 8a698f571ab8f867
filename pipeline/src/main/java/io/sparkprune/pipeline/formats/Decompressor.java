package io.sparkprune.pipeline.formats;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.pipeline.formats.compressed.CompressedTensorsCheckpoint;
import io.sparkprune.pipeline.formats.parquet.ParquetShards;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes any checkpoint (hf, sparse, parquet, compressed-tensors) as a dense Hugging Face directory,
 * all-or-nothing. A sparse or parquet checkpoint comes back bit for bit: the same tensors in the same order,
 * the original {@code __metadata__}, the side files byte for byte. A compressed-tensors one comes
 * back dequantized in its scale dtype, config.json without {@code quantization_config} (a nested
 * {@code sparsity_config} moves to the top level).
 */
public final class Decompressor {
    private Decompressor() {
    }

    /**
     * @param input checkpoint directory (hf, sparse, parquet or compressed-tensors)
     * @param output directory to create; must not exist
     * @param maxShardBytes largest safetensors file before sharding
     * @return the input's format
     * @throws io.sparkprune.kernels.InvalidInputException for a malformed input or an existing output
     * @throws java.io.UncheckedIOException on I/O failure (nothing is left behind)
     */
    public static CheckpointFormat toHf(Path input, Path output, long maxShardBytes) {
        CheckpointFormat f = CheckpointFormat.detect(input);
        Map<String, byte[]> side = SideFiles.read(input);
        switch (f) {
            case SPARSE -> {
                try (SparseCheckpoint s = SparseCheckpoint.open(input)) {
                    DenseHfWriter.write(s, side, s.originalMetadata(), maxShardBytes, output);
                }
            }
            case COMPRESSED_TENSORS -> {
                try (CompressedTensorsCheckpoint c = CompressedTensorsCheckpoint.open(input)) {
                    Map<String, byte[]> s2 = new LinkedHashMap<>(side);
                    s2.put("config.json", withoutQuantizationConfig(side.get("config.json"), input + "/config.json"));
                    DenseHfWriter.write(c, s2, Map.of("format", "pt"), maxShardBytes, output);
                }
            }
            case PARQUET -> {
                try (ParquetShards p = ParquetShards.open(input)) {
                    DenseHfWriter.write(p, side, p.originalMetadata(), maxShardBytes, output);
                }
            }
            case HF -> {
                try (ShardedCheckpoint c = ShardedCheckpoint.open(input)) {
                    Map<String, String> md = c.files().isEmpty() ? Map.of() : c.shard(c.files().get(0)).metadata();
                    DenseHfWriter.write(DenseTensors.of(c), side, md, maxShardBytes, output);
                }
            }
            default -> throw new FormatException(input.toString(), "an ONNX model is imported with "
                    + "'sparkprune convert --from onnx', not decompressed");
        }
        return f;
    }

    /**
     * @param config config.json bytes
     * @param where label for messages
     * @return config.json without {@code quantization_config}; its nested {@code sparsity_config}, if any, at the top level
     * @throws FormatException when the config is not a JSON object
     */
    public static byte[] withoutQuantizationConfig(byte[] config, String where) {
        ObjectNode root = SparsityConfigBlock.parseObject(config, where);
        JsonNode qc = root.remove("quantization_config");
        if (qc != null && qc.path(SparsityConfigBlock.KEY).isObject() && !qc.path(SparsityConfigBlock.KEY).isEmpty()) {
            root.set(SparsityConfigBlock.KEY, qc.get(SparsityConfigBlock.KEY));
        }
        return SparsityConfigBlock.toBytes(root);
    }
}
