package io.sparkprune.pipeline.data;

/** How a text file is cut into documents. */
public enum TextMode {
    /** Each line that is not blank is one document (the default). */
    LINES,
    /** The whole file is one document (skipped when blank). */
    WHOLE_FILE
}
