package io.sparkprune.jobs.prune;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.jobs.commit.CommitLog;
import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.formats.SparsityConfigBlock;
import io.sparkprune.pipeline.formats.compressed.CompressedTensorsWriter;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.recipe.OutputFormat;
import io.sparkprune.pipeline.recipe.PruneStage;
import io.sparkprune.pipeline.recipe.TensorSelector;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.io.IOException;
import java.io.ByteArrayOutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.AbstractMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.List;
import java.util.Set;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Writes the pruned checkpoint: the input's files one for one (same shard files, same tensor order,
 * dtypes, shapes and {@code __metadata__}, the same index), with each pruned tensor streamed from
 * its committed staging shards and every other tensor copied by byte range; plus config.json and
 * the tokenizer and generation files beside the weights. Memory stays bounded by
 * {@link DenseAssembly}'s window.
 *
 * <p>Formats ({@code prune.format}, docs/formats.md): the dense checkpoint is always assembled
 * first, in {@code <output>/_assembling/hf}, with config.json carrying the {@code sparsity_config}
 * block; the quality check reads it. {@code sparse} and {@code compressed-tensors} are then written
 * from it (one tensor at a time, codes and grids read back from the staging area) into
 * {@code _assembling/<format>}. Publishing renames: with one format its files go into the output
 * directory itself (as llm-compressor writes one directory), with several each directory becomes
 * {@code <output>/<format>}. Nothing appears in the output directory before every format is complete.
 */
final class OutputAssembler {
    /** Files copied unchanged from the input directory when present. */
    static final List<String> SIDE_FILES = List.of("config.json", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model",
            "added_tokens.json", "modules.json", "sentence_bert_config.json");
    /** Largest safetensors file of the sparse and compressed-tensors outputs before they are sharded. */
    static final long MAX_SHARD_BYTES = 5_000_000_000L;
    private static final String ASSEMBLING = "_assembling";

    private OutputAssembler() {
    }

    /**
     * Refuses, before anything runs, formats that need a local output directory elsewhere.
     *
     * @throws InvalidInputException when sparse or compressed-tensors is asked of a non-local output
     */
    static void checkOutput(FileSystem fs, Path out, List<OutputFormat> formats) {
        boolean local = "file".equals(fs.makeQualified(out).toUri().getScheme());
        if (!local && formats.stream().anyMatch(f -> f != OutputFormat.HF)) {
            throw new InvalidInputException("output " + out + ": --format " + OutputFormat.join(formats)
                    + " is written through the local file system, but the output is on " + fs.getUri().getScheme()
                    + "; write to a local directory, or use --format hf and run sparkprune convert afterwards");
        }
    }

    /**
     * Writes the dense pruned checkpoint to {@code <out>/_assembling/hf} after every layer was committed,
     * config.json with the {@code sparsity_config} block: the safetensors files by {@link DenseAssembly#write}
     * (the prune job itself starts the assembly before the layers: {@link #startDense}).
     *
     * @param sparsity the block ({@link SparsityConfigBlock#build})
     * @param settings the assembly's settings
     * @return the dense directory
     * @throws io.sparkprune.jobs.commit.CorruptCommitException when a staged shard's size or SHA-256
     *     differs from its commit record (nothing is published)
     * @throws IOException on read or write failure
     */
    static Path assembleDense(ShardedCheckpoint in, CommitLog log, FileSystem fs, Path out, ObjectNode sparsity,
                              DenseAssembly.Settings settings) throws IOException {
        Path tmp = freshDenseDirectory(fs, out);
        DenseAssembly.write(in, log, fs, tmp, settings);
        writeSideFiles(in, fs, tmp, sparsity);
        return tmp;
    }

    /** Creates {@code <out>/_assembling/hf} empty (an earlier attempt's assembling directory deleted first). */
    private static Path freshDenseDirectory(FileSystem fs, Path out) throws IOException {
        Path root = new Path(out, ASSEMBLING);
        if (fs.exists(root)) {
            fs.delete(root, true);
        }
        Path tmp = new Path(root, OutputFormat.HF.id());
        fs.mkdirs(tmp);
        return tmp;
    }

