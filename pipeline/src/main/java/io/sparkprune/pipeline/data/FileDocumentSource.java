package io.sparkprune.pipeline.data;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.function.Supplier;
import java.util.stream.Stream;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;

/**
 * Documents of a fixed, sorted list of files (the expansion of a spec by
 * {@link DocumentSources#open(String, SourceOptions, Configuration)}), read one file at a time
 * through Hadoop's {@code FileSystem}, so local, {@code hdfs://} and {@code s3a://} paths all work.
 *
 * <p>Per file, by its {@link DocumentFormat} (with {@link DocumentFormat#AUTO}, by name):
 * <ul>
 *   <li>text: UTF-8; {@link TextMode#LINES} gives one document per non-blank line,
 *       {@link TextMode#WHOLE_FILE} the whole file;</li>
 *   <li>JSONL: UTF-8, one JSON object per non-blank line, document = its string field
 *       {@link SourceOptions#field()}; a line that is not a JSON object or lacks the string field
 *       stops reading with a {@link CalibrationDataException} naming the file and 1-based line;</li>
 *   <li>Parquet: document = the top-level BINARY (string) column {@link SourceOptions#field()}, rows
 *       in file order; nulls are skipped; a missing or non-string column is an error naming the
 *       file and listing its columns.</li>
 * </ul>
 * Text and JSONL files whose name ends in {@code .gz} are gunzipped on the fly. Every document is
 * stripped of leading and trailing white space, and empty documents are skipped.
 */
public final class FileDocumentSource implements DocumentSource {
    private final String spec;
    private final SourceOptions options;
    private final Configuration conf;
    private final List<Path> files;

    FileDocumentSource(String spec, SourceOptions options, Configuration conf, List<Path> files) {
        this.spec = Objects.requireNonNull(spec, "spec");
        this.options = Objects.requireNonNull(options, "options");
        this.conf = Objects.requireNonNull(conf, "conf");
        this.files = List.copyOf(files);
    }

    /** @return the spec this source was opened from (a path, glob or directory) */
    public String spec() {
        return spec;
    }

    /** @return the reading options */
    public SourceOptions options() {
        return options;
    }

    /** @return the fully qualified paths of the files, in reading order (sorted by path) */
    public List<String> files() {
        List<String> out = new ArrayList<>(files.size());
        for (Path p : files) {
            out.add(p.toString());
        }
        return Collections.unmodifiableList(out);
    }

    /**
     * One source per file, in reading order, for spreading files over tasks; concatenated they give
     * the documents of this source.
     *
     * @return a list of single-file sources
     */
    public List<FileDocumentSource> perFile() {
        List<FileDocumentSource> out = new ArrayList<>(files.size());
        for (Path p : files) {
            out.add(new FileDocumentSource(p.toString(), options, conf, List.of(p)));
        }
        return out;
    }

    @Override
    public String description() {
        return spec + " (" + files.size() + (files.size() == 1 ? " file)" : " files)");
    }

    @Override
    public Stream<String> documents() {
        List<Supplier<DocumentReaders.Reader>> parts = new ArrayList<>(files.size());
        for (Path p : files) {
            parts.add(() -> reader(p));
        }
        return new DocumentReaders.Concat(parts).stream();
    }

    private DocumentReaders.Reader reader(Path p) {
        return switch (options.format().resolve(p.getName())) {
            case TEXT -> options.textMode() == TextMode.LINES ? DocumentReaders.textLines(p, conf) : DocumentReaders.wholeFile(p, conf);
            case JSONL -> DocumentReaders.jsonLines(p, conf, options.field());
            case PARQUET -> DocumentReaders.parquet(p, conf, options.field());
            case AUTO -> throw new IllegalStateException("AUTO resolves to a concrete format");
        };
    }

    @Override
    public String toString() {
        return "FileDocumentSource[" + description() + "]";
    }
}
