package io.sparkprune.pipeline.safetensors;

import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Stream;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;

/** A checkpoint directory, local or on a Hadoop file system: the few operations sharded I/O needs. */
interface CheckpointDir extends AutoCloseable {

    /** @return the directory label (path or URI) */
    String label();

    /** @return the label of a file in the directory */
    String fileLabel(String name);

    /** @return whether the directory exists */
    boolean isDirectory() throws IOException;

    /** @return whether {@code name} is a regular file in the directory */
    boolean isFile(String name) throws IOException;

    /** @return names of the regular files in the directory, sorted */
    List<String> list() throws IOException;

    /**
     * Reads a whole small file.
     *
     * @throws SafetensorsFormatException when it is larger than {@code maxBytes}
     */
    byte[] readSmall(String name, long maxBytes) throws IOException;

    /** Opens a safetensors file of the directory for reading. */
    SafetensorsFile open(String name);

    /** Starts a temporary file that {@link OutputSink#publish()} renames to {@code name}. */
    OutputSink create(String name) throws IOException;

    /** Creates the directory (and parents) if missing. */
    void mkdirs() throws IOException;

    /** Releases an owned file system; no-op otherwise. */
    @Override
    void close();

    /** A local directory; files are memory-mapped. */
    final class Local implements CheckpointDir {
        private final Path dir;

        Local(Path dir) {
            this.dir = dir.toAbsolutePath();
        }

        @Override
        public String label() {
            return dir.toString();
        }

        @Override
        public String fileLabel(String name) {
            return dir.resolve(name).toString();
        }

        @Override
        public boolean isDirectory() {
            return Files.isDirectory(dir);
        }

        @Override
        public boolean isFile(String name) {
            return Files.isRegularFile(dir.resolve(name));
        }

        @Override
        public List<String> list() throws IOException {
            try (Stream<Path> s = Files.list(dir)) {
                return s.filter(Files::isRegularFile).map(p -> p.getFileName().toString()).sorted().toList();
            }
        }

        @Override
        public byte[] readSmall(String name, long maxBytes) throws IOException {
            Path p = dir.resolve(name);
            long size = Files.size(p);
            checkSmall(fileLabel(name), size, maxBytes);
            byte[] b = ReadBuffers.allocate(size, size, fileLabel(name));
            try (FileChannel ch = FileChannel.open(p)) {
                ByteBuffer bb = ByteBuffer.wrap(b);
                while (bb.hasRemaining()) {
                    if (ch.read(bb) < 0) {
                        throw new EOFException(fileLabel(name) + " shrank while being read");
                    }
                }
            }
            return b;
        }

        @Override
        public SafetensorsFile open(String name) {
            return SafetensorsFile.open(dir.resolve(name));
        }

        @Override
        public OutputSink create(String name) throws IOException {
            return new OutputSink.Local(dir.resolve(name));
        }

        @Override
        public void mkdirs() throws IOException {
            Files.createDirectories(dir);
        }

        @Override
        public void close() {
        }
    }

    /** A directory on a Hadoop file system; files are read with positioned range reads. */
    final class Hadoop implements CheckpointDir {
        private final FileSystem fs;
        private final org.apache.hadoop.fs.Path dir;
        private final boolean ownFs;

        Hadoop(FileSystem fs, org.apache.hadoop.fs.Path dir, boolean ownFs) {
            this.fs = fs;
            this.dir = fs.makeQualified(dir);
            this.ownFs = ownFs;
        }

        private org.apache.hadoop.fs.Path child(String name) {
            return new org.apache.hadoop.fs.Path(dir, name);
        }

        @Override
        public String label() {
            return dir.toString();
        }

        @Override
        public String fileLabel(String name) {
            return child(name).toString();
        }

        @Override
        public boolean isDirectory() throws IOException {
            try {
                return fs.getFileStatus(dir).isDirectory();
            } catch (FileNotFoundException e) {
                return false;
            }
        }

        @Override
        public boolean isFile(String name) throws IOException {
            try {
                return fs.getFileStatus(child(name)).isFile();
            } catch (FileNotFoundException e) {
                return false;
            }
        }

        @Override
        public List<String> list() throws IOException {
            List<String> out = new ArrayList<>();
            for (FileStatus s : fs.listStatus(dir)) {
                if (s.isFile()) {
                    out.add(s.getPath().getName());
                }
            }
            Collections.sort(out);
            return out;
        }

        @Override
        public byte[] readSmall(String name, long maxBytes) throws IOException {
            FileStatus st = fs.getFileStatus(child(name));
            checkSmall(fileLabel(name), st.getLen(), maxBytes);
            byte[] b = ReadBuffers.allocate(st.getLen(), st.getLen(), fileLabel(name));
            try (FSDataInputStream in = fs.open(child(name))) {
                in.readFully(0, b, 0, b.length);
            }
            return b;
        }

        @Override
        public SafetensorsFile open(String name) {
            return SafetensorsFile.open(fs, child(name));
        }

        @Override
        public OutputSink create(String name) throws IOException {
            return new OutputSink.Hadoop(fs, child(name));
        }

        @Override
        public void mkdirs() throws IOException {
            if (!fs.mkdirs(dir)) {
                throw new IOException("cannot create directory " + dir);
            }
        }

        @Override
        public void close() {
            if (ownFs) {
                try {
                    fs.close();
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot close the file system of " + dir, e);
                }
            }
        }
    }

    private static void checkSmall(String label, long size, long maxBytes) {
        if (size > maxBytes) {
            throw new SafetensorsFormatException(label, null, "is " + size + " bytes, more than the " + maxBytes
                    + "-byte limit for an index file; it is not a checkpoint index");
        }
    }
}
