package io.sparkprune.pipeline.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HfTokenizerTest {

    static final String RESOURCE = "all-minilm-l6-v2-tokenizer.json";
    static byte[] json;
    static HfTokenizer tok;
    static Map<String, Integer> vocab;

    @BeforeAll
    static void load() throws IOException {
        try (InputStream in = HfTokenizerTest.class.getClassLoader().getResourceAsStream(RESOURCE)) {
            assertThat(in).as("classpath resource " + RESOURCE).isNotNull();
            json = in.readAllBytes();
        }
        tok = HfTokenizer.fromBytes(json, RESOURCE);
        vocab = new HashMap<>();
        JsonNode v = new ObjectMapper().readTree(json).get("model").get("vocab");
        for (Map.Entry<String, JsonNode> e : v.properties()) {
            vocab.put(e.getKey(), e.getValue().asInt());
        }
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void publishedBertUncasedIds() {
        // bert-base-uncased ids, as printed in the Hugging Face docs: [CLS] hello world [SEP]
        assertThat(tok.encode("Hello world", true)).containsExactly(101, 7592, 2088, 102);
        assertThat(tok.encode("Hello world", false)).containsExactly(7592, 2088);
        assertThat(tok.clsId()).hasValue(101);
        assertThat(tok.sepId()).hasValue(102);
        assertThat(tok.padId()).hasValue(0);
        assertThat(tok.unkId()).hasValue(100);
        assertThat(tok.vocabSize()).isEqualTo(30522);
        assertThat(tok.numSpecialTokens()).isEqualTo(2);
        assertThat(tok.tokenId("hello")).hasValue(7592);
        assertThat(tok.tokenId("no-such-token-xyz")).isEmpty();
    }

    @Test
    void idsMatchIndependentWordPiece() {
        List<String> sentences = List.of(
                "The quick brown fox jumps over the lazy dog.",
                "Tokenization isn't trivial: SparseGPT prunes 2:4 weights, unaffably!",
                "Mr President, the Commission's proposal (COM(2004) 0123) is unacceptable.",
                "Café déjà vu in Zürich — naïve résumé.",
                "Hyperparameterization of transformer-based language models");
        for (String s : sentences) {
            int[] expected = ReferenceWordPiece.encode(s, vocab);
            assertThat(tok.encode(s, false)).as(s).containsExactly(expected);
            int[] withSpecial = new int[expected.length + 2];
            withSpecial[0] = 101;
            System.arraycopy(expected, 0, withSpecial, 1, expected.length);
            withSpecial[withSpecial.length - 1] = 102;
            assertThat(tok.encode(s, true)).as(s).containsExactly(withSpecial);
        }
        // the reference really splits into sub-words for this one
        assertThat(ReferenceWordPiece.encode("Hyperparameterization", vocab).length).isGreaterThan(1);
    }

    @Test
    void encodeIgnoresFileTruncationAndPadding() {
        // the MiniLM file pads to 128 and truncates at 128; encode must do neither
        String longText = "word ".repeat(300);
        assertThat(tok.encode(longText, true)).hasSize(302);
        assertThat(tok.encode("", true)).containsExactly(101, 102);
    }

    @Test
    void decodeRoundTrip() {
        int[] ids = tok.encode("Hello world, the quick brown fox!", true);
        assertThat(tok.decode(ids, true)).isEqualTo("hello world, the quick brown fox!");
        assertThat(tok.decode(ids, false)).startsWith("[CLS] hello").endsWith("[SEP]");
        assertThatThrownBy(() -> tok.decode(new int[] {30522}, true)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("30522");
    }

    @Test
    void batchShapesPaddingAndMask() {
        List<String> texts = List.of("Hello world", "", "the quick brown fox jumps over the lazy dog");
        EncodedBatch b = tok.encodeBatch(texts, 8);
        assertThat(b.rows()).isEqualTo(3);
        assertThat(b.seqLength()).isEqualTo(8);
        assertThat(b.ids()).containsExactly(
                101, 7592, 2088, 102, 0, 0, 0, 0,
                101, 102, 0, 0, 0, 0, 0, 0,
                101, 1996, 4248, 2829, 4419, 14523, 2058, 102);
        assertThat(b.attentionMask()).containsExactly(
                1, 1, 1, 1, 0, 0, 0, 0,
                1, 1, 0, 0, 0, 0, 0, 0,
                1, 1, 1, 1, 1, 1, 1, 1);
        assertThat(b.tokenTypeIds()).containsOnly(0);
        assertThat(b.lengths()).containsExactly(4, 2, 8);
        assertThat(b.fullLengths()).containsExactly(4, 2, 11);
        assertThat(b.rowIds(0)).containsExactly(101, 7592, 2088, 102);

        HostTensor t = b.idsTensor();
        assertThat(t.dtype()).isEqualTo(DType.I64);
        assertThat(t.shape()).containsExactly(3, 8);
        assertThat(t.data().order(ByteOrder.LITTLE_ENDIAN).getLong(8 * 17)).isEqualTo(1996L);
        assertThat(b.attentionMaskTensor().data().order(ByteOrder.LITTLE_ENDIAN).getLong(8 * 4)).isZero();
    }

    @Test
    void batchTruncationMatchesHuggingFaceTruncation() throws IOException {
        List<String> texts = new ArrayList<>(List.of(
                "Mr President, ladies and gentlemen, the report before us concerns the protection of workers.",
                "Short one.",
                "Tokenization isn't trivial: SparseGPT prunes 2:4 weights, unaffably and without retraining!"));
        int maxLength = 12;
        Map<String, String> opts = Map.of("truncation", "true", "maxLength", Integer.toString(maxLength),
                "padding", "false", "addSpecialTokens", "true");
        try (HuggingFaceTokenizer hf = HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(json), opts)) {
            EncodedBatch b = tok.encodeBatch(texts, maxLength);
            for (int r = 0; r < texts.size(); r++) {
                long[] ref = hf.encode(texts.get(r)).getIds();
                int[] refInts = Arrays.stream(ref).mapToInt(Math::toIntExact).toArray();
                assertThat(b.rowIds(r)).as(texts.get(r)).containsExactly(refInts);
            }
        }
    }

    @Test
    void maxLengthTooShortIsTyped() {
        assertThatThrownBy(() -> tok.encodeBatch(List.of("hi"), 2))
                .isInstanceOf(TokenizerException.class)
                .hasMessageContaining(RESOURCE).hasMessageContaining("at least 3");
    }

    @Test
    void loadsFromFileAndStream(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("tokenizer.json");
        Files.write(f, json);
        try (HfTokenizer a = HfTokenizer.fromFile(f);
             HfTokenizer b = HfTokenizer.fromStream(new ByteArrayInputStream(json), "stream")) {
            assertThat(a.source()).isEqualTo(f.toAbsolutePath().toString());
            assertThat(a.encode("world", true)).containsExactly(101, 2088, 102);
            assertThat(b.encode("world", false)).containsExactly(2088);
        }
    }

    @Test
    void missingFileIsTypedAndNamed(@TempDir Path dir) {
        Path missing = dir.resolve("nope/tokenizer.json");
        assertThatThrownBy(() -> HfTokenizer.fromFile(missing))
                .isInstanceOf(TokenizerException.class).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining(missing.toAbsolutePath().toString()).hasMessageContaining("does not exist");
    }

    @Test
    void malformedJsonIsTypedAndNamed(@TempDir Path dir) throws IOException {
        Path truncated = dir.resolve("truncated.json");
        Files.write(truncated, Arrays.copyOf(json, 5000));
        assertThatThrownBy(() -> HfTokenizer.fromFile(truncated))
                .isInstanceOf(TokenizerException.class)
                .hasMessageContaining(truncated.toAbsolutePath().toString()).hasMessageContaining("not valid JSON");

        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, "{\"do_lower_case\": true, \"model_max_length\": 512}");
        assertThatThrownBy(() -> HfTokenizer.fromFile(config))
                .isInstanceOf(TokenizerException.class)
                .hasMessageContaining(config.toAbsolutePath().toString()).hasMessageContaining("no \"model\"");

        Path badModel = dir.resolve("bad-model.json");
        Files.writeString(badModel, "{\"model\": {\"type\": \"NoSuchModel\", \"vocab\": {\"a\": 0}}}");
        assertThatThrownBy(() -> HfTokenizer.fromFile(badModel))
                .isInstanceOf(TokenizerException.class)
                .hasMessageContaining(badModel.toAbsolutePath().toString());
    }

    @Test
    void closedTokenizerRefusesWork() {
        HfTokenizer t = HfTokenizer.fromBytes(json, RESOURCE);
        t.close();
        t.close();
        assertThatThrownBy(() -> t.encode("x", true)).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
    }

    @Test
    void djlPinnedToBundledCpuBuild() {
        // set by HfTokenizer's static initialiser unless the environment chose otherwise
        String flavor = System.getenv(HfTokenizer.RUST_FLAVOR) != null ? System.getenv(HfTokenizer.RUST_FLAVOR)
                : System.getProperty(HfTokenizer.RUST_FLAVOR);
        assertThat(flavor).isNotNull();
        if (System.getenv(HfTokenizer.RUST_FLAVOR) == null) {
            assertThat(flavor).isEqualTo("cpu");
        }
        if (System.getenv(HfTokenizer.OPT_OUT_TRACKING) == null) {
            assertThat(System.getProperty(HfTokenizer.OPT_OUT_TRACKING)).isEqualTo("true");
        }
    }

    /**
     * A minimal BERT uncased tokenizer written from the BERT paper's description and Google's
     * reference tokenization.py: clean + lower-case + strip accents, split on whitespace and
     * punctuation, then greedy longest-match-first WordPiece with "##" continuations.
     */
    static final class ReferenceWordPiece {
        static int[] encode(String text, Map<String, Integer> vocab) {
            List<Integer> out = new ArrayList<>();
            for (String word : basicTokens(text)) {
                wordPiece(word, vocab, out);
            }
            return out.stream().mapToInt(Integer::intValue).toArray();
        }

        static List<String> basicTokens(String text) {
            String lower = text.toLowerCase(java.util.Locale.ROOT);
            String stripped = Normalizer.normalize(lower, Normalizer.Form.NFD).replaceAll("\\p{Mn}", "");
            List<String> tokens = new ArrayList<>();
            StringBuilder cur = new StringBuilder();
            for (int i = 0; i < stripped.length(); i++) {
                char c = stripped.charAt(i);
                if (Character.isWhitespace(c)) {
                    flush(cur, tokens);
                } else if (isPunctuation(c)) {
                    flush(cur, tokens);
                    tokens.add(String.valueOf(c));
                } else {
                    cur.append(c);
                }
            }
            flush(cur, tokens);
            return tokens;
        }

        static boolean isPunctuation(char c) {
            if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) {
                return true;
            }
            int t = Character.getType(c);
            return t == Character.CONNECTOR_PUNCTUATION || t == Character.DASH_PUNCTUATION || t == Character.START_PUNCTUATION
                    || t == Character.END_PUNCTUATION || t == Character.INITIAL_QUOTE_PUNCTUATION
                    || t == Character.FINAL_QUOTE_PUNCTUATION || t == Character.OTHER_PUNCTUATION;
        }

        static void flush(StringBuilder cur, List<String> tokens) {
            if (cur.length() > 0) {
                tokens.add(cur.toString());
                cur.setLength(0);
            }
        }

        static void wordPiece(String word, Map<String, Integer> vocab, List<Integer> out) {
            List<Integer> pieces = new ArrayList<>();
            int start = 0;
            while (start < word.length()) {
                int end = word.length();
                Integer found = null;
                while (start < end) {
                    String sub = (start > 0 ? "##" : "") + word.substring(start, end);
                    if (vocab.containsKey(sub)) {
                        found = vocab.get(sub);
                        break;
                    }
                    end--;
                }
                if (found == null) {
                    out.add(vocab.get("[UNK]"));
                    return;
                }
                pieces.add(found);
                start = end;
            }
            out.addAll(pieces);
        }
    }
}
