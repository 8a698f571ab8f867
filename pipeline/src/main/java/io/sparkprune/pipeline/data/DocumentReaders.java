package io.sparkprune.pipeline.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.function.Function;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;
import java.util.zip.GZIPInputStream;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.api.ReadSupport;
import org.apache.parquet.hadoop.example.GroupReadSupport;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType;
import org.apache.parquet.schema.Type;

/** The per-file readers behind {@link DocumentSources}; each yields stripped, non-blank documents. */
final class DocumentReaders {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BUFFER = 1 << 16;

    private DocumentReaders() {
    }

    /** Pull-style iterator over documents, closed when exhausted or by the stream's onClose. */
    abstract static class Reader implements Iterator<String>, Closeable {
        private String next;
        private boolean done;

        /** @return the next document, or null at the end */
        abstract String readNext() throws IOException;

        @Override
        public final boolean hasNext() {
            if (next == null && !done) {
                try {
                    next = readNext();
                } catch (IOException e) {
                    closeQuietly();
                    throw failure(e);
                } catch (RuntimeException e) {
                    closeQuietly();
                    throw e;
                }
                if (next == null) {
                    done = true;
                    closeQuietly();
                }
            }
            return next != null;
        }

        @Override
        public final String next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            String s = next;
            next = null;
            return s;
        }

        /** Turns an I/O failure into a typed error naming the file and position. */
        abstract CalibrationDataException failure(IOException e);

        final void closeQuietly() {
            try {
                close();
            } catch (IOException ignored) {
                // reading is over either way
            }
        }

