package io.sparkprune.pipeline.formats;

import io.sparkprune.pipeline.formats.compressed.CompressedTensorsCheckpoint;
import io.sparkprune.pipeline.formats.parquet.ParquetShardManifest;
import io.sparkprune.pipeline.formats.parquet.ParquetShards;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Bytes on disk per tensor of a sparse, parquet (payload bytes) or compressed-tensors checkpoint, against its dense size. */
public final class StorageInspector {
    private StorageInspector() {
    }

    /**
     * @param name dense tensor name
     * @param storage how it is stored, e.g. {@code 2:4}, {@code block:16x16}, {@code unstructured},
     *     {@code dense}, {@code int4 group 128}
     * @param denseBytes bytes of the dense tensor (in its dense dtype)
     * @param storedBytes bytes of what is stored for it
     */
    public record TensorStorage(String name, String storage, long denseBytes, long storedBytes) {
        /** @return stored / dense (1 for an empty tensor) */
        public double ratio() {
            return denseBytes == 0 ? 1 : (double) storedBytes / denseBytes;
        }
    }

    /**
     * @param format the checkpoint's format
     * @param tensors every tensor, in order
     */
    public record Storage(CheckpointFormat format, List<TensorStorage> tensors) {
        /** @return total dense bytes */
        public long denseBytes() {
            return tensors.stream().mapToLong(TensorStorage::denseBytes).sum();
        }

        /** @return total stored bytes */
        public long storedBytes() {
            return tensors.stream().mapToLong(TensorStorage::storedBytes).sum();
        }

        /** @return stored / dense over all tensors */
        public double ratio() {
            return denseBytes() == 0 ? 1 : (double) storedBytes() / denseBytes();
        }

        /** @return stored / dense over the compressed tensors only */
        public double compressedRatio() {
            long d = 0;
            long s = 0;
            for (TensorStorage t : tensors) {
                if (!t.storage().equals("dense")) {
                    d += t.denseBytes();
                    s += t.storedBytes();
                }
            }
            return d == 0 ? 1 : (double) s / d;
        }
    }

    /**
     * @param dir a local sparse, parquet or compressed-tensors checkpoint directory
     * @return its storage, or empty for any other format
     * @throws io.sparkprune.kernels.InvalidInputException for a malformed checkpoint
     */
    public static java.util.Optional<Storage> inspect(Path dir) {
        CheckpointFormat f = CheckpointFormat.detect(dir);
        List<TensorStorage> out = new ArrayList<>();
        if (f == CheckpointFormat.SPARSE) {
            try (SparseCheckpoint s = SparseCheckpoint.open(dir)) {
                for (String n : s.names()) {
                    out.add(new TensorStorage(n, s.storage(n), s.denseBytes(n), s.storedBytes(n)));
                }
            }
        } else if (f == CheckpointFormat.PARQUET) {
            try (ParquetShards p = ParquetShards.open(dir)) {
                for (String n : p.names()) {
                    long stored = 0;
                    java.util.Set<String> specs = new java.util.LinkedHashSet<>();
                    for (ParquetShards.Record r : p.records(n)) {
                        specs.add(r.encoding().spec());
                        for (byte[] b : r.payload()) {
                            stored += b.length;
                        }
                    }
                    ParquetShardManifest.Tensor t = p.manifest().tensors().stream().filter(x -> x.name().equals(n))
                            .findFirst().orElseThrow();
                    out.add(new TensorStorage(n, String.join("+", specs), t.rows() * t.rowBytes(), stored));
                }
            }
        } else if (f == CheckpointFormat.COMPRESSED_TENSORS) {
            try (CompressedTensorsCheckpoint c = CompressedTensorsCheckpoint.open(dir)) {
                for (String n : c.names()) {
                    long dense = c.dtype(n).byteSize();
                    for (long d : c.shape(n)) {
                        dense *= d;
                    }
                    boolean q = c.quantizedNames().contains(n);
                    out.add(new TensorStorage(n, q ? c.quantized(n).spec().describe() : "dense", dense,
                            q ? c.storedBytes(n) : dense));
                }
            }
        } else {
            return java.util.Optional.empty();
        }
        return java.util.Optional.of(new Storage(f, out));
    }
}
