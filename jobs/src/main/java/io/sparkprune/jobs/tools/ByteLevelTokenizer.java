package io.sparkprune.jobs.tools;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.UncheckedIOException;

/**
 * A Hugging Face {@code tokenizer.json} that maps text to its UTF-8 bytes: a byte-level BPE model
 * with no merges whose vocabulary is the 256 byte symbols of GPT-2's {@code bytes_to_unicode} map,
 * byte value {@code b} having id {@code b} (so {@code "hello"} encodes as {@code [104, 101, 108, 108,
 * 111]}). Pre-tokenizer {@code ByteLevel(add_prefix_space=false)}, decoder {@code ByteLevel}, no
 * normalizer, no post-processor and no special tokens.
 *
 * <p>Source of the byte map: {@code bytes_to_unicode()} in OpenAI's GPT-2 {@code encoder.py}
 * (Radford et al. 2019), also in Hugging Face {@code tokenizers}' {@code ByteLevel} pre-tokenizer:
 * the printable bytes {@code '!'..'~'}, {@code '¡'..'¬'} and {@code '®'..'ÿ'} map to the code point
 * of the same value; the other 68 bytes, in increasing order, to U+0100, U+0101, ...
 *
 * <p>Used by {@link RandomLlama}: a model with a vocabulary of at least 256 ids can be calibrated
 * and evaluated on any text; ids from 256 on are never produced.
 */
public final class ByteLevelTokenizer {
    /** Number of byte symbols, and the size of the vocabulary. */
    public static final int VOCAB_SIZE = 256;

    private static final ObjectMapper JSON = new ObjectMapper();

    private ByteLevelTokenizer() {
    }

    /**
     * GPT-2's {@code bytes_to_unicode}: the character that stands for a byte in byte-level BPE
     * vocabularies.
     *
     * @param b a byte value, 0..255
     * @return its symbol, one character (U+0021..U+0143)
     * @throws IllegalArgumentException when {@code b} is outside 0..255
     */
    public static char byteSymbol(int b) {
        if (b < 0 || b > 255) {
            throw new IllegalArgumentException("a byte value is 0..255, got " + b);
        }
        if (printable(b)) {
            return (char) b;
        }
        int n = 0; // how many non-printable bytes come before b
        for (int i = 0; i < b; i++) {
            if (!printable(i)) {
                n++;
            }
        }
        return (char) (256 + n);
    }

    private static boolean printable(int b) {
        return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    }

    /**
     * The tokenizer as {@code tokenizer.json} bytes (UTF-8 JSON, the {@code tokenizers} 0.x
     * serialization read by transformers and by DJL).
     *
     * @return the file's content
     */
    public static byte[] tokenizerJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        root.putArray("added_tokens");
        root.putNull("normalizer");
        ObjectNode pre = root.putObject("pre_tokenizer");
        pre.put("type", "ByteLevel");
        pre.put("add_prefix_space", false);
        pre.put("trim_offsets", true);
        pre.put("use_regex", true);
        root.putNull("post_processor");
        ObjectNode dec = root.putObject("decoder");
        dec.put("type", "ByteLevel");
        dec.put("add_prefix_space", false);
        dec.put("trim_offsets", true);
        dec.put("use_regex", true);
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        ObjectNode vocab = model.putObject("vocab");
        for (int b = 0; b < VOCAB_SIZE; b++) {
            vocab.put(String.valueOf(byteSymbol(b)), b);
        }
        model.putArray("merges");
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(root);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new UncheckedIOException(e);
        }
    }
}
