package io.sparkprune.pipeline.formats.parquet;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.AtomicDirectory;
import io.sparkprune.pipeline.formats.AtomicFile;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparsePayloads;
import io.sparkprune.pipeline.recipe.TensorSelector;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetFileWriter;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.io.LocalOutputFile;
import org.apache.parquet.io.api.Binary;

/**
 * Writes a Parquet shards directory (docs/formats.md, "Parquet shards"): part files
 * {@code parts/part-NNNNN.parquet} with the table of {@link ParquetShardSchema}, the side files
 * (config.json, tokenizer files) byte for byte, and the manifest {@value ParquetShardManifest#FILE_NAME}.
 *
 * <p>Parts are independent: {@link #writePart} is static and needs only the staging directory,
 * so separate processes (Spark executors) write them in parallel; the one that holds the writer
 * ({@link #begin}) then calls {@link #finish}, which checks that the parts cover every tensor's
 * rows exactly once, writes the manifest and renames the staging directory into place. Without a
 * finish, {@link #close()} deletes it: the output appears whole or not at all.
 *
 * <p>Payloads are the {@code sparse} format's components of each row range
 * ({@link SparsePayloads}); the encoding is the work item's, else the one {@link SparsePayloads#choose}
 * picks from the range's data under the options (targets, forced pattern).
 */
public final class ParquetShardWriter implements AutoCloseable {

    /** Subdirectory holding the part files (so {@code spark.read.parquet("<dir>/parts")} reads just the table). */
    public static final String PARTS_DIR = "parts";
    /** Work items of split tensors start on a multiple of this many rows (every automatic BSR tile height divides it). */
    public static final int ROW_ALIGN = 64;

    private final AtomicDirectory.Staging staging;
    private boolean finished;

    private ParquetShardWriter(AtomicDirectory.Staging staging) {
        this.staging = staging;
    }

    /**
     * Which tensors are compressed and how large work items and parts are.
     *
     * @param targets selector target entries ({@link TensorSelector#of}); 2-D floating-point targets may be compressed
     * @param ignore selector ignore entries
     * @param pattern the encoding spec forced on every target ({@code 2:4}, {@code block:16x16}, ...), or null to detect it per row range
     * @param maxItemBytes dense bytes above which a tensor is split into row ranges (≥ 1)
     * @param maxPartBytes dense bytes of the items grouped into one part file (≥ 1; a part holds at least one item)
     */
    public record Options(List<String> targets, List<String> ignore, String pattern, long maxItemBytes,
                          long maxPartBytes) implements Serializable {
        private static final long serialVersionUID = 1L;

        /**
         * @throws InvalidInputException for an unparsable pattern or selector, or sizes below 1
         */
        public Options {
            targets = List.copyOf(targets);
            ignore = List.copyOf(ignore);
            if (maxItemBytes < 1 || maxPartBytes < 1) {
                throw new InvalidInputException("Parquet shards need positive item and part sizes, got "
                        + maxItemBytes + " and " + maxPartBytes);
            }
            if (pattern != null) {
                SparseEncoding.parse(pattern);
            }
            TensorSelector.of(targets, ignore, "parquet options", "");
        }

        /** @return default targets and ignore (as {@link TensorSelector#defaults()}), detection, 64 MiB items, 256 MiB parts */
        public static Options defaults() {
            return new Options(TensorSelector.DEFAULT_TARGETS, TensorSelector.DEFAULT_IGNORE, null, 64L << 20, 256L << 20);
        }

        /** @return the selector */
        public TensorSelector selector() {
            return TensorSelector.of(targets, ignore, "parquet options", "");
        }

        /** @return the forced encoding, if any */
        public Optional<SparseEncoding> forced() {
            return pattern == null ? Optional.empty() : Optional.of(SparseEncoding.parse(pattern));
        }
    }

    /**
     * Starts a directory: creates its hidden staging sibling with a {@value #PARTS_DIR} subdirectory.
     *
     * @param target the directory to create; must not exist
     * @return the writer; close it
     * @throws InvalidInputException when the target exists
     * @throws UncheckedIOException when the staging directory cannot be created
     */
    public static ParquetShardWriter begin(Path target) {
        AtomicDirectory.Staging s = AtomicDirectory.begin(target);
        try {
            Files.createDirectories(s.dir().resolve(PARTS_DIR));
        } catch (IOException e) {
            s.close();
            throw new UncheckedIOException("cannot create " + s.dir().resolve(PARTS_DIR) + ": " + e.getMessage(), e);
        }
        return new ParquetShardWriter(s);
    }

