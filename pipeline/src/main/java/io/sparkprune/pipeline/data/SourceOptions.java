package io.sparkprune.pipeline.data;

import java.io.Serializable;
import java.util.Objects;

/**
 * How to read calibration files.
 *
 * @param format the file format, or {@link DocumentFormat#AUTO} to pick it from each file's name
 * @param field the JSON field (JSONL) or top-level column (Parquet) that holds the text
 * @param textMode how text files are cut into documents
 */
public record SourceOptions(DocumentFormat format, String field, TextMode textMode) implements Serializable {

    /** Default JSON field / Parquet column name. */
    public static final String DEFAULT_FIELD = "text";

    /**
     * @throws IllegalArgumentException when the field name is blank
     */
    public SourceOptions {
        Objects.requireNonNull(format, "format");
        Objects.requireNonNull(field, "field");
        Objects.requireNonNull(textMode, "textMode");
        if (field.isBlank()) {
            throw new IllegalArgumentException("field name must not be blank");
        }
    }

    /** @return AUTO format, field {@value #DEFAULT_FIELD}, one document per non-blank line */
    public static SourceOptions defaults() {
        return new SourceOptions(DocumentFormat.AUTO, DEFAULT_FIELD, TextMode.LINES);
    }

    /**
     * @param newFormat the format
     * @return a copy with that format
     */
    public SourceOptions withFormat(DocumentFormat newFormat) {
        return new SourceOptions(newFormat, field, textMode);
    }

    /**
     * @param newField the JSON field or Parquet column holding the text
     * @return a copy with that field
     */
    public SourceOptions withField(String newField) {
        return new SourceOptions(format, newField, textMode);
    }

    /**
     * @param newMode lines or whole files
     * @return a copy with that text mode
     */
    public SourceOptions withTextMode(TextMode newMode) {
        return new SourceOptions(format, field, newMode);
    }
}
