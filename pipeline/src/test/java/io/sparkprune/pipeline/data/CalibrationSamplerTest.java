package io.sparkprune.pipeline.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.pipeline.tokenizer.EncodedBatch;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import io.sparkprune.pipeline.tokenizer.TokenizerException;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import java.util.SplittableRandom;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class CalibrationSamplerTest {

    static HfTokenizer tok;       // used by the sampler
    static HfTokenizer reference; // a second, independent instance to re-tokenize documents
    static List<String> docs;

    static final String[] WORDS = ("the commission parliament report budget council member states europe policy vote"
            + " proposal amendment directive energy climate fisheries agriculture transport rights citizens market").split(" ");

    @BeforeAll
    static void setUp() throws IOException {
        byte[] json;
        try (InputStream in = CalibrationSamplerTest.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            json = in.readAllBytes();
        }
        tok = HfTokenizer.fromBytes(json, "minilm");
        reference = HfTokenizer.fromBytes(json, "minilm-reference");
        // 60 documents of 3 to 80 words; the order of words varies so windows differ
        Random r = new Random(7);
        docs = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            int n = 3 + r.nextInt(78);
            StringBuilder sb = new StringBuilder("Document " + i + ":");
            for (int w = 0; w < n; w++) {
                sb.append(' ').append(WORDS[r.nextInt(WORDS.length)]);
            }
            docs.add(sb.append('.').toString());
        }
    }

    @AfterAll
    static void tearDown() {
        tok.close();
        reference.close();
    }

    @Test
    void windowsAreContiguousSlicesOfLongEnoughDocuments() {
        int n = 16;
        int len = 32;
        CalibrationBatch b = new CalibrationSampler(tok).sampleWindows(docs, "synthetic", n, len, 42, OptionalInt.empty());
        assertThat(b.samples()).isEqualTo(n);
        assertThat(b.seqLength()).isEqualTo(len);
        EncodedBatch t = b.tokens();
        assertThat(t.attentionMask()).containsOnly(1);
        assertThat(t.tokenTypeIds()).containsOnly(0);
        int[] ids = t.ids();
        for (int s = 0; s < n; s++) {
            int[] docIds = reference.encode(docs.get(b.documentIndices()[s]), false);
            assertThat(docIds.length).isGreaterThan(len);
            assertThat(t.fullLengths()[s]).isEqualTo(docIds.length);
            int start = b.windowStarts()[s];
            assertThat(start).isBetween(0, docIds.length - len - 1);
            assertThat(Arrays.copyOfRange(ids, s * len, (s + 1) * len))
                    .containsExactly(Arrays.copyOfRange(docIds, start, start + len));
        }
    }

    @Test
    void followsTheDocumentedReferenceRule() {
        // The rule of the class Javadoc (SparseGPT get_c4), written out naively: no cache, no shortcuts.
        int n = 20;
        int len = 40;
        long seed = 1234;
        SplittableRandom rng = new SplittableRandom(seed);
        int[] expectDoc = new int[n];
        int[] expectStart = new int[n];
        for (int s = 0; s < n; s++) {
            int[] enc;
            int i;
            while (true) {
                i = rng.nextInt(docs.size()); // randint(0, len(traindata) - 1)
                enc = reference.encode(docs.get(i), false);
                if (enc.length > len) {
                    break;
                }
            }
            expectDoc[s] = i;
            expectStart[s] = rng.nextInt(enc.length - len); // randint(0, shape - seqlen - 1)
        }
        CalibrationBatch b = new CalibrationSampler(tok).sampleWindows(docs, "synthetic", n, len, seed, OptionalInt.empty());
        assertThat(b.documentIndices()).containsExactly(expectDoc);
        assertThat(b.windowStarts()).containsExactly(expectStart);
    }

    @Test
    void sameSeedSameSamplesDifferentSeedDifferent() {
        CalibrationSampler sampler = new CalibrationSampler(tok);
        CalibrationBatch a = sampler.sampleWindows(docs, "synthetic", 8, 24, 5, OptionalInt.empty());
        CalibrationBatch b = sampler.sampleWindows(docs, "synthetic", 8, 24, 5, OptionalInt.empty());
        CalibrationBatch c = sampler.sampleWindows(docs, "synthetic", 8, 24, 6, OptionalInt.empty());
        assertThat(b.tokens().ids()).containsExactly(a.tokens().ids());
        assertThat(b.documentIndices()).containsExactly(a.documentIndices());
        assertThat(c.tokens().ids()).isNotEqualTo(a.tokens().ids());

        CalibrationBatch s1 = sampler.sampleSentences(docs, "synthetic", 10, 16, 5);
        CalibrationBatch s2 = sampler.sampleSentences(docs, "synthetic", 10, 16, 5);
        CalibrationBatch s3 = sampler.sampleSentences(docs, "synthetic", 10, 16, 6);
        assertThat(s2.tokens().ids()).containsExactly(s1.tokens().ids());
        assertThat(s3.documentIndices()).isNotEqualTo(s1.documentIndices());
    }

    @Test
    void bosIsPrependedToTheDocumentBeforeWindowing() {
        int bos = 101;
        int len = 10;
        CalibrationBatch b = new CalibrationSampler(tok).sampleWindows(docs, "synthetic", 30, len, 9, OptionalInt.of(bos));
        int[] ids = b.tokens().ids();
        boolean sawStartAtZero = false;
        for (int s = 0; s < b.samples(); s++) {
            int[] bare = reference.encode(docs.get(b.documentIndices()[s]), false);
            int[] withBos = new int[bare.length + 1];
            withBos[0] = bos;
            System.arraycopy(bare, 0, withBos, 1, bare.length);
            int start = b.windowStarts()[s];
            assertThat(Arrays.copyOfRange(ids, s * len, (s + 1) * len)).containsExactly(Arrays.copyOfRange(withBos, start, start + len));
            if (start == 0) {
                sawStartAtZero = true;
                assertThat(ids[s * len]).isEqualTo(bos);
            }
        }
        assertThat(sawStartAtZero).as("some window of 30 starts at the BOS with these short documents").isTrue();
    }

    @Test
    void noDocumentLongEnoughIsTypedAndBounded() {
        List<String> shortDocs = List.of("one two three", "four five", "six");
        assertThatThrownBy(() -> new CalibrationSampler(tok).sampleWindows(shortDocs, "tiny corpus", 128, 2048, 0, OptionalInt.empty()))
                .isInstanceOf(CalibrationDataException.class)
                .hasMessageContaining("tiny corpus").hasMessageContaining("128 windows").hasMessageContaining("2048 tokens")
                .hasMessageContaining("longest has 3 tokens").hasMessageContaining("lower the sequence length");
        assertThatThrownBy(() -> new CalibrationSampler(tok).sampleWindows(List.of(), "empty", 4, 8, 0, OptionalInt.empty()))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("empty").hasMessageContaining("no documents");
    }

    @Test
    void rareLongDocumentsHitTheAttemptCap() {
        List<String> mostlyShort = new ArrayList<>();
        for (int i = 0; i < 500; i++) {
            mostlyShort.add("short " + i);
        }
        mostlyShort.add("word ".repeat(100));
        CalibrationSampler sampler = new CalibrationSampler(tok).withMaxAttempts(5);
        assertThat(sampler.maxAttempts()).isEqualTo(5);
        assertThatThrownBy(() -> sampler.sampleWindows(mostlyShort, "skewed", 4, 50, 3, OptionalInt.empty()))
                .isInstanceOf(CalibrationDataException.class)
                .hasMessageContaining("skewed").hasMessageContaining("5 draws in a row").hasMessageContaining("50 tokens");
        // with the default cap the same request succeeds and uses the only long document
        CalibrationBatch ok = new CalibrationSampler(tok).sampleWindows(mostlyShort, "skewed", 4, 50, 3, OptionalInt.empty());
        assertThat(ok.documentIndices()).containsOnly(500);
    }

    @Test
    void sentencesAreDistinctDocumentsWithSpecialTokensTruncatedAndPadded() {
        int n = 12;
        int len = 20;
        CalibrationBatch b = new CalibrationSampler(tok).sampleSentences(docs, "synthetic", n, len, 77);
        Set<Integer> distinct = new HashSet<>();
        for (int d : b.documentIndices()) {
            distinct.add(d);
        }
        assertThat(distinct).hasSize(n);
        assertThat(b.windowStarts()).containsOnly(0);
        EncodedBatch t = b.tokens();
        for (int s = 0; s < n; s++) {
            int[] full = reference.encode(docs.get(b.documentIndices()[s]), true); // [CLS] ... [SEP]
            int[] row = t.rowIds(s);
            if (full.length <= len) {
                assertThat(row).containsExactly(full);
            } else {
                int[] expected = Arrays.copyOf(full, len);
                expected[len - 1] = 102; // truncated content, [SEP] kept
                assertThat(row).containsExactly(expected);
            }
            int[] mask = Arrays.copyOfRange(t.attentionMask(), s * len, (s + 1) * len);
            for (int p = 0; p < len; p++) {
                assertThat(mask[p]).isEqualTo(p < row.length ? 1 : 0);
            }
        }
    }

    @Test
    void sentencesFollowTheDocumentedShuffle() {
        List<String> withEmpty = new ArrayList<>(docs);
        withEmpty.set(3, "\u0001\u0002"); // control characters only: no token besides [CLS] [SEP]
        long seed = 99;
        int n = 59;
        SplittableRandom rng = new SplittableRandom(seed);
        int[] order = new int[withEmpty.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        List<Integer> expected = new ArrayList<>();
        for (int k = 0; k < order.length && expected.size() < n; k++) {
            int j = k + rng.nextInt(order.length - k);
            int tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
            if (order[k] != 3) {
                expected.add(order[k]);
            }
        }
        CalibrationBatch b = new CalibrationSampler(tok).sampleSentences(withEmpty, "synthetic", n, 16, seed);
        assertThat(b.documentIndices()).containsExactly(expected.stream().mapToInt(Integer::intValue).toArray());

        assertThatThrownBy(() -> new CalibrationSampler(tok).sampleSentences(withEmpty, "synthetic", 60, 16, seed))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("only 59").hasMessageContaining("60 samples");
        assertThatThrownBy(() -> new CalibrationSampler(tok).sampleSentences(docs, "synthetic", 61, 16, seed))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("60 documents").hasMessageContaining("61");
        assertThatThrownBy(() -> new CalibrationSampler(tok).sampleSentences(docs, "synthetic", 2, 2, seed))
                .isInstanceOf(TokenizerException.class);
    }

    @Test
    void fromDocumentSourceAndBadCounts() {
        DocumentSource src = DocumentSources.of("in-memory docs", docs);
        CalibrationBatch b = new CalibrationSampler(tok).sampleWindows(src, 1000, 4, 16, 1, OptionalInt.empty());
        assertThat(b.source()).isEqualTo("in-memory docs");
        assertThat(b.seed()).isEqualTo(1);
        CalibrationBatch fromList = new CalibrationSampler(tok).sampleWindows(docs, "x", 4, 16, 1, OptionalInt.empty());
        assertThat(b.tokens().ids()).containsExactly(fromList.tokens().ids());
        assertThatThrownBy(() -> new CalibrationSampler(tok).sampleWindows(docs, "x", 0, 16, 1, OptionalInt.empty()))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("at least 1");
        assertThatThrownBy(() -> new CalibrationSampler(tok).sampleWindows(docs, "x", 4, 0, 1, OptionalInt.empty()))
                .isInstanceOf(CalibrationDataException.class).hasMessageContaining("at least 1 token");
    }
}
