package io.sparkprune.jobs.convert;

import io.sparkprune.jobs.prune.HadoopConf;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.formats.parquet.ParquetShardManifest;
import io.sparkprune.pipeline.formats.parquet.ParquetShardWriter;
import io.sparkprune.pipeline.formats.parquet.RowSource;
import io.sparkprune.pipeline.formats.parquet.WorkItem;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparseManifest;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.io.Serializable;
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
 * Conversion to Parquet shards as a Spark job, for checkpoints too large for one process. The
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
            } catch (RuntimeException e) {
                throw typedCause(e).orElseThrow(() -> e);
            }
            parts.sort(Comparator.comparing(ParquetShardManifest.Part::file));
            ParquetShardManifest m = w.finish(metadata, tensors, side, parts);
            return new Outcome(m, tasks.size());
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

    /**
     * @param e a failure from a Spark action
     * @return the first {@link InvalidInputException} in its cause chain (a task's typed error), if any
     */
    static Optional<InvalidInputException> typedCause(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (c instanceof InvalidInputException i) {
                return Optional.of(i);
            }
        }
        return Optional.empty();
    }
}
