package io.sparkprune.pipeline.safetensors;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
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
 * Writes one safetensors file, streaming tensor data in declaration order, with no partial output
 * ever visible at the target.
 *
 * <p>The header holds every tensor's offsets and comes first, so the flow is an explicit state
 * machine (like parquet-java's {@code ParquetFileWriter.STATE}):
 * <pre>
 *   create(target)                                      → DECLARING
 *   DECLARING: declare(name, dtype, shape)*, metadata(map)*
 *              writeHeader()                            → WRITING
 *   WRITING:   write(name, bytes)* — tensors in declaration order, each in one or more chunks
 *              close()                                  → CLOSED  (file renamed into place)
 *   any state: abort()                                  → ABORTED (temporary file deleted)
 * </pre>
 * A call that is illegal in the current state throws {@link IllegalStateException} naming the
 * state and the expected call, e.g. {@code "cannot write tensor data in state DECLARING: call
 * writeHeader() first"}, and changes nothing.
 *
 * <p>Output: the file is written under a hidden temporary name in the target's directory
 * ({@code .<name>.<random>.tmp}), created at {@link #writeHeader()}; {@link #close()} checks that
 * every declared tensor is complete, fsyncs, and renames it to the target (atomically on local and
 * HDFS file systems, replacing an existing file). If a tensor is incomplete, or on any I/O error,
 * the temporary file is deleted and nothing appears at the target. Data is laid out in declaration
 * order, contiguous from offset 0; the header is padded with spaces so the data section starts at a
 * multiple of 8 bytes, as the reference writer does.
 *
 * <p>Argument errors (unknown or duplicate name, negative dimension, too many bytes for a tensor)
 * throw {@link IllegalArgumentException} and change nothing; I/O failures abort the writer and
 * throw {@link UncheckedIOException}. Not thread-safe.
 */
public final class SafetensorsWriter implements AutoCloseable {

    /** Writer states; see the class comment for the transitions. */
    public enum State {
        /** Created: declare tensors and metadata, then {@code writeHeader()}. */
        DECLARING,
        /** Header written: {@code write(name, bytes)} each tensor in declaration order, then {@code close()}. */
        WRITING,
        /** Closed successfully: the file is at its target. */
        CLOSED,
        /** Aborted or failed: the temporary file was deleted; nothing was written to the target. */
        ABORTED;

        IllegalStateException illegal(String action) {
            String fix = switch (this) {
                case DECLARING -> action.equals("close") ? "writeHeader() was never called, so no file was written"
                        : "call writeHeader() first";
                case WRITING -> switch (action) {
                    case "declare a tensor" -> "every tensor must be declared before writeHeader(), which already ran";
                    case "set metadata" -> "metadata must be set before writeHeader(), which already ran";
                    case "write the header" -> "the header is already written; call write(name, bytes) for each tensor,"
                            + " then close()";
                    default -> "call write(name, bytes) or close()";
                };
                case CLOSED -> "the writer is closed and its file published; create a new SafetensorsWriter";
                case ABORTED -> "the writer was aborted (or failed) and its temporary file deleted; create a new "
                        + "SafetensorsWriter";
            };
            return new IllegalStateException("cannot " + action + " in state " + name() + ": " + fix);
        }
    }

    /** Opens the temporary output; called at {@link #writeHeader()}. */
    @FunctionalInterface
    interface SinkFactory {
        OutputSink open() throws IOException;
    }

    private final String target;
    private final SinkFactory sinkFactory;
    private final boolean publishOnClose;
    private final List<TensorInfo> declared = new ArrayList<>();
    private final Map<String, Integer> indexOf = new HashMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();
    private long[] written;
    private int current; // first tensor not yet complete, in WRITING
    private long nextOffset;
    private State state = State.DECLARING;
    private OutputSink sink;

    SafetensorsWriter(String target, SinkFactory sinkFactory, boolean publishOnClose) {
        this.target = target;
        this.sinkFactory = sinkFactory;
        this.publishOnClose = publishOnClose;
    }

    /**
     * Starts writing a local file.
     *
     * @param target the final file path; its directory must exist; an existing file is replaced at
     *     {@link #close()}
     * @return a writer in state {@link State#DECLARING}
     * @throws SafetensorsFormatException when the target's directory does not exist or the target is
     *     a directory
     */
    public static SafetensorsWriter create(Path target) {
        Path abs = target.toAbsolutePath();
        checkLocalTarget(abs);
        return new SafetensorsWriter(abs.toString(), () -> new OutputSink.Local(abs), true);
    }

    static void checkLocalTarget(Path abs) {
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new SafetensorsFormatException(abs.toString(), null, "output directory " + dir
                    + " does not exist; create it first");
        }
        if (Files.isDirectory(abs)) {
            throw new SafetensorsFormatException(abs.toString(), null, "output target is a directory; give a file "
                    + "name such as model.safetensors");
        }
    }

    /**
     * Starts writing a file on a Hadoop file system; the temporary file is created next to the
     * target and renamed at {@link #close()} (an existing target is deleted first; the rename is
     * atomic on HDFS and local file systems, a copy on object stores).
     *
     * @param fs the file system
     * @param target the final file path; its parent directory is created by the file system if needed
     * @return a writer in state {@link State#DECLARING}
     */
    public static SafetensorsWriter create(FileSystem fs, org.apache.hadoop.fs.Path target) {
        return new SafetensorsWriter(fs.makeQualified(target).toString(), () -> new OutputSink.Hadoop(fs, target),
                true);
    }

    /**
     * Writes a whole file from tensors in memory, in the map's iteration order.
     *
     * @param target the final file path; its directory must exist
     * @param metadata {@code __metadata__} entries (e.g. {@code {"format": "pt"}}), may be empty
     * @param tensors name → tensor, in the order to lay them out
     * @throws IllegalArgumentException on an invalid name
     * @throws SafetensorsFormatException when the target's directory does not exist
     * @throws UncheckedIOException on I/O failure (nothing is left at the target)
     */
    public static void write(Path target, Map<String, String> metadata, LinkedHashMap<String, HostTensor> tensors) {
        try (SafetensorsWriter w = create(target)) {
            writeAll(w, metadata, tensors);
        }
    }

    static void writeAll(SafetensorsWriter w, Map<String, String> metadata, Map<String, HostTensor> tensors) {
        boolean ok = false;
        try {
            for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
                w.declare(e.getKey(), e.getValue().dtype(), e.getValue().shape());
            }
            w.metadata(metadata);
            w.writeHeader();
            for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
                w.write(e.getKey(), e.getValue());
            }
            ok = true;
        } finally {
            if (!ok) {
                w.abort();
            }
        }
    }

    /**
     * Declares the next tensor; its data will follow the previously declared one.
     *
     * @param name tensor name, unique, not {@code "__metadata__"}
     * @param dtype element type
     * @param shape dimensions, each ≥ 0 ({@code []} for a scalar)
     * @return the tensor's header entry with its data offsets
     * @throws IllegalStateException unless in {@link State#DECLARING}
     * @throws IllegalArgumentException on a duplicate or reserved name, a negative dimension, or a
     *     size that overflows
     */
    public TensorInfo declare(String name, DType dtype, long[] shape) {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(shape, "shape");
        if (state != State.DECLARING) {
            throw state.illegal("declare a tensor");
        }
        if (SafetensorsHeader.METADATA_KEY.equals(name)) {
            throw new IllegalArgumentException(target + ": '" + name + "' is reserved for metadata, not a tensor name");
        }
        if (indexOf.containsKey(name)) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' is already declared");
        }
        long bytes;
        try {
            bytes = TensorInfo.byteLengthOf(dtype, shape);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "': " + e.getMessage(), e);
        }
        long end;
        try {
            end = Math.addExact(nextOffset, bytes);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' " + Arrays.toString(shape)
                    + " makes the data section exceed 2^63 bytes", e);
        }
        TensorInfo info = new TensorInfo(name, dtype, shape, nextOffset, end);
        nextOffset = end;
        indexOf.put(name, declared.size());
        declared.add(info);
        return info;
    }

    /**
     * Adds {@code __metadata__} entries (later calls add to and overwrite earlier ones).
     *
     * @param entries string keys and values, neither null
     * @throws IllegalStateException unless in {@link State#DECLARING}
     */
    public void metadata(Map<String, String> entries) {
        if (state != State.DECLARING) {
            throw state.illegal("set metadata");
        }
        for (Map.Entry<String, String> e : entries.entrySet()) {
            metadata.put(Objects.requireNonNull(e.getKey(), "metadata key"),
                    Objects.requireNonNull(e.getValue(), () -> "metadata value of '" + e.getKey() + "'"));
        }
    }

    /**
     * Creates the temporary file and writes the 8-byte length prefix and the JSON header.
     *
     * @throws IllegalStateException unless in {@link State#DECLARING}
     * @throws UncheckedIOException on I/O failure (the writer is then {@link State#ABORTED})
     */
    public void writeHeader() {
        if (state != State.DECLARING) {
            throw state.illegal("write the header");
        }
        byte[] json = SafetensorsHeader.encode(metadata, declared);
        ByteBuffer prefix = ByteBuffer.allocate(SafetensorsHeader.PREFIX_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(0, json.length);
        try {
            sink = sinkFactory.open();
            sink.write(prefix);
            sink.write(ByteBuffer.wrap(json));
        } catch (IOException e) {
            throw fail("write the header", e);
        }
        written = new long[declared.size()];
        state = State.WRITING;
        skipComplete();
    }

    /**
     * Appends a chunk of a tensor's data. Tensors are written in declaration order; a tensor may
     * be written in several chunks, and the next tensor may start only when the current one is
     * complete. Zero-byte tensors need no call.
     *
     * @param name the tensor being written
     * @param bytes little-endian element bytes; all remaining bytes are written and its position
     *     advances to its limit
     * @throws IllegalStateException unless in {@link State#WRITING}, or when an earlier tensor is
     *     still incomplete
     * @throws IllegalArgumentException for an undeclared name, or more bytes than the tensor has left
     * @throws UncheckedIOException on I/O failure (the writer is then {@link State#ABORTED})
     */
    public void write(String name, ByteBuffer bytes) {
        Objects.requireNonNull(bytes, "bytes");
        if (state != State.WRITING) {
            throw state.illegal("write tensor data");
        }
        int i = indexOfDeclared(name);
        TensorInfo t = declared.get(i);
        long left = t.byteLength() - written[i];
        if (i > current) {
            TensorInfo c = declared.get(current);
            throw new IllegalStateException("cannot write tensor '" + name + "' in state WRITING: tensor '" + c.name()
                    + "' (declared before it) has " + written[current] + " of " + c.byteLength()
                    + " bytes written; finish it first, tensors are written in declaration order");
        }
        if (bytes.remaining() > left) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' " + t.dtype() + " "
                    + Arrays.toString(t.shape()) + " has " + left + " of " + t.byteLength()
                    + " bytes left to write, got " + bytes.remaining());
        }
        int n = bytes.remaining();
        try {
            sink.write(bytes);
        } catch (IOException e) {
            throw fail("write tensor '" + name + "'", e);
        }
        written[i] += n;
        skipComplete();
    }

    /**
     * Writes a whole tensor in one call.
     *
     * @param name the tensor being written; nothing of it written yet
     * @param tensor data with the declared dtype and shape (its buffer is not consumed)
     * @throws IllegalArgumentException when dtype or shape differ from the declaration
     * @see #write(String, ByteBuffer)
     */
    public void write(String name, HostTensor tensor) {
        if (state != State.WRITING) {
            throw state.illegal("write tensor data");
        }
        TensorInfo t = declared.get(indexOfDeclared(name));
        if (t.dtype() != tensor.dtype() || !Arrays.equals(t.shape(), tensor.shape())) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' was declared " + t.dtype() + " "
                    + Arrays.toString(t.shape()) + ", got " + tensor);
        }
        write(name, tensor.data().duplicate());
    }

    /**
     * @param name a declared tensor
     * @return bytes of it not yet written (its full size before {@link #writeHeader()})
     * @throws IllegalArgumentException for an undeclared name
     */
    public long bytesRemaining(String name) {
        int i = indexOfDeclared(name);
        return declared.get(i).byteLength() - (written == null ? 0 : written[i]);
    }

    private int indexOfDeclared(String name) {
        Integer i = indexOf.get(name);
        if (i == null) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' was not declared; declare(name, "
                    + "dtype, shape) every tensor before writeHeader()");
        }
        return i;
    }

    private void skipComplete() {
        while (current < declared.size() && written[current] == declared.get(current).byteLength()) {
            current++;
        }
    }

    /** @return the first declared tensor not yet completely written, or null when all are */
    TensorInfo firstIncomplete() {
        return state == State.WRITING && current < declared.size() ? declared.get(current) : null;
    }

    /**
     * Finishes the file: checks every declared tensor is complete, fsyncs, and renames the
     * temporary file to the target. In {@link State#CLOSED} or {@link State#ABORTED} it does
     * nothing.
     *
     * @throws IllegalStateException in {@link State#DECLARING} (no header was written) or when a
     *     tensor is incomplete; the temporary file is deleted and the writer is then
     *     {@link State#ABORTED}
     * @throws UncheckedIOException on I/O failure (the writer is then {@link State#ABORTED})
     */
    @Override
    public void close() {
        if (state == State.CLOSED || state == State.ABORTED) {
            return;
        }
        if (state == State.DECLARING) {
            IllegalStateException e = state.illegal("close");
            abort();
            throw e;
        }
        TensorInfo incomplete = firstIncomplete();
        if (incomplete != null) {
            int i = indexOf.get(incomplete.name());
            abort();
            throw new IllegalStateException("cannot close in state WRITING: tensor '" + incomplete.name() + "' has "
                    + written[i] + " of " + incomplete.byteLength() + " bytes written"
                    + (declared.size() - i > 1 ? " and " + (declared.size() - i - 1) + " later tensors are pending" : "")
                    + "; write every declared tensor before close(). The temporary file was deleted; nothing was "
                    + "written to " + target);
        }
        try {
            sink.finish();
            if (publishOnClose) {
                sink.publish();
            }
        } catch (IOException e) {
            throw fail("finish", e);
        }
        state = State.CLOSED;
    }

    /**
     * Abandons the file: deletes the temporary file; nothing appears at the target. Idempotent in
     * {@link State#ABORTED}.
     *
     * @throws IllegalStateException in {@link State#CLOSED} (the file is already published)
     */
    public void abort() {
        if (state == State.CLOSED && publishOnClose) {
            throw state.illegal("abort");
        }
        if (sink != null) {
            sink.discard(false);
        }
        state = State.ABORTED;
    }

    /** Renames the finished temporary file into place (deferred mode, after {@link #close()}). */
    void publish() throws IOException {
        if (state != State.CLOSED || publishOnClose) {
            throw new IllegalStateException("publish() needs a deferred writer in state CLOSED, got " + state);
        }
        sink.publish();
    }

    /** Deletes the temporary file and, if {@code alsoTarget}, a published target (deferred mode rollback). */
    void discard(boolean alsoTarget) {
        if (sink != null) {
            sink.discard(alsoTarget);
        }
        state = State.ABORTED;
    }

    private UncheckedIOException fail(String action, IOException e) {
        if (sink != null) {
            sink.discard(false);
        }
        state = State.ABORTED;
        return new UncheckedIOException("cannot " + action + " for " + target + " (" + e.getMessage()
                + "); the temporary file was deleted, nothing was written", e);
    }

    /** @return the current state */
    public State state() {
        return state;
    }

    /** @return the target file's label (absolute path or qualified URI) */
    public String target() {
        return target;
    }

    /** @return the declared tensors in declaration (= data) order, unmodifiable */
    public List<TensorInfo> declared() {
        return Collections.unmodifiableList(declared);
    }
}
