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
        int fc = BulkArrays.CHUNK / 4;
        int dc = BulkArrays.CHUNK / 8;
        for (int len : new int[] {0, 1, 8193, 100_003, dc - 1, dc, dc + 1, fc - 1, fc, fc + 1, 2 * fc + 3}) {
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
    void javaSerializationReadsTheChunksInFewCallsFromAnUnbufferedSource() throws Exception {
        double[] d = new double[1_000_000]; // 8 MB: two chunks
        for (int i = 0; i < d.length; i++) {
            d[i] = i * 0.5;
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            BulkArrays.writeDoubles(out, d);
        }
        int[] reads = new int[1];
        java.io.InputStream counting = new java.io.FilterInputStream(new ByteArrayInputStream(bytes.toByteArray())) {
            @Override
            public int read() throws java.io.IOException {
                reads[0]++;
                return super.read();
            }

            @Override
            public int read(byte[] b, int off, int len) throws java.io.IOException {
                reads[0]++;
                return super.read(b, off, len);
            }
        };
        try (ObjectInputStream in = new ObjectInputStream(counting)) {
            int before = reads[0];
            assertThat(BulkArrays.readDoubles(in, d.length)).containsExactly(d);
            // block data would be read 1 KiB at a time: about 8000 calls for 8 MB
            assertThat(reads[0] - before).isLessThan(100);
        }
    }

    @Test
    void otherObjectStreamsGetRawChunks() throws Exception {
        float[] f = {1f, -0f, Float.NaN, 3.5e-40f};
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (java.io.DataOutputStream data = new java.io.DataOutputStream(bytes)) {
            BulkArrays.writeFloats(dataOnly(java.io.ObjectOutput.class, data), f);
        }
        // raw: int length then the little-endian values, nothing else
        assertThat(bytes.size()).isEqualTo(4 + 4 * f.length);
        java.io.DataInputStream data = new java.io.DataInputStream(new ByteArrayInputStream(bytes.toByteArray()));
        float[] back = BulkArrays.readFloats(dataOnly(java.io.ObjectInput.class, data), f.length);
        for (int i = 0; i < f.length; i++) {
            assertThat(Float.floatToRawIntBits(back[i])).isEqualTo(Float.floatToRawIntBits(f[i]));
        }
    }

    /** An ObjectOutput/ObjectInput that is not a Java object stream: its DataOutput/DataInput calls go to {@code data}. */
    private static <T> T dataOnly(Class<T> type, Object data) {
        return type.cast(java.lang.reflect.Proxy.newProxyInstance(BulkArraysTest.class.getClassLoader(), new Class<?>[] {type},
                (proxy, m, args) -> {
                    try {
                        return data.getClass().getMethod(m.getName(), m.getParameterTypes()).invoke(data, args);
                    } catch (java.lang.reflect.InvocationTargetException e) {
                        throw e.getCause();
                    }
                }));
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
}