    /** Copies the input's side files into {@code tmp}, config.json with the {@code sparsity_config} block. */
    private static void writeSideFiles(ShardedCheckpoint in, FileSystem fs, Path tmp, ObjectNode sparsity)
            throws IOException {
        for (String side : sideFiles(in)) {
            java.util.Optional<byte[]> bytes = in.readSideFile(side, 1L << 30);
            if (bytes.isPresent()) {
                byte[] content = side.equals("config.json")
                        ? SparsityConfigBlock.addTo(bytes.get(), sparsity, in.sideFileLabel(side)) : bytes.get();
                try (FSDataOutputStream o = fs.create(new Path(tmp, side), true)) {
                    o.write(content);
                }
            }
        }
    }

    /**
     * Starts writing the dense pruned checkpoint to {@code <out>/_assembling/hf} before the pruned tensors
     * are committed, so that the output is assembled while the layers are pruned: on a local output
     * directory {@link DenseAssembly.Positional} starts writing the tensors that are not pruned at once and
     * each layer's tensors as {@link DenseRun#commit} hands them over; on another file system nothing is
     * written until {@link DenseRun#finish}, which then runs {@link DenseAssembly#write}. Either way the
     * bytes are those of {@link #assembleDense}.
     *
     * @param in the input checkpoint
     * @param log the run's commit log
     * @param fs the output's file system
     * @param out the output directory
     * @param pruned the names of the input's tensors that the run prunes
     * @param settings the assembly's settings
     * @return the running assembly; close it (a failed run: its files are deleted; the empty
     *     {@code _assembling/hf} directory stays until the next attempt deletes it, as before)
     * @throws IOException when the assembling directory or a file cannot be created
     */
    static DenseRun startDense(ShardedCheckpoint in, CommitLog log, FileSystem fs, Path out, java.util.Set<String> pruned,
                               DenseAssembly.Settings settings) throws IOException {
        Path tmp = freshDenseDirectory(fs, out);
        java.util.Optional<java.nio.file.Path> local = DenseAssembly.localDirectory(fs, tmp);
        DenseAssembly.Positional positional = local.isPresent()
                ? DenseAssembly.Positional.start(in, log, local.get(), settings, pruned) : null;
        return new DenseRun(in, log, fs, tmp, settings, positional);
    }

    /** An output assembly under way ({@link #startDense}). Not thread-safe: the job's thread calls it. */
    static final class DenseRun implements AutoCloseable {
        private final ShardedCheckpoint in;
        private final CommitLog log;
        private final FileSystem fs;
        private final Path tmp;
        private final DenseAssembly.Settings settings;
        private final DenseAssembly.Positional positional;
        private final long t0 = System.nanoTime();

        private DenseRun(ShardedCheckpoint in, CommitLog log, FileSystem fs, Path tmp, DenseAssembly.Settings settings,
                         DenseAssembly.Positional positional) {
            this.in = in;
            this.log = log;
            this.fs = fs;
            this.tmp = tmp;
            this.settings = settings;
            this.positional = positional;
        }

        /**
         * Hands over the shards just committed (a layer's); on a local output their writing starts now.
         *
         * @param shards committed shards by tensor, each list in shard order
         * @throws IllegalStateException when a pruned tensor is handed over twice or its shards do not add up
         * @throws IOException when an earlier piece failed
         */
        void commit(Map<String, List<ShardRecord>> shards) throws IOException {
            if (positional != null) {
                positional.commit(shards);
            }
        }