    /** @return the staging directory, where {@link #writePart} puts parts (absolute) */
    public Path stagingDir() {
        return staging.dir();
    }

    /**
     * Splits tensors into work items, in order: a tensor of at most {@code maxItemBytes} dense
     * bytes (or with at most {@link #ROW_ALIGN} rows) is one item; a larger one is split into row
     * ranges of a multiple of {@link #ROW_ALIGN} rows (and of the tile height for a fixed or
     * forced block encoding), the last range taking the rest.
     *
     * @param tensors the tensors (from headers only)
     * @param fixed the encoding to keep per tensor (e.g. from a sparse input), or empty to choose from the data
     * @param options item size
     * @return the items
     */
    public static List<WorkItem> plan(List<ParquetShardManifest.Tensor> tensors,
                                      Function<String, Optional<SparseEncoding>> fixed, Options options) {
        List<WorkItem> out = new ArrayList<>();
        for (ParquetShardManifest.Tensor t : tensors) {
            Optional<SparseEncoding> enc = fixed.apply(t.name());
            String spec = enc.map(SparseEncoding::spec).orElse(null);
            long rows = t.rows();
            long align = ROW_ALIGN;
            if (enc.or(options::forced).orElse(null) instanceof SparseEncoding.Bsr b) {
                align = lcm(ROW_ALIGN, b.rows());
            }
            long rowBytes = Math.max(1, t.rowBytes());
            long step = Math.max(align, options.maxItemBytes() / rowBytes / align * align);
            if (rows * rowBytes <= options.maxItemBytes() || rows <= step) {
                out.add(new WorkItem(t.name(), 0, rows, spec));
                continue;
            }
            for (long a = 0; a < rows; a += step) {
                out.add(new WorkItem(t.name(), a, Math.min(rows, a + step), spec));
            }
        }
        return out;
    }

    private static long lcm(long a, long b) {
        long x = a;
        long y = b;
        while (y != 0) {
            long r = x % y;
            x = y;
            y = r;
        }
        return a / x * b;
    }

    /**
     * Groups consecutive items into parts of at most {@code maxPartBytes} dense bytes (at least one item each).
     *
     * @param tensors the tensors the items refer to
     * @param items work items in order
     * @param options part size
     * @return the parts' items, in order
     */
    public static List<List<WorkItem>> groupIntoParts(List<ParquetShardManifest.Tensor> tensors, List<WorkItem> items,
                                                      Options options) {
        Map<String, ParquetShardManifest.Tensor> byName = new java.util.HashMap<>();
        tensors.forEach(t -> byName.put(t.name(), t));
        List<List<WorkItem>> parts = new ArrayList<>();
        List<WorkItem> cur = new ArrayList<>();
        long bytes = 0;
        for (WorkItem w : items) {
            long b = w.rowCount() * byName.get(w.tensor()).rowBytes();
            if (!cur.isEmpty() && bytes + b > options.maxPartBytes()) {
                parts.add(cur);
                cur = new ArrayList<>();
                bytes = 0;
            }
            cur.add(w);
            bytes += b;
        }
        if (!cur.isEmpty()) {
            parts.add(cur);
        }
        return parts;
    }

    /**
     * @param index part number, ≥ 0
     * @return its path relative to the directory, {@code parts/part-NNNNN.parquet}
     */
    public static String partFile(int index) {
        if (index < 0) {
            throw new IllegalArgumentException("part index " + index);
        }
        return PARTS_DIR + "/" + String.format(Locale.ROOT, "part-%05d.parquet", index);
    }

