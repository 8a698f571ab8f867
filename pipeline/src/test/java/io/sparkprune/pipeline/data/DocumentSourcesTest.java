package io.sparkprune.pipeline.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.InvalidInputException;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;

import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.MessageTypeParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DocumentSourcesTest {

    @TempDir
    Path dir;

    static final SourceOptions DEFAULTS = SourceOptions.defaults();

    Path write(String name, String content) throws IOException {
        Path p = dir.resolve(name);
        Files.createDirectories(p.getParent());
        Files.writeString(p, content, StandardCharsets.UTF_8);
        return p;
    }

    Path writeGz(String name, String content) throws IOException {
        Path p = dir.resolve(name);
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(p))) {
            out.write(content.getBytes(StandardCharsets.UTF_8));
        }
        return p;
    }

    static List<String> read(DocumentSource s) {
        return s.readAll(Integer.MAX_VALUE);
    }

    @Test
    void textLinesSkipBlankAndStrip() throws IOException {
        Path p = write("a.txt", "first line\n\n   \n  second line  \r\nthird\n");
        FileDocumentSource s = DocumentSources.open(p.toString(), DEFAULTS);
        assertThat(read(s)).containsExactly("first line", "second line", "third");
        assertThat(s.files()).hasSize(1);
        assertThat(s.description()).contains("a.txt").contains("1 file");
        // re-readable
        assertThat(read(s)).containsExactly("first line", "second line", "third");
    }

    @Test
    void textWholeFileMode() throws IOException {
        write("docs/one.txt", "Paragraph one.\n\nParagraph two.\n");
        write("docs/two.txt", "  \n \n");
        write("docs/three.txt", "Just this.");
        FileDocumentSource s = DocumentSources.open(dir.resolve("docs").toString(), DEFAULTS.withTextMode(TextMode.WHOLE_FILE));
        assertThat(read(s)).containsExactly("Paragraph one.\n\nParagraph two.", "Just this.");
    }

    @Test
    void gzipTextAndJsonl() throws IOException {
        Path t = writeGz("a.txt.gz", "alpha\nbeta\n");
        Path j = writeGz("b.jsonl.gz", "{\"text\": \"gamma\"}\n{\"text\": \"delta\", \"id\": 2}\n");
        assertThat(read(DocumentSources.open(t.toString(), DEFAULTS))).containsExactly("alpha", "beta");
        assertThat(read(DocumentSources.open(j.toString(), DEFAULTS))).containsExactly("gamma", "delta");
    }

    @Test
    void jsonlNamedFieldAndUnicode() throws IOException {
        Path p = write("c.jsonl", "{\"body\": \"Zürich \\u00e9t\\u00e9\", \"text\": 1}\n\n{\"body\": \"line\\nbreak\"}\n");
        assertThat(read(DocumentSources.open(p.toString(), DEFAULTS.withField("body"))))
                .containsExactly("Zürich été", "line\nbreak");
    }

    @Test
    void jsonlBadLineNamesFileAndLine() throws IOException {
        Path p = write("bad.jsonl", "{\"text\": \"ok 1\"}\n{\"text\": \"ok 2\"}\n\n{\"text\": \"broken\n{\"text\": \"never read\"}\n");
        FileDocumentSource s = DocumentSources.open(p.toString(), DEFAULTS);
        // streaming is lazy: the first two documents read fine
        assertThat(s.readAll(2)).containsExactly("ok 1", "ok 2");
        assertThatThrownBy(() -> read(s))
                .isInstanceOf(CalibrationDataException.class).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining(p.getFileName().toString()).hasMessageContaining("line 4")
                .hasMessageContaining("not valid JSON");
    }

    @Test
    void jsonlMissingOrWrongFieldNamesFileAndLine() throws IOException {
        Path p = write("missing.jsonl", "{\"text\": \"ok\"}\n{\"content\": \"x\", \"id\": 7}\n");
        assertThatThrownBy(() -> read(DocumentSources.open(p.toString(), DEFAULTS)))
                .isInstanceOf(CalibrationDataException.class)
                .hasMessageContaining("missing.jsonl").hasMessageContaining("line 2")
                .hasMessageContaining("no field \"text\"").hasMessageContaining("[content, id]");

        Path q = write("number.jsonl", "{\"text\": 42}\n");
        assertThatThrownBy(() -> read(DocumentSources.open(q.toString(), DEFAULTS)))
                .isInstanceOf(CalibrationDataException.class)
                .hasMessageContaining("number.jsonl").hasMessageContaining("line 1").hasMessageContaining("NUMBER");

        Path r = write("array.jsonl", "[\"text\"]\n");
        assertThatThrownBy(() -> read(DocumentSources.open(r.toString(), DEFAULTS)))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("line 1").hasMessageContaining("not an object");
    }

    @Test
    void invalidUtf8AndCorruptGzipAreTyped() throws IOException {
        Path p = dir.resolve("latin1.txt");
        Files.write(p, "ok\ncaf\u00e9\n".getBytes(StandardCharsets.ISO_8859_1));
        assertThatThrownBy(() -> read(DocumentSources.open(p.toString(), DEFAULTS)))
                .isInstanceOf(CalibrationDataException.class)
                .hasMessageContaining("latin1.txt").hasMessageContaining("not valid UTF-8").hasMessageContaining("line 2");

        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (OutputStream out = new GZIPOutputStream(bytes)) {
            out.write("many words here\n".repeat(2000).getBytes(StandardCharsets.UTF_8));
        }
        Path g = dir.resolve("cut.txt.gz");
        Files.write(g, Arrays.copyOf(bytes.toByteArray(), bytes.size() / 2));
        assertThatThrownBy(() -> read(DocumentSources.open(g.toString(), DEFAULTS)))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("cut.txt.gz").hasMessageContaining("gzip");

        Path notGz = write("plain.txt.gz", "not gzip at all\n");
        assertThatThrownBy(() -> read(DocumentSources.open(notGz.toString(), DEFAULTS)))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("plain.txt.gz");
    }

    @Test
    void globOverSeveralFilesIsSortedAndMixesFormats() throws IOException {
        write("data/part-2.jsonl", "{\"text\": \"two-a\"}\n{\"text\": \"two-b\"}\n");
        write("data/part-1.jsonl", "{\"text\": \"one\"}\n");
        writeGz("data/part-3.jsonl.gz", "{\"text\": \"three\"}\n");
        write("data/notes.txt", "not matched\n");
        FileDocumentSource s = DocumentSources.open(dir.resolve("data").toString() + "/part-*", DEFAULTS);
        assertThat(s.files()).hasSize(3);
        assertThat(s.files().get(0)).endsWith("part-1.jsonl");
        assertThat(read(s)).containsExactly("one", "two-a", "two-b", "three");
        assertThat(s.perFile()).hasSize(3);
        assertThat(read(s.perFile().get(1))).containsExactly("two-a", "two-b");

        FileDocumentSource braces = DocumentSources.open(dir.resolve("data").toString() + "/{notes.txt,part-1.jsonl}", DEFAULTS);
        assertThat(read(braces)).containsExactly("not matched", "one");

        // a directory: its visible files, any format by extension
        FileDocumentSource whole = DocumentSources.open(dir.resolve("data").toUri().toString(), DEFAULTS);
        assertThat(whole.files()).hasSize(4);
        assertThat(read(whole)).containsExactly("not matched", "one", "two-a", "two-b", "three");
    }

    @Test
    void noMatchIsTyped() {
        String spec = dir.resolve("nothing-here/*.jsonl").toString();
        assertThatThrownBy(() -> DocumentSources.open(spec, DEFAULTS))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining(spec).hasMessageContaining("matches no file");
        String missing = dir.resolve("missing.txt").toString();
        assertThatThrownBy(() -> DocumentSources.open(missing, DEFAULTS))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("missing.txt");
        assertThatThrownBy(() -> DocumentSources.open(" ", DEFAULTS)).isInstanceOf(CalibrationDataException.class);
        assertThatThrownBy(() -> DocumentFormat.parse("csv")).isInstanceOf(CalibrationDataException.class)
                .hasMessageContaining("csv").hasMessageContaining("jsonl");
    }

    @Test
    void formatResolution() {
        assertThat(DocumentFormat.AUTO.resolve("x.JSONL.gz")).isEqualTo(DocumentFormat.JSONL);
        assertThat(DocumentFormat.AUTO.resolve("x.ndjson")).isEqualTo(DocumentFormat.JSONL);
        assertThat(DocumentFormat.AUTO.resolve("part-0.parquet")).isEqualTo(DocumentFormat.PARQUET);
        assertThat(DocumentFormat.AUTO.resolve("corpus")).isEqualTo(DocumentFormat.TEXT);
        assertThat(DocumentFormat.TEXT.resolve("x.jsonl")).isEqualTo(DocumentFormat.TEXT);
    }

    void writeParquet(Path p, MessageType schema, List<Group> rows) throws IOException {
        try (ParquetWriter<Group> w = ExampleParquetWriter.builder(new org.apache.hadoop.fs.Path(p.toUri()))
                .withType(schema).withConf(new Configuration()).build()) {
            for (Group g : rows) {
                w.write(g);
            }
        }
    }

    @Test
    void parquetStringColumnSkipsNullsAndBlanks() throws IOException {
        MessageType schema = MessageTypeParser.parseMessageType(
                "message doc { required int64 id; optional binary text (STRING); optional binary title (STRING); }");
        SimpleGroupFactory f = new SimpleGroupFactory(schema);
        List<Group> rows = List.of(
                f.newGroup().append("id", 1L).append("text", "first document").append("title", "t1"),
                f.newGroup().append("id", 2L).append("title", "no text"),
                f.newGroup().append("id", 3L).append("text", "   ").append("title", "blank"),
                f.newGroup().append("id", 4L).append("text", "Zürich, été").append("title", "t4"));
        Path p = dir.resolve("docs.parquet");
        writeParquet(p, schema, rows);
        assertThat(read(DocumentSources.open(p.toString(), DEFAULTS))).containsExactly("first document", "Zürich, été");
        assertThat(read(DocumentSources.open(p.toString(), DEFAULTS.withField("title"))))
                .containsExactly("t1", "no text", "blank", "t4");
    }

    @Test
    void parquetGlobOverFiles() throws IOException {
        MessageType schema = MessageTypeParser.parseMessageType("message doc { required binary text (STRING); }");
        SimpleGroupFactory f = new SimpleGroupFactory(schema);
        for (int part = 0; part < 3; part++) {
            writeParquet(dir.resolve("pq/part-" + part + ".parquet"), schema,
                    List.of(f.newGroup().append("text", "p" + part + "a"), f.newGroup().append("text", "p" + part + "b")));
        }
        FileDocumentSource s = DocumentSources.open(dir.resolve("pq").toString() + "/*.parquet", DEFAULTS);
        assertThat(s.files()).hasSize(3);
        assertThat(read(s)).containsExactly("p0a", "p0b", "p1a", "p1b", "p2a", "p2b");
        // the directory spec skips Hadoop's hidden .crc side files
        assertThat(DocumentSources.open(dir.resolve("pq").toString(), DEFAULTS).files()).hasSize(3);
    }

    @Test
    void parquetWrongColumnIsTyped() throws IOException {
        MessageType schema = MessageTypeParser.parseMessageType(
                "message doc { required int64 id; optional binary content (STRING); }");
        SimpleGroupFactory f = new SimpleGroupFactory(schema);
        Path p = dir.resolve("wrong.parquet");
        writeParquet(p, schema, List.of(f.newGroup().append("id", 1L).append("content", "x")));
        assertThatThrownBy(() -> read(DocumentSources.open(p.toString(), DEFAULTS)))
                .isInstanceOf(CalibrationDataException.class)
                .hasMessageContaining("wrong.parquet").hasMessageContaining("\"text\"").hasMessageContaining("[id, content]");
        assertThatThrownBy(() -> read(DocumentSources.open(p.toString(), DEFAULTS.withField("id"))))
                .isInstanceOf(CalibrationDataException.class)
                .hasMessageContaining("wrong.parquet").hasMessageContaining("\"id\"").hasMessageContaining("int64");

        Path notParquet = write("fake.parquet", "this is text\n");
        assertThatThrownBy(() -> read(DocumentSources.open(notParquet.toString(), DEFAULTS)))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("fake.parquet")
                .hasMessageContaining("not a readable Parquet file");
    }

    @Test
    void streamClosesOpenFiles() throws IOException {
        write("many/a.txt", "1\n2\n3\n");
        write("many/b.txt", "4\n");
        FileDocumentSource s = DocumentSources.open(dir.resolve("many").toString(), DEFAULTS);
        try (Stream<String> docs = s.documents()) {
            assertThat(docs.findFirst()).hasValue("1");
        }
        assertThat(read(s)).containsExactly("1", "2", "3", "4");
    }

    @Test
    void inMemoryAndLineSources() {
        DocumentSource mem = DocumentSources.of("mem", List.of(" a ", "", "b"));
        assertThat(read(mem)).containsExactly("a", "b");
        DocumentSource lines = DocumentSources.lines("upper",
                () -> new java.io.ByteArrayInputStream("x\ny\n\nskip\n".getBytes(StandardCharsets.UTF_8)),
                l -> l.equals("skip") ? java.util.Optional.empty() : java.util.Optional.of(l.toUpperCase()));
        assertThat(read(lines)).containsExactly("X", "Y");
        assertThat(read(mem.filter("no a", d -> !d.equals("a")))).containsExactly("b");
        assertThat(mem.filter("no a", d -> true).description()).isEqualTo("mem [no a]");
    }
}
