package io.sparkprune.kernels;

/**
 * Bit-exact conversions between binary32 and the two 16-bit float formats, done by hand because
 * Java 17 has no {@code Float.float16ToFloat}.
 *
 * <p>Rounding from binary32 is round-to-nearest, ties-to-even, as IEEE 754 §4.3.1 and PyTorch's
 * {@code .to(torch.bfloat16)} / {@code .half()} do. NaN stays NaN (quiet bit set); infinities and
 * signed zeros are preserved; binary16 subnormals are produced and read exactly.
 */
public final class HalfFloats {
    private HalfFloats() {
    }

    /**
     * Widens a bfloat16 to binary32; exact.
     *
     * @param bits the bfloat16 bit pattern in the low 16 bits
     * @return the same value as a float
     */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /**
     * Rounds a binary32 to bfloat16, nearest-even; NaN maps to a quiet NaN with the same sign.
     *
     * @param value any float
     * @return the bfloat16 bit pattern
     */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int lsb = (bits >>> 16) & 1;
        int rounded = bits + 0x7fff + lsb;
        return (short) (rounded >>> 16);
    }

    /**
     * Widens an IEEE binary16 to binary32; exact for every pattern, subnormals included.
     *
     * @param bits the binary16 bit pattern in the low 16 bits
     * @return the same value as a float
     */
    public static float f16ToFloat(short bits) {
        int h = bits & 0xffff;
        int sign = (h & 0x8000) << 16;
        int exp = (h >>> 10) & 0x1f;
        int mant = h & 0x3ff;
        if (exp == 0x1f) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        if (exp == 0) {
            if (mant == 0) {
                return Float.intBitsToFloat(sign);
            }
            // subnormal: value = mant * 2^-24, exactly representable in binary32
            float v = mant * 0x1p-24f;
            return sign == 0 ? v : -v;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }

    /**
     * Rounds a binary32 to IEEE binary16, nearest-even, with overflow to infinity and gradual
     * underflow to binary16 subnormals.
     *
     * @param value any float
     * @return the binary16 bit pattern
     */
    public static short floatToF16(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7fffffff;
        if (abs > 0x7f800000) {
            return (short) (sign | 0x7e00 | ((abs >>> 13) & 0x3ff));
        }
        if (abs >= 0x477ff000) { // >= 65520 rounds to infinity
            return (short) (sign | 0x7c00);
        }
        if (abs < 0x38800000) { // below the smallest binary16 normal (2^-14): subnormal or zero
            // value * 2^24 rounded to an integer with ties-to-even: the subnormal's mantissa
            float scaled = Float.intBitsToFloat(abs) * 0x1p24f;
            int mant = (int) Math.rint(scaled);
            return (short) (sign | mant);
        }
        int exp = (abs >>> 23) - 112;
        int mant = abs & 0x7fffff;
        int half = (exp << 10) | (mant >>> 13);
        int rest = mant & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1)) {
            half++;
        }
        return (short) (sign | half);
    }
}
