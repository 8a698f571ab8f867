package io.sparkprune.pipeline.data;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Stream;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/** Factories for {@link DocumentSource}s. */
public final class DocumentSources {

    /** Opens an input stream; may throw I/O errors. */
    @FunctionalInterface
    public interface StreamOpener {
        /**
         * @return a fresh stream from the start of the data; the caller closes it
         * @throws IOException when the data cannot be opened
         */
        InputStream open() throws IOException;
    }

    private DocumentSources() {
    }

    /**
     * Opens the files a spec names, with a default Hadoop {@link Configuration}.
     *
     * @param spec a path, a Hadoop glob or a directory (see {@link #open(String, SourceOptions, Configuration)})
     * @param options format, field and text mode
     * @return the source (files resolved now, read lazily)
     * @throws CalibrationDataException when nothing matches
     */
    public static FileDocumentSource open(String spec, SourceOptions options) {
        return open(spec, options, new Configuration());
    }

    /**
     * Opens the files a spec names. The spec is a Hadoop path, optionally with a scheme
     * ({@code file:}, {@code hdfs://}, {@code s3a://}; none means the default file system, normally
     * local) and glob characters as {@code FileSystem.globStatus} reads them ({@code *}, {@code ?},
     * {@code [ab]}, {@code {a,b}}), e.g. {@code data/*.jsonl} or {@code s3a://bucket/c4/part-*.json.gz}.
     * Each match that is a file is used; each match that is a directory contributes its files (one
     * level, skipping names starting with {@code _} or {@code .}, as Spark does). The files are
     * sorted by full path, so the order does not depend on the file system's listing order.
     *
     * @param spec path, glob or directory
     * @param options format, field and text mode
     * @param conf Hadoop configuration (credentials, default file system)
     * @return the source (files resolved now, read lazily)
     * @throws CalibrationDataException when the spec is malformed, nothing matches, or matched
     *     directories hold no files
     */
    public static FileDocumentSource open(String spec, SourceOptions options, Configuration conf) {
        Objects.requireNonNull(spec, "spec");
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(conf, "conf");
        if (spec.isBlank()) {
            throw new CalibrationDataException("calibration data spec is empty; fix: give a file, directory or glob such as"
                    + " data/*.jsonl");
        }
        List<Path> files = new ArrayList<>();
        try {
            Path pattern = new Path(spec);
            FileSystem fs = pattern.getFileSystem(conf);
            FileStatus[] matches = fs.globStatus(pattern);
            if (matches == null || matches.length == 0) {
                throw new CalibrationDataException("calibration data " + spec + " matches no file (resolved as "
                        + fs.makeQualified(pattern) + "); fix: check the path or glob (relative paths are relative to "
                        + fs.getWorkingDirectory() + ")");
            }
            Set<Path> seen = new LinkedHashSet<>();
            for (FileStatus m : matches) {
                if (m.isDirectory()) {
                    for (FileStatus child : fs.listStatus(m.getPath())) {
                        String name = child.getPath().getName();
                        if (child.isFile() && !name.startsWith("_") && !name.startsWith(".")) {
                            seen.add(child.getPath());
                        }
                    }
                } else {
                    seen.add(m.getPath());
                }
            }
            files.addAll(seen);
        } catch (IllegalArgumentException e) {
            throw new CalibrationDataException("calibration data spec " + spec + " is not a valid path or glob (" + e.getMessage()
                    + "); fix: check its syntax", e);
        } catch (IOException e) {
            throw new CalibrationDataException("calibration data " + spec + " could not be listed (" + e + "); fix: check"
                    + " the path, the file system URI and its credentials", e);
        }
        if (files.isEmpty()) {
            throw new CalibrationDataException("calibration data " + spec + " matches only directories without data files;"
                    + " fix: point at the files or a directory that holds them");
        }
        files.sort(Comparator.comparing(Path::toString));
        return new FileDocumentSource(spec, options, conf, files);
    }

    /**
     * An in-memory source (tests, small corpora); strips documents and skips empty ones.
     *
     * @param description what the documents are, for messages
     * @param documents the documents, in order; copied
     * @return the source
     */
    public static DocumentSource of(String description, List<String> documents) {
        Objects.requireNonNull(description, "description");
        List<String> docs = new ArrayList<>(documents.size());
        for (String d : documents) {
            String s = Objects.requireNonNull(d, "document").strip();
            if (!s.isEmpty()) {
                docs.add(s);
            }
        }
        List<String> copy = List.copyOf(docs);
        return new DocumentSource() {
            @Override
            public String description() {
                return description;
            }

            @Override
            public Stream<String> documents() {
                return copy.stream();
            }
        };
    }

    /**
     * A source reading UTF-8 lines of a stream (e.g. a classpath resource), each line mapped to at
     * most one document. The stream is opened again for every {@link DocumentSource#documents()}.
     *
     * @param description what the stream is, for messages (name it as the user would find it)
     * @param opener opens the stream (already decompressed)
     * @param lineToDocument the document of a line, or empty to skip it; documents are then stripped
     *     and skipped when empty
     * @return the source
     */
    public static DocumentSource lines(String description, StreamOpener opener, Function<String, Optional<String>> lineToDocument) {
        Objects.requireNonNull(description, "description");
        Objects.requireNonNull(opener, "opener");
        Objects.requireNonNull(lineToDocument, "lineToDocument");
        return new DocumentSource() {
            @Override
            public String description() {
                return description;
            }

            @Override
            public Stream<String> documents() {
                InputStream in;
                try {
                    in = opener.open();
                } catch (IOException e) {
                    throw new CalibrationDataException(description + " could not be opened (" + e + ")", e);
                }
                return new DocumentReaders.Lines(description, in, lineToDocument).stream();
            }
        };
    }
}
