package io.sparkprune.kernels;

import java.io.IOException;
import java.io.InvalidObjectException;
import java.io.ObjectInput;
import java.io.ObjectOutput;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Fast Java-serialization of large primitive arrays, for the {@code writeObject}/{@code readObject}
 * methods of classes that Spark ships or caches (activations, Hessian sums, inverse factors).
 * {@link java.io.ObjectOutputStream} writes a {@code float[]} or {@code double[]} field element by
 * element; these helpers write the length, then the values as little-endian bytes in 64 KiB chunks,
 * each chunk one bulk {@code write} (a byte-order conversion and a copy), about ten times faster on
 * arrays of hundreds of megabytes. Only arrays written by these methods can be read by them.
 */
public final class BulkArrays {
    private static final int CHUNK = 1 << 16;

    private BulkArrays() {
    }

    /**
     * Writes {@code int length} then the values.
     *
     * @param out the stream
     * @param a the array (not null)
     * @throws IOException from the stream
     */
    public static void writeFloats(ObjectOutput out, float[] a) throws IOException {
        out.writeInt(a.length);
        ByteBuffer b = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < a.length; ) {
            int n = Math.min(CHUNK / 4, a.length - i);
            b.clear();
            b.asFloatBuffer().put(a, i, n);
            out.write(b.array(), 0, 4 * n);
            i += n;
        }
    }

    /**
     * Reads what {@link #writeFloats} wrote.
     *
     * @param in the stream
     * @param max largest length accepted (guards against a corrupt length)
     * @return the array
     * @throws IOException from the stream; {@link InvalidObjectException} when the length is negative or above max
     */
    public static float[] readFloats(ObjectInput in, long max) throws IOException {
        int len = in.readInt();
        if (len < 0 || len > max) {
            throw new InvalidObjectException("float array of length " + len + " (at most " + max + " expected)");
        }
        float[] a = new float[len];
        byte[] buf = new byte[CHUNK];
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < len; ) {
            int n = Math.min(CHUNK / 4, len - i);
            in.readFully(buf, 0, 4 * n);
            b.clear();
            b.asFloatBuffer().get(a, i, n);
            i += n;
        }
        return a;
    }

    /**
     * Writes {@code int length} then the values.
     *
     * @param out the stream
     * @param a the array (not null)
     * @throws IOException from the stream
     */
    public static void writeDoubles(ObjectOutput out, double[] a) throws IOException {
        out.writeInt(a.length);
        ByteBuffer b = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < a.length; ) {
            int n = Math.min(CHUNK / 8, a.length - i);
            b.clear();
            b.asDoubleBuffer().put(a, i, n);
            out.write(b.array(), 0, 8 * n);
            i += n;
        }
    }

    /**
     * Reads what {@link #writeDoubles} wrote.
     *
     * @param in the stream
     * @param max largest length accepted (guards against a corrupt length)
     * @return the array
     * @throws IOException from the stream; {@link InvalidObjectException} when the length is negative or above max
     */
    public static double[] readDoubles(ObjectInput in, long max) throws IOException {
        int len = in.readInt();
        if (len < 0 || len > max) {
            throw new InvalidObjectException("double array of length " + len + " (at most " + max + " expected)");
        }
        double[] a = new double[len];
        byte[] buf = new byte[CHUNK];
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < len; ) {
            int n = Math.min(CHUNK / 8, len - i);
            in.readFully(buf, 0, 8 * n);
            b.clear();
            b.asDoubleBuffer().get(a, i, n);
            i += n;
        }
        return a;
    }

    /**
     * Writes {@code int length} then the values rounded to fp32 (round to nearest even), as
     * {@link #writeFloats} would write {@code (float) a[i]} (so {@link #readFloats} reads them): half
     * the bytes of {@link #writeDoubles}. The
     * caller decides that fp32 keeps enough of the values and that none overflows it (a value beyond
     * {@code ±Float.MAX_VALUE} would arrive as an infinity).
     *
     * @param out the stream
     * @param a the array (not null)
     * @throws IOException from the stream
     */
    public static void writeDoublesAsFloats(ObjectOutput out, double[] a) throws IOException {
        out.writeInt(a.length);
        ByteBuffer b = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        float[] f = new float[CHUNK / 4]; // narrowed in a plain loop, then one bulk put per chunk
        for (int i = 0; i < a.length; ) {
            int n = Math.min(CHUNK / 4, a.length - i);
            for (int k = 0; k < n; k++) {
                f[k] = (float) a[i + k];
            }
            b.clear();
            b.asFloatBuffer().put(f, 0, n);
            out.write(b.array(), 0, 4 * n);
            i += n;
        }
    }
}
