package io.sparkprune.pipeline.data;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Reads lines of strict UTF-8 from a byte stream, decoding each line on its own so that a
 * malformed byte is reported at its exact line. Lines end at {@code \n}; a {@code \r} before it is
 * dropped.
 */
final class Utf8LineReader implements Closeable {
    private final InputStream in;
    private final CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
    private final byte[] buffer = new byte[1 << 16];
    private int pos;
    private int limit;
    private boolean eof;
    private byte[] line = new byte[256];
    private long lineNumber;

    Utf8LineReader(InputStream in) {
        this.in = in;
    }

    /** @return the 1-based number of the line last returned (or being read when an error is thrown) */
    long lineNumber() {
        return lineNumber;
    }

    /**
     * @return the next line without its terminator, or null at the end
     * @throws CharacterCodingException when the line is not valid UTF-8
     * @throws IOException when the stream fails
     */
    String readLine() throws IOException {
        int len = 0;
        boolean any = false;
        while (true) {
            if (pos == limit) {
                if (eof || !fill()) {
                    if (!any) {
                        return null;
                    }
                    break;
                }
            }
            any = true;
            int start = pos;
            while (pos < limit && buffer[pos] != '\n') {
                pos++;
            }
            int n = pos - start;
            if (len + n > line.length) {
                line = Arrays.copyOf(line, Math.max(line.length * 2, len + n));
            }
            System.arraycopy(buffer, start, line, len, n);
            len += n;
            if (pos < limit) { // found '\n'
                pos++;
                break;
            }
        }
        lineNumber++;
        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
        return decoder.decode(ByteBuffer.wrap(line, 0, len)).toString();
    }

    private boolean fill() throws IOException {
        int n = in.read(buffer, 0, buffer.length);
        if (n <= 0) {
            eof = true;
            pos = 0;
            limit = 0;
            return false;
        }
        pos = 0;
        limit = n;
        return true;
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
