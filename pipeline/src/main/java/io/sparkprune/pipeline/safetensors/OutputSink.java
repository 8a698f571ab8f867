package io.sparkprune.pipeline.safetensors;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.UUID;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.StreamCapabilities;

/**
 * A file written under a temporary name next to its target, made durable by {@link #finish()} and
 * moved into place by {@link #publish()}; {@link #discard()} removes whatever exists.
 */
interface OutputSink {

    /** @return the final target's label (path or URI) */
    String label();

    /** Appends all remaining bytes of {@code b}, advancing its position to its limit. */
    void write(ByteBuffer b) throws IOException;

    /** Flushes, syncs to stable storage, and closes the temporary file. */
    void finish() throws IOException;

    /** Renames the finished temporary file to the target, replacing an existing file. */
    void publish() throws IOException;

    /** Closes and deletes the temporary file (and the target if {@code alsoTarget}); never throws. */
    void discard(boolean alsoTarget);

    /** Temporary name for {@code fileName}: hidden, unique, recognisable. */
    static String tempName(String fileName) {
        return "." + fileName + "." + UUID.randomUUID().toString().substring(0, 8) + ".tmp";
    }

    /** A local file written through a {@link FileChannel}. */
    final class Local implements OutputSink {
        private final Path target;
        private final Path temp;
        private final FileChannel channel;

        Local(Path target) throws IOException {
            Path abs = target.toAbsolutePath();
            Path dir = abs.getParent();
            this.target = abs;
            this.temp = dir.resolve(tempName(abs.getFileName().toString()));
            this.channel = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        }

        @Override
        public String label() {
            return target.toString();
        }

        @Override
        public void write(ByteBuffer b) throws IOException {
            while (b.hasRemaining()) {
                channel.write(b);
            }
        }

        /**
         * Writes all remaining bytes of {@code b} at {@code position} of the temporary file (a
         * positional write: safe from several threads at once for disjoint ranges, leaves no shared
         * file position behind), advancing {@code b}'s position to its limit.
         */
        void writeAt(ByteBuffer b, long position) throws IOException {
            long pos = position;
            while (b.hasRemaining()) {
                pos += channel.write(b, pos);
            }
        }

        /** @return the temporary file's current size in bytes */
        long size() throws IOException {
            return channel.size();
        }

        @Override
        public void finish() throws IOException {
            channel.force(true);
            channel.close();
        }

        @Override
        public void publish() throws IOException {
            try {
                Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            try (FileChannel d = FileChannel.open(target.getParent(), StandardOpenOption.READ)) {
                d.force(true); // make the rename durable (POSIX); not supported everywhere
            } catch (IOException | UnsupportedOperationException ignored) {
                // best effort
            }
        }

        @Override
        public void discard(boolean alsoTarget) {
            try {
                channel.close();
            } catch (IOException ignored) {
                // deleting below is what matters
            }
            try {
                Files.deleteIfExists(temp);
                if (alsoTarget) {
                    Files.deleteIfExists(target);
                }
            } catch (IOException ignored) {
                // best effort: nothing more can be done here
            }
        }

        Path temp() {
            return temp;
        }
    }

    /**
     * A file on a Hadoop {@link FileSystem}. {@link #publish()} deletes an existing target and
     * renames, which is atomic on HDFS and local file systems but a copy on object stores.
     */
    final class Hadoop implements OutputSink {
        private final FileSystem fs;
        private final org.apache.hadoop.fs.Path target;
        private final org.apache.hadoop.fs.Path temp;
        private final FSDataOutputStream out;
        private final byte[] chunk = new byte[1 << 16];
        private boolean closed;

        Hadoop(FileSystem fs, org.apache.hadoop.fs.Path target) throws IOException {
            this.fs = fs;
            this.target = fs.makeQualified(target);
            this.temp = new org.apache.hadoop.fs.Path(this.target.getParent(), tempName(this.target.getName()));
            this.out = fs.create(temp, false);
        }

        @Override
        public String label() {
            return target.toString();
        }

        @Override
        public void write(ByteBuffer b) throws IOException {
            if (b.hasArray()) {
                out.write(b.array(), b.arrayOffset() + b.position(), b.remaining());
                b.position(b.limit());
                return;
            }
            while (b.hasRemaining()) {
                int n = Math.min(chunk.length, b.remaining());
                b.get(chunk, 0, n);
                out.write(chunk, 0, n);
            }
        }

        @Override
        public void finish() throws IOException {
            if (out.hasCapability(StreamCapabilities.HSYNC)) {
                out.hsync();
            }
            closed = true;
            out.close();
        }

        @Override
        public void publish() throws IOException {
            if (fs.exists(target) && !fs.delete(target, false)) {
                throw new IOException("cannot replace existing " + target);
            }
            if (!fs.rename(temp, target)) {
                throw new IOException("rename " + temp + " -> " + target + " failed");
            }
        }

        @Override
        public void discard(boolean alsoTarget) {
            try {
                if (!closed) {
                    closed = true;
                    out.close();
                }
            } catch (IOException ignored) {
                // deleting below is what matters
            }
            try {
                fs.delete(temp, false);
                if (alsoTarget) {
                    fs.delete(target, false);
                }
            } catch (IOException ignored) {
                // best effort
            }
        }
    }
}
