package io.sparkprune.pipeline.safetensors;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * The single allocation point for buffers whose size comes from a file being read (header bytes,
 * tensor copies). Sizes are checked against the real file length before this is called; this guard
 * makes a missed check an immediate internal error instead of an {@link OutOfMemoryError} from a
 * forged size. Tests read the counters to confirm that reads go through here.
 */
final class ReadBuffers {
    /** Number of guarded allocations so far (for tests). */
    static final LongAdder ALLOCATIONS = new LongAdder();
    /** Largest guarded allocation so far, in bytes (for tests). */
    static final AtomicLong LARGEST = new AtomicLong();

    private ReadBuffers() {
    }

    /**
     * Allocates a heap array for bytes read from a file.
     *
     * @param size bytes wanted
     * @param fileLength the length of the file they come from
     * @param source file label, for the message
     * @return a new zeroed array of {@code size} bytes
     * @throws IllegalStateException when {@code size} is negative, larger than the file, or larger
     *     than {@link SafetensorsFile#MAX_READ_BYTES}: a bug, since callers validate first
     */
    static byte[] allocate(long size, long fileLength, String source) {
        if (size < 0 || size > fileLength || size > SafetensorsFile.MAX_READ_BYTES) {
            throw new IllegalStateException("internal error: refusing to allocate " + size + " bytes for "
                    + source + " (" + fileLength + " bytes long); sizes must be validated against the file first");
        }
        ALLOCATIONS.increment();
        LARGEST.accumulateAndGet(size, Math::max);
        return new byte[(int) size];
    }
}
