package io.sparkprune.kernels;

import java.io.IOException;
import java.io.InvalidObjectException;
import java.io.ObjectInput;
import java.io.ObjectInputStream;
import java.io.ObjectOutput;
import java.io.ObjectOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Fast Java-serialization of large primitive arrays, for the {@code writeObject}/{@code readObject}
 * methods of classes that Spark ships or caches (activations, Hessian sums, inverse factors).
 * {@link java.io.ObjectOutputStream} writes a {@code float[]} or {@code double[]} field element by
 * element; these helpers write the length, then the values as little-endian bytes in chunks of
 * {@value #CHUNK} bytes, each chunk one bulk copy. Only arrays written by these methods can be read
 * by them.
 *
 * <p>On an {@link ObjectOutputStream} (Java serialization, Spark's default serializer) each chunk is
 * written as an unshared {@code byte[]} object ({@link ObjectOutputStream#writeUnshared}), not as
 * block data: {@link ObjectInputStream} reads block data from its source 1 KiB at a time, so with an
 * unbuffered source (Spark's shuffle files when {@code spark.shuffle.compress} is off) a 670 MB
 * Hessian partial took about a million {@code read} calls; an array object's bytes are read with
 * one call per chunk. Unshared, the chunks are not kept in the streams' handle tables. On any other
 * {@link ObjectOutput} the chunks are plain writes.
 */
public final class BulkArrays {
    /** Bytes per chunk: 4 MiB. */
    static final int CHUNK = 1 << 22;

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
        byte[] buf = new byte[(int) Math.min(CHUNK, 4L * a.length)];
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < a.length; ) {
            int n = Math.min(CHUNK / 4, a.length - i);
            b.clear();
            b.asFloatBuffer().put(a, i, n);
            writeChunk(out, buf, 4 * n);
            i += n;
        }
    }

    /**
     * Reads what {@link #writeFloats} wrote.
     *
     * @param in the stream
     * @param max largest length accepted (guards against a corrupt length)
     * @return the array
     * @throws IOException from the stream; {@link InvalidObjectException} when the length is negative or
     *     above max, or a chunk has the wrong size
     */
    public static float[] readFloats(ObjectInput in, long max) throws IOException {
        int len = in.readInt();
        if (len < 0 || len > max) {
            throw new InvalidObjectException("float array of length " + len + " (at most " + max + " expected)");
        }
        float[] a = new float[len];
        byte[] scratch = in instanceof ObjectInputStream ? null : new byte[(int) Math.min(CHUNK, 4L * len)];
        for (int i = 0; i < len; ) {
            int n = Math.min(CHUNK / 4, len - i);
            ByteBuffer.wrap(readChunk(in, scratch, 4 * n)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(a, i, n);
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
        byte[] buf = new byte[(int) Math.min(CHUNK, 8L * a.length)];
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < a.length; ) {
            int n = Math.min(CHUNK / 8, a.length - i);
            b.clear();
            b.asDoubleBuffer().put(a, i, n);
            writeChunk(out, buf, 8 * n);
            i += n;
        }
    }

    /**
     * Reads what {@link #writeDoubles} wrote.
     *
     * @param in the stream
     * @param max largest length accepted (guards against a corrupt length)
     * @return the array
     * @throws IOException from the stream; {@link InvalidObjectException} when the length is negative or
     *     above max, or a chunk has the wrong size
     */
    public static double[] readDoubles(ObjectInput in, long max) throws IOException {
        int len = in.readInt();
        if (len < 0 || len > max) {
            throw new InvalidObjectException("double array of length " + len + " (at most " + max + " expected)");
        }
        double[] a = new double[len];
        byte[] scratch = in instanceof ObjectInputStream ? null : new byte[(int) Math.min(CHUNK, 8L * len)];
        for (int i = 0; i < len; ) {
            int n = Math.min(CHUNK / 8, len - i);
            ByteBuffer.wrap(readChunk(in, scratch, 8 * n)).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(a, i, n);
            i += n;
        }
        return a;
    }

    /** Writes the first {@code bytes} of buf: an unshared byte[] object on Java serialization, else raw. */
    private static void writeChunk(ObjectOutput out, byte[] buf, int bytes) throws IOException {
        if (out instanceof ObjectOutputStream oos) {
            oos.writeUnshared(bytes == buf.length ? buf : java.util.Arrays.copyOf(buf, bytes));
        } else {
            out.write(buf, 0, bytes);
        }
    }

    /** Reads one chunk of exactly {@code bytes} as {@link #writeChunk} wrote it (raw chunks into scratch). */
    private static byte[] readChunk(ObjectInput in, byte[] scratch, int bytes) throws IOException {
        if (in instanceof ObjectInputStream ois) {
            Object o;
            try {
                o = ois.readUnshared();
            } catch (ClassNotFoundException e) {
                throw new InvalidObjectException("array chunk: " + e.getMessage());
            }
            if (!(o instanceof byte[] b) || b.length != bytes) {
                throw new InvalidObjectException("array chunk of " + bytes + " bytes expected, got "
                        + (o instanceof byte[] b2 ? b2.length + " bytes" : String.valueOf(o)));
            }
            return b;
        }
        in.readFully(scratch, 0, bytes);
        return scratch;
    }
}
