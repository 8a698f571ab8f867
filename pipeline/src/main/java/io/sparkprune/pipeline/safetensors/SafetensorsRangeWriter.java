package io.sparkprune.pipeline.safetensors;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Writes one local safetensors file whose layout is fixed up front, by positional writes of
 * independent byte ranges that may come from several threads at once and in any order; the result
 * is byte for byte the file {@link SafetensorsWriter} writes for the same tensors, metadata and
 * data.
 *
 * <p>Flow (an explicit state machine, like {@link SafetensorsWriter}'s):
 * <pre>
 *   create(target, metadata, tensors)        → OPEN      (temporary file created, header written)
 *   OPEN:     write(name, offset, bytes)*    — any order, any thread, disjoint ranges
 *             finish()                       → FINISHED  (every byte checked present, fsync, closed)
 *   FINISHED: publish()                      → PUBLISHED (renamed to the target, directory fsynced)
 *   OPEN:     close() = finish() + publish() → PUBLISHED
 *   any state but PUBLISHED: abort()         → ABORTED   (temporary file deleted)
 *   any state: discard(true)                 → ABORTED   (temporary file and a published target deleted)
 * </pre>
 * {@link #finish()} and {@link #publish()} are separate so that a caller writing several files can
 * make them all durable first and publish none if one fails.
 *
 * <p>Layout: tensors contiguous from offset 0 of the data section in the given order, the header
 * encoded as {@link SafetensorsWriter} encodes it (metadata first, spaces padding the data section
 * to a multiple of 8 bytes). The file is written under a hidden temporary name in the target's
 * directory ({@code .<name>.<random>.tmp}) through one {@link java.nio.channels.FileChannel}; each
 * {@link #write} is a positional write ({@code pwrite(2)}: a direct buffer, e.g. a memory-mapped
 * input, goes to the kernel without a copy in Java; a heap buffer is copied through the JDK's
 * per-thread temporary direct buffer, so callers should pass heap buffers in slices of a few MiB).
 *
 * <p>Checks: every write must lie inside its tensor's range, and the bytes written to a tensor
 * are counted: {@link #write} refuses bytes past a tensor's size, {@link #finish()} refuses a tensor
 * with fewer bytes written than its size and a file whose length is not the header plus the data
 * section. Ranges must not overlap: the count catches a missing or surplus byte, not one range
 * written twice in place of another. Argument errors throw {@link IllegalArgumentException} and
 * change nothing; an illegal call for the state {@link IllegalStateException} naming the state;
 * I/O failures abort the writer (temporary file deleted) and throw {@link UncheckedIOException}.
 * {@link #write} is thread-safe; the state transitions are synchronized.
 */
public final class SafetensorsRangeWriter implements AutoCloseable {

    /** Writer states; see the class comment for the transitions. */
    public enum State {
        /** Header written: write ranges, then {@code finish()} or {@code close()}. */
        OPEN,
        /** Complete, durable and closed under its temporary name: {@code publish()} it. */
        FINISHED,
        /** Renamed to its target. */
        PUBLISHED,
        /** Aborted or failed: the temporary file (and, after {@code discard(true)}, the target) deleted. */
        ABORTED
    }

    private final String target;
    private final OutputSink.Local sink;
    private final List<TensorInfo> tensors;
    private final Map<String, Integer> indexOf;
    private final long dataOffset;
    private final AtomicLongArray written;
    private volatile State state = State.OPEN;

    private SafetensorsRangeWriter(String target, OutputSink.Local sink, List<TensorInfo> tensors,
                                   Map<String, Integer> indexOf, long dataOffset) {
        this.target = target;
        this.sink = sink;
        this.tensors = tensors;
        this.indexOf = indexOf;
        this.dataOffset = dataOffset;
        this.written = new AtomicLongArray(tensors.size());
    }

    /**
     * Creates the temporary file next to {@code target} and writes the 8-byte length prefix and the
     * JSON header.
     *
     * @param target the final file path; its directory must exist; an existing file is replaced at
     *     {@link #publish()}
     * @param metadata {@code __metadata__} entries, may be empty
     * @param tensors name, dtype and shape of each tensor, in data order (their offsets are ignored
     *     and laid out anew, contiguous from 0)
     * @return a writer in state {@link State#OPEN}
     * @throws IllegalArgumentException on a duplicate or reserved name, a negative dimension, or a
     *     data section that overflows
     * @throws SafetensorsFormatException when the target's directory does not exist or the target is
     *     a directory
     * @throws UncheckedIOException when the temporary file cannot be created or written (nothing is
     *     left behind)
     */
    public static SafetensorsRangeWriter create(Path target, Map<String, String> metadata, List<TensorInfo> tensors) {
        Path abs = target.toAbsolutePath();
        SafetensorsWriter.checkLocalTarget(abs);
        List<TensorInfo> laid = new ArrayList<>(tensors.size());
        Map<String, Integer> indexOf = new HashMap<>();
        long next = 0;
        for (TensorInfo t : tensors) {
            Objects.requireNonNull(t, "tensor");
            if (SafetensorsHeader.METADATA_KEY.equals(t.name())) {
                throw new IllegalArgumentException(abs + ": '" + t.name() + "' is reserved for metadata, not a tensor "
                        + "name");
            }
            if (indexOf.putIfAbsent(t.name(), laid.size()) != null) {
                throw new IllegalArgumentException(abs + ": tensor '" + t.name() + "' is listed twice");
            }
            long bytes;
            try {
                bytes = TensorInfo.byteLengthOf(t.dtype(), t.shape());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(abs + ": tensor '" + t.name() + "': " + e.getMessage(), e);
            }
            long end;
            try {
                end = Math.addExact(next, bytes);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException(abs + ": tensor '" + t.name() + "' " + Arrays.toString(t.shape())
                        + " makes the data section exceed 2^63 bytes", e);
            }
            laid.add(new TensorInfo(t.name(), t.dtype(), t.shape(), next, end));
            next = end;
        }
        Map<String, String> meta = new LinkedHashMap<>();
        metadata.forEach((k, v) -> meta.put(Objects.requireNonNull(k, "metadata key"),
                Objects.requireNonNull(v, () -> "metadata value of '" + k + "'")));
        byte[] json = SafetensorsHeader.encode(meta, laid);
        ByteBuffer head = ByteBuffer.allocate(SafetensorsHeader.PREFIX_BYTES + json.length)
                .order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(json.length).put(json).flip();
        OutputSink.Local sink = null;
        try {
            sink = new OutputSink.Local(abs);
            sink.writeAt(head, 0);
        } catch (IOException e) {
            if (sink != null) {
                sink.discard(false);
            }
            throw new UncheckedIOException("cannot write the header of " + abs + " (" + e.getMessage()
                    + "); the temporary file was deleted, nothing was written", e);
        }
        return new SafetensorsRangeWriter(abs.toString(), sink, Collections.unmodifiableList(laid), indexOf,
                SafetensorsHeader.PREFIX_BYTES + (long) json.length);
    }

    /**
     * Writes {@code bytes} at byte {@code offsetInTensor} of tensor {@code name}. Thread-safe; ranges
     * of the same or different tensors may be written at once and in any order, but must not overlap.
     *
     * @param name a listed tensor
     * @param offsetInTensor byte offset inside the tensor's data, &gt;= 0
     * @param bytes little-endian element bytes; all remaining bytes are written and its position
     *     advances to its limit
     * @throws IllegalStateException unless in {@link State#OPEN}
     * @throws IllegalArgumentException for an unknown name, a range outside the tensor, or more bytes
     *     than the tensor has left unwritten (nothing is written then)
     * @throws UncheckedIOException on I/O failure (the writer is then {@link State#ABORTED})
     */
    public void write(String name, long offsetInTensor, ByteBuffer bytes) {
        Objects.requireNonNull(bytes, "bytes");
        State s = state;
        if (s != State.OPEN) {
            throw illegal(s, "write tensor data");
        }
        int i = index(name);
        TensorInfo t = tensors.get(i);
        int n = bytes.remaining();
        if (offsetInTensor < 0 || offsetInTensor > t.byteLength() - n) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' " + t.dtype() + " "
                    + Arrays.toString(t.shape()) + " has " + t.byteLength() + " bytes, cannot write " + n
                    + " bytes at offset " + offsetInTensor);
        }
        long after = written.addAndGet(i, n);
        if (after > t.byteLength()) {
            written.addAndGet(i, -n);
            throw new IllegalArgumentException(target + ": tensor '" + name + "' has " + t.byteLength()
                    + " bytes, but " + after + " were written to it: overlapping ranges; write each byte once");
        }
        try {
            sink.writeAt(bytes, dataOffset + t.dataBegin() + offsetInTensor);
        } catch (IOException e) {
            throw fail("write tensor '" + name + "'", e);
        }
    }

    /**
     * Checks that every tensor is complete and the file has its full length, fsyncs and closes the
     * temporary file. Call once every {@link #write} has returned.
     *
     * @throws IllegalStateException unless in {@link State#OPEN}, or when a tensor is incomplete (the
     *     writer is then {@link State#ABORTED}, its temporary file deleted)
     * @throws UncheckedIOException on I/O failure (the writer is then {@link State#ABORTED})
     */
    public synchronized void finish() {
        if (state != State.OPEN) {
            throw illegal(state, "finish");
        }
        for (int i = 0; i < tensors.size(); i++) {
            TensorInfo t = tensors.get(i);
            if (written.get(i) != t.byteLength()) {
                abort();
                throw new IllegalStateException("cannot finish " + target + ": tensor '" + t.name() + "' has "
                        + written.get(i) + " of " + t.byteLength() + " bytes written; write every byte of every "
                        + "tensor first. The temporary file was deleted; nothing was written");
            }
        }
        long expected = fileLength();
        try {
            long size = sink.size();
            if (size != expected) {
                abort();
                throw new IllegalStateException("cannot finish " + target + ": the file has " + size
                        + " bytes, the header and data section need " + expected + " (overlapping ranges?). The "
                        + "temporary file was deleted; nothing was written");
            }
            sink.finish();
        } catch (IOException e) {
            throw fail("finish", e);
        }
        state = State.FINISHED;
    }

    /**
     * Renames the finished temporary file to the target (atomically where the file system can,
     * replacing an existing file) and fsyncs the directory.
     *
     * @throws IllegalStateException unless in {@link State#FINISHED}
     * @throws UncheckedIOException on I/O failure (the writer is then {@link State#ABORTED})
     */
    public synchronized void publish() {
        if (state != State.FINISHED) {
            throw illegal(state, "publish");
        }
        try {
            sink.publish();
        } catch (IOException e) {
            throw fail("publish", e);
        }
        state = State.PUBLISHED;
    }

    /**
     * {@link #finish()} then {@link #publish()}; does nothing in {@link State#PUBLISHED} or
     * {@link State#ABORTED}.
     *
     * @throws IllegalStateException when a tensor is incomplete (see {@link #finish()})
     * @throws UncheckedIOException on I/O failure
     */
    @Override
    public synchronized void close() {
        if (state == State.PUBLISHED || state == State.ABORTED) {
            return;
        }
        if (state == State.OPEN) {
            finish();
        }
        publish();
    }

    /**
     * Abandons the file: deletes the temporary file; nothing appears at the target. Idempotent.
     *
     * @throws IllegalStateException in {@link State#PUBLISHED} (use {@link #discard(boolean)})
     */
    public synchronized void abort() {
        if (state == State.PUBLISHED) {
            throw illegal(state, "abort");
        }
        discard(false);
    }

    /**
     * Deletes the temporary file and, when {@code alsoTarget}, the target (a file this writer
     * published, to roll back a set of files); never throws.
     *
     * @param alsoTarget whether to delete the target too
     */
    public synchronized void discard(boolean alsoTarget) {
        sink.discard(alsoTarget && state == State.PUBLISHED);
        state = State.ABORTED;
    }

    private UncheckedIOException fail(String action, IOException e) {
        synchronized (this) {
            if (state != State.PUBLISHED) {
                sink.discard(false);
                state = State.ABORTED;
            }
        }
        return new UncheckedIOException("cannot " + action + " for " + target + " (" + e.getMessage()
                + "); the temporary file was deleted, nothing was written", e);
    }

    private IllegalStateException illegal(State s, String action) {
        String fix = switch (s) {
            case OPEN -> "call finish() first";
            case FINISHED -> "the file is finished; call publish()";
            case PUBLISHED -> "the file is published; create a new writer";
            case ABORTED -> "the writer was aborted (or failed) and its temporary file deleted; create a new writer";
        };
        return new IllegalStateException("cannot " + action + " " + target + " in state " + s + ": " + fix);
    }

    private int index(String name) {
        Integer i = indexOf.get(name);
        if (i == null) {
            throw new IllegalArgumentException(target + ": tensor '" + name + "' is not in this file's header; "
                    + "list every tensor at create()");
        }
        return i;
    }

    /** @return the file's full length: prefix, header and data section, in bytes */
    public long fileLength() {
        return dataOffset + (tensors.isEmpty() ? 0 : tensors.get(tensors.size() - 1).dataEnd());
    }

    /** @return byte offset of the data section in the file (8-byte prefix plus header) */
    public long dataSectionOffset() {
        return dataOffset;
    }

    /** @return the tensors with their offsets, in data order, unmodifiable */
    public List<TensorInfo> tensors() {
        return tensors;
    }

    /** @return the current state */
    public State state() {
        return state;
    }

    /** @return the target file's absolute path */
    public String target() {
        return target;
    }

    /** @return the temporary file being written (tests) */
    Path temp() {
        return sink.temp();
    }
}
