package io.sparkprune.pipeline.formats.sparse;

import io.sparkprune.kernels.InvalidInputException;
import java.util.Locale;

/**
 * How the integer payload tensors of the {@code sparse} format (N:M {@code indices}, quantized
 * N:M {@code codes}, unstructured {@code mask}) are stored (docs/formats.md, "sparse", "Payload
 * codec"). Floating-point payloads (values, scales) and the other components are always raw.
 */
public enum PayloadCodec {
    /** Raw, one element per byte position, mmap-able per element (the layout of manifest versions 1 and 2). */
    NONE("none"),
    /**
     * Raw DEFLATE (RFC 1951, no zlib or gzip wrapper), Huffman-only, in independent chunks of whole
     * rows ({@link DeflatedPayload}).
     */
    DEFLATE("deflate");

    private final String id;

    PayloadCodec(String id) {
        this.id = id;
    }

    /** @return the name used on the command line, in recipes and in the manifest: {@code none} or {@code deflate} */
    public String id() {
        return id;
    }

    /**
     * @param text {@code none} or {@code deflate} (case-insensitive, blanks around ignored)
     * @return the codec
     * @throws InvalidInputException for anything else, quoting the text and the accepted values
     */
    public static PayloadCodec parse(String text) {
        String s = text == null ? "" : text.trim().toLowerCase(Locale.ROOT);
        for (PayloadCodec c : values()) {
            if (c.id.equals(s)) {
                return c;
            }
        }
        throw new InvalidInputException("unknown sparse payload codec '" + text + "'; expected none or deflate");
    }
}
