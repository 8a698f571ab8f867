package io.sparkprune.pipeline.formats.parquet;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparsePayloads;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.parquet.ParquetReadOptions;
import org.apache.parquet.conf.PlainParquetConfiguration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.filter2.compat.FilterCompat;
import org.apache.parquet.filter2.predicate.FilterApi;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.api.ReadSupport;
import org.apache.parquet.hadoop.example.GroupReadSupport;
import org.apache.parquet.hadoop.metadata.BlockMetaData;
import org.apache.parquet.hadoop.metadata.ColumnChunkMetaData;
import org.apache.parquet.io.InputFile;
import org.apache.parquet.io.LocalInputFile;
import org.apache.parquet.io.api.Binary;

/**
 * Reads a Parquet shards directory (docs/formats.md, "Parquet shards") back to dense tensors, bit
 * for bit. Opening parses and checks the manifest (every tensor's rows covered exactly once) and
 * that every part file is present with its recorded size. Reading a tensor reads its records from
 * the parts that hold them (a filter on the {@code tensor} column skips the others), verifies the
 * Parquet page CRCs, each record's columns against the manifest, the payload's SHA-256, decodes the
 * payload with the {@code sparse} format's checks and verifies the dense rows' SHA-256. Any
 * mismatch, corruption or truncation is a {@link FormatException} naming the part file, the tensor
 * and the row range.
 */
public final class ParquetShards implements DenseTensors, AutoCloseable {

    private final Path dir;
    private final ParquetShardManifest manifest;
    private final Map<String, ParquetShardManifest.Tensor> tensors = new LinkedHashMap<>();
    /** tensor → (part → the tensor's items in it) */
    private final Map<String, Map<ParquetShardManifest.Part, List<WorkItem>>> where = new HashMap<>();

    /**
     * One verified record.
     *
     * @param tensor tensor name
     * @param rowStart first row
     * @param rowEnd one past the last row
     * @param encoding how the range is stored
     * @param payload the payload arrays in {@link SparsePayloads#componentNames} order
     * @param dense the decoded rows, little-endian row-major
     * @param file the part file it came from
     */
    public record Record(String tensor, long rowStart, long rowEnd, SparseEncoding encoding, byte[][] payload,
                         byte[] dense, String file) {
    }

    private ParquetShards(Path dir, ParquetShardManifest manifest) {
        this.dir = dir;
        this.manifest = manifest;
        for (ParquetShardManifest.Tensor t : manifest.tensors()) {
            tensors.put(t.name(), t);
        }
        for (ParquetShardManifest.Part p : manifest.parts()) {
            for (WorkItem w : p.items()) {
                where.computeIfAbsent(w.tensor(), k -> new LinkedHashMap<>()).computeIfAbsent(p, k -> new ArrayList<>())
                        .add(w);
            }
        }
    }

    /**
     * @param dir a directory with a {@value ParquetShardManifest#FILE_NAME}
     * @return whether it looks like Parquet shards (the manifest file exists)
     */
    public static boolean isParquetShards(Path dir) {
        return Files.isDirectory(dir) && Files.isRegularFile(dir.resolve(ParquetShardManifest.FILE_NAME));
    }