        /**
         * Finishes the safetensors files (waits for the pieces, fsync, rename) and writes the side files,
         * config.json with the {@code sparsity_config} block.
         *
         * @param sparsity the block ({@link SparsityConfigBlock#build})
         * @return the dense directory
         * @throws io.sparkprune.jobs.commit.CorruptCommitException when a staged shard's size or SHA-256
         *     differs from its commit record (nothing is published)
         * @throws IllegalStateException when a pruned tensor was never handed over
         * @throws IOException on read or write failure
         */
        Path finish(ObjectNode sparsity) throws IOException {
            if (positional != null) {
                long t = System.nanoTime();
                DenseAssembly.Stats stats = positional.finish();
                // (the rate and the wait for pieces span the layer loop: the pieces came as layers were committed)
                DenseAssembly.log("positional path, started before the layers, " + String.format(java.util.Locale.ROOT,
                        "%.2f", (System.nanoTime() - t) / 1e9) + " s of it after the last", settings, stats,
                        (System.nanoTime() - t0) / 1e9);
            } else {
                DenseAssembly.write(in, log, fs, tmp, settings);
            }
            writeSideFiles(in, fs, tmp, sparsity);
            return tmp;
        }

        /** Stops the assembly; unless {@link #finish} succeeded, its safetensors files are deleted. */
        @Override
        public void close() {
            if (positional != null) {
                positional.close();
            }
        }
    }

    /**
     * Writes the other formats from the dense directory, then publishes all of them (see the class comment).
     *
     * @param dense the directory from {@link #assembleDense}
     * @param formats the formats to publish, in order
     * @param originalConfig the input's config.json (compressed-tensors nests the block instead)
     * @param sparsity the {@code sparsity_config} block
     * @return each format's published directory
     */
    static Map<OutputFormat, Path> publish(FileSystem fs, Path out, Path dense, List<OutputFormat> formats, CommitLog log,
                                           ShardedCheckpoint in, PruneStage stage, byte[] originalConfig,
                                           ObjectNode sparsity) throws IOException {
        Path root = new Path(out, ASSEMBLING);
        Map<OutputFormat, Path> staged = new LinkedHashMap<>();
        for (OutputFormat f : formats) {
            if (f == OutputFormat.HF) {
                staged.put(f, dense);
                continue;
            }
            Path target = new Path(root, f.id());
            java.nio.file.Path local = java.nio.file.Paths.get(fs.makeQualified(target).toUri());
            java.nio.file.Path denseLocal = java.nio.file.Paths.get(fs.makeQualified(dense).toUri());
            StagedCodes codes = new StagedCodes(log, in, stage.quantization());
            try (ShardedCheckpoint ck = ShardedCheckpoint.open(denseLocal)) {
                DenseTensors src = DenseTensors.of(ck);
                Map<String, byte[]> side = SideFiles.read(denseLocal);
                if (f == OutputFormat.SPARSE) {
                    SparsityPattern p = stage.pattern();
                    boolean packable = p instanceof SparsityPattern.NofM && stage.quantization().isPresent()
                            && (stage.quantization().get().bits() == 4 || stage.quantization().get().bits() == 8);
                    SparseWriter.write(src, side, ck.shard(ck.files().get(0)).metadata(), new SparseWriter.Options(
                                    TensorSelector.of(codes.pruned(), List.of(), "prune job", "prune.targets"),
                                    Optional.of(SparseEncoding.of(p)), MAX_SHARD_BYTES, stage.sparseCodec()),
                            name -> packable ? codes.load(name) : Optional.empty(), local);
                } else {
                    side.put("config.json", originalConfig);
                    CompressedTensorsWriter.write(src, side, codes.asMap(), Optional.of(sparsity), MAX_SHARD_BYTES, local);
                }
            }
            staged.put(f, target);
        }
        Map<OutputFormat, Path> published = new LinkedHashMap<>();
        if (formats.size() == 1) {
            moveChildren(fs, staged.get(formats.get(0)), out);
            published.put(formats.get(0), out);
        } else {
            for (Map.Entry<OutputFormat, Path> e : staged.entrySet()) {
                Path target = new Path(out, e.getKey().id());
                if (fs.exists(target)) {
                    fs.delete(target, true);
                }
                if (!fs.rename(e.getValue(), target)) {
                    throw new IOException("cannot move " + e.getValue() + " to " + target);
                }
                published.put(e.getKey(), target);
            }
        }
        fs.delete(root, true);
        return published;
    }

