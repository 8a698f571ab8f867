package io.sparkprune.pipeline.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import io.sparkprune.kernels.HostTensor;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;

/**
 * A Hugging Face checkpoint directory of safetensors files, read as one set of named tensors.
 *
 * <p>Layout, in the order the {@code transformers} loader looks for it:
 * <ol>
 *   <li>{@code model.safetensors}: a single file holding every tensor;</li>
 *   <li>{@code model.safetensors.index.json}: {@code {"metadata": {"total_size": bytes, ...},
 *       "weight_map": {tensor name: shard file name}}} with shards such as
 *       {@code model-00001-of-00003.safetensors};</li>
 *   <li>otherwise exactly one {@code *.safetensors} file.</li>
 * </ol>
 * A path to a {@code .safetensors} file instead of a directory opens that file alone; a path to
 * the index file opens its directory.
 *
 * <p>Shards are opened lazily, on the first access to one of their tensors, and stay open until
 * {@link #close()}. When a shard is opened it is checked against the index: every tensor the index
 * maps to it must be in it, and every tensor in it must be mapped to it (a tensor stored in two
 * shards, or a stale index, is an error). {@link #validate()} opens and checks every shard at
 * once. All checks throw {@link SafetensorsFormatException} naming the directory or file and the
 * tensor. Safe for concurrent reads.
 */
public final class ShardedCheckpoint implements AutoCloseable {
    /** Index file name of a sharded checkpoint. */
    public static final String INDEX_FILE = "model.safetensors.index.json";
    /** File name of a single-file checkpoint. */
    public static final String SINGLE_FILE = "model.safetensors";
    /** Largest accepted index file, in bytes. */
    public static final long MAX_INDEX_BYTES = 100_000_000L;

    private final CheckpointDir dir;
    private final String indexFile; // null for a single file
    private final Map<String, String> weightMap; // tensor → file, stable order
    private final List<String> files;
    private final Map<String, String> indexMetadata;
    private final OptionalLong totalSize;
    private final Map<String, SafetensorsFile> opened = new LinkedHashMap<>();
    private boolean closed;

    private ShardedCheckpoint(CheckpointDir dir, String indexFile, Map<String, String> weightMap, List<String> files,
            Map<String, String> indexMetadata, OptionalLong totalSize) {
        this.dir = dir;
        this.indexFile = indexFile;
        this.weightMap = Collections.unmodifiableMap(weightMap);
        this.files = List.copyOf(files);
        this.indexMetadata = Collections.unmodifiableMap(indexMetadata);
        this.totalSize = totalSize;
    }

    /**
     * Opens a local checkpoint directory (or a single {@code .safetensors} file); shards are
     * memory-mapped.
     *
     * @param dirOrFile the directory, or one {@code .safetensors} file
     * @return the checkpoint; close it
     * @throws SafetensorsFormatException when the directory is missing, holds no checkpoint, or its
     *     index is malformed or names missing files
     * @throws UncheckedIOException on other I/O failures
     */
    public static ShardedCheckpoint open(Path dirOrFile) {
        Path abs = dirOrFile.toAbsolutePath();
        if (Files.isRegularFile(abs) && abs.getFileName().toString().equals(INDEX_FILE)) {
            return open(new CheckpointDir.Local(abs.getParent()));
        }
        if (Files.isRegularFile(abs)) {
            return single(new CheckpointDir.Local(abs.getParent()), abs.getFileName().toString());
        }
        return open(new CheckpointDir.Local(abs));
    }

