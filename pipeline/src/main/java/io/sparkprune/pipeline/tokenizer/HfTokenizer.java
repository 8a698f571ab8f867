package io.sparkprune.pipeline.tokenizer;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.LibUtils;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;

/**
 * A Hugging Face fast tokenizer loaded from a model's {@code tokenizer.json}, through DJL's binding
 * ({@code ai.djl.huggingface:tokenizers}) of the Rust {@code tokenizers} library, so ids match
 * Python's {@code transformers} tokenizers for the same file.
 *
 * <p><b>Encoding.</b> {@link #encode(String, boolean)} never truncates or pads, whatever the
 * {@code truncation}/{@code padding} sections of the file say (the MiniLM file, for one, pads every
 * input to 128). {@link #encodeBatch(List, int)} builds BERT-style fixed-length batches: special
 * tokens, truncation from the right, padding, attention mask and token type ids.
 *
 * <p><b>Offline native library.</b> DJL extracts {@code native/lib/<os>-<arch>/cpu/libtokenizers.*}
 * from its jar into its cache directory ({@code $DJL_CACHE_DIR} or {@code $ENGINE_CACHE_DIR}, else
 * {@code ~/.djl.ai/tokenizers}, else {@code java.io.tmpdir}) and loads it. Left alone it would also
 * (a) pick a CUDA "flavor" on a host with an sm_80/86/89/90 GPU and a CUDA runtime, find no such
 * build in the jar and download one from {@code publish.djl.ai}, and (b) send a usage ping (EC2
 * metadata + S3). Before DJL's classes initialise, this class therefore sets the system properties
 * {@code RUST_FLAVOR=cpu} (use the bundled CPU build) and {@code OPT_OUT_TRACKING=true}, each only
 * when neither an environment variable nor a system property of that name is already set. With both
 * in place, loading from a path, bytes or a stream makes no network call. To use a library of your
 * own, set {@code RUST_LIBRARY_PATH} (DJL's override). Encoding is CPU-only either way.
 *
 * <p><b>Threads.</b> After construction the tokenizer is read-only: {@code encode*} and
 * {@code decode} may be called from several threads at once. {@link #close()} frees the native
 * tokenizer; call it once, when no other thread uses the instance.
 */
public final class HfTokenizer implements AutoCloseable {

    /** System property / environment variable DJL reads to choose the native build ("cpu" here). */
    public static final String RUST_FLAVOR = "RUST_FLAVOR";
    /** System property / environment variable that turns DJL's usage telemetry off. */
    public static final String OPT_OUT_TRACKING = "OPT_OUT_TRACKING";

