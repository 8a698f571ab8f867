package io.sparkprune.pipeline.safetensors;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.apache.hadoop.fs.FileSystem;

/**
 * Writes a Hugging Face sharded checkpoint: tensors split, in declaration order, into files of at
 * most {@code maxShardBytes} tensor bytes each, named {@code model-00001-of-0000N.safetensors},
 * plus {@code model.safetensors.index.json} ({@code {"metadata": {"total_size": bytes},
 * "weight_map": {name: file}}}). When everything fits in one shard the output is a single
 * {@code model.safetensors} without an index, as {@code transformers}' {@code save_pretrained}
 * does.
 *
 * <p>Sharding is greedy, as in {@code transformers}: a tensor goes into the current shard unless
 * that would push it past {@code maxShardBytes}, in which case a new shard starts; a tensor larger
 * than the limit gets a shard of its own. {@code total_size} is the sum of all tensors' byte sizes.
 *
 * <p>Flow (the same state machine as {@link SafetensorsWriter}):
 * {@code create} → {@code declare}* / {@code metadata}* → {@link #planShards()} →
 * {@code write(name, bytes)}* in declaration order → {@link #close()}. Every file is written under
 * a temporary name; {@code close()} renames the shards and then the index (the commit point) into
 * place. On an incomplete tensor or any failure, temporary and already-renamed files are deleted:
 * all or nothing. The output directory must not already hold a checkpoint. Not thread-safe.
 */
public final class ShardedCheckpointWriter implements AutoCloseable {
    private final CheckpointDir dir;
    private final long maxShardBytes;
    private final List<TensorInfo> declared = new ArrayList<>();
    private final Map<String, Integer> indexOf = new HashMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();
    private SafetensorsWriter.State state = SafetensorsWriter.State.DECLARING;
    private int[] shardOf; // per tensor
    private List<List<TensorInfo>> shards;
    private List<String> fileNames;
    private final List<SafetensorsWriter> writers = new ArrayList<>(); // opened shard writers, in order

    private ShardedCheckpointWriter(CheckpointDir dir, long maxShardBytes) {
        if (maxShardBytes < 1) {
            throw new IllegalArgumentException("maxShardBytes must be ≥ 1, got " + maxShardBytes);
        }
        this.dir = dir;
        this.maxShardBytes = maxShardBytes;
    }

    /**
     * Starts a sharded checkpoint in a local directory (created if missing).
     *
     * @param dir output directory; must not already hold {@code *.safetensors} or an index
     * @param maxShardBytes the largest total tensor bytes per shard (e.g. 5 GB = 5_000_000_000,
     *     {@code transformers}' default); ≥ 1
     * @return a writer in state {@code DECLARING}
     * @throws SafetensorsFormatException when the directory already holds a checkpoint
     * @throws IllegalArgumentException when {@code maxShardBytes < 1}
     * @throws UncheckedIOException when the directory cannot be created or listed
     */
    public static ShardedCheckpointWriter create(Path dir, long maxShardBytes) {
        return start(new CheckpointDir.Local(dir), maxShardBytes);
    }

    /**
     * Starts a sharded checkpoint in a directory of a Hadoop file system (created if missing); the
     * caller keeps ownership of {@code fs}. Renames are atomic on HDFS and local file systems,
     * copies on object stores.
     *
     * @param fs the file system
     * @param dir output directory; must not already hold {@code *.safetensors} or an index
     * @param maxShardBytes the largest total tensor bytes per shard; ≥ 1
     * @return a writer in state {@code DECLARING}
     * @throws SafetensorsFormatException when the directory already holds a checkpoint
     * @throws IllegalArgumentException when {@code maxShardBytes < 1}
     * @throws UncheckedIOException when the directory cannot be created or listed
     */
    public static ShardedCheckpointWriter create(FileSystem fs, org.apache.hadoop.fs.Path dir, long maxShardBytes) {
        return start(new CheckpointDir.Hadoop(fs, dir, false), maxShardBytes);
    }