    /**
     * Opens a checkpoint by local path or URI: a plain path or {@code file:} URI as in
     * {@link #open(Path)}; any other scheme ({@code hdfs://}, {@code s3a://}) through its Hadoop
     * file system (the cached, shared instance, not closed by {@link #close()} unless
     * {@code fs.<scheme>.impl.disable.cache} is true), with positioned range reads.
     *
     * @param uriOrPath the directory (or single file)
     * @param conf Hadoop configuration
     * @return the checkpoint; close it
     * @throws SafetensorsFormatException as {@link #open(Path)}
     * @throws UncheckedIOException on other I/O failures
     */
    public static ShardedCheckpoint open(String uriOrPath, Configuration conf) {
        Optional<Path> local = Locations.localPath(uriOrPath);
        if (local.isPresent()) {
            return open(local.get());
        }
        org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(uriOrPath);
        FileSystem fs;
        try {
            fs = p.getFileSystem(conf);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot get the Hadoop file system for " + uriOrPath + ": "
                    + e.getMessage(), e);
        }
        return open(fs, p, Locations.cacheDisabled(fs.getUri().getScheme(), conf));
    }

    /**
     * Opens a checkpoint directory (or single {@code .safetensors} file) on a given Hadoop file
     * system, whatever its scheme, with positioned range reads. The caller keeps ownership of
     * {@code fs}.
     *
     * @param fs the file system
     * @param dirOrFile the directory, or one {@code .safetensors} file
     * @return the checkpoint; close it
     * @throws SafetensorsFormatException as {@link #open(Path)}
     * @throws UncheckedIOException on other I/O failures
     */
    public static ShardedCheckpoint open(FileSystem fs, org.apache.hadoop.fs.Path dirOrFile) {
        return open(fs, dirOrFile, false);
    }

    private static ShardedCheckpoint open(FileSystem fs, org.apache.hadoop.fs.Path p, boolean ownFs) {
        boolean isFile;
        try {
            isFile = fs.getFileStatus(p).isFile();
        } catch (FileNotFoundException e) {
            isFile = false; // reported below as a missing directory
        } catch (IOException e) {
            throw new UncheckedIOException("cannot stat " + p + ": " + e.getMessage(), e);
        }
        if (isFile && p.getName().equals(INDEX_FILE)) {
            return open(new CheckpointDir.Hadoop(fs, p.getParent(), ownFs));
        }
        if (isFile) {
            return single(new CheckpointDir.Hadoop(fs, p.getParent(), ownFs), p.getName());
        }
        return open(new CheckpointDir.Hadoop(fs, p, ownFs));
    }

    private static ShardedCheckpoint open(CheckpointDir dir) {
        try {
            if (!dir.isDirectory()) {
                throw new SafetensorsFormatException(dir.label(), null, "checkpoint directory not found; check the path");
            }
            if (dir.isFile(SINGLE_FILE)) {
                return single(dir, SINGLE_FILE);
            }
            if (dir.isFile(INDEX_FILE)) {
                return indexed(dir);
            }
            List<String> candidates = dir.list().stream().filter(n -> n.endsWith(".safetensors")).toList();
            if (candidates.size() == 1) {
                return single(dir, candidates.get(0));
            }
            if (candidates.isEmpty()) {
                throw new SafetensorsFormatException(dir.label(), null, "no " + SINGLE_FILE + ", " + INDEX_FILE
                        + " or other .safetensors file in this directory; point at a Hugging Face checkpoint directory");
            }
            throw new SafetensorsFormatException(dir.label(), null, candidates.size() + " .safetensors files "
                    + abbreviate(candidates) + " but no " + INDEX_FILE + "; add the index that maps tensors to files "
                    + "(it comes with the checkpoint), or open one file directly");
        } catch (IOException e) {
            dir.close();
            throw new UncheckedIOException("cannot list checkpoint directory " + dir.label() + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            try {
                dir.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    private static ShardedCheckpoint single(CheckpointDir dir, String file) {
        SafetensorsFile f;
        try {
            f = dir.open(file);
        } catch (RuntimeException e) {
            try {
                dir.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        Map<String, String> map = new LinkedHashMap<>();
        for (TensorInfo t : f.tensors()) {
            map.put(t.name(), file);
        }
        ShardedCheckpoint c = new ShardedCheckpoint(dir, null, map, List.of(file), Map.of(), OptionalLong.empty());
        c.opened.put(file, f);
        return c;
    }

    private static ShardedCheckpoint indexed(CheckpointDir dir) throws IOException {
        String label = dir.fileLabel(INDEX_FILE);
        JsonNode root;
        try {
            byte[] bytes = dir.readSmall(INDEX_FILE, MAX_INDEX_BYTES);
            root = Json.parse(bytes, 0, bytes.length);
        } catch (CharacterCodingException e) {
            throw new SafetensorsFormatException(label, null, "is not valid UTF-8; restore the index from the "
                    + "original checkpoint", e);
        } catch (JsonProcessingException e) {
            String duplicate = Json.duplicateKey(e);
            if (duplicate != null) {
                throw new SafetensorsFormatException(label, duplicate, "appears more than once in the index; each "
                        + "tensor must map to exactly one shard: restore the index from the original checkpoint", e);
            }
            throw new SafetensorsFormatException(label, null, "is not valid JSON (" + e.getOriginalMessage()
                    + "); restore the index from the original checkpoint", e);
        } catch (FileNotFoundException | NoSuchFileException e) {
            throw new SafetensorsFormatException(label, null, "disappeared while opening; check the directory", e);
        }
        if (root == null || !root.isObject()) {
            throw new SafetensorsFormatException(label, null, "must be a JSON object with \"weight_map\"; restore the "
                    + "index from the original checkpoint");
        }
        JsonNode wm = root.get("weight_map");
        if (wm == null || !wm.isObject()) {
            throw new SafetensorsFormatException(label, "weight_map", "must be an object mapping tensor names to "
                    + "shard file names, got " + (wm == null ? "nothing" : kind(wm))
                    + "; restore the index from the original checkpoint");
        }
        Map<String, String> map = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : wm.properties()) {
            JsonNode v = e.getValue();
            if (!v.isTextual()) {
                throw new SafetensorsFormatException(label, e.getKey(), "weight_map value must be a shard file name "
                        + "string, got " + kind(v) + "; restore the index from the original checkpoint");
            }
            String file = v.textValue();
            if (file.isEmpty() || file.contains("/") || file.contains("\\") || file.equals(".") || file.equals("..")) {
                throw new SafetensorsFormatException(label, e.getKey(), "weight_map value \"" + file
                        + "\" is not a plain file name in the checkpoint directory; shard paths must not contain "
                        + "directories");
            }
            map.put(e.getKey(), file);
        }
        Map<String, String> meta = new LinkedHashMap<>();
        OptionalLong total = OptionalLong.empty();
        JsonNode md = root.get("metadata");
        if (md != null && !md.isNull()) {
            if (!md.isObject()) {
                throw new SafetensorsFormatException(label, "metadata", "must be an object, got " + kind(md)
                        + "; restore the index from the original checkpoint");
            }
            for (Map.Entry<String, JsonNode> e : md.properties()) {
                meta.put(e.getKey(), e.getValue().isTextual() ? e.getValue().textValue() : e.getValue().toString());
            }
            JsonNode ts = md.get("total_size");
            if (ts != null && ts.isIntegralNumber() && ts.canConvertToLong() && ts.longValue() >= 0) {
                total = OptionalLong.of(ts.longValue());
            }
        }
        Map<String, Integer> perFile = new LinkedHashMap<>();
        Map<String, String> example = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : map.entrySet()) {
            perFile.merge(e.getValue(), 1, Integer::sum);
            example.putIfAbsent(e.getValue(), e.getKey());
        }
        for (Map.Entry<String, Integer> e : perFile.entrySet()) {
            if (!dir.isFile(e.getKey())) {
                throw new SafetensorsFormatException(label, example.get(e.getKey()), "the index maps " + e.getValue()
                        + " tensor(s), e.g. this one, to " + e.getKey() + ", which is missing from " + dir.label()
                        + "; download or copy the missing shard");
            }
        }
        return new ShardedCheckpoint(dir, INDEX_FILE, map, List.copyOf(perFile.keySet()), meta, total);
    }

    private static String kind(JsonNode n) {
        return n.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
    }

    private static String abbreviate(List<String> names) {
        return names.size() <= 4 ? names.toString() : names.subList(0, 4) + " and " + (names.size() - 4) + " more";
    }

    /** @return the directory label (local path or qualified URI) used in messages */
    public String source() {
        return dir.label();
    }

    /** @return whether the checkpoint has a {@code model.safetensors.index.json} */
    public boolean isIndexed() {
        return indexFile != null;
    }

    /**
     * @return tensor names, in a stable order: the index's {@code weight_map} order for an indexed
     *     checkpoint, data-offset order for a single file (unmodifiable)
     */
    public List<String> tensorNames() {
        return List.copyOf(weightMap.keySet());
    }

    /** @return tensor name → shard file name, in {@link #tensorNames()} order (unmodifiable) */
    public Map<String, String> weightMap() {
        return weightMap;
    }

    /**
     * @return the file names (relative to the directory): for an indexed checkpoint the shards in
     *     order of first appearance in {@link #weightMap()}, else the single file
     */
    public List<String> files() {
        return files;
    }

    /**
     * @param name tensor name
     * @return whether the checkpoint has that tensor (by the index, without opening a shard)
     */
    public boolean contains(String name) {
        return weightMap.containsKey(name);
    }

    /**
     * @param name tensor name
     * @return the shard file name holding it (relative to the directory)
     * @throws SafetensorsFormatException when the checkpoint has no such tensor
     */
    public String fileOf(String name) {
        String f = weightMap.get(name);
        if (f == null) {
            throw new SafetensorsFormatException(source(), name, "no such tensor in this checkpoint (it has "
                    + weightMap.size() + " tensors); check the name, e.g. with `sparkprune inspect`");
        }
        return f;
    }

    /** @return the index's {@code metadata} entries, non-string values as JSON text (empty without an index) */
    public Map<String, String> indexMetadata() {
        return indexMetadata;
    }

    /** @return the index's {@code metadata.total_size} when present and a non-negative integer */
    public OptionalLong indexTotalSize() {
        return totalSize;
    }

    /**
     * Returns a shard, opening and checking it against the index on first use. The checkpoint owns
     * it: do not close it.
     *
     * @param file shard file name, one of {@link #files()}
     * @return the open shard
     * @throws SafetensorsFormatException when the shard is malformed or disagrees with the index
     * @throws IllegalArgumentException when {@code file} is not a shard of this checkpoint
     */
    public synchronized SafetensorsFile shard(String file) {
        if (closed) {
            throw new IllegalStateException("checkpoint " + source() + " is closed");
        }
        SafetensorsFile f = opened.get(file);
        if (f != null) {
            return f;
        }
        if (!files.contains(file)) {
            throw new IllegalArgumentException(source() + ": " + file + " is not a shard of this checkpoint " + files);
        }
        f = dir.open(file);
        try {
            checkAgainstIndex(file, f);
        } catch (RuntimeException e) {
            try {
                f.close();
            } catch (RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        opened.put(file, f);
        return f;
    }

    private void checkAgainstIndex(String file, SafetensorsFile f) {
        String label = dir.fileLabel(INDEX_FILE);
        for (Map.Entry<String, String> e : weightMap.entrySet()) {
            if (e.getValue().equals(file) && f.find(e.getKey()).isEmpty()) {
                throw new SafetensorsFormatException(label, e.getKey(), "the index maps this tensor to " + file
                        + ", but that file does not contain it; the index is stale or the shard is wrong: restore "
                        + "both from the original checkpoint");
            }
        }
        for (TensorInfo t : f.tensors()) {
            String mapped = weightMap.get(t.name());
            if (mapped == null) {
                throw new SafetensorsFormatException(f.source(), t.name(), "this tensor is stored in " + file
                        + " but missing from " + INDEX_FILE + "; the index is stale: restore it from the original "
                        + "checkpoint");
            }
            if (!mapped.equals(file)) {
                throw new SafetensorsFormatException(f.source(), t.name(), "this tensor is present in two shards, "
                        + file + " and " + mapped + " (where the index maps it); a tensor must be stored in exactly "
                        + "one shard: restore the checkpoint");
            }
        }
    }

    /**
     * Opens every shard and checks it against the index (see the class comment).
     *
     * @throws SafetensorsFormatException on the first inconsistency
     */
    public void validate() {
        for (String f : files) {
            shard(f);
        }
    }

    /**
     * @param name tensor name
     * @return its header entry (offsets relative to its shard's data section)
     * @throws SafetensorsFormatException when missing or the shard is invalid
     */
    public TensorInfo info(String name) {
        return shard(fileOf(name)).info(name);
    }

    /**
     * Reads a whole tensor; see {@link SafetensorsFile#read(String)}.
     *
     * @param name tensor name
     * @return the tensor, read-only little-endian data
     */
    public HostTensor read(String name) {
        return shard(fileOf(name)).read(name);
    }

    /**
     * Reads rows {@code [start, start + count)} of a tensor; see
     * {@link SafetensorsFile#readRows(String, long, long)}.
     *
     * @param name tensor name
     * @param start first row
     * @param count number of rows
     * @return shape {@code [count, ...rest]}
     */
    public HostTensor readRows(String name, long start, long count) {
        return shard(fileOf(name)).readRows(name, start, count);
    }

    /**
     * Reads raw bytes of a tensor; see {@link SafetensorsFile#readBytes(String, long, int)}.
     *
     * @param name tensor name
     * @param byteOffsetInTensor first byte within the tensor
     * @param length byte count
     * @return a read-only little-endian buffer
     */
    public ByteBuffer readBytes(String name, long byteOffsetInTensor, int length) {
        return shard(fileOf(name)).readBytes(name, byteOffsetInTensor, length);
    }

    /**
     * Reads a small file that sits beside the weights, such as {@code config.json} or
     * {@code tokenizer.json}, through the same file system as the checkpoint.
     *
     * @param name plain file name in the checkpoint directory
     * @param maxBytes largest size accepted
     * @return the file's bytes, or empty when there is no such file
     * @throws SafetensorsFormatException when the file is larger than {@code maxBytes}
     * @throws java.io.UncheckedIOException when it cannot be read
     */
    public Optional<byte[]> readSideFile(String name, long maxBytes) {
        if (name.contains("/")) {
            throw new IllegalArgumentException("side file must be a plain file name: " + name);
        }
        try {
            return dir.isFile(name) ? Optional.of(dir.readSmall(name, maxBytes)) : Optional.empty();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + dir.fileLabel(name) + ": " + e.getMessage(), e);
        }
    }

    /**
     * @param name plain file name in the checkpoint directory
     * @return its label (path or URI) for messages
     */
    public String sideFileLabel(String name) {
        return dir.fileLabel(name);
    }

    /** Closes every opened shard (and an owned Hadoop file system). Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException first = null;
        List<SafetensorsFile> all = new ArrayList<>(opened.values());
        opened.clear();
        for (SafetensorsFile f : all) {
            try {
                f.close();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        try {
            dir.close();
        } catch (RuntimeException e) {
            if (first == null) {
                first = e;
            } else {
                first.addSuppressed(e);
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public String toString() {
        return "ShardedCheckpoint[" + source() + ", " + weightMap.size() + " tensors in " + files.size() + " file(s)]";
    }
}
