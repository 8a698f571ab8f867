package io.sparkprune.pipeline.data;

import java.util.Locale;

/** File format of a calibration document file. */
public enum DocumentFormat {
    /**
     * Chosen per file from its name (a trailing {@code .gz} is ignored): {@code .jsonl},
     * {@code .ndjson}, {@code .json} → {@link #JSONL}; {@code .parquet}, {@code .parq} →
     * {@link #PARQUET}; anything else → {@link #TEXT}.
     */
    AUTO,
    /** UTF-8 text; documents are lines or whole files, see {@link TextMode}. */
    TEXT,
    /** UTF-8 JSON Lines: one JSON object per line, the document in a string field. */
    JSONL,
    /** Apache Parquet: the document in a top-level string (BINARY) column. */
    PARQUET;

    /**
     * The concrete format of one file.
     *
     * @param fileName file name or path
     * @return this format, or for {@link #AUTO} the format its extension implies
     */
    public DocumentFormat resolve(String fileName) {
        if (this != AUTO) {
            return this;
        }
        String name = fileName.toLowerCase(Locale.ROOT);
        if (name.endsWith(".gz")) {
            name = name.substring(0, name.length() - 3);
        }
        if (name.endsWith(".jsonl") || name.endsWith(".ndjson") || name.endsWith(".json")) {
            return JSONL;
        }
        if (name.endsWith(".parquet") || name.endsWith(".parq")) {
            return PARQUET;
        }
        return TEXT;
    }

    /**
     * Parses a format name, case-insensitively.
     *
     * @param name {@code auto}, {@code text}, {@code jsonl} or {@code parquet}
     * @return the format
     * @throws CalibrationDataException for any other name, listing the valid ones
     */
    public static DocumentFormat parse(String name) {
        for (DocumentFormat f : values()) {
            if (f.name().equalsIgnoreCase(name.trim())) {
                return f;
            }
        }
        throw new CalibrationDataException("unknown calibration data format \"" + name
                + "\"; fix: use one of auto, text, jsonl, parquet");
    }
}