    static {
        defaultIfUnset(RUST_FLAVOR, "cpu");
        defaultIfUnset(OPT_OUT_TRACKING, "true");
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String PROBE = "a";

    private final String source;
    private final HuggingFaceTokenizer tokenizer;
    private final Map<String, Integer> tokenToId;
    private final int vocabSize;
    private final OptionalInt padId;
    private final int padTypeId;
    private final OptionalInt clsId;
    private final OptionalInt sepId;
    private final OptionalInt unkId;
    // The fixed frame the post-processor puts around a single sequence, e.g. [CLS] ... [SEP].
    private final int[] prefixIds;
    private final int[] prefixTypes;
    private final int[] suffixIds;
    private final int[] suffixTypes;
    private final int contentTypeId;
    private volatile boolean closed;

    private HfTokenizer(String source, byte[] json) {
        this.source = source;
        JsonNode root = parse(source, json);
        this.tokenToId = readVocabulary(source, root);
        int max = -1;
        for (int id : tokenToId.values()) {
            max = Math.max(max, id);
        }
        this.vocabSize = max + 1;
        JsonNode padding = root.path("padding");
        if (padding.isObject() && padding.path("pad_id").canConvertToInt()) {
            this.padId = OptionalInt.of(padding.get("pad_id").asInt());
            this.padTypeId = padding.path("pad_type_id").asInt(0);
        } else {
            this.padId = firstPresent("[PAD]", "<pad>", "<|pad|>");
            this.padTypeId = 0;
        }
        JsonNode post = root.path("post_processor");
        this.clsId = processorTokenId(post, "cls").isPresent() ? processorTokenId(post, "cls") : firstPresent("[CLS]");
        this.sepId = processorTokenId(post, "sep").isPresent() ? processorTokenId(post, "sep") : firstPresent("[SEP]");
        String unk = root.path("model").path("unk_token").asText(null);
        this.unkId = unk == null ? OptionalInt.empty() : tokenId(unk);

        ensureNativeLibrary();
        Map<String, String> options = new HashMap<>();
        options.put("addSpecialTokens", "true");
        options.put("truncation", "false");
        options.put("padding", "false");
        try {
            this.tokenizer = HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(json), options);
        } catch (IOException | RuntimeException e) {
            throw new TokenizerException("tokenizer " + source + " could not be loaded by the Hugging Face tokenizers library: "
                    + e.getMessage() + "; fix: pass the tokenizer.json saved by transformers/tokenizers for this model", e);
        }

        // Find the frame by encoding a probe with and without special tokens.
        Encoding bare = tokenizer.encode(PROBE, false, false);
        Encoding full = tokenizer.encode(PROBE, true, false);
        int[] content = toInts(bare.getIds());
        int[] all = toInts(full.getIds());
        int[] types = toInts(full.getTypeIds());
        int p = indexOf(all, content);
        if (p < 0 || content.length == 0) {
            tokenizer.close();
            throw new TokenizerException("tokenizer " + source + ": its post-processor does not put a fixed frame of special tokens"
                    + " around a single sequence (probe \"" + PROBE + "\" gave " + Arrays.toString(content) + " without and "
                    + Arrays.toString(all) + " with special tokens); fix: use a tokenizer.json with a Bert, Roberta, Template"
                    + " or no post-processor");
        }
        this.prefixIds = Arrays.copyOfRange(all, 0, p);
        this.prefixTypes = Arrays.copyOfRange(types, 0, p);
        this.suffixIds = Arrays.copyOfRange(all, p + content.length, all.length);
        this.suffixTypes = Arrays.copyOfRange(types, p + content.length, all.length);
        this.contentTypeId = types[p];
    }

