package io.sparkprune.jobs.convert;

import io.sparkprune.jobs.SparkFailures;
import io.sparkprune.jobs.prune.HadoopConf;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.CheckpointFormat;
import io.sparkprune.pipeline.formats.DenseHfWriter;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.formats.parquet.ParquetShards;
import io.sparkprune.pipeline.safetensors.SafetensorsWriter;
import io.sparkprune.pipeline.formats.parquet.ParquetShardManifest;
import io.sparkprune.pipeline.formats.parquet.ParquetShardWriter;
import io.sparkprune.pipeline.formats.parquet.RowSource;
import io.sparkprune.pipeline.formats.parquet.WorkItem;
import io.sparkprune.pipeline.formats.sparse.PayloadCodec;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparseManifest;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import io.sparkprune.kernels.DType;
import io.sparkprune.pipeline.formats.AtomicDirectory;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.recipe.TensorSelector;
import io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.stream.LongStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Function;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Conversion to Parquet shards ({@link #toParquet}), to the {@code sparse} format
 * ({@link #toSparse}, described there) or to a dense Hugging Face directory ({@link #toHf},
 * described there) as a Spark job, for checkpoints too large for one process. For Parquet, the
 * driver reads headers only (safetensors headers, or a sparse checkpoint's manifest), never the
 * weights: it lists the tensors, splits large ones into row ranges
 * ({@link ParquetShardWriter#plan}), groups the items into parts and starts one task per part.
 * Each task opens the checkpoint on its executor, reads its rows by byte range (safetensors, any
 * Hadoop file system) or decodes its tensors (sparse), encodes them and writes its own part file
 * into the output's staging directory. The driver then checks that the parts cover every tensor,
 * writes the side files and the manifest, and renames the staging directory into place
 * ({@link ParquetShardWriter#finish}); on any failure nothing is left behind. The output (and so
 * the staging directory) is a local path that every executor must reach: local mode, or a shared
 * file system on a cluster.
 */
public final class ConvertJob {
    private static final Logger LOG = LoggerFactory.getLogger(ConvertJob.class);

    private ConvertJob() {
    }

    /**
     * What to convert.
     *
     * @param input the checkpoint: an hf directory (local path or Hadoop URI) or a local sparse directory
     * @param sparse true when the input is in the {@code sparse} format (its encodings are kept)
     * @param output the Parquet shards directory to create (local path); must not exist
     * @param options targets, pattern, item and part sizes
     */
    public record Request(String input, boolean sparse, Path output, ParquetShardWriter.Options options) {
        /** @throws NullPointerException for a null argument */
        public Request {
            Objects.requireNonNull(input, "input");
            Objects.requireNonNull(output, "output");
            Objects.requireNonNull(options, "options");
        }
    }

    /**
     * @param manifest the manifest written
     * @param tasks Spark tasks run (one per part)
     */
    public record Outcome(ParquetShardManifest manifest, int tasks) {
    }

    /** One task: a part number and its work items. */
    private record PartTask(int index, List<WorkItem> items) implements Serializable {
        private static final long serialVersionUID = 1L;
    }

    /**
     * Runs the conversion.
     *
     * @param spark the session (local[*] by default from the CLI)
     * @param request what to convert
     * @return the manifest and task count
     * @throws InvalidInputException for a malformed input, an existing output, or a tensor that does
     *     not fit a forced pattern (the executor's typed error, rethrown on the driver)
     * @throws java.io.UncheckedIOException on an I/O failure (nothing is left behind)
     */
    public static Outcome toParquet(SparkSession spark, Request request) {
        HadoopConf hadoop = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        List<ParquetShardManifest.Tensor> tensors = new ArrayList<>();
        Map<String, String> metadata;
        Map<String, byte[]> side = new LinkedHashMap<>();
        Function<String, Optional<SparseEncoding>> fixed;
        String taskInput = request.input();
        if (request.sparse()) {
            Path local = localPath(request.input());
            Map<String, SparseEncoding> encodings = new LinkedHashMap<>();
            try (SparseCheckpoint s = SparseCheckpoint.open(local)) { // headers and manifest only
                for (SparseManifest.Entry e : s.manifest().tensors()) {
                    tensors.add(new ParquetShardManifest.Tensor(e.name(), e.dtype(), e.shape()));
                    encodings.put(e.name(), e.encoding());
                }
                metadata = s.originalMetadata();
            }
            side.putAll(SideFiles.read(local));
            taskInput = local.toAbsolutePath().toString();
            fixed = n -> Optional.of(encodings.get(n));
        } else {
            try (ShardedCheckpoint c = ShardedCheckpoint.open(request.input(), hadoop.get())) { // headers only
                for (String n : c.tensorNames()) {
                    TensorInfo info = c.info(n);
                    tensors.add(new ParquetShardManifest.Tensor(n, info.dtype(), info.shape()));
                }
                metadata = c.files().isEmpty() ? Map.of() : c.shard(c.files().get(0)).metadata();
                for (String n : SideFiles.NAMES) {
                    c.readSideFile(n, SideFiles.MAX_BYTES).ifPresent(b -> side.put(n, b));
                }
            }
            fixed = n -> Optional.empty();
        }
        List<List<WorkItem>> groups = ParquetShardWriter.groupIntoParts(tensors,
                ParquetShardWriter.plan(tensors, fixed, request.options()), request.options());
        List<PartTask> tasks = new ArrayList<>();
        for (int i = 0; i < groups.size(); i++) {
            tasks.add(new PartTask(i, new ArrayList<>(groups.get(i))));
        }
        LOG.info("converting {} ({} tensors) to Parquet shards {} in {} tasks", request.input(), tensors.size(),
                request.output(), tasks.size());
        try (ParquetShardWriter w = ParquetShardWriter.begin(request.output())) {
            String staging = w.stagingDir().toString();
            String input = taskInput;
            boolean sparse = request.sparse();
            ParquetShardWriter.Options options = request.options();
            List<ParquetShardManifest.Part> parts;
            try {
                parts = new ArrayList<>(JavaSparkContext.fromSparkContext(spark.sparkContext())
                        .parallelize(tasks, Math.max(1, tasks.size()))
                        .map(t -> writePart(input, sparse, hadoop, staging, t, options)).collect());
            } catch (Exception e) { // Spark throws the checked SparkException undeclared
                throw SparkFailures.rethrow(e);
            }
            parts.sort(Comparator.comparing(ParquetShardManifest.Part::file));
            ParquetShardManifest m = w.finish(metadata, tensors, side, parts);
            return new Outcome(m, tasks.size());
        }
    }

    /**
     * What to convert to the {@code sparse} format.
     *
     * @param input the checkpoint: an hf directory (local path or Hadoop URI) or a local sparse directory
     * @param sparse true when the input is in the {@code sparse} format (decoded, then re-encoded)
     * @param output the sparse checkpoint directory to create (local path); must not exist
     * @param targets tensors that may be compressed ({@link TensorSelector} syntax: names or {@code re:} regexes)
     * @param ignore tensors never compressed
     * @param pattern the encoding forced on every target ({@code 2:4}, {@code block:16x16}, ...), or null to detect
     * @param maxShardBytes largest total stored bytes per container file, as {@link SparseWriter.Options#maxShardBytes()}
     * @param codec how integer payloads are stored, as {@link SparseWriter.Options#codec()}
     */
    public record SparseRequest(String input, boolean sparse, Path output, List<String> targets, List<String> ignore,
                                String pattern, long maxShardBytes, PayloadCodec codec) {
        /**
         * @throws NullPointerException for a null input, output, targets or ignore
         * @throws InvalidInputException for an unparsable pattern or selector, or a shard size below 1
         */
        public SparseRequest {
            Objects.requireNonNull(input, "input");
            Objects.requireNonNull(output, "output");
            Objects.requireNonNull(codec, "codec");
            targets = List.copyOf(targets);
            ignore = List.copyOf(ignore);
            if (maxShardBytes < 1) {
                throw new InvalidInputException("the sparse writer needs a positive shard size, got " + maxShardBytes);
            }
            options(targets, ignore, pattern, maxShardBytes, codec); // validates
        }

        /**
         * A request with raw payloads (codec {@code none}).
         *
         * @param input see the record
         * @param sparse see the record
         * @param output see the record
         * @param targets see the record
         * @param ignore see the record
         * @param pattern see the record
         * @param maxShardBytes see the record
         */
        public SparseRequest(String input, boolean sparse, Path output, List<String> targets, List<String> ignore,
                             String pattern, long maxShardBytes) {
            this(input, sparse, output, targets, ignore, pattern, maxShardBytes, PayloadCodec.NONE);
        }

        /** @return the single-process writer's options for the same request */
        public SparseWriter.Options writerOptions() {
            return options(targets, ignore, pattern, maxShardBytes, codec);
        }

        private static SparseWriter.Options options(List<String> targets, List<String> ignore, String pattern,
                                                    long maxShardBytes, PayloadCodec codec) {
            return new SparseWriter.Options(TensorSelector.of(targets, ignore, "command line", ""),
                    pattern == null ? Optional.empty() : Optional.of(SparseEncoding.parse(pattern)), maxShardBytes, codec);
        }
    }

    /**
     * @param reports per tensor: encoding, dense and stored bytes (as {@link SparseWriter#write} returns)
     * @param files container files written
     * @param tasks Spark tasks run: one per tensor (planning) plus one per container file (writing)
     */
    public record SparseOutcome(List<SparseWriter.TensorReport> reports, int files, int tasks) {
    }

    /**
     * A tensor's plan in serializable form: the encoding by its spec, and per deflated payload its
     * suffix, rows per chunk and deflated bytes (unquantized plans only).
     */
    private record PlanDto(String name, String encoding, DType dtype, long[] shape, long count,
                           String[] deflatedPayloads, int[] chunkRows, long[] deflatedBytes) implements Serializable {
        private static final long serialVersionUID = 2L;

        static PlanDto of(SparseWriter.Plan p) {
            SparseManifest.Entry e = p.entry();
            List<SparseManifest.Deflated> d = e.deflated();
            return new PlanDto(e.name(), e.encoding().spec(), e.dtype(), e.shape(), p.count(),
                    d.stream().map(SparseManifest.Deflated::payload).toArray(String[]::new),
                    d.stream().mapToInt(SparseManifest.Deflated::chunkRows).toArray(),
                    d.stream().mapToLong(SparseManifest.Deflated::bytes).toArray());
        }

        SparseWriter.Plan plan() {
            List<SparseManifest.Deflated> d = new ArrayList<>();
            for (int i = 0; i < deflatedPayloads.length; i++) {
                d.add(new SparseManifest.Deflated(deflatedPayloads[i], chunkRows[i], deflatedBytes[i]));
            }
            return new SparseWriter.Plan(new SparseManifest.Entry(name, SparseEncoding.parse(encoding), dtype, shape,
                    Optional.empty(), d), count);
        }
    }

    /** One container file: its number and name, and the range of stored components it holds. */
    private record ShardTask(int index, String file, int from, int to) implements Serializable {
        private static final long serialVersionUID = 1L;
    }

    /**
     * Converts an hf or sparse checkpoint to the {@code sparse} format as a Spark job; the output is
     * byte for byte what {@link SparseWriter#write(io.sparkprune.pipeline.formats.DenseTensors, Map,
     * Map, SparseWriter.Options, Path)} writes for the same input and options. The driver reads
     * headers (or the sparse manifest) and side files only. Stage one, one task per tensor, reads
     * each tensor on an executor (by byte range for hf) and chooses its encoding and stored count
     * ({@link SparseWriter#plan}); the driver builds the manifest and lays the stored components
     * out into container files exactly as the single-process writer does
     * ({@link ShardedCheckpointWriter#layout}). Stage two, one task per container file, reads and
     * encodes that file's tensors and writes it into the output's staging directory
     * ({@link SparseWriter#writeContainer}). The driver then writes the side files and, for several
     * files, the index, and renames the staging directory into place; on any failure nothing is
     * left behind. The output is a local path every executor must reach.
     *
     * @param spark the session (local[*] by default from the CLI)
     * @param request what to convert
     * @return per-tensor reports, files written and tasks run
     * @throws InvalidInputException for a malformed input, an existing output, or a target that does
     *     not fit a forced pattern (the executor's typed error, rethrown on the driver)
     * @throws java.io.UncheckedIOException on an I/O failure (nothing is left behind)
     */
    public static SparseOutcome toSparse(SparkSession spark, SparseRequest request) {
        HadoopConf hadoop = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        List<String> names;
        Map<String, String> metadata;
        Map<String, byte[]> side = new LinkedHashMap<>();
        String taskInput = request.input();
        if (request.sparse()) {
            Path local = localPath(request.input());
            try (SparseCheckpoint s = SparseCheckpoint.open(local)) { // headers and manifest only
                names = new ArrayList<>(s.names());
                metadata = s.originalMetadata();
            }
            side.putAll(SideFiles.read(local));
            taskInput = local.toAbsolutePath().toString();
        } else {
            try (ShardedCheckpoint c = ShardedCheckpoint.open(request.input(), hadoop.get())) { // headers only
                names = new ArrayList<>(c.tensorNames());
                metadata = c.files().isEmpty() ? Map.of() : c.shard(c.files().get(0)).metadata();
                for (String n : SideFiles.NAMES) {
                    c.readSideFile(n, SideFiles.MAX_BYTES).ifPresent(b -> side.put(n, b));
                }
            }
        }
        String input = taskInput;
        boolean sparse = request.sparse();
        List<String> targets = new ArrayList<>(request.targets());
        List<String> ignore = new ArrayList<>(request.ignore());
        String pattern = request.pattern();
        long maxShardBytes = request.maxShardBytes();
        PayloadCodec codec = request.codec();
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        List<PlanDto> dtos;
        try {
            dtos = names.isEmpty() ? List.of() : new ArrayList<>(jsc.parallelize(names, names.size())
                    .mapPartitions(it -> {
                        List<PlanDto> out = new ArrayList<>();
                        try (Source src = Source.open(input, sparse, hadoop)) {
                            SparseWriter.Options options = SparseRequest.options(targets, ignore, pattern, maxShardBytes, codec);
                            while (it.hasNext()) {
                                out.add(PlanDto.of(SparseWriter.plan(src.tensors(), it.next(), options)));
                            }
                        }
                        return out.iterator();
                    }).collect());
        } catch (Exception e) { // Spark throws the checked SparkException undeclared
            throw SparkFailures.rethrow(e);
        }
        List<SparseWriter.Plan> plans = dtos.stream().map(PlanDto::plan).toList();
        List<SparseWriter.TensorReport> reports = SparseWriter.reports(request.input(), plans);
        Map<String, String> md = new LinkedHashMap<>(SparseWriter.containerMetadata(metadata, plans));
        List<SparseWriter.StoredComponent> comps = SparseWriter.storedComponents(plans);
        long[] sizes = comps.stream().mapToLong(c -> c.component().bytes()).toArray();
        int[] layout = ShardedCheckpointWriter.layout(sizes, request.maxShardBytes());
        int files = layout.length == 0 ? 1 : layout[layout.length - 1] + 1;
        List<ShardTask> tasks = new ArrayList<>();
        Map<String, String> weightMap = new LinkedHashMap<>();
        int from = 0;
        for (int k = 0; k < files; k++) {
            int to = from;
            while (to < layout.length && layout[to] == k) {
                weightMap.put(comps.get(to).component().name(), ShardedCheckpointWriter.fileName(k, files));
                to++;
            }
            tasks.add(new ShardTask(k, ShardedCheckpointWriter.fileName(k, files), from, to));
            from = to;
        }
        LOG.info("converting {} ({} tensors) to sparse {}: {} planning tasks, {} container files", request.input(),
                names.size(), request.output(), names.size(), files);
        try (AtomicDirectory.Staging staging = AtomicDirectory.begin(request.output())) {
            String dir = staging.dir().toString();
            try {
                jsc.parallelize(tasks, tasks.size()).foreach(t -> {
                    List<SparseWriter.Plan> ps = dtos.stream().map(PlanDto::plan).toList();
                    List<SparseWriter.StoredComponent> cs = SparseWriter.storedComponents(ps).subList(t.from(), t.to());
                    try (Source src = Source.open(input, sparse, hadoop)) {
                        SparseWriter.writeContainer(src.tensors(), ps, cs, md, Path.of(dir, t.file()));
                    }
                });
            } catch (Exception e) { // Spark throws the checked SparkException undeclared
                throw SparkFailures.rethrow(e);
            }
            finish(staging, request.output(), side, files, weightMap, sizes);
        }
        return new SparseOutcome(reports, files, names.size() + tasks.size());
    }

    /**
     * What to write as a dense Hugging Face directory.
     *
     * @param input the checkpoint: an hf directory (local path or Hadoop URI), or a local sparse or
     *     Parquet shards directory
     * @param format the input's format: {@link CheckpointFormat#HF}, {@link CheckpointFormat#SPARSE}
     *     or {@link CheckpointFormat#PARQUET}
     * @param output the hf directory to create (local path); must not exist
     * @param maxShardBytes largest total tensor bytes per safetensors file, as
     *     {@link DenseHfWriter#write}'s {@code maxShardBytes} (transformers' 5 GB by default from the CLI)
     */
    public record HfRequest(String input, CheckpointFormat format, Path output, long maxShardBytes) {
        /**
         * @throws NullPointerException for a null input, format or output
         * @throws InvalidInputException for another format (onnx and compressed-tensors are converted
         *     in one process) or a shard size below 1
         */
        public HfRequest {
            Objects.requireNonNull(input, "input");
            Objects.requireNonNull(format, "format");
            Objects.requireNonNull(output, "output");
            if (!SPARK_HF_SOURCES.contains(format)) {
                throw new InvalidInputException(input + ": a " + format.cliName() + " checkpoint is not converted to hf "
                        + "by the Spark job; sources are " + SPARK_HF_SOURCES.stream().map(CheckpointFormat::cliName)
                        .toList() + " (use Decompressor.toHf for the others)");
            }
            if (maxShardBytes < 1) {
                throw new InvalidInputException("the hf writer needs a positive shard size, got " + maxShardBytes);
            }
        }
    }

    /** The input formats {@link #toHf} reads: hf (a re-shard or copy), sparse and parquet. */
    public static final List<CheckpointFormat> SPARK_HF_SOURCES =
            List.of(CheckpointFormat.HF, CheckpointFormat.SPARSE, CheckpointFormat.PARQUET);

    /**
     * @param tensors tensors written
     * @param files safetensors files written
     * @param tasks Spark tasks run (one per safetensors file)
     */
    public record HfOutcome(int tensors, int files, int tasks) {
    }

    /** One safetensors file: its name and the tensors it holds, in order. */
    private record HfShardTask(String file, List<String> names) implements Serializable {
        private static final long serialVersionUID = 1L;
    }

    /**
     * Writes an hf, sparse or Parquet shards checkpoint as a dense Hugging Face directory as a Spark
     * job; the output is byte for byte what {@link DenseHfWriter#write} writes for the same input
     * (its tensors in order, the input's {@code __metadata__} and side files) and shard size. The
     * driver reads headers, the sparse or Parquet manifest and the side files only, and lays the
     * tensors out into files exactly as the single-process writer does
     * ({@link ShardedCheckpointWriter#layout}, {@link ShardedCheckpointWriter#fileName}). One task
     * per output file opens the input on its executor, reads (hf, by byte range) or decodes (sparse,
     * Parquet) that file's tensors one at a time and streams them into a {@link SafetensorsWriter}
     * in the output's staging directory. The driver then writes the side files and, for several
     * files, the index ({@link ShardedCheckpointWriter#indexJson}), and renames the staging
     * directory into place; on any failure nothing is left behind. The output is a local path every
     * executor must reach; sparse and Parquet inputs must be local too.
     *
     * @param spark the session (local[*] by default from the CLI)
     * @param request what to convert
     * @return tensors, files and tasks
     * @throws InvalidInputException for a malformed or corrupt input (the executor's typed error,
     *     rethrown on the driver) or an existing output
     * @throws java.io.UncheckedIOException on an I/O failure (nothing is left behind)
     */
    public static HfOutcome toHf(SparkSession spark, HfRequest request) {
        HadoopConf hadoop = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        CheckpointFormat format = request.format();
        String input = format == CheckpointFormat.HF ? request.input()
                : localPath(request.input()).toAbsolutePath().toString();
        List<String> names = new ArrayList<>();
        long[] sizes;
        Map<String, String> metadata;
        Map<String, byte[]> side = new LinkedHashMap<>();
        try (Source src = Source.open(input, format, hadoop)) { // headers and manifests only
            DenseTensors t = src.tensors();
            names.addAll(t.names());
            sizes = new long[names.size()];
            for (int i = 0; i < sizes.length; i++) {
                sizes[i] = TensorInfo.byteLengthOf(t.dtype(names.get(i)), t.shape(names.get(i)));
            }
            if (src.handle() instanceof ShardedCheckpoint c) {
                metadata = c.files().isEmpty() ? Map.of() : c.shard(c.files().get(0)).metadata();
                for (String n : SideFiles.NAMES) {
                    c.readSideFile(n, SideFiles.MAX_BYTES).ifPresent(b -> side.put(n, b));
                }
            } else {
                metadata = src.handle() instanceof SparseCheckpoint s ? s.originalMetadata()
                        : ((ParquetShards) src.handle()).originalMetadata();
                side.putAll(SideFiles.read(Path.of(input)));
            }
        }
        int[] layout = ShardedCheckpointWriter.layout(sizes, request.maxShardBytes());
        int files = layout.length == 0 ? 1 : layout[layout.length - 1] + 1;
        List<HfShardTask> tasks = new ArrayList<>();
        Map<String, String> weightMap = new LinkedHashMap<>();
        int at = 0;
        for (int k = 0; k < files; k++) {
            String file = ShardedCheckpointWriter.fileName(k, files);
            List<String> in = new ArrayList<>();
            while (at < layout.length && layout[at] == k) {
                in.add(names.get(at));
                weightMap.put(names.get(at), file);
                at++;
            }
            tasks.add(new HfShardTask(file, in));
        }
        Map<String, String> md = new LinkedHashMap<>(metadata);
        LOG.info("converting {} ({}, {} tensors) to hf {} in {} tasks", request.input(), format.cliName(), names.size(),
                request.output(), tasks.size());
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        try (AtomicDirectory.Staging staging = AtomicDirectory.begin(request.output())) {
            String dir = staging.dir().toString();
            try {
                jsc.parallelize(tasks, tasks.size()).foreach(t -> writeHfShard(input, format, hadoop, md,
                        Path.of(dir, t.file()), t.names()));
            } catch (Exception e) { // Spark throws the checked SparkException undeclared
                throw SparkFailures.rethrow(e);
            }
            finish(staging, request.output(), side, files, weightMap, sizes);
        }
        return new HfOutcome(names.size(), files, tasks.size());
    }

    /** Executor side: one safetensors file, its tensors read or decoded and streamed one at a time. */
    /**
     * Completes a staged multi-file output: the side files, the safetensors index when there are
     * several files, then the rename into place.
     *
     * @param staging the output's staging directory
     * @param output the output path, for messages
     * @param side side files by name
     * @param files number of container/shard files written
     * @param weightMap tensor name → file name, for the index
     * @param sizes stored bytes of every tensor or component (their sum is the index's total size)
     * @throws UncheckedIOException when the index cannot be written
     */
    private static void finish(AtomicDirectory.Staging staging, Path output, Map<String, byte[]> side, int files,
                               Map<String, String> weightMap, long[] sizes) {
        SideFiles.write(staging.dir(), side);
        if (files > 1) {
            try {
                Files.write(staging.dir().resolve(ShardedCheckpoint.INDEX_FILE),
                        ShardedCheckpointWriter.indexJson(weightMap, LongStream.of(sizes).sum()));
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write " + output + "/" + ShardedCheckpoint.INDEX_FILE + ": "
                        + e.getMessage(), e);
            }
        }
        staging.commit();
    }

    private static void writeHfShard(String input, CheckpointFormat format, HadoopConf hadoop, Map<String, String> md,
                                     Path target, List<String> names) {
        try (Source src = Source.open(input, format, hadoop)) {
            DenseTensors t = src.tensors();
            SafetensorsWriter w = SafetensorsWriter.create(target);
            boolean ok = false;
            try {
                for (String n : names) {
                    w.declare(n, t.dtype(n), t.shape(n));
                }
                w.metadata(md);
                w.writeHeader();
                for (String n : names) {
                    w.write(n, t.read(n));
                }
                w.close();
                ok = true;
            } finally {
                if (!ok) {
                    w.abort();
                }
            }
        }
    }

    /** An input opened on an executor, as dense tensors. */
    private record Source(AutoCloseable handle, DenseTensors tensors) implements AutoCloseable {
        static Source open(String input, boolean sparse, HadoopConf hadoop) {
            return open(input, sparse ? CheckpointFormat.SPARSE : CheckpointFormat.HF, hadoop);
        }

        static Source open(String input, CheckpointFormat format, HadoopConf hadoop) {
            if (format == CheckpointFormat.PARQUET) {
                ParquetShards p = ParquetShards.open(Path.of(input));
                return new Source(p, p);
            }
            if (format == CheckpointFormat.SPARSE) {
                SparseCheckpoint s = SparseCheckpoint.open(Path.of(input));
                return new Source(s, s);
            }
            ShardedCheckpoint c = ShardedCheckpoint.open(input, hadoop.get());
            return new Source(c, DenseTensors.of(c));
        }

        @Override
        public void close() {
            try {
                handle.close();
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /** Executor side: opens the input, writes one part. */
    private static ParquetShardManifest.Part writePart(String input, boolean sparse, HadoopConf hadoop, String staging,
                                                       PartTask t, ParquetShardWriter.Options options) {
        Path dir = Path.of(staging);
        if (sparse) {
            try (SparseCheckpoint s = SparseCheckpoint.open(Path.of(input))) {
                return ParquetShardWriter.writePart(dir, t.index(), t.items(), RowSource.of(s), options);
            }
        }
        try (ShardedCheckpoint c = ShardedCheckpoint.open(input, hadoop.get())) {
            return ParquetShardWriter.writePart(dir, t.index(), t.items(), RowSource.of(c), options);
        }
    }

    private static Path localPath(String input) {
        if (input.startsWith("file:")) {
            return Path.of(java.net.URI.create(input));
        }
        if (input.matches("^[A-Za-z][A-Za-z0-9+.-]*://.*")) {
            throw new InvalidInputException(input + ": a sparse input must be a local directory; copy it locally or "
                    + "convert it to hf first");
        }
        return Path.of(input);
    }
}
