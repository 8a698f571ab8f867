package io.sparkprune.pipeline.report;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.awt.Color;
import java.awt.Rectangle;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.CategoryLabelPositions;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.text.TextUtils;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.svg.SVGGraphics2D;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Renders a report tree ({@code docs/report.md}) as {@code report.html}: one self-contained HTML
 * file (no script, no stylesheet or font from the network) with charts made by JFreeChart and
 * drawn by JFreeSVG into inline {@code <svg>} elements, each inside a
 * {@code <figure data-chart="NAME">}, and tables of the numbers:
 * <ul>
 *   <li>{@code sparsity}: bar chart, achieved sparsity (zeros / elements) per layer and tensor group;</li>
 *   <li>{@code reconstruction_error}: line chart, relative reconstruction error per layer, one line
 *       per tensor (only when the report has errors, i.e. from {@code prune});</li>
 *   <li>{@code quality}: bar chart, perplexity dense vs pruned (decoders) or the similarity of the
 *       pruned model to the dense one (encoders: mean and min cosine, top-10 neighbour agreement),
 *       with one more series per scored baseline ({@code quality.baselines}: magnitude, Wanda);</li>
 *   <li>{@code bytes}: bar chart, MiB of the target tensors dense vs as stored, per written format
 *       (the report's {@code storage} entries).</li>
 * </ul>
 * Then the gates (a PASSED / FAILED banner and a table), run facts, summary, quality and the
 * per-tensor table. Text goes into the SVG as {@code <text>} elements, so axis labels are in the DOM.
 */
public final class HtmlReport {
    private static final Logger LOG = LoggerFactory.getLogger(HtmlReport.class);
    /** Width of each chart in CSS pixels. */
    static final int WIDTH = 760;
    /** Height of each chart in CSS pixels. */
    static final int HEIGHT = 340;

    private HtmlReport() {
    }

    /**
     * @param report a report tree (as written to report.json)
     * @return the HTML document
     */
    public static String render(JsonNode report) {
        return render(report, HtmlReport::figure);
    }

    /** Draws one chart into the page (the SVG renderer; a test substitutes a failing one). */
    @FunctionalInterface
    interface FigureRenderer {
        void draw(StringBuilder h, String name, JFreeChart chart, int[] index);
    }

    static String render(JsonNode report, FigureRenderer figure) {
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
        // Rotated labels (the value axes) as SVG <text> with a transform instead of glyph outlines,
        // so they stay text in the DOM (JFreeChart's default draws them through a TextLayout).
        TextUtils.setUseDrawRotatedStringWorkaround(false);
        StringBuilder h = new StringBuilder(1 << 16);
        h.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>SparkPrune report: ")
                .append(esc(report.path("model").asText())).append("</title>\n<style>\n")
                .append("body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}")
                .append("table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:2px 8px;")
                .append("text-align:left;font-size:13px}th{background:#eee}td.n{text-align:right;font-family:monospace}")
                .append(".pass{background:#d8f5d0}.fail{background:#f9d0d0}.banner{padding:0.6em 1em;font-size:1.2em;")
                .append("font-weight:bold;border-radius:4px}figure{margin:1em 0}pre{background:#f6f6f6;padding:0.5em}\n")
                .append("</style>\n</head>\n<body>\n");
        h.append("<h1>SparkPrune ").append(esc(report.path("kind").asText(ReportFormat.KIND_PRUNE))).append(" report</h1>\n");
        h.append("<p>Model <code>").append(esc(report.path("model").asText())).append("</code> &rarr; <code>")
                .append(esc(report.path("output").asText())).append("</code>; format <code>")
                .append(esc(report.path("format").asText())).append("</code></p>\n");
        gates(h, report);
        h.append("<h2>Charts</h2>\n");
        int charts = h.length();
        try {
            int[] index = {0};
            List<JsonNode> tensors = new ArrayList<>();
            report.path("tensors").forEach(tensors::add);
            if (!tensors.isEmpty()) {
                figure.draw(h, "sparsity", sparsityChart(tensors), index);
                if (tensors.stream().anyMatch(t -> t.hasNonNull("relative_reconstruction_error"))) {
                    figure.draw(h, "reconstruction_error", errorChart(tensors), index);
                }
            }
            JFreeChart q = qualityChart(report.path("quality"));
            if (q != null) {
                figure.draw(h, "quality", q, index);
            }
            if (report.path("storage").size() > 0) {
                figure.draw(h, "bytes", bytesChart(report.path("storage")), index);
            }
        } catch (LinkageError | java.awt.AWTError | InternalError e) {
            // Java2D's font stack needs native libraries (freetype, harfbuzz) and a font; GPU server images
            // often lack them. The report's numbers must not be lost for its charts.
            h.setLength(charts);
            String reason = e.getClass().getSimpleName() + ": " + e.getMessage();
            LOG.warn("report.html is written without charts: this JVM cannot render text ({}); install the host's font"
                    + " libraries (e.g. Debian libfreetype6, libharfbuzz0b, fonts-dejavu-core) or re-render with"
                    + " 'sparkprune validate' on a host that has them", reason);
            h.append("<p class=\"banner fail\" data-charts=\"unavailable\">Charts unavailable: this JVM cannot render"
                    + " text (").append(esc(reason)).append("). Install the host's font libraries (e.g. Debian"
                    + " <code>libfreetype6 libharfbuzz0b fonts-dejavu-core</code>) or re-render this report with"
                    + " <code>sparkprune validate</code> on a host that has them. Every number is in the tables"
                    + " below and in report.json.</p>\n");
        }
        h.append("<h2>Summary</h2>\n");
        keyValueTable(h, report.path("summary"));
        h.append("<h2>Quality (held-out data)</h2>\n");
        JsonNode quality = report.path("quality");
        if (quality.isObject() && quality.has("baselines")) {
            quality = ((com.fasterxml.jackson.databind.node.ObjectNode) quality).deepCopy().without("baselines");
        }
        keyValueTable(h, quality); // baselines get their own table below
        if (report.path("quality").path("baselines").size() > 0) {
            h.append("<h3>Baselines (same pattern and targets, same data)</h3>\n");
            rowsTable(h, report.path("quality").path("baselines"), List.of("method", "pattern", "tensors", "perplexity",
                    "perplexity_increase", "mean_cosine", "min_cosine", "top10_neighbour_agreement", "error"));
        }
        if (report.path("storage").size() > 0) {
            h.append("<h2>Storage</h2>\n");
            rowsTable(h, report.path("storage"), List.of("format", "tensors", "dense_bytes", "stored_bytes", "ratio"));
        }
        h.append("<h2>Run</h2>\n");
        Map<String, JsonNode> facts = new LinkedHashMap<>();
        for (String k : List.of("model", "model_checkpoint", "model_type", "model_fingerprint_sha256", "compressed",
                "output")) {
            if (report.has(k)) {
                facts.put(k, report.get(k));
            }
        }
        flatten("run", report.path("run"), facts);
        flatten("calibration", report.path("calibration"), facts);
        h.append("<table>\n");
        facts.forEach((k, v) -> row(h, k, v));
        h.append("</table>\n<h3>Recipe (as resolved)</h3>\n<pre>").append(esc(pretty(report.path("recipe"))))
                .append("</pre>\n");
        h.append("<h2>Tensors</h2>\n");
        rowsTable(h, report.path("tensors"), MetricsParquet.COLUMNS.stream().map(MetricsParquet.Column::name).toList());
        h.append("</body>\n</html>\n");
        return h.toString();
    }

    private static void gates(StringBuilder h, JsonNode report) {
        JsonNode gates = report.path("gates");
        boolean passed = report.path("passed").asBoolean(true);
        h.append("<h2>Quality gates</h2>\n");
        if (gates.size() == 0) {
            h.append("<p class=\"banner pass\" data-gates=\"none\">No quality gates set (recipe section <code>gates</code>).</p>\n");
            return;
        }
        h.append("<p class=\"banner ").append(passed ? "pass" : "fail").append("\" data-gates=\"")
                .append(passed ? "passed" : "failed").append("\">Quality gates ").append(passed ? "PASSED" : "FAILED")
                .append("</p>\n");
        rowsTable(h, gates, List.of("name", "limit", "value", "passed", "detail"));
    }

    private static void figure(StringBuilder h, String name, JFreeChart chart, int[] index) {
        chart.setBackgroundPaint(Color.WHITE);
        SVGGraphics2D g = new SVGGraphics2D(WIDTH, HEIGHT);
        g.setDefsKeyPrefix("c" + index[0]++ + "_");
        chart.draw(g, new Rectangle(0, 0, WIDTH, HEIGHT));
        h.append("<figure data-chart=\"").append(name).append("\">\n").append(g.getSVGElement("chart-" + name))
                .append("\n</figure>\n");
    }

    /** Layer index as a category label; layers sort numerically. */
    private static String layer(JsonNode t) {
        return Integer.toString(t.path("layer").asInt());
    }

    static JFreeChart sparsityChart(List<JsonNode> tensors) {
        Map<String, Map<String, long[]>> bySeries = new LinkedHashMap<>();
        for (JsonNode t : tensors) {
            String series = t.hasNonNull("group") ? t.get("group").asText() : shortName(t);
            long[] acc = bySeries.computeIfAbsent(series, k -> new LinkedHashMap<>())
                    .computeIfAbsent(layer(t), k -> new long[2]);
            acc[0] += t.path("zeros").asLong();
            acc[1] += t.path("elements").asLong();
        }
        DefaultCategoryDataset ds = new DefaultCategoryDataset();
        bySeries.forEach((s, layers) -> layers.forEach((l, a) -> ds.addValue(a[1] == 0 ? 0 : (double) a[0] / a[1], s, l)));
        JFreeChart c = ChartFactory.createBarChart("Achieved sparsity per layer", "layer",
                "sparsity (fraction of zeros)", ds, PlotOrientation.VERTICAL, true, false, false);
        CategoryPlot p = c.getCategoryPlot();
        ((NumberAxis) p.getRangeAxis()).setRange(0, 1);
        rotateIfCrowded(p, ds.getColumnCount());
        return c;
    }

    static JFreeChart errorChart(List<JsonNode> tensors) {
        DefaultCategoryDataset ds = new DefaultCategoryDataset();
        for (JsonNode t : tensors) {
            if (t.hasNonNull("relative_reconstruction_error")) {
                ds.addValue(t.get("relative_reconstruction_error").asDouble(), shortName(t), layer(t));
            }
        }
        JFreeChart c = ChartFactory.createLineChart("Relative reconstruction error per layer", "layer",
                "relative error ||(W-W')X|| / ||WX||", ds, PlotOrientation.VERTICAL, true, false, false);
        rotateIfCrowded(c.getCategoryPlot(), ds.getColumnCount());
        return c;
    }

    static JFreeChart qualityChart(JsonNode q) {
        DefaultCategoryDataset ds = new DefaultCategoryDataset();
        String valueLabel;
        String title;
        if (q.hasNonNull("perplexity_dense") && q.hasNonNull("perplexity_pruned")) {
            ds.addValue(q.get("perplexity_dense").asDouble(), "dense", "perplexity");
            ds.addValue(q.get("perplexity_pruned").asDouble(), "compressed", "perplexity");
            for (JsonNode b : q.path("baselines")) {
                if (b.hasNonNull("perplexity")) {
                    ds.addValue(b.get("perplexity").asDouble(), baselineSeries(b), "perplexity");
                }
            }
            valueLabel = "perplexity (lower is better)";
            title = "Perplexity on held-out data, dense vs compressed" + (q.path("baselines").size() > 0 ? " vs baselines" : "");
        } else if (q.hasNonNull("mean_cosine")) {
            ds.addValue(1.0, "dense (reference)", "mean cosine");
            ds.addValue(q.get("mean_cosine").asDouble(), "compressed", "mean cosine");
            ds.addValue(1.0, "dense (reference)", "min cosine");
            ds.addValue(q.path("min_cosine").asDouble(), "compressed", "min cosine");
            ds.addValue(1.0, "dense (reference)", "top-10 agreement");
            ds.addValue(q.path("top10_neighbour_agreement").asDouble(), "compressed", "top-10 agreement");
            for (JsonNode b : q.path("baselines")) {
                if (b.hasNonNull("mean_cosine")) {
                    ds.addValue(b.get("mean_cosine").asDouble(), baselineSeries(b), "mean cosine");
                    ds.addValue(b.path("min_cosine").asDouble(), baselineSeries(b), "min cosine");
                    ds.addValue(b.path("top10_neighbour_agreement").asDouble(), baselineSeries(b), "top-10 agreement");
                }
            }
            valueLabel = "similarity to the dense model (1 = identical)";
            title = "Embedding quality on held-out sentences, dense vs compressed"
                    + (q.path("baselines").size() > 0 ? " vs baselines" : "");
        } else {
            return null;
        }
        JFreeChart c = ChartFactory.createBarChart(title, "metric", valueLabel, ds, PlotOrientation.VERTICAL, true, false, false);
        if (!q.hasNonNull("perplexity_dense")) {
            ((NumberAxis) c.getCategoryPlot().getRangeAxis()).setRange(0, 1.05);
        }
        return c;
    }

    /** @return the chart series of a {@code quality.baselines} entry, e.g. {@code "magnitude 2:4 (baseline)"} */
    private static String baselineSeries(JsonNode b) {
        return b.path("method").asText() + " " + b.path("pattern").asText() + " (baseline)";
    }

    static JFreeChart bytesChart(JsonNode storage) {
        DefaultCategoryDataset ds = new DefaultCategoryDataset();
        for (JsonNode s : storage) {
            String f = s.path("format").asText();
            ds.addValue(s.path("dense_bytes").asDouble() / (1 << 20), "dense", f);
            ds.addValue(s.path("stored_bytes").asDouble() / (1 << 20), "stored", f);
        }
        return ChartFactory.createBarChart("Bytes of the target tensors per format", "format", "MiB", ds,
                PlotOrientation.VERTICAL, true, false, false);
    }

    private static void rotateIfCrowded(CategoryPlot p, int categories) {
        if (categories > 16) {
            p.getDomainAxis().setCategoryLabelPositions(CategoryLabelPositions.UP_90);
        }
    }

    /**
     * @param t a tensor entry
     * @return its name without the layer prefix and {@code .weight}, e.g. {@code attention.self.query}
     */
    static String shortName(JsonNode t) {
        String name = t.path("tensor").asText();
        String marker = "." + t.path("layer").asInt() + ".";
        int i = name.indexOf(marker);
        String s = i >= 0 ? name.substring(i + marker.length()) : name;
        return s.endsWith(".weight") ? s.substring(0, s.length() - ".weight".length()) : s;
    }

    private static void flatten(String prefix, JsonNode n, Map<String, JsonNode> out) {
        if (n.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                flatten(prefix + "." + e.getKey(), e.getValue(), out);
            }
        } else if (!n.isMissingNode()) {
            out.put(prefix, n);
        }
    }

    private static void keyValueTable(StringBuilder h, JsonNode obj) {
        h.append("<table>\n");
        for (Iterator<Map.Entry<String, JsonNode>> it = obj.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            row(h, e.getKey(), e.getValue());
        }
        h.append("</table>\n");
    }

    private static void row(StringBuilder h, String k, JsonNode v) {
        h.append("<tr><th>").append(esc(k)).append("</th>");
        cell(h, v);
        h.append("</tr>\n");
    }

    private static void rowsTable(StringBuilder h, JsonNode rows, List<String> cols) {
        h.append("<table>\n<tr>");
        cols.forEach(c -> h.append("<th>").append(esc(c)).append("</th>"));
        h.append("</tr>\n");
        for (JsonNode r : rows) {
            boolean failed = r.has("passed") && !r.get("passed").asBoolean();
            h.append(failed ? "<tr class=\"fail\">" : "<tr>");
            cols.forEach(c -> cell(h, r.get(c)));
            h.append("</tr>\n");
        }
        h.append("</table>\n");
    }

    private static void cell(StringBuilder h, JsonNode v) {
        if (v == null || v.isNull()) {
            h.append("<td></td>");
        } else if (v.isNumber()) {
            h.append("<td class=\"n\">").append(v.isIntegralNumber() ? Long.toString(v.asLong())
                    : String.format(Locale.ROOT, "%.6g", v.asDouble())).append("</td>");
        } else if (v.isContainerNode()) {
            h.append("<td><code>").append(esc(v.toString())).append("</code></td>");
        } else {
            h.append("<td>").append(esc(v.asText())).append("</td>");
        }
    }

    private static String pretty(JsonNode n) {
        try {
            return new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsString(n);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a JSON tree always serializes", e);
        }
    }

    /**
     * @param s text
     * @return {@code s} with the five HTML special characters escaped
     */
    static String esc(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '&' -> b.append("&amp;");
                case '"' -> b.append("&quot;");
                case '\'' -> b.append("&#39;");
                default -> b.append(c);
            }
        }
        return b.toString();
    }
}