    private static ShardedCheckpointWriter start(CheckpointDir dir, long maxShardBytes) {
        ShardedCheckpointWriter w = new ShardedCheckpointWriter(dir, maxShardBytes);
        try {
            dir.mkdirs();
            List<String> existing = dir.list().stream()
                    .filter(n -> n.endsWith(".safetensors") || n.equals(ShardedCheckpoint.INDEX_FILE)).toList();
            if (!existing.isEmpty()) {
                throw new SafetensorsFormatException(dir.label(), null, "output directory already holds a checkpoint "
                        + existing.subList(0, Math.min(4, existing.size()))
                        + "; write to an empty directory or delete those files first");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare output directory " + dir.label() + ": " + e.getMessage(), e);
        }
        return w;
    }

    /**
     * Writes a whole checkpoint from tensors in memory, in the map's iteration order.
     *
     * @param dir output directory (created if missing; must not already hold a checkpoint)
     * @param maxShardBytes the largest total tensor bytes per shard; ≥ 1
     * @param metadata {@code __metadata__} of every shard (e.g. {@code {"format": "pt"}})
     * @param tensors name → tensor
     * @return tensor name → file name, as in the index
     * @throws SafetensorsFormatException when the directory already holds a checkpoint
     * @throws UncheckedIOException on I/O failure (nothing is left behind)
     */
    public static Map<String, String> write(Path dir, long maxShardBytes, Map<String, String> metadata,
            LinkedHashMap<String, HostTensor> tensors) {
        try (ShardedCheckpointWriter w = create(dir, maxShardBytes)) {
            boolean ok = false;
            try {
                for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
                    w.declare(e.getKey(), e.getValue().dtype(), e.getValue().shape());
                }
                w.metadata(metadata);
                Map<String, String> map = w.planShards();
                for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
                    w.write(e.getKey(), e.getValue());
                }
                ok = true;
                return map;
            } finally {
                if (!ok) {
                    w.abort();
                }
            }
        }
    }

    /**
     * Declares the next tensor.
     *
     * @param name tensor name, unique
     * @param dtype element type
     * @param shape dimensions, each ≥ 0
     * @throws IllegalStateException unless in state {@code DECLARING}
     * @throws IllegalArgumentException on a duplicate or reserved name or a bad shape
     */
    public void declare(String name, DType dtype, long[] shape) {
        Objects.requireNonNull(name, "name");
        if (state != SafetensorsWriter.State.DECLARING) {
            throw illegal("declare a tensor", "every tensor must be declared before planShards(), which already ran");
        }
        if (SafetensorsHeader.METADATA_KEY.equals(name)) {
            throw new IllegalArgumentException(dir.label() + ": '" + name + "' is reserved for metadata");
        }
        if (indexOf.containsKey(name)) {
            throw new IllegalArgumentException(dir.label() + ": tensor '" + name + "' is already declared");
        }
        long bytes;
        try {
            bytes = TensorInfo.byteLengthOf(dtype, shape);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(dir.label() + ": tensor '" + name + "': " + e.getMessage(), e);
        }
        indexOf.put(name, declared.size());
        declared.add(new TensorInfo(name, dtype, shape, 0, bytes)); // offsets fixed per shard later
    }

    /**
     * Adds {@code __metadata__} entries written into every shard.
     *
     * @param entries string keys and values
     * @throws IllegalStateException unless in state {@code DECLARING}
     */
    public void metadata(Map<String, String> entries) {
        if (state != SafetensorsWriter.State.DECLARING) {
            throw illegal("set metadata", "metadata must be set before planShards(), which already ran");
        }
        for (Map.Entry<String, String> e : entries.entrySet()) {
            metadata.put(Objects.requireNonNull(e.getKey()), Objects.requireNonNull(e.getValue()));
        }
    }

    /**
     * Fixes the shard layout; after this, write the tensors in declaration order.
     *
     * @return tensor name → file name (the index's weight map), in declaration order
     * @throws IllegalStateException unless in state {@code DECLARING}
     */
    public Map<String, String> planShards() {
        if (state != SafetensorsWriter.State.DECLARING) {
            throw illegal("plan shards", "planShards() already ran; call write(name, bytes), then close()");
        }
        long[] sizes = new long[declared.size()];
        for (int i = 0; i < sizes.length; i++) {
            sizes[i] = declared.get(i).byteLength();
        }
        int[] layout = layout(sizes, maxShardBytes);
        int n = layout.length == 0 ? 1 : layout[layout.length - 1] + 1;
        shards = new ArrayList<>();
        for (int k = 0; k < n; k++) {
            shards.add(new ArrayList<>()); // possibly one empty: a checkpoint without tensors is one empty file
        }
        for (int i = 0; i < layout.length; i++) {
            shards.get(layout[i]).add(declared.get(i));
        }
        fileNames = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            fileNames.add(fileName(i, n));
        }
        shardOf = new int[declared.size()];
        for (int s = 0; s < n; s++) {
            for (TensorInfo t : shards.get(s)) {
                shardOf[indexOf.get(t.name())] = s;
            }
        }
        state = SafetensorsWriter.State.WRITING;
        return weightMap();
    }

    /**
     * The greedy shard layout of {@link #planShards()}: a tensor goes into the current shard unless
     * that would push it past {@code maxShardBytes}; a tensor larger than the limit gets a shard of
     * its own.
     *
     * @param byteLengths each tensor's byte size, in declaration order
     * @param maxShardBytes the largest total tensor bytes per shard; ≥ 1
     * @return per tensor, its shard number (0-based, non-decreasing); the shard count is the last plus one (one when empty)
     */
    public static int[] layout(long[] byteLengths, long maxShardBytes) {
        int[] shard = new int[byteLengths.length];
        int s = 0;
        long cur = 0;
        boolean empty = true;
        for (int i = 0; i < byteLengths.length; i++) {
            if (!empty && saturatedAdd(cur, byteLengths[i]) > maxShardBytes) {
                s++;
                cur = 0;
            }
            shard[i] = s;
            cur = saturatedAdd(cur, byteLengths[i]);
            empty = false;
        }
        return shard;
    }

    /**
     * @param shard 0-based shard number
     * @param shards the shard count (≥ 1)
     * @return {@code model.safetensors} for a single shard, else {@code model-0000k-of-0000N.safetensors} (k 1-based)
     */
    public static String fileName(int shard, int shards) {
        return shards == 1 ? ShardedCheckpoint.SINGLE_FILE
                : String.format(java.util.Locale.ROOT, "model-%05d-of-%05d.safetensors", shard + 1, shards);
    }

    /**
     * The index file's bytes, as {@link #close()} writes them.
     *
     * @param weightMap tensor name → file name, in declaration order
     * @param totalSize the sum of all tensors' byte sizes
     * @return pretty-printed {@code {"metadata": {"total_size": bytes}, "weight_map": {name: file}}}
     * @throws UncheckedIOException never in practice (in-memory serialization)
     */
    public static byte[] indexJson(Map<String, String> weightMap, long totalSize) {
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.putObject("metadata").put("total_size", totalSize);
        ObjectNode wm = root.putObject("weight_map");
        weightMap.forEach(wm::put);
        try {
            return Json.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(root);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static long saturatedAdd(long a, long b) {
        long r = a + b;
        return ((a ^ r) & (b ^ r)) < 0 ? Long.MAX_VALUE : r;
    }

    /** @return tensor name → file name after {@link #planShards()}, in declaration order */
    public Map<String, String> weightMap() {
        if (fileNames == null) {
            throw illegal("read the weight map", "call planShards() first");
        }
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < declared.size(); i++) {
            m.put(declared.get(i).name(), fileNames.get(shardOf[i]));
        }
        return Collections.unmodifiableMap(m);
    }

    /**
     * Appends a chunk of a tensor's data; tensors are written in declaration order, each in one or
     * more chunks (see {@link SafetensorsWriter#write(String, ByteBuffer)}).
     *
     * @param name the tensor being written
     * @param bytes little-endian element bytes; consumed to its limit
     * @throws IllegalStateException unless in state {@code WRITING}, or when an earlier tensor is
     *     incomplete
     * @throws IllegalArgumentException for an undeclared name or too many bytes
     * @throws UncheckedIOException on I/O failure (everything is then deleted and the writer aborted)
     */
    public void write(String name, ByteBuffer bytes) {
        if (state != SafetensorsWriter.State.WRITING) {
            throw illegal("write tensor data", state == SafetensorsWriter.State.DECLARING
                    ? "call planShards() first" : "create a new ShardedCheckpointWriter");
        }
        Integer i = indexOf.get(name);
        if (i == null) {
            throw new IllegalArgumentException(dir.label() + ": tensor '" + name + "' was not declared");
        }
        int s = shardOf[i];
        if (s < writers.size() - 1) { // its shard is finished, so the tensor is complete
            if (bytes.hasRemaining()) {
                throw new IllegalArgumentException(dir.label() + ": tensor '" + name + "' is already complete ("
                        + declared.get(i).byteLength() + " bytes); got " + bytes.remaining() + " more");
            }
            return;
        }
        TensorInfo inc = firstIncompleteBefore(s);
        if (inc != null) {
            throw new IllegalStateException("cannot write tensor '" + name + "' in state WRITING: tensor '"
                    + inc.name() + "' (declared before it) has " + bytesLeft(inc) + " of " + inc.byteLength()
                    + " bytes left to write; finish it first, tensors are written in declaration order");
        }
        openThrough(s);
        try {
            writers.get(s).write(name, bytes);
        } catch (UncheckedIOException e) {
            abort();
            throw e;
        }
    }

    /**
     * Writes a whole tensor in one call; its dtype and shape must match the declaration.
     *
     * @param name the tensor being written
     * @param tensor data (its buffer is not consumed)
     * @see #write(String, ByteBuffer)
     */
    public void write(String name, HostTensor tensor) {
        Integer i = indexOf.get(name);
        if (i != null && (declared.get(i).dtype() != tensor.dtype()
                || !Arrays.equals(declared.get(i).shape(), tensor.shape()))) {
            throw new IllegalArgumentException(dir.label() + ": tensor '" + name + "' was declared "
                    + declared.get(i).dtype() + " " + Arrays.toString(declared.get(i).shape()) + ", got " + tensor);
        }
        write(name, tensor.data().duplicate());
    }

    /**
     * @return the first tensor of shards {@code [0, s)} that is not completely written, or null.
     *     Shards before the open one are complete; shards after it are not started, so only their
     *     zero-byte tensors count as complete.
     */
    private TensorInfo firstIncompleteBefore(int s) {
        int open = writers.size() - 1;
        if (open >= 0 && open < s) {
            TensorInfo inc = writers.get(open).firstIncomplete();
            if (inc != null) {
                return inc;
            }
        }
        for (int k = open + 1; k < s; k++) {
            for (TensorInfo t : shards.get(k)) {
                if (t.byteLength() > 0) {
                    return t;
                }
            }
        }
        return null;
    }

    private long bytesLeft(TensorInfo t) {
        int s = shardOf[indexOf.get(t.name())];
        return s < writers.size() ? writers.get(s).bytesRemaining(t.name()) : t.byteLength();
    }

    /** Finishes the open shard and opens shards through {@code s} (those between hold only zero-byte tensors). */
    private void openThrough(int s) {
        int open = writers.size() - 1;
        if (s <= open) {
            return;
        }
        try {
            if (open >= 0) {
                writers.get(open).close();
            }
            for (int k = open + 1; k <= s; k++) {
                SafetensorsWriter w = newShardWriter(k);
                writers.add(w);
                for (TensorInfo t : shards.get(k)) {
                    w.declare(t.name(), t.dtype(), t.shape());
                }
                w.metadata(metadata);
                w.writeHeader();
                if (k < s) {
                    w.close();
                }
            }
        } catch (RuntimeException e) {
            abort();
            throw e;
        }
    }

    private SafetensorsWriter newShardWriter(int k) {
        String file = fileNames.get(k);
        return new SafetensorsWriter(dir.fileLabel(file), () -> dir.create(file), false);
    }

    /**
     * Finishes the checkpoint: checks every tensor is complete, finishes every shard, writes the
     * index (for more than one shard), then renames the shards and finally the index into place.
     * Does nothing when already closed or aborted.
     *
     * @throws IllegalStateException when {@link #planShards()} never ran or a tensor is incomplete
     *     (everything is deleted and the writer aborted)
     * @throws UncheckedIOException on I/O failure (everything is deleted and the writer aborted)
     */
    @Override
    public void close() {
        if (state == SafetensorsWriter.State.CLOSED || state == SafetensorsWriter.State.ABORTED) {
            return;
        }
        if (state == SafetensorsWriter.State.DECLARING) {
            abort();
            throw illegal("close", "planShards() was never called, so nothing was written");
        }
        TensorInfo inc = firstIncompleteBefore(shards.size());
        if (inc != null) {
            long left = bytesLeft(inc);
            abort();
            throw new IllegalStateException("cannot close in state WRITING: tensor '" + inc.name() + "' has " + left
                    + " of " + inc.byteLength() + " bytes left to write; write every declared tensor before close(). "
                    + "The temporary files were deleted; nothing was written to " + dir.label());
        }
        openThrough(shards.size() - 1);
        try {
            writers.get(writers.size() - 1).close();
        } catch (RuntimeException e) {
            abort();
            throw e;
        }
        OutputSink index = null;
        List<SafetensorsWriter> published = new ArrayList<>();
        try {
            if (shards.size() > 1) {
                index = dir.create(ShardedCheckpoint.INDEX_FILE);
                index.write(ByteBuffer.wrap(indexJson()));
                index.finish();
            }
            for (SafetensorsWriter w : writers) {
                w.publish();
                published.add(w);
            }
            if (index != null) {
                index.publish();
            }
        } catch (IOException e) {
            for (SafetensorsWriter w : writers) {
                w.discard(published.contains(w));
            }
            if (index != null) {
                index.discard(false);
            }
            state = SafetensorsWriter.State.ABORTED;
            throw new UncheckedIOException("cannot commit checkpoint " + dir.label() + " (" + e.getMessage()
                    + "); all its files were deleted", e);
        }
        state = SafetensorsWriter.State.CLOSED;
    }

    private byte[] indexJson() {
        long total = 0;
        for (TensorInfo t : declared) {
            total = Math.addExact(total, t.byteLength());
        }
        return indexJson(weightMap(), total);
    }

    /** Deletes every temporary file; nothing appears in the directory. Idempotent once aborted. */
    public void abort() {
        if (state == SafetensorsWriter.State.CLOSED) {
            throw illegal("abort", "the checkpoint is already committed");
        }
        for (SafetensorsWriter w : writers) {
            w.discard(false);
        }
        state = SafetensorsWriter.State.ABORTED;
    }

    /** @return the current state (the same states as {@link SafetensorsWriter}) */
    public SafetensorsWriter.State state() {
        return state;
    }

    private IllegalStateException illegal(String action, String fix) {
        if (state == SafetensorsWriter.State.CLOSED) {
            fix = "the checkpoint is committed; create a new ShardedCheckpointWriter";
        } else if (state == SafetensorsWriter.State.ABORTED) {
            fix = "the writer was aborted (or failed) and its files deleted; create a new ShardedCheckpointWriter";
        }
        return new IllegalStateException("cannot " + action + " in state " + state + ": " + fix);
    }
}