    /**
     * Loads a {@code tokenizer.json} file.
     *
     * @param tokenizerJson path of the model's {@code tokenizer.json}
     * @return an open tokenizer; close it
     * @throws TokenizerException naming the file when it is missing, unreadable, not JSON or not a
     *     Hugging Face tokenizer
     */
    public static HfTokenizer fromFile(Path tokenizerJson) {
        Objects.requireNonNull(tokenizerJson, "tokenizerJson");
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(tokenizerJson);
        } catch (NoSuchFileException e) {
            throw new TokenizerException("tokenizer file " + tokenizerJson.toAbsolutePath() + " does not exist; fix: pass the path"
                    + " of the model's tokenizer.json (it sits next to config.json in a Hugging Face checkpoint)", e);
        } catch (IOException e) {
            throw new TokenizerException("tokenizer file " + tokenizerJson.toAbsolutePath() + " could not be read: " + e
                    + "; fix: check that it is a readable file", e);
        }
        return new HfTokenizer(tokenizerJson.toAbsolutePath().toString(), bytes);
    }

    /**
     * Loads a tokenizer from the bytes of a {@code tokenizer.json}.
     *
     * @param tokenizerJson UTF-8 JSON bytes (not modified, not retained)
     * @param sourceName where the bytes came from, used in error messages (a path or resource name)
     * @return an open tokenizer; close it
     * @throws TokenizerException naming {@code sourceName} when the bytes are not a valid tokenizer
     */
    public static HfTokenizer fromBytes(byte[] tokenizerJson, String sourceName) {
        Objects.requireNonNull(tokenizerJson, "tokenizerJson");
        Objects.requireNonNull(sourceName, "sourceName");
        return new HfTokenizer(sourceName, tokenizerJson.clone());
    }

    /**
     * Loads a tokenizer from a stream holding a {@code tokenizer.json}; reads it to the end but
     * does not close it.
     *
     * @param in the JSON bytes
     * @param sourceName where the stream came from, used in error messages
     * @return an open tokenizer; close it
     * @throws TokenizerException naming {@code sourceName} when reading fails or the content is not a
     *     valid tokenizer
     */
    public static HfTokenizer fromStream(InputStream in, String sourceName) {
        Objects.requireNonNull(in, "in");
        Objects.requireNonNull(sourceName, "sourceName");
        byte[] bytes;
        try {
            bytes = in.readAllBytes();
        } catch (IOException e) {
            throw new TokenizerException("tokenizer " + sourceName + " could not be read: " + e, e);
        }
        return new HfTokenizer(sourceName, bytes);
    }

    /** @return the file or resource this tokenizer was loaded from */
    public String source() {
        return source;
    }

    /**
     * Token ids of a text, never truncated or padded.
     *
     * @param text any text (may be empty)
     * @param addSpecialTokens true to add the post-processor's special tokens (e.g. {@code [CLS]}
     *     ... {@code [SEP]} for BERT, BOS for Llama), false for the bare tokens
     * @return the ids, in [0, vocabSize())
     * @throws IllegalStateException after {@link #close()}
     */
    public int[] encode(String text, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text");
        checkOpen();
        return toInts(tokenizer.encode(text, addSpecialTokens, false).getIds());
    }

    /**
     * Tokens (strings) of a text, the pieces behind {@link #encode(String, boolean)}'s ids.
     *
     * @param text any text
     * @param addSpecialTokens as in {@link #encode(String, boolean)}
     * @return one token string per id (WordPiece continuation pieces keep their {@code ##})
     */
    public String[] tokens(String text, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text");
        checkOpen();
        return tokenizer.encode(text, addSpecialTokens, false).getTokens();
    }

    /**
     * Encodes texts as a fixed-length BERT-style batch: each row is the special-token frame of the
     * post-processor around the text's tokens (e.g. {@code [CLS] t1 .. tk [SEP]}), with the text's
     * tokens cut from the right so the row fits {@code maxLength} (the frame is always kept, as
     * Hugging Face truncation does for a single sequence), then padded to {@code maxLength} with the
     * pad id; attention mask 1 on real tokens, 0 on padding. Tokenization runs in parallel in the
     * native library.
     *
     * @param texts the texts, one row each
     * @param maxLength positions per row; at least the frame size + 1 (3 for BERT)
     * @return a (texts.size() x maxLength) batch
     * @throws TokenizerException when {@code maxLength} cannot hold the special tokens and one text token
     * @throws IllegalStateException after {@link #close()}
     */
    public EncodedBatch encodeBatch(List<String> texts, int maxLength) {
        Objects.requireNonNull(texts, "texts");
        checkOpen();
        int frame = prefixIds.length + suffixIds.length;
        if (maxLength < frame + 1) {
            throw new TokenizerException("max length " + maxLength + " is too short for tokenizer " + source + ", which adds "
                    + frame + " special tokens per sequence; fix: use a max length of at least " + (frame + 1));
        }
        int rows = texts.size();
        String[] array = texts.toArray(new String[0]);
        for (int r = 0; r < rows; r++) {
            Objects.requireNonNull(array[r], "texts[" + r + "]");
        }
        Encoding[] encodings = rows == 0 ? new Encoding[0] : tokenizer.batchEncode(array, false, false);
        int pad = padId.orElse(0);
        int[] ids = new int[rows * maxLength];
        int[] mask = new int[rows * maxLength];
        int[] typeIds = new int[rows * maxLength];
        int[] lengths = new int[rows];
        int[] fullLengths = new int[rows];
        for (int r = 0; r < rows; r++) {
            int[] content = toInts(encodings[r].getIds());
            int keep = Math.min(content.length, maxLength - frame);
            int base = r * maxLength;
            int t = 0;
            for (int i = 0; i < prefixIds.length; i++, t++) {
                ids[base + t] = prefixIds[i];
                typeIds[base + t] = prefixTypes[i];
            }
            for (int i = 0; i < keep; i++, t++) {
                ids[base + t] = content[i];
                typeIds[base + t] = contentTypeId;
            }
            for (int i = 0; i < suffixIds.length; i++, t++) {
                ids[base + t] = suffixIds[i];
                typeIds[base + t] = suffixTypes[i];
            }
            lengths[r] = t;
            fullLengths[r] = content.length + frame;
            Arrays.fill(mask, base, base + t, 1);
            Arrays.fill(ids, base + t, base + maxLength, pad);
            Arrays.fill(typeIds, base + t, base + maxLength, padTypeId);
        }
        return new EncodedBatch(rows, maxLength, ids, mask, typeIds, lengths, fullLengths);
    }

    /**
     * Text of token ids.
     *
     * @param ids token ids, each in [0, vocabSize())
     * @param skipSpecialTokens true to drop special tokens such as {@code [CLS]}, {@code [PAD]}
     * @return the decoded text (for WordPiece: pieces joined, {@code ##} merged, lower-cased as encoded)
     * @throws IllegalArgumentException when an id is outside the vocabulary
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        Objects.requireNonNull(ids, "ids");
        checkOpen();
        long[] longs = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new IllegalArgumentException("token id " + ids[i] + " at " + i + " is outside the vocabulary [0, "
                        + vocabSize + ") of tokenizer " + source);
            }
            longs[i] = ids[i];
        }
        return tokenizer.decode(longs, skipSpecialTokens);
    }

    /**
     * @return the number of ids: 1 + the largest id of the model vocabulary and the added tokens
     *     (Hugging Face's {@code get_vocab_size(with_added_tokens=True)} when ids are contiguous)
     */
    public int vocabSize() {
        return vocabSize;
    }

    /**
     * @param token a token string exactly as in the vocabulary or added tokens (e.g. {@code "[CLS]"},
     *     {@code "hello"}, {@code "##ing"})
     * @return its id, or empty when the tokenizer has no such token
     */
    public OptionalInt tokenId(String token) {
        Integer id = tokenToId.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /**
     * @return the padding id: {@code padding.pad_id} of the file when it has a padding section, else
     *     the id of {@code [PAD]}, {@code <pad>} or {@code <|pad|>}, else empty ({@link #encodeBatch}
     *     then pads with 0, masked out)
     */
    public OptionalInt padId() {
        return padId;
    }

    /**
     * @return the classification token id: the {@code cls} of a Bert/Roberta post-processor, else the
     *     id of {@code [CLS]}, else empty
     */
    public OptionalInt clsId() {
        return clsId;
    }

    /**
     * @return the separator id: the {@code sep} of a Bert/Roberta post-processor, else the id of
     *     {@code [SEP]}, else empty
     */
    public OptionalInt sepId() {
        return sepId;
    }

    /** @return the id of the model's {@code unk_token}, or empty when it has none */
    public OptionalInt unkId() {
        return unkId;
    }

    /**
     * @return how many special tokens {@link #encode(String, boolean)} with {@code true} adds around
     *     one sequence (2 for BERT: {@code [CLS]}, {@code [SEP]})
     */
    public int numSpecialTokens() {
        return prefixIds.length + suffixIds.length;
    }

    /** Frees the native tokenizer; idempotent. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            tokenizer.close();
        }
    }

    @Override
    public String toString() {
        return "HfTokenizer[" + source + ", vocab " + vocabSize + "]";
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("tokenizer " + source + " is closed");
        }
    }

    private OptionalInt firstPresent(String... tokens) {
        for (String t : tokens) {
            OptionalInt id = tokenId(t);
            if (id.isPresent()) {
                return id;
            }
        }
        return OptionalInt.empty();
    }

    // BertProcessing / RobertaProcessing store "cls": ["[CLS]", 101].
    private static OptionalInt processorTokenId(JsonNode post, String key) {
        JsonNode pair = post.path(key);
        if (pair.isArray() && pair.size() == 2 && pair.get(1).canConvertToInt()) {
            return OptionalInt.of(pair.get(1).asInt());
        }
        if (post.path("processors").isArray()) { // Sequence post-processor
            for (JsonNode p : post.get("processors")) {
                OptionalInt id = processorTokenId(p, key);
                if (id.isPresent()) {
                    return id;
                }
            }
        }
        return OptionalInt.empty();
    }

    private static JsonNode parse(String source, byte[] json) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            String where = e.getLocation() == null ? "" : " at line " + e.getLocation().getLineNr()
                    + ", column " + e.getLocation().getColumnNr();
            throw new TokenizerException("tokenizer file " + source + " is not valid JSON" + where + ": "
                    + e.getOriginalMessage() + "; fix: pass an intact tokenizer.json (re-download it if it was truncated)", e);
        } catch (IOException e) {
            throw new TokenizerException("tokenizer file " + source + " could not be parsed: " + e, e);
        }
        if (root == null || !root.isObject() || !root.path("model").isObject()) {
            throw new TokenizerException("tokenizer file " + source + " is JSON but not a Hugging Face tokenizer.json: it has no"
                    + " \"model\" object; fix: pass the model's tokenizer.json (not tokenizer_config.json, config.json or"
                    + " vocab.txt)");
        }
        return root;
    }

    private static Map<String, Integer> readVocabulary(String source, JsonNode root) {
        Map<String, Integer> map = new HashMap<>();
        JsonNode vocab = root.path("model").path("vocab");
        if (vocab.isObject()) { // WordPiece, BPE, WordLevel: {"token": id}
            for (Map.Entry<String, JsonNode> e : vocab.properties()) {
                if (!e.getValue().canConvertToInt() || e.getValue().asInt() < 0) {
                    throw new TokenizerException("tokenizer file " + source + ": vocabulary entry \"" + e.getKey()
                            + "\" has id " + e.getValue() + ", not a non-negative integer; fix: pass an intact tokenizer.json");
                }
                map.put(e.getKey(), e.getValue().asInt());
            }
        } else if (vocab.isArray()) { // Unigram: [["token", score], ...], id = position
            for (int i = 0; i < vocab.size(); i++) {
                map.put(vocab.get(i).path(0).asText(), i);
            }
        } else {
            throw new TokenizerException("tokenizer file " + source + ": model." + "vocab is missing or neither an object nor an"
                    + " array; fix: pass an intact tokenizer.json");
        }
        for (JsonNode added : root.path("added_tokens")) {
            if (added.path("id").canConvertToInt() && added.path("content").isTextual()) {
                map.put(added.get("content").asText(), added.get("id").asInt());
            }
        }
        if (map.isEmpty()) {
            throw new TokenizerException("tokenizer file " + source + " has an empty vocabulary; fix: pass the model's tokenizer.json");
        }
        return map;
    }

    private static void ensureNativeLibrary() {
        try {
            LibUtils.checkStatus();
        } catch (RuntimeException | LinkageError e) {
            throw new IllegalStateException("the Hugging Face tokenizers native library (bundled in ai.djl.huggingface:tokenizers"
                    + " for linux-x86_64, linux-aarch64, osx-aarch64, win-x86_64) could not be loaded on "
                    + System.getProperty("os.name") + "/" + System.getProperty("os.arch") + ": " + e.getMessage()
                    + "; fix: run on a supported platform, make DJL's cache dir (DJL_CACHE_DIR, default ~/.djl.ai) writable,"
                    + " or point RUST_LIBRARY_PATH at a libtokenizers built for this platform", e);
        }
    }

    private static int indexOf(int[] haystack, int[] needle) {
        outer:
        for (int p = 0; p + needle.length <= haystack.length; p++) {
            for (int i = 0; i < needle.length; i++) {
                if (haystack[p + i] != needle[i]) {
                    continue outer;
                }
            }
            return p;
        }
        return -1;
    }

    private static int[] toInts(long[] values) {
        int[] out = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = Math.toIntExact(values[i]);
        }
        return out;
    }

    private static void defaultIfUnset(String name, String value) {
        String env = System.getenv(name);
        if ((env == null || env.isEmpty()) && System.getProperty(name) == null) {
            System.setProperty(name, value);
        }
    }
}
