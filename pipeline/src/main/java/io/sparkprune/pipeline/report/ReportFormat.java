package io.sparkprune.pipeline.report;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparkprune.kernels.InvalidInputException;

/**
 * Names and version of the report files. The version rule ({@code docs/report.md}): adding an
 * optional field keeps the version; renaming, removing or changing the meaning or unit of a field
 * bumps it. v2 added per-tensor {@code backend} and {@code bytes_dense}, the run facts
 * ({@code run.versions}, {@code run.executors}, {@code run.gpus_per_executor}), {@code storage},
 * {@code gates} and {@code passed}, and the report {@code kind}. v3 added {@code quality.baselines},
 * the per-tensor quantization grid check and per-row loss summary, and made
 * {@code summary.all_patterns_verified} also require every quantization grid verified.
 */
public final class ReportFormat {
    /** The value of the report's {@code format} field. */
    public static final String FORMAT = "sparkprune.report.v3";
    /** File name of the JSON report. */
    public static final String REPORT_JSON = "report.json";
    /** File name of the per-tensor Parquet table. */
    public static final String METRICS_PARQUET = "metrics.parquet";
    /** File name of the HTML report. */
    public static final String REPORT_HTML = "report.html";
    /** {@code kind} of a report written by {@code sparkprune prune}. */
    public static final String KIND_PRUNE = "prune";
    /** {@code kind} of a report written by {@code sparkprune validate}. */
    public static final String KIND_VALIDATE = "validate";

    private ReportFormat() {
    }

    /**
     * @param report a parsed report.json
     * @param source where it came from, named in the error
     * @throws InvalidInputException when its {@code format} is not {@value #FORMAT}
     */
    public static void check(JsonNode report, String source) {
        JsonNode f = report == null ? null : report.get("format");
        if (f == null || !FORMAT.equals(f.asText())) {
            throw new InvalidInputException(source + ": format is " + (f == null ? "missing" : "'" + f.asText() + "'")
                    + ", expected " + FORMAT + "; re-create the report with this SparkPrune version "
                    + "(sparkprune validate <original> <compressed>)");
        }
    }
}
