package io.sparkprune.pipeline.report;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Writes the three report files into a directory, all or nothing: each is written under a
 * temporary name ({@code _tmp-<name>}) first, and only when all three are complete are they renamed,
 * {@code report.json} last (its presence marks a finished run). A failure before the renames leaves
 * no report file behind.
 */
public final class ReportFiles {
    private ReportFiles() {
    }

    /**
     * @param fs the directory's file system
     * @param dir the directory (it exists)
     * @param report the report tree ({@code docs/report.md})
     * @param conf Hadoop configuration (for the Parquet writer)
     * @return the paths written: report.json, metrics.parquet, report.html
     * @throws io.sparkprune.kernels.InvalidInputException when a tensor entry lacks a required field
     * @throws IOException when a file cannot be written or renamed
     */
    public static List<Path> write(FileSystem fs, Path dir, ObjectNode report, Configuration conf) throws IOException {
        Path json = new Path(dir, ReportFormat.REPORT_JSON);
        Path parquet = new Path(dir, ReportFormat.METRICS_PARQUET);
        Path html = new Path(dir, ReportFormat.REPORT_HTML);
        List<Path> tmps = new ArrayList<>();
        try {
            Path tp = tmp(parquet);
            tmps.add(tp);
            List<com.fasterxml.jackson.databind.JsonNode> tensors = new ArrayList<>();
            report.path("tensors").forEach(tensors::add);
            MetricsParquet.write(tensors, tp, conf);
            Path th = tmp(html);
            tmps.add(th);
            try (OutputStream o = fs.create(th, true)) {
                o.write(HtmlReport.render(report).getBytes(StandardCharsets.UTF_8));
            }
            Path tj = tmp(json);
            tmps.add(tj);
            try (OutputStream o = fs.create(tj, true)) {
                new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(o, report);
            }
            rename(fs, tp, parquet);
            rename(fs, th, html);
            rename(fs, tj, json);
            tmps.clear();
        } finally {
            for (Path t : tmps) {
                fs.delete(t, false);
            }
            // parquet-java leaves a checksum file beside a local file; remove the one of the temp name
            fs.delete(new Path(dir, "._tmp-" + ReportFormat.METRICS_PARQUET + ".crc"), false);
        }
        return List.of(json, parquet, html);
    }

    private static Path tmp(Path target) {
        return new Path(target.getParent(), "_tmp-" + target.getName());
    }

    private static void rename(FileSystem fs, Path from, Path to) throws IOException {
        if (fs.exists(to)) {
            fs.delete(to, false);
        }
        if (!fs.rename(from, to)) {
            throw new IOException("cannot rename " + from + " to " + to);
        }
    }
}
