package io.sparkprune.kernels;

/**
 * Bit-exact rounding of binary32 to TensorFloat-32 (TF32: 1 sign bit, 8 exponent bits, 10 explicit
 * mantissa bits, held in a 32-bit register with the low 13 bits zero), as the tensor cores' operand
 * conversion {@code cvt.rna.tf32.f32} does it (NVIDIA, "Parallel Thread Execution ISA", section
 * "Data Movement and Conversion Instructions: cvt", PTX ISA 7.0+, sm_80+; rounding modifier
 * {@code .rna}: round to nearest, ties away from zero). The CPU twins of the TF32 kernels round their operands with it.
 *
 * <p>Behaviour at the edges: a value exactly halfway between two TF32 neighbours goes to the one
 * of larger magnitude; a carry out of the mantissa increments the exponent (e.g. the largest float
 * below 2 rounds to 2), and finite values at or beyond the midpoint between the largest finite TF32
 * value {@code (2 - 2^-10)·2^127} and {@code 2^128} round to infinity of the same sign (the
 * non-saturating form, without {@code .satfinite}); subnormals keep the fp32 exponent range and are
 * rounded to 10 mantissa bits the same way (so the smallest ones round to ±0 or to
 * {@code ±2^-136}); signed zeros and infinities are returned unchanged, and NaN is returned as it is
 * (bit pattern unchanged, so it stays NaN even when its payload lies in the low 13 bits).
 */
public final class Tf32 {
    /** Low mantissa bits that TF32 drops. */
    private static final int DROPPED = 13;
    /** Mask keeping sign, exponent and the 10 TF32 mantissa bits. */
    private static final int KEEP = -1 << DROPPED; // 0xffffe000
    /** Half of one TF32 unit in the last place, in fp32 bit units. */
    private static final int HALF = 1 << (DROPPED - 1); // 0x1000

    private Tf32() {
    }

    /**
     * Rounds a binary32 bit pattern to TF32, round to nearest, ties away from zero.
     *
     * @param bits binary32 bit pattern
     * @return the TF32 value as a binary32 bit pattern (low 13 bits zero unless NaN)
     */
    public static int roundBits(int bits) {
        if ((bits & 0x7f800000) == 0x7f800000) {
            return bits; // infinity or NaN: untouched
        }
        // adding half an ulp to the magnitude bits and truncating rounds ties away from zero; a carry
        // runs into the exponent field, and from the largest finite binade into the infinity pattern
        return (bits + HALF) & KEEP;
    }

    /**
     * Rounds a float to the nearest TF32 value, ties away from zero ({@code cvt.rna.tf32.f32}).
     *
     * @param value any float
     * @return the TF32 value, exactly representable as a float
     */
    public static float round(float value) {
        return Float.intBitsToFloat(roundBits(Float.floatToRawIntBits(value)));
    }
}