    /**
     * @param dir the directory
     * @return the open directory
     * @throws FormatException when the manifest is missing or malformed, or a part file is missing or has another size
     * @throws UncheckedIOException on another I/O failure
     */
    public static ParquetShards open(Path dir) {
        Path abs = dir.toAbsolutePath().normalize();
        Path mf = abs.resolve(ParquetShardManifest.FILE_NAME);
        if (!Files.isRegularFile(mf)) {
            throw new FormatException(abs.toString(), "no " + ParquetShardManifest.FILE_NAME + ": this is not a Parquet "
                    + "shards directory (or it is incomplete); write it with sparkprune convert --to parquet");
        }
        ParquetShardManifest m;
        try {
            if (Files.size(mf) > ParquetShardManifest.MAX_BYTES) {
                throw new FormatException(mf.toString(), "larger than " + ParquetShardManifest.MAX_BYTES + " bytes; "
                        + "the manifest is corrupt: re-create the directory");
            }
            m = ParquetShardManifest.parse(Files.readAllBytes(mf), mf.toString());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + mf + ": " + e.getMessage(), e);
        }
        for (ParquetShardManifest.Part p : m.parts()) {
            Path f = abs.resolve(p.file());
            long size;
            try {
                size = Files.isRegularFile(f) ? Files.size(f) : -1;
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + f + ": " + e.getMessage(), e);
            }
            if (size != p.bytes()) {
                String held = p.items().stream().limit(5).map(WorkItem::label).toList()
                        + (p.items().size() > 5 ? " and " + (p.items().size() - 5) + " more" : "");
                throw new FormatException(f.toString(), (size < 0 ? "missing" : "has " + size + " bytes, the manifest says "
                        + p.bytes() + " (truncated or modified)") + "; it holds " + held
                        + ". The directory is incomplete or corrupt: re-create it");
            }
        }
        return new ParquetShards(abs, m);
    }

    /** @return the manifest */
    public ParquetShardManifest manifest() {
        return manifest;
    }

    /** @return the directory's safetensors {@code __metadata__} of the source */
    public Map<String, String> originalMetadata() {
        return manifest.metadata();
    }

    @Override
    public String source() {
        return dir.toString();
    }

    @Override
    public List<String> names() {
        return List.copyOf(tensors.keySet());
    }

    @Override
    public DType dtype(String name) {
        return tensor(name).dtype();
    }

    @Override
    public long[] shape(String name) {
        return tensor(name).shape();
    }

    private ParquetShardManifest.Tensor tensor(String name) {
        ParquetShardManifest.Tensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException(dir + ": no tensor '" + name + "'");
        }
        return t;
    }

    /**
     * @param name a tensor name
     * @return the dense tensor, bit-identical to what was written
     * @throws FormatException on any mismatch, corruption or truncation (naming part file, tensor and row range)
     */
    @Override
    public HostTensor read(String name) {
        ParquetShardManifest.Tensor t = tensor(name);
        long total = t.rows() * t.rowBytes();
        if (total > Integer.MAX_VALUE - 8) {
            throw new FormatException(dir + ": '" + name + "'", "over 2 GiB dense; reading it whole is not supported");
        }
        byte[] d = new byte[(int) total];
        for (Record r : records(name)) {
            System.arraycopy(r.dense(), 0, d, (int) (r.rowStart() * t.rowBytes()), r.dense().length);
        }
        return new HostTensor(t.dtype(), t.shape(), ByteBuffer.wrap(d).order(ByteOrder.LITTLE_ENDIAN));
    }

    /**
     * Reads and verifies every record of a tensor.
     *
     * @param name a tensor name
     * @return its records sorted by row, each verified (payload and dense checksums, decoding checks)
     * @throws FormatException on any mismatch, corruption or truncation
     */
    public List<Record> records(String name) {
        ParquetShardManifest.Tensor t = tensor(name);
        List<Record> out = new ArrayList<>();
        for (Map.Entry<ParquetShardManifest.Part, List<WorkItem>> e : where.getOrDefault(name, Map.of()).entrySet()) {
            out.addAll(readPart(t, e.getKey(), e.getValue()));
        }
        out.sort((a, b) -> Long.compare(a.rowStart(), b.rowStart()));
        return out;
    }

    private List<Record> readPart(ParquetShardManifest.Tensor t, ParquetShardManifest.Part part, List<WorkItem> expected) {
        Path file = dir.resolve(part.file());
        String label = file + ": '" + t.name() + "'";
        checkFooter(file, part, label + " " + expected.stream().map(w -> "[" + w.rowStart() + ", " + w.rowEnd() + ")")
                .toList());
        List<Record> out = new ArrayList<>();
        Map<Long, WorkItem> pending = new LinkedHashMap<>();
        expected.forEach(w -> pending.put(w.rowStart(), w));
        InputFile in = new LocalInputFile(file);
        try (ParquetReader<Group> r = new ParquetReader.Builder<Group>(in, new PlainParquetConfiguration()) {
            @Override
            protected ReadSupport<Group> getReadSupport() {
                return new GroupReadSupport();
            }
        }.withFilter(FilterCompat.get(FilterApi.eq(FilterApi.binaryColumn(ParquetShardSchema.TENSOR),
                Binary.fromString(t.name())))).usePageChecksumVerification(true).build()) {
            for (Group g = r.read(); g != null; g = r.read()) {
                out.add(verify(file, t, g, pending));
            }
        } catch (InvalidInputException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            throw new FormatException(label + " " + expected.stream().map(w -> "[" + w.rowStart() + ", " + w.rowEnd()
                    + ")").toList(), "cannot read the part file (" + e.getClass().getSimpleName() + ": " + e.getMessage()
                    + "); it is corrupt: re-create the directory", e);
        }
        if (!pending.isEmpty()) {
            throw new FormatException(label, "records " + pending.values().stream().map(WorkItem::label).toList()
                    + " listed in the manifest are missing from the part file; it is corrupt: re-create the directory");
        }
        return out;
    }

    /** Checks the footer against the manifest and the file length before any data is read. */
    private static void checkFooter(Path file, ParquetShardManifest.Part part, String label) {
        try (ParquetFileReader r = ParquetFileReader.open(new LocalInputFile(file), ParquetReadOptions.builder().build())) {
            long len = part.bytes();
            long rows = 0;
            for (BlockMetaData b : r.getFooter().getBlocks()) {
                rows += b.getRowCount();
                for (ColumnChunkMetaData c : b.getColumns()) {
                    long start = c.getStartingPos();
                    if (start < 0 || c.getTotalSize() < 0 || start + c.getTotalSize() > len) {
                        throw new FormatException(file.toString(), "column chunk " + c.getPath() + " lies outside the "
                                + len + "-byte file; it is corrupt: re-create the directory");
                    }
                }
            }
            if (rows != part.records() || r.getFooter().getBlocks().size() != part.rowGroups()
                    || !r.getFooter().getFileMetaData().getSchema().equals(ParquetShardSchema.SCHEMA)) {
                throw new FormatException(file.toString(), "holds " + rows + " records in "
                        + r.getFooter().getBlocks().size() + " row groups with schema "
                        + r.getFooter().getFileMetaData().getSchema().getName() + "; the manifest says " + part.records()
                        + " records in " + part.rowGroups() + " row groups of " + ParquetShardSchema.SCHEMA.getName()
                        + ". The directory is corrupt: re-create it");
            }
        } catch (InvalidInputException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            throw new FormatException(label, "not a readable Parquet file (" + e.getClass().getSimpleName()
                    + ": " + e.getMessage() + "); it is corrupt or truncated: re-create the directory", e);
        }
    }

    private static Record verify(Path file, ParquetShardManifest.Tensor t, Group g, Map<Long, WorkItem> pending) {
        long a = g.getLong(ParquetShardSchema.ROW_START, 0);
        long z = g.getLong(ParquetShardSchema.ROW_END, 0);
        String where = file + ": '" + t.name() + "' rows [" + a + ", " + z + ")";
        WorkItem w = pending.remove(a);
        if (!g.getString(ParquetShardSchema.TENSOR, 0).equals(t.name()) || w == null || w.rowEnd() != z) {
            throw new FormatException(where, "this record is not one the manifest lists for this part (or it is "
                    + "repeated); the directory is corrupt: re-create it");
        }
        int rank = g.getFieldRepetitionCount(ParquetShardSchema.SHAPE);
        long[] shape = new long[rank];
        for (int i = 0; i < rank; i++) {
            shape[i] = g.getLong(ParquetShardSchema.SHAPE, i);
        }
        String dtype = g.getString(ParquetShardSchema.DTYPE, 0);
        if (!Arrays.equals(shape, t.shape()) || !dtype.equals(t.dtype().name())) {
            throw new FormatException(where, "record says " + dtype + " " + Arrays.toString(shape) + ", the manifest "
                    + t.dtype() + " " + Arrays.toString(t.shape()) + "; the directory is corrupt: re-create it");
        }
        SparseEncoding enc;
        try {
            enc = SparseEncoding.parse(g.getString(ParquetShardSchema.ENCODING, 0));
        } catch (InvalidInputException e) {
            throw new FormatException(where, "bad encoding: " + e.getMessage(), e);
        }
        List<String> comps = SparsePayloads.componentNames(enc);
        byte[][] payload = new byte[comps.size()][];
        long stored = 0;
        for (String col : ParquetShardSchema.PAYLOAD) {
            boolean present = g.getFieldRepetitionCount(col) > 0;
            int k = comps.indexOf(col);
            if (present != (k >= 0)) {
                throw new FormatException(where, "payload column '" + col + "' is " + (present ? "set" : "missing")
                        + " but encoding " + enc.spec() + " uses " + comps + "; the directory is corrupt: re-create it");
            }
            if (present) {
                payload[k] = g.getBinary(col, 0).getBytes();
                stored += payload[k].length;
            }
        }
        long rows = z - a;
        long denseBytes = rows * t.rowBytes();
        if (g.getLong(ParquetShardSchema.STORED_BYTES, 0) != stored
                || g.getLong(ParquetShardSchema.DENSE_BYTES, 0) != denseBytes) {
            throw new FormatException(where, "stored_bytes/dense_bytes " + g.getLong(ParquetShardSchema.STORED_BYTES, 0)
                    + "/" + g.getLong(ParquetShardSchema.DENSE_BYTES, 0) + " disagree with the payload (" + stored
                    + ") and shape (" + denseBytes + "); the directory is corrupt: re-create it");
        }
        if (!Arrays.equals(g.getBinary(ParquetShardSchema.PAYLOAD_SHA256, 0).getBytes(),
                ParquetShardSchema.payloadSha256(payload))) {
            throw new FormatException(where, "payload SHA-256 mismatch: the stored payload was modified or corrupted; "
                    + "re-create the directory");
        }
        byte[] dense = SparsePayloads.decode(where, enc, payload, (int) rows, (int) t.cols(), t.dtype());
        if (!Arrays.equals(g.getBinary(ParquetShardSchema.DENSE_SHA256, 0).getBytes(), ParquetShardSchema.sha256(dense))) {
            throw new FormatException(where, "dense SHA-256 mismatch: the decoded rows differ from what was written; "
                    + "re-create the directory");
        }
        return new Record(t.name(), a, z, enc, payload, dense, file.toString());
    }

    @Override
    public void close() {
        // nothing held open between reads
    }
}
