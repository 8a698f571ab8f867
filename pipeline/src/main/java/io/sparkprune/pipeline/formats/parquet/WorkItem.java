package io.sparkprune.pipeline.formats.parquet;

import java.io.Serializable;
import java.util.Objects;

/**
 * One record of a Parquet shards table to write: rows {@code [rowStart, rowEnd)} of a tensor
 * (rows = the outermost dimension), optionally with the encoding to store it with.
 *
 * @param tensor tensor name
 * @param rowStart first row, ≥ 0
 * @param rowEnd one past the last row, ≥ rowStart
 * @param encoding the encoding spec to store the range with ({@code dense}, {@code 2:4},
 *     {@code block:16x16}, {@code unstructured}; e.g. kept from a sparse input), or null to let the
 *     writer's options choose it from the data
 */
public record WorkItem(String tensor, long rowStart, long rowEnd, String encoding) implements Serializable {
    private static final long serialVersionUID = 1L;

    /** @throws IllegalArgumentException for a negative or reversed range */
    public WorkItem {
        Objects.requireNonNull(tensor, "tensor");
        if (rowStart < 0 || rowEnd < rowStart) {
            throw new IllegalArgumentException(tensor + ": bad row range [" + rowStart + ", " + rowEnd + ")");
        }
    }

    /** @return rows in the range */
    public long rowCount() {
        return rowEnd - rowStart;
    }

    /** @return the tensor and range for messages, e.g. {@code 'w' rows [0, 64)} */
    public String label() {
        return "'" + tensor + "' rows [" + rowStart + ", " + rowEnd + ")";
    }
}