    private static void moveChildren(FileSystem fs, Path from, Path out) throws IOException {
        for (org.apache.hadoop.fs.FileStatus st : fs.listStatus(from)) {
            Path target = new Path(out, st.getPath().getName());
            if (fs.exists(target)) {
                fs.delete(target, false);
            }
            if (!fs.rename(st.getPath(), target)) {
                throw new IOException("cannot move " + st.getPath() + " to " + target);
            }
        }
    }

    /** The side files to copy when present: {@link #SIDE_FILES}, plus the index of a sharded checkpoint. */
    private static List<String> sideFiles(ShardedCheckpoint in) {
        List<String> res = new java.util.ArrayList<>(SIDE_FILES);
        if (in.isIndexed()) {
            res.add(ShardedCheckpoint.INDEX_FILE);
        }
        return res;
    }

    /**
     * The quantization codes and grids committed by {@link ShardSolver}, loaded one tensor at a time
     * from the staging area (each shard's size and SHA-256 checked against its marker).
     */
    static final class StagedCodes {
        private final CommitLog log;
        private final ShardedCheckpoint in;
        private final Optional<QuantizationSpec> spec;
        private final List<String> pruned;

        StagedCodes(CommitLog log, ShardedCheckpoint in, Optional<QuantizationSpec> spec) {
            this.log = log;
            this.in = in;
            this.spec = spec;
            this.pruned = log.committedShards().keySet().stream().filter(n -> !ShardSolver.isQuantPart(n)).toList();
        }

        /** @return the pruned checkpoint tensors, sorted by name */
        List<String> pruned() {
            return pruned;
        }

        /**
         * @param name a checkpoint tensor
         * @return its codes, scales (dtype-rounded, fp32) and zero points, when the run quantized it
         */
        Optional<QuantizedWeights> load(String name) {
            if (spec.isEmpty() || !log.committedShards().containsKey(name + ShardSolver.CODES)) {
                return Optional.empty();
            }
            TensorInfo info = in.info(name);
            int rows = (int) info.shape()[0];
            int cols = (int) info.shape()[1];
            byte[] codes = bytes(name + ShardSolver.CODES);
            ByteBuffer sc = ByteBuffer.wrap(bytes(name + ShardSolver.SCALES)).order(ByteOrder.LITTLE_ENDIAN);
            float[] scales = new float[sc.remaining() / 4];
            sc.asFloatBuffer().get(scales);
            ByteBuffer zb = ByteBuffer.wrap(bytes(name + ShardSolver.ZERO_POINTS)).order(ByteOrder.LITTLE_ENDIAN);
            int[] zp = new int[zb.remaining() / 4];
            zb.asIntBuffer().get(zp);
            return Optional.of(new QuantizedWeights(spec.get(), rows, cols, codes, scales, zp));
        }

        private byte[] bytes(String staged) {
            ByteArrayOutputStream o = new ByteArrayOutputStream();
            try {
                log.transferTensor(staged, o);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return o.toByteArray();
        }

        /** @return a map view over the quantized tensors that loads each value when asked (none held) */
        Map<String, QuantizedWeights> asMap() {
            List<String> names = pruned.stream().filter(n -> log.committedShards().containsKey(n + ShardSolver.CODES))
                    .toList();
            return new AbstractMap<>() {
                @Override
                public Set<Map.Entry<String, QuantizedWeights>> entrySet() {
                    return new java.util.AbstractSet<>() {
                        @Override
                        public java.util.Iterator<Map.Entry<String, QuantizedWeights>> iterator() {
                            java.util.Iterator<String> it = names.iterator();
                            return new java.util.Iterator<>() {
                                @Override
                                public boolean hasNext() {
                                    return it.hasNext();
                                }

                                @Override
                                public Map.Entry<String, QuantizedWeights> next() {
                                    String n = it.next();
                                    return new AbstractMap.SimpleImmutableEntry<>(n, load(n).orElseThrow());
                                }
                            };
                        }

                        @Override
                        public int size() {
                            return names.size();
                        }
                    };
                }

                @Override
                public boolean containsKey(Object key) {
                    return names.contains(key);
                }

                @Override
                public QuantizedWeights get(Object key) {
                    return names.contains(key) ? load((String) key).orElseThrow() : null;
                }
            };
        }
    }
}
