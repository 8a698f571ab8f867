package io.sparkprune.pipeline.report;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.pipeline.recipe.Recipe;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.xml.parsers.DocumentBuilderFactory;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.w3c.dom.NodeList;

/** report.html: four charts as parsable inline SVG with their axis labels, the tables, the gate banner; the file writer. */
class HtmlReportTest {
    @TempDir
    Path tmp;

    /** Each inline chart, parsed as XML: chart name → the texts of its {@code <text>} elements. */
    static Map<String, List<String>> charts(String html) throws Exception {
        Map<String, List<String>> out = new LinkedHashMap<>();
        Matcher m = Pattern.compile("<figure data-chart=\"([a-z_]+)\">\\s*(<svg[\\s\\S]*?</svg>)\\s*</figure>").matcher(html);
        while (m.find()) {
            Document d = DocumentBuilderFactory.newInstance().newDocumentBuilder()
                    .parse(new ByteArrayInputStream(m.group(2).getBytes(StandardCharsets.UTF_8)));
            assertThat(d.getDocumentElement().getTagName()).isEqualTo("svg");
            NodeList texts = d.getElementsByTagName("text");
            List<String> t = new ArrayList<>();
            for (int i = 0; i < texts.getLength(); i++) {
                t.add(texts.item(i).getTextContent());
            }
            out.put(m.group(1), t);
        }
        return out;
    }

    @Test
    void encoderReportHasFourChartsWithAxisLabelsAndTheTables() throws Exception {
        ObjectNode r = Reports.encoder(3, 11);
        QualityGates.apply(r, Recipe.parse("gates:\n  min_embedding_cosine: 0.95\n", "t").gates());
        String html = HtmlReport.render(r);
        assertThat(Pattern.compile("<svg").matcher(html).results().count()).isEqualTo(4);
        Map<String, List<String>> c = charts(html);
        assertThat(c.keySet()).containsExactly("sparsity", "reconstruction_error", "quality", "bytes");
        assertThat(c.get("sparsity")).contains("Achieved sparsity per layer", "layer", "sparsity (fraction of zeros)",
                "qkv", "o", "up", "down", "0", "1", "2");
        assertThat(c.get("reconstruction_error")).contains("relative error ||(W-W')X|| / ||WX||",
                "attention.self.query", "output.dense");
        assertThat(c.get("quality")).contains("compressed", "mean cosine", "top-10 agreement");
        assertThat(c.get("bytes")).contains("MiB", "hf", "dense", "stored");
        assertThat(html).contains("data-gates=\"failed\"").contains("Quality gates FAILED")
                .contains("<td>min_embedding_cosine</td>")
                .contains("default &lt;&amp;&gt;") // escaped
                .doesNotContainPattern("(src|href)\\s*=\\s*['\"]?(https?:)?//") // nothing fetched from the network
                .doesNotContain("<script", "<link", "@import", "url(http");
        for (JsonNode t : r.get("tensors")) {
            assertThat(html).contains("<td>" + t.get("tensor").asText() + "</td>");
        }
    }

    @Test
    void aHostThatCannotRenderTextStillGetsTheReportWithoutCharts() {
        ObjectNode r = Reports.encoder(2, 5);
        String html = HtmlReport.render(r, (h, name, chart, index) -> {
            h.append("<figure data-chart=\"partial\">");
            throw new UnsatisfiedLinkError("libfontmanager.so: libharfbuzz.so.0: cannot open shared object file");
        });
        assertThat(html).contains("data-charts=\"unavailable\"").contains("libharfbuzz.so.0")
                .doesNotContain("<figure").contains("<h2>Tensors</h2>");
        for (JsonNode t : r.get("tensors")) {
            assertThat(html).contains("<td>" + t.get("tensor").asText() + "</td>");
        }
    }

    @Test
    void decoderQualityChartShowsPerplexityDenseVsCompressed() throws Exception {
        ObjectNode r = Reports.encoder(1, 12);
        r.remove("storage");
        ObjectNode q = r.putObject("quality");
        q.put("metric", "perplexity");
        q.put("perplexity_dense", 12.5);
        q.put("perplexity_pruned", 14.0);
        q.put("perplexity_increase", 0.12);
        QualityGates.apply(r, Recipe.defaults().gates());
        Map<String, List<String>> c = charts(HtmlReport.render(r));
        assertThat(c.keySet()).containsExactly("sparsity", "reconstruction_error", "quality");
        assertThat(c.get("quality")).contains("perplexity (lower is better)", "dense", "compressed");
        assertThat(HtmlReport.render(r)).contains("data-gates=\"none\"");
    }

    @Test
    void theThreeFilesAreWrittenTogetherWithoutLeftovers() throws Exception {
        ObjectNode r = Reports.encoder(2, 13);
        QualityGates.apply(r, Recipe.defaults().gates());
        Configuration conf = new Configuration();
        org.apache.hadoop.fs.Path dir = new org.apache.hadoop.fs.Path(tmp.toUri());
        ReportFiles.write(FileSystem.getLocal(conf), dir, r, conf);
        try (var files = Files.list(tmp)) {
            assertThat(files.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith(".")))
                    .containsExactlyInAnyOrder("report.json", "metrics.parquet", "report.html");
        }
        assertThat(new ObjectMapper().readTree(tmp.resolve("report.json").toFile())).isEqualTo(Reports.normalised(r));
        assertThat(Reports.normalised(new ObjectMapper().valueToTree(
                MetricsParquet.read(new org.apache.hadoop.fs.Path(dir, "metrics.parquet"), conf))))
                .isEqualTo(Reports.normalised(r.get("tensors")));
        assertThat(charts(Files.readString(tmp.resolve("report.html")))).hasSize(4);
    }

    private static List<JsonNode> toList(JsonNode arr) {
        List<JsonNode> l = new ArrayList<>();
        arr.forEach(l::add);
        return l;
    }
}
