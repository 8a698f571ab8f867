package io.sparkprune.jobs.commit;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.UUID;
import org.apache.hadoop.fs.ChecksumException;
import org.apache.hadoop.fs.ChecksumFileSystem;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.FilterFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.StreamCapabilities;

/**
 * Durable writes on a Hadoop {@link FileSystem}: temp file, sync, rename, sync of the directory.
 *
 * <p>How a file is synced ({@link SyncMethod}): if the stream declares the {@code hsync} capability
 * (HDFS; Hadoop's {@link RawLocalFileSystem}, whose {@code hsync} calls {@code fsync}),
 * {@code hsync()}. Hadoop's default local file system ({@code LocalFileSystem}, a
 * {@link ChecksumFileSystem}) writes through a checksumming stream that is not {@code Syncable}: its
 * {@code hsync()} only flushes. For it (and anything else backed by {@link RawLocalFileSystem}) the
 * file and its {@code .crc} side file are forced to disk after close with
 * {@link FileChannel#force(boolean)}. Other file systems (object stores) make a file durable when
 * {@code close()} returns. After a rename, the parent directory of a local file is forced too, so the
 * rename itself survives a crash (ignored where the OS cannot sync directories).
 */
final class Durable {
    /** How {@link #syncAndClose} made a file durable. */
    enum SyncMethod {
        /** {@code FSDataOutputStream.hsync()}. */
        HSYNC,
        /** {@code FileChannel.force} on the local file (and its {@code .crc}). */
        FILE_CHANNEL,
        /** Nothing beyond {@code close()} (a store whose close is durable). */
        CLOSE
    }

    private Durable() {
    }

    /** Writes the body of a file. */
    @FunctionalInterface
    interface Body {
        /**
         * @param out the stream; must not be closed by the body
         * @throws IOException on write failure
         */
        void writeTo(OutputStream out) throws IOException;
    }

    /** Size and SHA-256 of written bytes, and how they were synced. */
    record Written(long bytes, String sha256, SyncMethod sync) {
    }

