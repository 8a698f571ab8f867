package io.sparkprune.pipeline.safetensors;

import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;

/**
 * Random-access, read-only bytes of one file. Implementations are safe for concurrent reads.
 * Callers check every range against {@link #length()} before reading.
 */
interface ByteSource extends Closeable {

    /** @return the file label (path or URI) for messages */
    String label();

    /** @return the file length in bytes, fixed at open */
    long length();

    /**
     * Copies {@code len} bytes starting at {@code position} into {@code dst[off, off+len)}.
     *
     * @throws EOFException when the file is now shorter than at open
     */
    void read(long position, byte[] dst, int off, int len) throws IOException;

    /**
     * Returns {@code len} bytes starting at {@code position}: a zero-copy read-only view where the
     * source allows it, else a fresh copy allocated through {@link ReadBuffers}.
     *
     * @return a little-endian read-only buffer with {@code remaining() == len}
     * @throws EOFException when the file is now shorter than at open
     */
    ByteBuffer view(long position, int len) throws IOException;

    /** Copies through {@link #read} into a guarded fresh buffer. */
    static ByteBuffer copy(ByteSource s, long position, int len) throws IOException {
        byte[] b = ReadBuffers.allocate(len, s.length(), s.label());
        s.read(position, b, 0, len);
        return ByteBuffer.wrap(b).asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** A local file mapped in read-only windows of at most {@code windowBytes} each, mapped lazily. */
    final class Mapped implements ByteSource {
        private final String label;
        private final FileChannel channel;
        private final long length;
        private final int windowBytes;
        private final ConcurrentHashMap<Long, MappedByteBuffer> windows = new ConcurrentHashMap<>();

        Mapped(String label, FileChannel channel, int windowBytes) throws IOException {
            if (windowBytes < 1) {
                throw new IllegalArgumentException("window size must be ≥ 1 byte, got " + windowBytes);
            }
            this.label = label;
            this.channel = channel;
            this.length = channel.size();
            this.windowBytes = windowBytes;
        }

        @Override
        public String label() {
            return label;
        }

        @Override
        public long length() {
            return length;
        }

        private MappedByteBuffer window(long index) throws IOException {
            MappedByteBuffer w = windows.get(index);
            if (w != null) {
                return w;
            }
            synchronized (windows) {
                w = windows.get(index);
                if (w == null) {
                    long start = index * windowBytes;
                    long size = Math.min(windowBytes, length - start);
                    checkStillThere(start + size); // mapping past the end would fail or fault
                    w = channel.map(FileChannel.MapMode.READ_ONLY, start, size);
                    windows.put(index, w);
                }
                return w;
            }
        }

        /**
         * Touching a mapped page past the end of a file truncated after open raises SIGBUS, which
         * the JVM reports as an asynchronous InternalError that cannot be caught reliably; so the
         * current size is checked (one fstat) before every read. A truncation racing with the read
         * itself remains possible, as with any memory-mapped file.
         */
        private void checkStillThere(long end) throws IOException {
            long now = channel.size();
            if (now < end) {
                throw new EOFException("file is now " + now + " bytes, " + length + " at open; needed bytes up to "
                        + end);
            }
        }

        @Override
        public void read(long position, byte[] dst, int off, int len) throws IOException {
            checkStillThere(position + len);
            try {
                while (len > 0) {
                    long index = position / windowBytes;
                    int inWindow = (int) (position - index * windowBytes);
                    MappedByteBuffer w = window(index);
                    int n = Math.min(len, w.capacity() - inWindow);
                    w.get(inWindow, dst, off, n);
                    position += n;
                    off += n;
                    len -= n;
                }
            } catch (InternalError e) {
                // SIGBUS on a page past the end of a file truncated during this read (best effort).
                throw (EOFException) new EOFException("mapped read failed at byte " + position + ": "
                        + e.getMessage()).initCause(e);
            }
        }

        @Override
        public ByteBuffer view(long position, int len) throws IOException {
            if (len == 0) {
                return ByteBuffer.allocate(0).asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
            }
            checkStillThere(position + len);
            long first = position / windowBytes;
            long last = (position + len - 1) / windowBytes;
            if (first == last) {
                int inWindow = (int) (position - first * windowBytes);
                return window(first).slice(inWindow, len).asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
            }
            return copy(this, position, len); // spans windows: stitch into one heap buffer
        }

        @Override
        public void close() throws IOException {
            channel.close(); // mappings stay valid until unreachable, so returned views keep working
        }
    }

    /** A file on a Hadoop {@link FileSystem}, read with positioned {@code readFully}. */
    final class Hadoop implements ByteSource {
        private final String label;
        private final FSDataInputStream in;
        private final long length;
        private final FileSystem ownedFs;

        /**
         * @param ownedFs a file system instance to close with this source, or null when shared
         */
        Hadoop(String label, FSDataInputStream in, long length, FileSystem ownedFs) {
            this.label = label;
            this.in = in;
            this.length = length;
            this.ownedFs = ownedFs;
        }

        @Override
        public String label() {
            return label;
        }

        @Override
        public long length() {
            return length;
        }

        @Override
        public void read(long position, byte[] dst, int off, int len) throws IOException {
            in.readFully(position, dst, off, len);
        }

        @Override
        public ByteBuffer view(long position, int len) throws IOException {
            return copy(this, position, len);
        }

        @Override
        public void close() throws IOException {
            try {
                in.close();
            } finally {
                if (ownedFs != null) {
                    ownedFs.close();
                }
            }
        }
    }

    /** Bytes already in memory (tests, small embedded files). */
    final class Heap implements ByteSource {
        private final String label;
        private final byte[] bytes;

        Heap(String label, byte[] bytes) {
            this.label = label;
            this.bytes = bytes;
        }

        @Override
        public String label() {
            return label;
        }

        @Override
        public long length() {
            return bytes.length;
        }

        @Override
        public void read(long position, byte[] dst, int off, int len) {
            System.arraycopy(bytes, (int) position, dst, off, len);
        }

        @Override
        public ByteBuffer view(long position, int len) {
            return ByteBuffer.wrap(bytes, (int) position, len).slice().asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
        }

        @Override
        public void close() {
        }
    }
}
