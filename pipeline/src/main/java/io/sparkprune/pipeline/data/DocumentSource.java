package io.sparkprune.pipeline.data;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.function.Predicate;
import java.util.stream.Stream;

/**
 * A re-readable sequence of documents (non-blank strings), streamed rather than loaded: each call
 * of {@link #documents()} reads the underlying files again from the start, in the same order.
 */
public interface DocumentSource {

    /** @return what this source reads, for messages (e.g. {@code "data/*.jsonl (3 files)"}) */
    String description();

    /**
     * Opens the documents as a lazy, ordered stream. Close it (try-with-resources) to release open
     * files when not read to the end.
     *
     * @return the documents in source order; none is blank
     * @throws CalibrationDataException while streaming, when a file is unreadable or malformed (the
     *     message names the file and, for text and JSONL, the line)
     */
    Stream<String> documents();

    /**
     * Reads documents into memory.
     *
     * @param maxDocuments the most documents to read, ≥ 0; {@code Integer.MAX_VALUE} for all
     * @return the first {@code min(maxDocuments, total)} documents in source order
     * @throws CalibrationDataException as {@link #documents()}
     */
    default List<String> readAll(int maxDocuments) {
        if (maxDocuments < 0) {
            throw new IllegalArgumentException("maxDocuments must be >= 0, got " + maxDocuments);
        }
        List<String> out = new ArrayList<>();
        try (Stream<String> s = documents()) {
            s.limit(maxDocuments).forEach(out::add);
        }
        return out;
    }

    /**
     * A view keeping only the documents a predicate accepts.
     *
     * @param label what the filter keeps, appended to the description (e.g. {@code "calibration part"})
     * @param keep the predicate; must be deterministic so that re-reads agree
     * @return the filtered source
     */
    default DocumentSource filter(String label, Predicate<String> keep) {
        Objects.requireNonNull(label, "label");
        Objects.requireNonNull(keep, "keep");
        DocumentSource parent = this;
        return new DocumentSource() {
            @Override
            public String description() {
                return parent.description() + " [" + label + "]";
            }

            @Override
            public Stream<String> documents() {
                return parent.documents().filter(keep);
            }
        };
    }
}
