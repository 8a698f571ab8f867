package io.sparkprune.kernels;

import java.util.Arrays;
import java.util.Optional;

/**
 * Element types of host tensors, with the names the safetensors format uses for them
 * (<a href="https://github.com/huggingface/safetensors">safetensors</a> header {@code "dtype"}).
 *
 * <p>All multi-byte types are little-endian on disk and in {@link HostTensor} buffers. {@code BOOL}
 * is one byte per element, 0 = false, anything else = true.
 */
public enum DType {
    /** IEEE 754 binary64, 8 bytes. */
    F64("F64", 8, true),
    /** IEEE 754 binary32, 4 bytes. */
    F32("F32", 4, true),
    /** IEEE 754 binary16, 2 bytes; converted with {@link HalfFloats}. */
    F16("F16", 2, true),
    /** bfloat16 (the upper 16 bits of a binary32), 2 bytes; converted with {@link HalfFloats}. */
    BF16("BF16", 2, true),
    /** Signed 64-bit integer. */
    I64("I64", 8, false),
    /** Signed 32-bit integer. */
    I32("I32", 4, false),
    /** Signed 16-bit integer. */
    I16("I16", 2, false),
    /** Signed 8-bit integer. */
    I8("I8", 1, false),
    /** Unsigned 8-bit integer. */
    U8("U8", 1, false),
    /** Boolean, one byte per element. */
    BOOL("BOOL", 1, false);

    private final String safetensorsName;
    private final int byteSize;
    private final boolean floatingPoint;

    DType(String safetensorsName, int byteSize, boolean floatingPoint) {
        this.safetensorsName = safetensorsName;
        this.byteSize = byteSize;
        this.floatingPoint = floatingPoint;
    }

    /** @return the dtype string used in safetensors headers, e.g. {@code "BF16"}. */
    public String safetensorsName() {
        return safetensorsName;
    }

    /** @return bytes per element (1, 2, 4 or 8). */
    public int byteSize() {
        return byteSize;
    }

    /** @return true for F64, F32, F16 and BF16. */
    public boolean isFloatingPoint() {
        return floatingPoint;
    }

    /**
     * Looks up a dtype by its safetensors name (case-sensitive, as the format specifies).
     *
     * @param name header value such as {@code "F16"}
     * @return the dtype, or empty when the name is not one of the supported types
     */
    public static Optional<DType> fromSafetensorsName(String name) {
        for (DType d : values()) {
            if (d.safetensorsName.equals(name)) {
                return Optional.of(d);
            }
        }
        return Optional.empty();
    }

    /** @return the supported safetensors names, for error messages. */
    public static String supportedNames() {
        return Arrays.toString(Arrays.stream(values()).map(DType::safetensorsName).toArray());
    }
}
