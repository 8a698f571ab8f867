package io.sparkprune.kernels;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InvalidObjectException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Bulk array serialization: bit-exact round trips at chunk edges, special values, corrupt lengths. */
class BulkArraysTest {

    @Test
    void floatsAndDoublesRoundTripBitForBit() throws Exception {
        SplittableRandom r = new SplittableRandom(42);
        for (int len : new int[] {0, 1, 16383, 16384, 16385, 8191, 8192, 8193, 100_003}) {
            float[] f = new float[len];
            double[] d = new double[len];
            for (int i = 0; i < len; i++) {
                f[i] = Float.intBitsToFloat(r.nextInt()); // every bit pattern, NaN payloads and infinities included
                d[i] = Double.longBitsToDouble(r.nextLong());
            }
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
                BulkArrays.writeFloats(out, f);
                out.writeUTF("between");
                BulkArrays.writeDoubles(out, d);
            }
            try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
                float[] f2 = BulkArrays.readFloats(in, len);
                assertThat(in.readUTF()).isEqualTo("between");
                double[] d2 = BulkArrays.readDoubles(in, len);
                for (int i = 0; i < len; i++) {
                    assertThat(Float.floatToRawIntBits(f2[i])).as("float %d of %d", i, len)
                            .isEqualTo(Float.floatToRawIntBits(f[i]));
                    assertThat(Double.doubleToRawLongBits(d2[i])).as("double %d of %d", i, len)
                            .isEqualTo(Double.doubleToRawLongBits(d[i]));
                }
            }
        }
    }

    @Test
    void aLengthAboveTheExpectedMaximumIsRefused() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            BulkArrays.writeFloats(out, new float[10]);
        }
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            assertThatThrownBy(() -> BulkArrays.readFloats(in, 9)).isInstanceOf(InvalidObjectException.class)
                    .hasMessageContaining("length 10");
        }
    }

    @Test
    void doublesAsFloatsArriveRoundedToNearestFp32() throws Exception {
        SplittableRandom r = new SplittableRandom(7);
        for (int len : new int[] {0, 1, 16383, 16384, 16385, 40_001}) {
            double[] d = new double[len];
            for (int i = 0; i < len; i++) {
                d[i] = (r.nextDouble() - 0.5) * Math.pow(2, r.nextInt(-140, 120)); // subnormal to large fp32
            }
            if (len > 3) {
                d[0] = 1.0 + 0x1.0p-24; // a tie: rounds to even (1.0)
                d[1] = 1.0 + 0x1.8p-24; // above the tie: rounds up
                d[2] = -0.0;
            }
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
                BulkArrays.writeDoublesAsFloats(out, d);
                out.writeUTF("after");
            }
            try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
                float[] back = BulkArrays.readFloats(in, len);
                assertThat(in.readUTF()).isEqualTo("after");
                assertThat(back).hasSize(len);
                for (int i = 0; i < len; i++) {
                    // the independent reference: Java's own double -> float narrowing (round to nearest even)
                    assertThat(Float.floatToRawIntBits(back[i])).as("value %d of %d", i, len)
                            .isEqualTo(Float.floatToRawIntBits((float) d[i]));
                }
                if (len > 3) {
                    assertThat(back[0]).isEqualTo(1.0f);
                    assertThat(back[1]).isEqualTo(1.0f + 0x1.0p-23f);
                    assertThat(Float.floatToRawIntBits(back[2])).isEqualTo(Float.floatToRawIntBits(-0.0f));
                }
            }
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            BulkArrays.writeDoublesAsFloats(out, new double[10]);
        }
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            assertThatThrownBy(() -> BulkArrays.readFloats(in, 9)).isInstanceOf(InvalidObjectException.class)
                    .hasMessageContaining("length 10");
        }
    }
}
