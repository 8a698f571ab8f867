package io.sparkprune.pipeline.formats.sparse;

import io.sparkprune.pipeline.formats.FormatException;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * The {@code deflate} payload codec of the {@code sparse} format (docs/formats.md, "Payload
 * codec"): a {@code rows × rowBytes} U8 payload (row-major) is cut into chunks of
 * {@code chunkRows} whole rows (the last may be shorter); each chunk is compressed on its own as
 * a raw DEFLATE stream (RFC 1951; {@link Deflater} with {@code nowrap = true}, level
 * {@value #LEVEL}, strategy {@link Deflater#HUFFMAN_ONLY}; zlib's {@code wbits = -15}). The
 * streams are concatenated into one U8 tensor; an I64 tensor of {@code chunks + 1} byte offsets
 * ({@code offsets[0] = 0}, {@code offsets[chunks]} = its length) delimits them. So a row range
 * decodes from its own chunks only, and chunks decode independently (in parallel, on different
 * executors). Decoding inflates at most the expected bytes of a chunk (no decompression bombs) and
 * refuses a chunk that inflates to another size, carries trailing bytes, or offsets that are not
 * increasing within the tensor, with a {@link FormatException}.
 *
 * <p>Huffman-only order-0 coding fits the payloads: 4-bit codes of a symmetric grid concentrate
 * near the zero point and N:M in-group indices take {@code C(m, n)} of their {@code m^n} values,
 * whereas LZ77 matching finds little in them (measured on the default model, docs/benchmarks.md).
 */
public final class DeflatedPayload {

    /** Raw payload bytes a chunk aims at: chunks hold {@code max(1, TARGET_CHUNK_BYTES / rowBytes)} rows. */
    public static final int TARGET_CHUNK_BYTES = 64 * 1024;
    /** DEFLATE compression level. */
    public static final int LEVEL = 6;

    private DeflatedPayload() {
    }

    /**
     * The stored form of one payload.
     *
     * @param data the concatenated raw DEFLATE streams (U8 {@code [data.length]})
     * @param offsets {@code chunks + 1} byte offsets into {@code data} (I64)
     */
    public record Stored(byte[] data, long[] offsets) {
        /** @return the offsets as little-endian I64 bytes, {@code 8·(chunks + 1)} */
        public byte[] offsetBytes() {
            ByteBuffer b = ByteBuffer.allocate(8 * offsets.length).order(ByteOrder.LITTLE_ENDIAN);
            for (long o : offsets) {
                b.putLong(o);
            }
            return b.array();
        }
    }

    /**
     * @param rowBytes bytes per payload row, ≥ 0
     * @return the rows per chunk the writer uses: {@code max(1, 65536 / rowBytes)} (all rows of a
     *     {@code 65536}-byte chunk when a row is empty)
     */
    public static int chunkRows(long rowBytes) {
        return (int) Math.max(1, TARGET_CHUNK_BYTES / Math.max(1, rowBytes));
    }

    /**
     * @param rows payload rows
     * @param chunkRows rows per chunk, ≥ 1
     * @return {@code ceil(rows / chunkRows)}
     */
    public static int chunks(long rows, int chunkRows) {
        return (int) ((rows + chunkRows - 1) / chunkRows);
    }

    /**
     * @param payload the raw payload, {@code rows × rowBytes} bytes, row-major
     * @param rows rows
     * @param rowBytes bytes per row
     * @param chunkRows rows per chunk, ≥ 1
     * @return the chunks' raw DEFLATE streams and their offsets; deterministic for a given JDK (zlib)
     * @throws IllegalArgumentException when the payload length is not {@code rows × rowBytes} or chunkRows is below 1
     */
    public static Stored deflate(byte[] payload, int rows, int rowBytes, int chunkRows) {
        if ((long) rows * rowBytes != payload.length || chunkRows < 1) {
            throw new IllegalArgumentException(payload.length + " bytes for " + rows + " x " + rowBytes
                    + " (chunks of " + chunkRows + " rows)");
        }
        int n = chunks(rows, chunkRows);
        long[] offsets = new long[n + 1];
        ByteArrayOutputStream out = new ByteArrayOutputStream(Math.max(16, payload.length / 3));
        Deflater d = new Deflater(LEVEL, true);
        d.setStrategy(Deflater.HUFFMAN_ONLY);
        byte[] buf = new byte[8192];
        try {
            for (int c = 0; c < n; c++) {
                int from = c * chunkRows * rowBytes;
                int to = (int) Math.min((long) (c + 1) * chunkRows, rows) * rowBytes;
                d.reset();
                d.setInput(payload, from, to - from);
                d.finish();
                while (!d.finished()) {
                    int k = d.deflate(buf);
                    out.write(buf, 0, k);
                }
                offsets[c + 1] = out.size();
            }
        } finally {
            d.end();
        }
        return new Stored(out.toByteArray(), offsets);
    }

    /**
     * Decodes all rows: {@link #inflateRows} for {@code [0, rows)}.
     *
     * @param where file and tensor, for messages
     * @param data the stored {@code .deflate} tensor
     * @param offsets the stored {@code .chunks} tensor, little-endian I64
     * @param rows payload rows
     * @param rowBytes bytes per row
     * @param chunkRows rows per chunk
     * @return the raw payload, {@code rows × rowBytes} bytes
     * @throws FormatException as {@link #inflateRows}
     */
    public static byte[] inflate(String where, byte[] data, byte[] offsets, int rows, int rowBytes, int chunkRows) {
        return inflateRows(where, data, offsets, rows, rowBytes, chunkRows, 0, rows);
    }

    /**
     * Decodes rows {@code [from, to)} of a deflated payload, inflating only the chunks holding them.
     *
     * @param where file and tensor, for messages
     * @param data the stored {@code .deflate} tensor
     * @param offsets the stored {@code .chunks} tensor, {@code 8·(chunks + 1)} little-endian I64 bytes
     * @param rows payload rows
     * @param rowBytes bytes per row
     * @param chunkRows rows per chunk, ≥ 1
     * @param from first row, {@code 0 ≤ from ≤ to}
     * @param to end row (exclusive), {@code ≤ rows}
     * @return the raw rows, {@code (to − from) × rowBytes} bytes
     * @throws FormatException when the offsets have the wrong count, do not start at 0, decrease, or
     *     do not end at the data's length; when a chunk is not one complete raw DEFLATE stream, inflates
     *     to another size than its rows, or has bytes after its stream's end
     * @throws IllegalArgumentException for a row range outside {@code [0, rows]} or a chunk size below 1
     */
    public static byte[] inflateRows(String where, byte[] data, byte[] offsets, int rows, int rowBytes, int chunkRows,
                                     int from, int to) {
        if (from < 0 || to < from || to > rows || chunkRows < 1) {
            throw new IllegalArgumentException(where + ": rows [" + from + ", " + to + ") of " + rows
                    + " (chunks of " + chunkRows + ")");
        }
        int n = chunks(rows, chunkRows);
        if (offsets.length != 8L * (n + 1)) {
            throw new FormatException(where, "chunk offsets have " + offsets.length + " bytes, expected " + 8L * (n + 1)
                    + " (" + (n + 1) + " I64) for " + rows + " rows in chunks of " + chunkRows
                    + ". The file is corrupt or truncated: re-create it");
        }
        ByteBuffer off = ByteBuffer.wrap(offsets).order(ByteOrder.LITTLE_ENDIAN);
        if (off.getLong(0) != 0 || off.getLong(8 * n) != data.length) {
            throw new FormatException(where, "chunk offsets run from " + off.getLong(0) + " to " + off.getLong(8 * n)
                    + ", expected 0 to " + data.length + " (the deflated tensor's length). The file is corrupt or "
                    + "truncated: re-create it");
        }
        for (int c = 0; c < n; c++) {
            if (off.getLong(8 * c) > off.getLong(8 * (c + 1))) {
                throw new FormatException(where, "chunk offsets decrease at chunk " + c + " (" + off.getLong(8 * c)
                        + " > " + off.getLong(8 * (c + 1)) + "). The file is corrupt: re-create it");
            }
        }
        byte[] out = new byte[Math.multiplyExact(to - from, rowBytes)];
        if (from == to) {
            return out;
        }
        Inflater inf = new Inflater(true);
        try {
            for (int c = from / chunkRows; c <= (to - 1) / chunkRows; c++) {
                int r0 = c * chunkRows;
                int r1 = (int) Math.min((long) r0 + chunkRows, rows);
                byte[] chunk = inflateChunk(where, inf, data, (int) off.getLong(8 * c), (int) off.getLong(8 * (c + 1)),
                        (r1 - r0) * rowBytes, c);
                int lo = Math.max(r0, from);
                int hi = Math.min(r1, to);
                System.arraycopy(chunk, (lo - r0) * rowBytes, out, (lo - from) * rowBytes, (hi - lo) * rowBytes);
            }
        } finally {
            inf.end();
        }
        return out;
    }

    private static byte[] inflateChunk(String where, Inflater inf, byte[] data, int from, int to, int expected, int c) {
        inf.reset();
        inf.setInput(data, from, to - from);
        byte[] out = new byte[expected];
        int got = 0;
        try {
            while (got < expected) {
                int k = inf.inflate(out, got, expected - got);
                if (k == 0) { // finished, or needs input (truncated) or a dictionary (not ours)
                    break;
                }
                got += k;
            }
            if (got == expected && !inf.finished()) {
                // the stream may still hold its end-of-block code; anything more is too much
                byte[] one = new byte[1];
                if (inf.inflate(one) > 0) {
                    throw new FormatException(where, "chunk " + c + " inflates to more than the expected " + expected
                            + " bytes. The file is corrupt: re-create it");
                }
            }
        } catch (DataFormatException e) {
            throw new FormatException(where, "chunk " + c + " (bytes " + from + " to " + to + ") is not a valid raw "
                    + "DEFLATE stream (" + e.getMessage() + "). The file is corrupt: re-create it", e);
        }
        if (got != expected || !inf.finished()) {
            throw new FormatException(where, "chunk " + c + " (bytes " + from + " to " + to + ") inflates to " + got
                    + (inf.finished() ? "" : " (stream incomplete)") + " bytes, expected " + expected
                    + ". The file is corrupt or truncated: re-create it");
        }
        if (inf.getRemaining() != 0) {
            throw new FormatException(where, "chunk " + c + " has " + inf.getRemaining() + " bytes after its DEFLATE "
                    + "stream's end. The file is corrupt: re-create it");
        }
        return out;
    }
}