        Stream<String> stream() {
            return StreamSupport.stream(Spliterators.spliteratorUnknownSize(this, Spliterator.ORDERED | Spliterator.NONNULL),
                    false).onClose(this::closeQuietly);
        }
    }

    /** Documents of several files, one reader open at a time. */
    static final class Concat extends Reader {
        private final List<java.util.function.Supplier<Reader>> parts;
        private int index;
        private Reader current;

        Concat(List<java.util.function.Supplier<Reader>> parts) {
            this.parts = new ArrayList<>(parts);
        }

        @Override
        String readNext() {
            while (true) {
                if (current == null) {
                    if (index >= parts.size()) {
                        return null;
                    }
                    current = parts.get(index++).get();
                }
                if (current.hasNext()) {
                    return current.next();
                }
                current = null; // closed itself when exhausted
            }
        }

        @Override
        CalibrationDataException failure(IOException e) {
            return new CalibrationDataException("calibration data could not be read: " + e, e);
        }

        @Override
        public void close() {
            if (current != null) {
                current.closeQuietly();
                current = null;
            }
            index = parts.size();
        }
    }

    static CharsetDecoder strictUtf8() {
        return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
    }

    static InputStream open(Path path, Configuration conf) throws IOException {
        FileSystem fs = path.getFileSystem(conf);
        InputStream in = fs.open(path, BUFFER);
        if (path.getName().endsWith(".gz")) {
            try {
                return new GZIPInputStream(in, BUFFER);
            } catch (IOException e) {
                in.close();
                throw e;
            }
        }
        return in;
    }

    /** Lines of a stream, each mapped to an optional document. */
    static class Lines extends Reader {
        final String file;
        private final Utf8LineReader reader;
        private final Function<String, Optional<String>> mapper;
        long lineNumber;

        Lines(String file, InputStream in, Function<String, Optional<String>> mapper) {
            this.file = file;
            this.reader = new Utf8LineReader(in);
            this.mapper = mapper;
        }

        @Override
        String readNext() throws IOException {
            String line;
            while ((line = reader.readLine()) != null) {
                lineNumber = reader.lineNumber();
                Optional<String> doc = map(line);
                if (doc.isPresent()) {
                    String d = doc.get().strip();
                    if (!d.isEmpty()) {
                        return d;
                    }
                }
            }
            return null;
        }

        /** @return the document of one line, or empty to skip it */
        Optional<String> map(String line) {
            return mapper.apply(line);
        }

        @Override
        CalibrationDataException failure(IOException e) {
            boolean coding = e instanceof CharacterCodingException;
            String what = coding ? "is not valid UTF-8" : "could not be read (" + e + ")";
            // a coding error is in the line just counted; an I/O error happened while reading the next one
            long line = coding ? reader.lineNumber() : reader.lineNumber() + 1;
            return new CalibrationDataException("calibration file " + file + " " + what + " at line " + line
                    + "; fix: give UTF-8 text" + (file.endsWith(".gz") ? " and check the gzip file is intact (gzip -t)" : ""), e);
        }

        @Override
        public void close() throws IOException {
            reader.close();
        }
    }

    static Reader textLines(Path path, Configuration conf) {
        String file = path.toString();
        return new Lines(file, openOrFail(path, conf), Optional::of);
    }

    static Reader jsonLines(Path path, Configuration conf, String field) {
        String file = path.toString();
        return new Lines(file, openOrFail(path, conf), null) {
            @Override
            Optional<String> map(String text) {
                if (text.isBlank()) {
                    return Optional.empty();
                }
                JsonNode node;
                try {
                    node = JSON.readTree(text);
                } catch (JsonProcessingException e) {
                    throw new CalibrationDataException("calibration file " + file + " line " + lineNumber + " is not valid JSON ("
                            + e.getOriginalMessage() + "); fix: make every line one JSON object, e.g. {\"" + field
                            + "\": \"...\"}", e);
                }
                if (node == null || !node.isObject()) {
                    throw new CalibrationDataException("calibration file " + file + " line " + lineNumber + " is JSON but not an"
                            + " object; fix: make every line one JSON object, e.g. {\"" + field + "\": \"...\"}");
                }
                JsonNode value = node.get(field);
                if (value == null || !value.isTextual()) {
                    List<String> names = new ArrayList<>();
                    node.fieldNames().forEachRemaining(names::add);
                    String problem = value == null ? "has no field \"" + field + "\" (fields: " + names + ")"
                            : "has field \"" + field + "\" of JSON type " + value.getNodeType() + ", not a string";
                    throw new CalibrationDataException("calibration file " + file + " line " + lineNumber + " " + problem
                            + "; fix: name the text field with the field option, or repair the line");
                }
                return Optional.of(value.asText());
            }
        };
    }

    static Reader wholeFile(Path path, Configuration conf) {
        String file = path.toString();
        return new Reader() {
            private boolean read;

            @Override
            String readNext() throws IOException {
                if (read) {
                    return null;
                }
                read = true;
                byte[] bytes;
                try (InputStream in = open(path, conf)) {
                    bytes = in.readAllBytes();
                }
                String text = strictUtf8().decode(ByteBuffer.wrap(bytes)).toString().strip();
                return text.isEmpty() ? null : text;
            }

            @Override
            CalibrationDataException failure(IOException e) {
                String what = e instanceof CharacterCodingException ? "is not valid UTF-8" : "could not be read (" + e + ")";
                return new CalibrationDataException("calibration file " + file + " " + what + "; fix: give a readable UTF-8"
                        + " text file" + (file.endsWith(".gz") ? " and check the gzip file is intact (gzip -t)" : ""), e);
            }

            @Override
            public void close() {
            }
        };
    }

    static Reader parquet(Path path, Configuration conf, String column) {
        String file = path.toString();
        if (path.getName().endsWith(".gz")) {
            throw new CalibrationDataException("calibration file " + file + " is a gzip-compressed Parquet file; Parquet"
                    + " compresses its pages itself; fix: gunzip it first");
        }
        MessageType schema;
        try (ParquetFileReader r = ParquetFileReader.open(HadoopInputFile.fromPath(path, conf))) {
            schema = r.getFooter().getFileMetaData().getSchema();
        } catch (IOException | RuntimeException e) {
            throw new CalibrationDataException("calibration file " + file + " is not a readable Parquet file (" + e
                    + "); fix: give a Parquet file, or set the format (text/jsonl) if it is not one", e);
        }
        if (!schema.containsField(column)) {
            List<String> names = new ArrayList<>();
            for (Type t : schema.getFields()) {
                names.add(t.getName());
            }
            throw new CalibrationDataException("calibration file " + file + " has no top-level column \"" + column
                    + "\" (columns: " + names + "); fix: name the text column with the field option");
        }
        Type type = schema.getType(column);
        if (!type.isPrimitive() || type.asPrimitiveType().getPrimitiveTypeName() != PrimitiveType.PrimitiveTypeName.BINARY
                || type.isRepetition(Type.Repetition.REPEATED)) {
            throw new CalibrationDataException("calibration file " + file + ": column \"" + column + "\" is " + type
                    + ", not a single string (BINARY/UTF8) value per row; fix: name a string column with the field option");
        }
        MessageType projection = new MessageType(schema.getName(), type);
        Configuration readConf = new Configuration(conf);
        readConf.set(ReadSupport.PARQUET_READ_SCHEMA, projection.toString());
        ParquetReader<Group> reader;
        try {
            reader = ParquetReader.builder(new GroupReadSupport(), path).withConf(readConf).build();
        } catch (IOException e) {
            throw new CalibrationDataException("calibration file " + file + " could not be opened as Parquet (" + e + ")", e);
        }
        return new Reader() {
            private long row;

            @Override
            String readNext() throws IOException {
                Group g;
                while ((g = reader.read()) != null) {
                    row++;
                    if (g.getFieldRepetitionCount(0) == 0) {
                        continue; // null
                    }
                    String s = g.getString(0, 0).strip();
                    if (!s.isEmpty()) {
                        return s;
                    }
                }
                return null;
            }

            @Override
            CalibrationDataException failure(IOException e) {
                return new CalibrationDataException("calibration file " + file + " could not be read at row " + (row + 1)
                        + " (" + e + "); fix: check the Parquet file is intact", e);
            }

            @Override
            public void close() throws IOException {
                reader.close();
            }
        };
    }

    private static InputStream openOrFail(Path path, Configuration conf) {
        try {
            return open(path, conf);
        } catch (IOException e) {
            throw new CalibrationDataException("calibration file " + path + " could not be opened (" + e + "); fix: check the"
                    + " path and permissions" + (path.getName().endsWith(".gz") ? ", and that the .gz file is gzip" : ""), e);
        } catch (UncheckedIOException e) {
            throw new CalibrationDataException("calibration file " + path + " could not be opened (" + e.getCause() + ")", e);
        }
    }
}