    /**
     * Writes {@code body} to a new temp file in {@code dir}, syncs and closes it.
     *
     * @param fs the file system
     * @param temp the temp file to create (must not exist)
     * @param body writes the content
     * @return size, SHA-256 and sync method
     * @throws IOException on failure (the temp file is deleted, best effort)
     */
    static Written writeTemp(FileSystem fs, Path temp, Body body) throws IOException {
        MessageDigest sha = sha256();
        long[] count = new long[1];
        SyncMethod method;
        FSDataOutputStream raw = fs.create(temp, false);
        try {
            OutputStream counting = new DigestOutputStream(new OutputStream() {
                @Override
                public void write(int b) throws IOException {
                    raw.write(b);
                    count[0]++;
                }

                @Override
                public void write(byte[] b, int off, int len) throws IOException {
                    raw.write(b, off, len);
                    count[0] += len;
                }

                @Override
                public void flush() throws IOException {
                    raw.flush();
                }

                @Override
                public void close() {
                    // The body must not close the stream; syncAndClose does.
                }
            }, sha);
            body.writeTo(counting);
            counting.flush();
            method = syncAndClose(fs, temp, raw);
        } catch (IOException | RuntimeException | Error e) {
            try {
                raw.close();
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            deleteQuietly(fs, temp);
            throw e;
        }
        return new Written(count[0], HexFormat.of().formatHex(sha.digest()), method);
    }

    /**
     * Makes the stream's content durable and closes it.
     *
     * @param fs the file system the stream belongs to
     * @param path the file being written
     * @param out the open stream
     * @return how the file was synced
     * @throws IOException on failure
     */
    static SyncMethod syncAndClose(FileSystem fs, Path path, FSDataOutputStream out) throws IOException {
        if (out.hasCapability(StreamCapabilities.HSYNC)) {
            out.hsync();
            out.close();
            return SyncMethod.HSYNC;
        }
        out.close();
        RawLocalFileSystem local = rawLocal(fs);
        if (local == null) {
            return SyncMethod.CLOSE;
        }
        force(local.pathToFile(path), StandardOpenOption.WRITE);
        if (fs instanceof ChecksumFileSystem cfs) {
            File crc = local.pathToFile(cfs.getChecksumFile(path));
            if (crc.isFile()) {
                force(crc, StandardOpenOption.WRITE);
            }
        }
        return SyncMethod.FILE_CHANNEL;
    }

    /**
     * Renames {@code temp} to {@code target} (which must not exist) and syncs the directory.
     *
     * @param fs the file system
     * @param temp existing file
     * @param target new name, in the same directory
     * @return false if the rename was refused (for example because {@code target} exists on a file
     *     system whose rename does not overwrite)
     * @throws IOException on failure
     */
    static boolean rename(FileSystem fs, Path temp, Path target) throws IOException {
        if (!fs.rename(temp, target)) {
            return false;
        }
        syncDirectory(fs, target.getParent());
        return true;
    }

    /**
     * Forces a local directory's entries to disk; a no-op on other file systems or where the OS does
     * not allow syncing a directory.
     *
     * @param fs the file system
     * @param dir the directory
     */
    static void syncDirectory(FileSystem fs, Path dir) {
        RawLocalFileSystem local = rawLocal(fs);
        if (local == null) {
            return;
        }
        try {
            force(local.pathToFile(dir), StandardOpenOption.READ);
        } catch (IOException e) {
            // Some platforms (Windows) cannot open a directory for sync; the rename is still atomic.
        }
    }

    /**
     * Writes {@code content} to {@code target} atomically and durably (temp file in the same
     * directory, sync, rename), replacing an existing file.
     *
     * @param fs the file system
     * @param target the file to write
     * @param content the bytes
     * @return size and digest of the content
     * @throws IOException on failure
     */
    static Written replaceAtomically(FileSystem fs, Path target, byte[] content) throws IOException {
        Path temp = tempSibling(target);
        Written w = writeTemp(fs, temp, out -> out.write(content));
        if (fs.exists(target)) {
            fs.delete(target, false);
        }
        if (!rename(fs, temp, target)) {
            deleteQuietly(fs, temp);
            throw new IOException("could not rename " + temp + " to " + target);
        }
        return w;
    }

    /**
     * @param target a file
     * @return a unique {@value ShardNames#TEMP_PREFIX} name next to it
     */
    static Path tempSibling(Path target) {
        return new Path(target.getParent(), ShardNames.TEMP_PREFIX + UUID.randomUUID() + "-" + target.getName());
    }

    /**
     * Reads a whole file and returns its SHA-256.
     *
     * @param fs the file system
     * @param path the file
     * @return 64 lower-case hex digits
     * @throws ChecksumException if the file system's own checksum (a {@code .crc} file) disagrees
     * @throws FileNotFoundException if the file is missing
     * @throws IOException on other read failures
     */
    static String sha256(FileSystem fs, Path path) throws IOException {
        MessageDigest sha = sha256();
        byte[] buf = new byte[1 << 16];
        try (InputStream in = fs.open(path)) {
            for (int n; (n = in.read(buf)) > 0;) {
                sha.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(sha.digest());
    }

    static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }

    static void deleteQuietly(FileSystem fs, Path p) {
        try {
            fs.delete(p, false);
        } catch (IOException e) {
            // Best effort: leftover temp files are ignored by listings and removed on resume.
        }
    }

    private static RawLocalFileSystem rawLocal(FileSystem fs) {
        FileSystem f = fs;
        while (f instanceof FilterFileSystem filter) {
            f = filter.getRawFileSystem();
        }
        return f instanceof RawLocalFileSystem raw ? raw : null;
    }

    private static void force(File file, StandardOpenOption mode) throws IOException {
        try (FileChannel ch = FileChannel.open(file.toPath(), mode)) {
            ch.force(true);
        }
    }
}
