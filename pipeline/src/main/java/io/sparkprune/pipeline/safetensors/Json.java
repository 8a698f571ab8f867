package io.sparkprune.pipeline.safetensors;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * The one Jackson configuration for untrusted safetensors headers and index files: duplicate keys
 * rejected (Jackson otherwise lets the last one win), trailing tokens rejected, nesting capped, and
 * input decoded as strict UTF-8 (Jackson's byte-level auto-detection would accept UTF-16/32).
 */
final class Json {
    /** Deepest nesting a valid header or index needs is 3; anything deeper than this is rejected early. */
    static final int MAX_NESTING_DEPTH = 32;

    static final ObjectMapper MAPPER = new ObjectMapper(JsonFactory.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(MAX_NESTING_DEPTH).build())
            .build())
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private Json() {
    }

    private static final java.util.regex.Pattern DUPLICATE =
            java.util.regex.Pattern.compile("Duplicate (?:field|Object property) ['\"](.*)['\"]", java.util.regex.Pattern.DOTALL);

    /**
     * @return the repeated key when {@code e} reports a duplicate key (strict duplicate detection),
     *     else null
     */
    static String duplicateKey(com.fasterxml.jackson.core.JsonProcessingException e) {
        String m = e.getOriginalMessage();
        if (m == null) {
            return null;
        }
        java.util.regex.Matcher x = DUPLICATE.matcher(m);
        return x.matches() ? x.group(1) : null;
    }

    /**
     * Parses strict UTF-8 JSON.
     *
     * @param bytes the document
     * @param offset first byte
     * @param length byte count
     * @return the tree
     * @throws IOException on malformed UTF-8 ({@link java.nio.charset.MalformedInputException}) or
     *     malformed JSON ({@link com.fasterxml.jackson.core.JsonProcessingException})
     */
    static JsonNode parse(byte[] bytes, int offset, int length) throws IOException {
        return MAPPER.readTree(strictUtf8(bytes, offset, length));
    }

    /**
     * A streaming parser over strict UTF-8 JSON, for inputs whose tree could be much larger than
     * their bytes (a safetensors header of up to 100 MB).
     */
    static JsonParser streamingParser(byte[] bytes, int offset, int length) throws IOException {
        return MAPPER.getFactory().createParser(strictUtf8(bytes, offset, length));
    }

    private static Reader strictUtf8(byte[] bytes, int offset, int length) {
        return new InputStreamReader(new ByteArrayInputStream(bytes, offset, length),
                StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT));
    }
}