    /**
     * Writes one part file: one table row per item, in order; reads each item's rows from the
     * source, encodes them, checksums dense rows and payload. The file is written under a hidden
     * temporary name and renamed, so a retried task replaces a failed attempt's file whole.
     *
     * @param stagingDir the writer's {@link #stagingDir()} (reachable from this process)
     * @param index part number
     * @param items the items, each within its tensor's rows
     * @param source where the rows are read
     * @param options targets and forced pattern for items without an encoding
     * @return the part's manifest entry
     * @throws io.sparkprune.pipeline.formats.PatternViolationException when a range is not N:M under a forced N:M
     * @throws FormatException when an encoding does not fit a range, or an item is outside its tensor
     * @throws UncheckedIOException when the file cannot be written
     */
    public static ParquetShardManifest.Part writePart(Path stagingDir, int index, List<WorkItem> items, RowSource source,
                                                      Options options) {
        String rel = partFile(index);
        Path file = stagingDir.resolve(rel);
        TensorSelector selector = options.selector();
        Optional<SparseEncoding> forced = options.forced();
        SimpleGroupFactory f = new SimpleGroupFactory(ParquetShardSchema.SCHEMA);
        int[] rowGroups = new int[1];
        try {
            Files.createDirectories(file.getParent());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
        AtomicFile.write(file, true, tmp -> {
            ParquetWriter<Group> w = ExampleParquetWriter.builder(new LocalOutputFile(tmp))
                    .withType(ParquetShardSchema.SCHEMA).withWriteMode(ParquetFileWriter.Mode.OVERWRITE)
                    .withCompressionCodec(CompressionCodecName.UNCOMPRESSED).withDictionaryEncoding(false)
                    .withDictionaryEncoding(ParquetShardSchema.TENSOR, true).withPageWriteChecksumEnabled(true)
                    .withStatisticsEnabled(false).withStatisticsEnabled(ParquetShardSchema.TENSOR, true)
                    .withStatisticsEnabled(ParquetShardSchema.ROW_START, true)
                    .withStatisticsEnabled(ParquetShardSchema.ROW_END, true).build();
            try (w) {
                for (WorkItem item : items) {
                    w.write(record(f, item, source, selector, forced));
                }
            }
            rowGroups[0] = w.getFooter().getBlocks().size();
        });
        try {
            return new ParquetShardManifest.Part(rel, Files.size(file), items.size(), rowGroups[0],
                    items.stream().map(i -> new WorkItem(i.tensor(), i.rowStart(), i.rowEnd(), null)).toList());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the size of " + file + ": " + e.getMessage(), e);
        }
    }

    private static Group record(SimpleGroupFactory f, WorkItem item, RowSource source, TensorSelector selector,
                                Optional<SparseEncoding> forced) {
        String name = item.tensor();
        DType dtype = source.dtype(name);
        long[] shape = source.shape(name);
        ParquetShardManifest.Tensor t = new ParquetShardManifest.Tensor(name, dtype, shape);
        String where = source.source() + ": " + item.label();
        if (item.rowEnd() > t.rows()) {
            throw new FormatException(where, "is outside the tensor's " + t.rows() + " rows " + Arrays.toString(shape)
                    + "; plan work items from the same checkpoint");
        }
        long rows = item.rowCount();
        if (t.cols() > Integer.MAX_VALUE || rows * t.rowBytes() > Integer.MAX_VALUE - 8) {
            throw new FormatException(where, "is over 2 GiB or has over 2^31 columns; split it into smaller row ranges");
        }
        byte[] dense = source.rows(name, item.rowStart(), item.rowEnd());
        if (dense.length != rows * t.rowBytes()) {
            throw new FormatException(where, "read " + dense.length + " bytes, expected " + rows * t.rowBytes()
                    + "; the source is truncated or changed during conversion");
        }
        long[] rangeShape = shape.clone();
        if (rangeShape.length > 0) {
            rangeShape[0] = rows;
        }
        SparseEncoding enc = item.encoding() != null ? SparseEncoding.parse(item.encoding())
                : SparsePayloads.choose(source.source(), name, dtype, rangeShape, dense, selector, forced);
        byte[][] payload = SparsePayloads.encode(name, enc, dense, (int) rows, (int) t.cols(), dtype);
        List<String> comps = SparsePayloads.componentNames(enc);
        Group g = f.newGroup();
        g.add(ParquetShardSchema.TENSOR, name);
        g.add(ParquetShardSchema.ROW_START, item.rowStart());
        g.add(ParquetShardSchema.ROW_END, item.rowEnd());
        for (long d : shape) {
            g.add(ParquetShardSchema.SHAPE, d);
        }
        g.add(ParquetShardSchema.DTYPE, dtype.name());
        g.add(ParquetShardSchema.ENCODING, enc.spec());
        g.add(ParquetShardSchema.DENSE_BYTES, (long) dense.length);
        long stored = 0;
        for (int k = 0; k < comps.size(); k++) {
            g.add(comps.get(k), Binary.fromConstantByteArray(payload[k]));
            stored += payload[k].length;
        }
        g.add(ParquetShardSchema.STORED_BYTES, stored);
        g.add(ParquetShardSchema.DENSE_SHA256, Binary.fromConstantByteArray(ParquetShardSchema.sha256(dense)));
        g.add(ParquetShardSchema.PAYLOAD_SHA256, Binary.fromConstantByteArray(ParquetShardSchema.payloadSha256(payload)));
        return g;
    }

    /**
     * Completes the directory: checks the parts (every tensor's rows covered exactly once, every
     * part file present with its recorded size), removes files in {@value #PARTS_DIR} that no part
     * lists (e.g. a failed attempt's temporary file), writes the side files and the manifest, and
     * renames the staging directory to the target.
     *
     * @param metadata the source's safetensors {@code __metadata__}
     * @param tensors every tensor, in the original order
     * @param sideFiles config.json, tokenizer files etc., written byte for byte
     * @param parts the parts, in order
     * @return the manifest written
     * @throws FormatException when the parts do not cover the tensors exactly once or a part file is missing
     * @throws InvalidInputException when the target appeared meanwhile
     * @throws UncheckedIOException on an I/O failure (the staging directory is deleted on close)
     */
    public ParquetShardManifest finish(Map<String, String> metadata, List<ParquetShardManifest.Tensor> tensors,
                                       Map<String, byte[]> sideFiles, List<ParquetShardManifest.Part> parts) {
        if (finished) {
            throw new IllegalStateException(staging.target() + ": finish was already called");
        }
        ParquetShardManifest m = new ParquetShardManifest(metadata, tensors, parts);
        byte[] json = m.toJson();
        ParquetShardManifest.parse(json, staging.target() + "/" + ParquetShardManifest.FILE_NAME); // coverage checks
        Set<String> listed = new HashSet<>();
        for (ParquetShardManifest.Part p : parts) {
            Path f = staging.dir().resolve(p.file());
            try {
                if (!Files.isRegularFile(f) || Files.size(f) != p.bytes()) {
                    throw new FormatException(f.toString(), "missing or not " + p.bytes() + " bytes as its writer "
                            + "reported; the staging directory must be reachable from every executor (a shared file system)");
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            listed.add(f.getFileName().toString());
        }
        Path partsDir = staging.dir().resolve(PARTS_DIR);
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(partsDir)) {
            for (Path p : ds) {
                if (!listed.contains(p.getFileName().toString())) {
                    Files.deleteIfExists(p);
                }
            }
            SideFiles.write(staging.dir(), sideFiles);
            Files.write(staging.dir().resolve(ParquetShardManifest.FILE_NAME), json);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot finish " + staging.target() + ": " + e.getMessage(), e);
        }
        staging.commit();
        finished = true;
        return m;
    }

    /** Deletes the staging directory unless {@link #finish} succeeded. */
    @Override
    public void close() {
        staging.close();
    }

    /**
     * Writes a whole directory in this process, one part after the other (the Spark job
     * {@code io.sparkprune.jobs.convert.ConvertJob} writes the parts in parallel instead). A
     * {@link SparseCheckpoint} source keeps each tensor's encoding; otherwise the options choose.
     *
     * @param src the tensors, in order
     * @param sideFiles config.json, tokenizer files etc.
     * @param metadata the source's safetensors {@code __metadata__}
     * @param options targets, pattern, item and part sizes
     * @param target directory to create; must not exist
     * @return the manifest written
     * @throws io.sparkprune.pipeline.formats.PatternViolationException when a range is not N:M under a forced N:M
     * @throws InvalidInputException when the target exists or the source is malformed
     * @throws UncheckedIOException on an I/O failure (nothing is left behind)
     */
    public static ParquetShardManifest write(DenseTensors src, Map<String, byte[]> sideFiles,
                                             Map<String, String> metadata, Options options, Path target) {
        Objects.requireNonNull(options, "options");
        List<ParquetShardManifest.Tensor> tensors = new ArrayList<>();
        for (String n : src.names()) {
            tensors.add(new ParquetShardManifest.Tensor(n, src.dtype(n), src.shape(n)));
        }
        Function<String, Optional<SparseEncoding>> fixed = src instanceof SparseCheckpoint s
                ? n -> Optional.of(s.encoding(n)) : n -> Optional.empty();
        List<List<WorkItem>> groups = groupIntoParts(tensors, plan(tensors, fixed, options), options);
        RowSource rows = RowSource.of(src);
        try (ParquetShardWriter w = begin(target)) {
            List<ParquetShardManifest.Part> parts = new ArrayList<>();
            for (int i = 0; i < groups.size(); i++) {
                parts.add(writePart(w.stagingDir(), i, groups.get(i), rows, options));
            }
            return w.finish(metadata, tensors, sideFiles, parts);
        }
    }
}
