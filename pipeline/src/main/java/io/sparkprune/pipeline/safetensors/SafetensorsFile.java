package io.sparkprune.pipeline.safetensors;

import io.sparkprune.kernels.HostTensor;
import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;

/**
 * A safetensors file opened for reading: the validated header plus byte-range reads of tensors,
 * whole or by rows.
 *
 * <p>Two back ends, one API:
 * <ul>
 *   <li>a local file ({@link #open(Path)}, or a plain path / {@code file:} URI given to
 *       {@link #open(String, Configuration)}) is memory-mapped read-only in windows of at most
 *       1 GiB, mapped on first use, so files and tensors larger than 2 GiB work; a read inside one
 *       window is a zero-copy view of the mapping, a read spanning windows is stitched into one
 *       heap buffer;</li>
 *   <li>any other Hadoop URI ({@code hdfs://}, {@code s3a://}, ...) or an explicit
 *       {@link FileSystem} ({@link #open(FileSystem, org.apache.hadoop.fs.Path)}) is read with
 *       positioned {@code FSDataInputStream.readFully(position, ...)} range reads into fresh heap
 *       buffers; nothing but the header is read at open.</li>
 * </ul>
 *
 * <p>One read returns at most {@link #MAX_READ_BYTES} bytes (a Java buffer's limit); read larger
 * tensors with {@link #readRows} in shards. Returned buffers and tensors are little-endian and
 * read-only; mapped views stay valid after {@link #close()} (the mapping is released when they are
 * unreachable), but, as with any memory-mapped file, the file must not be truncated or rewritten
 * while they are in use.
 *
 * <p>Errors: a missing, truncated or malformed file throws {@link SafetensorsFormatException} naming
 * the file (and tensor); other I/O failures throw {@link UncheckedIOException} naming the file;
 * out-of-range row or byte arguments throw {@link IllegalArgumentException}. Instances are safe for
 * concurrent reads.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Default mapping window: 1 GiB. */
    public static final int DEFAULT_WINDOW_BYTES = 1 << 30;
    /** Largest single read, in bytes: the largest array a JVM reliably allocates. */
    public static final int MAX_READ_BYTES = Integer.MAX_VALUE - 8;

    private final ByteSource source;
    private final SafetensorsHeader header;
    private volatile boolean closed;

    private SafetensorsFile(ByteSource source, SafetensorsHeader header) {
        this.source = source;
        this.header = header;
    }

    /**
     * Opens a local file with memory-mapped reads (1 GiB windows).
     *
     * @param path the {@code .safetensors} file
     * @return the open file; close it
     * @throws SafetensorsFormatException when the file is missing, unreadable, a directory, or not a
     *     valid safetensors file
     * @throws UncheckedIOException on other I/O failures
     */
    public static SafetensorsFile open(Path path) {
        return open(path, DEFAULT_WINDOW_BYTES);
    }

    /** As {@link #open(Path)} with a chosen window size (tests use a few KiB to exercise stitching). */
    static SafetensorsFile open(Path path, int windowBytes) {
        String label = path.toString();
        if (Files.isDirectory(path)) {
            throw new SafetensorsFormatException(label, null, "is a directory, not a .safetensors file; pass the file, "
                    + "or open the checkpoint directory with ShardedCheckpoint.open");
        }
        FileChannel channel;
        try {
            channel = FileChannel.open(path, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new SafetensorsFormatException(label, null, "file not found; check the path", e);
        } catch (AccessDeniedException e) {
            throw new SafetensorsFormatException(label, null, "permission denied; make the file readable", e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open " + label + ": " + e.getMessage(), e);
        }
        try {
            return load(new ByteSource.Mapped(label, channel, windowBytes));
        } catch (RuntimeException | Error e) {
            closeQuietly(channel, e);
            throw e;
        } catch (EOFException e) {
            closeQuietly(channel, e);
            throw truncated(label, null, e);
        } catch (IOException e) {
            closeQuietly(channel, e);
            throw new UncheckedIOException("cannot read " + label + ": " + e.getMessage(), e);
        }
    }

    /**
     * Opens a file by local path or URI. A plain path or a {@code file:} URI is memory-mapped as
     * in {@link #open(Path)}; any other scheme is read through
     * {@code new org.apache.hadoop.fs.Path(uri).getFileSystem(conf)} (the cached, shared instance,
     * which is not closed by {@link #close()} unless {@code fs.<scheme>.impl.disable.cache} is
     * true).
     *
     * @param uriOrPath e.g. {@code /models/m.safetensors}, {@code file:///models/m.safetensors},
     *     {@code hdfs://nn:8020/models/m.safetensors}, {@code s3a://bucket/m.safetensors}
     * @param conf Hadoop configuration (credentials, endpoints)
     * @return the open file; close it
     * @throws SafetensorsFormatException when the file is missing or not a valid safetensors file
     * @throws UncheckedIOException on other I/O failures
     */
    public static SafetensorsFile open(String uriOrPath, Configuration conf) {
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
        boolean owned = Locations.cacheDisabled(fs.getUri().getScheme(), conf);
        try {
            return open(fs, p, owned);
        } catch (RuntimeException e) {
            if (owned) {
                closeQuietly(fs, e);
            }
            throw e;
        }
    }

    /**
     * Opens a file on a given Hadoop file system with positioned range reads, whatever its scheme
     * ({@code file:} included). The caller keeps ownership of {@code fs}.
     *
     * @param fs the file system (e.g. {@code FileSystem.get(uri, conf)} or a
     *     {@code RawLocalFileSystem})
     * @param path the file
     * @return the open file; close it
     * @throws SafetensorsFormatException when the file is missing or not a valid safetensors file
     * @throws UncheckedIOException on other I/O failures
     */
    public static SafetensorsFile open(FileSystem fs, org.apache.hadoop.fs.Path path) {
        return open(fs, path, false);
    }

    private static SafetensorsFile open(FileSystem fs, org.apache.hadoop.fs.Path path, boolean ownFs) {
        String label = fs.makeQualified(path).toString();
        FSDataInputStream in;
        FileStatus status;
        try {
            status = fs.getFileStatus(path);
            if (status.isDirectory()) {
                throw new SafetensorsFormatException(label, null, "is a directory, not a .safetensors file; pass the "
                        + "file, or open the checkpoint directory with ShardedCheckpoint.open");
            }
            in = fs.openFile(path)
                    .withFileStatus(status)
                    .opt("fs.option.openfile.read.policy", "random")
                    .build()
                    .get();
        } catch (FileNotFoundException e) {
            throw new SafetensorsFormatException(label, null, "file not found; check the path", e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open " + label + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new UncheckedIOException("interrupted while opening " + label, new java.io.InterruptedIOException());
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof FileNotFoundException) {
                throw new SafetensorsFormatException(label, null, "file not found; check the path", c);
            }
            IOException io = c instanceof IOException x ? x : new IOException(c);
            throw new UncheckedIOException("cannot open " + label + ": " + c, io);
        }
        ByteSource.Hadoop src = new ByteSource.Hadoop(label, in, status.getLen(), ownFs ? fs : null);
        try {
            return load(src);
        } catch (RuntimeException | Error e) {
            closeQuietly(in, e);
            throw e;
        } catch (EOFException e) {
            closeQuietly(in, e);
            throw truncated(label, null, e);
        } catch (IOException e) {
            closeQuietly(in, e);
            throw new UncheckedIOException("cannot read " + label + ": " + e.getMessage(), e);
        }
    }

    /** Reads a file held in memory (tests, fuzzing). */
    static SafetensorsFile fromBytes(byte[] bytes, String label) {
        try {
            return load(new ByteSource.Heap(label, bytes));
        } catch (IOException e) {
            throw new UncheckedIOException(e); // heap reads do not fail
        }
    }

    private static SafetensorsFile load(ByteSource src) throws IOException {
        long length = src.length();
        String label = src.label();
        if (length < SafetensorsHeader.PREFIX_BYTES) {
            SafetensorsHeader.validateHeaderLength(0, length, label); // throws: too short
        }
        byte[] prefix = new byte[SafetensorsHeader.PREFIX_BYTES];
        src.read(0, prefix, 0, prefix.length);
        long n = SafetensorsHeader.validateHeaderLength(
                ByteBuffer.wrap(prefix).order(ByteOrder.LITTLE_ENDIAN).getLong(), length, label);
        byte[] json = ReadBuffers.allocate(n, length, label);
        src.read(SafetensorsHeader.PREFIX_BYTES, json, 0, json.length);
        return new SafetensorsFile(src, SafetensorsHeader.parse(json, length, label));
    }

    /** @return the file label used in messages: the local path, or the qualified URI */
    public String source() {
        return source.label();
    }

    /** @return the validated header */
    public SafetensorsHeader header() {
        return header;
    }

    /** @return the file length in bytes */
    public long fileLength() {
        return header.fileLength();
    }

    /** @return all tensors in data-offset order (unmodifiable) */
    public List<TensorInfo> tensors() {
        return header.tensors();
    }

    /**
     * @param name tensor name
     * @return the tensor's entry, or empty when the file has no such tensor
     */
    public Optional<TensorInfo> find(String name) {
        return header.find(name);
    }

    /**
     * @param name tensor name
     * @return the tensor's entry
     * @throws SafetensorsFormatException naming the file and tensor when it is not in the file
     */
    public TensorInfo info(String name) {
        return header.find(name).orElseThrow(() -> new SafetensorsFormatException(source(), name,
                "no such tensor in this file (it has " + header.tensors().size()
                        + " tensors); check the name against the checkpoint, e.g. with `sparkprune inspect`"));
    }

    /** @return the header's {@code __metadata__} entries (unmodifiable; empty when absent) */
    public Map<String, String> metadata() {
        return header.metadata();
    }

    /**
     * Reads a whole tensor.
     *
     * @param name tensor name
     * @return the tensor (dtype and shape from the header), read-only little-endian data
     * @throws SafetensorsFormatException when the tensor is missing or the file was truncated
     * @throws IllegalArgumentException when the tensor is larger than {@link #MAX_READ_BYTES}: read
     *     it with {@link #readRows}
     * @throws UncheckedIOException on other I/O failures
     */
    public HostTensor read(String name) {
        TensorInfo t = info(name);
        if (t.byteLength() > MAX_READ_BYTES) {
            String hint = t.rank() == 0 ? "" : "; read it in row shards with readRows(name, start, count) of at most "
                    + (t.rowBytes() == 0 ? t.rows() : MAX_READ_BYTES / t.rowBytes()) + " rows";
            throw new IllegalArgumentException(source() + ": tensor '" + name + "' is " + t.byteLength()
                    + " bytes, more than one read returns (" + MAX_READ_BYTES + ")" + hint);
        }
        return new HostTensor(t.dtype(), t.shape(), range(t, 0, (int) t.byteLength()));
    }

    /**
     * Reads contiguous rows (indices of the outermost dimension) of a tensor: for shape
     * {@code [d0, d1, ..., dk]} the result has shape {@code [rowCount, d1, ..., dk]} and holds
     * rows {@code [rowStart, rowStart + rowCount)}.
     *
     * @param name tensor name; the tensor has at least one dimension
     * @param rowStart first row, {@code 0 ≤ rowStart ≤ d0}
     * @param rowCount rows to read, {@code 0 ≤ rowCount ≤ d0 - rowStart}, and at most
     *     {@link #MAX_READ_BYTES} bytes in all
     * @return the row shard, read-only little-endian data
     * @throws SafetensorsFormatException when the tensor is missing or the file was truncated
     * @throws IllegalArgumentException for a scalar, an out-of-range row range, or too many bytes
     * @throws UncheckedIOException on other I/O failures
     */
    public HostTensor readRows(String name, long rowStart, long rowCount) {
        TensorInfo t = info(name);
        if (t.rank() == 0) {
            throw new IllegalArgumentException(source() + ": tensor '" + name + "' is a scalar; use read(name)");
        }
        long rows = t.rows();
        if (rowStart < 0 || rowCount < 0 || rowStart > rows || rowCount > rows - rowStart) {
            throw new IllegalArgumentException(source() + ": tensor '" + name + "' " + Arrays.toString(t.shape())
                    + ": rowStart " + rowStart + " and rowCount " + rowCount + " select rows outside [0, " + rows
                    + ")");
        }
        long rowBytes = t.rowBytes();
        if (rowBytes != 0 && rowCount > MAX_READ_BYTES / rowBytes) {
            throw new IllegalArgumentException(source() + ": tensor '" + name + "': " + rowCount + " rows of "
                    + rowBytes + " bytes exceed one read (" + MAX_READ_BYTES + " bytes); read at most "
                    + (MAX_READ_BYTES / rowBytes) + " rows at a time");
        }
        long[] shape = t.shape();
        shape[0] = rowCount;
        return new HostTensor(t.dtype(), shape, range(t, rowStart * rowBytes, (int) (rowCount * rowBytes)));
    }

    /**
     * Reads raw bytes of a tensor.
     *
     * @param name tensor name
     * @param byteOffsetInTensor first byte, relative to the tensor's start, {@code ≥ 0}
     * @param length bytes to read, {@code ≥ 0}, ending within the tensor
     * @return a read-only little-endian buffer with {@code remaining() == length}
     * @throws SafetensorsFormatException when the tensor is missing or the file was truncated
     * @throws IllegalArgumentException when the range is outside the tensor
     * @throws UncheckedIOException on other I/O failures
     */
    public ByteBuffer readBytes(String name, long byteOffsetInTensor, int length) {
        TensorInfo t = info(name);
        if (byteOffsetInTensor < 0 || length < 0 || byteOffsetInTensor > t.byteLength()
                || length > t.byteLength() - byteOffsetInTensor) {
            throw new IllegalArgumentException(source() + ": tensor '" + name + "': byteOffsetInTensor "
                    + byteOffsetInTensor + " and length " + length + " select bytes outside [0, " + t.byteLength() + ")");
        }
        return range(t, byteOffsetInTensor, length);
    }

    private ByteBuffer range(TensorInfo t, long offsetInTensor, int length) {
        if (closed) {
            throw new IllegalStateException(source() + " is closed; open it again to read '" + t.name() + "'");
        }
        long position = t.fileOffset(header.dataSectionOffset()) + offsetInTensor;
        try {
            return source.view(position, length);
        } catch (EOFException e) {
            throw truncated(source(), t.name(), e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read tensor '" + t.name() + "' from " + source() + ": "
                    + e.getMessage(), e);
        }
    }

    private static SafetensorsFormatException truncated(String label, String tensor, EOFException e) {
        return new SafetensorsFormatException(label, tensor, "the file ended early (" + e.getMessage()
                + "); it is shorter than when it was opened, truncated or being rewritten: copy it again", e);
    }

    /** Releases the file handle (and an owned Hadoop file system). Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            source.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot close " + source() + ": " + e.getMessage(), e);
        }
    }

    private static void closeQuietly(AutoCloseable c, Throwable primary) {
        try {
            c.close();
        } catch (Exception e) {
            primary.addSuppressed(e);
        }
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + source() + ", " + header.tensors().size() + " tensors]";
    }
}
