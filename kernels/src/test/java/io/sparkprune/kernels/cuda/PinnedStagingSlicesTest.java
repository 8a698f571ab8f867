package io.sparkprune.kernels.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * The slices a staged chunk is copied in (no device needed): they cover the chunk exactly once, each a
 * view at position 0 in the chunk's byte order with its byte offset, multiples of 8, and a failure in
 * one surfaces as itself.
 */
class PinnedStagingSlicesTest {

    @Test
    void slicesCoverTheChunkOnceInItsByteOrder() {
        for (int len : new int[] {8, 4096, PinnedStaging.SLICE_BYTES - 8, 2 * PinnedStaging.SLICE_BYTES + 24,
                (int) PinnedStaging.DEFAULT_CHUNK_BYTES}) {
            ByteBuffer chunk = ByteBuffer.allocateDirect(len + 16).order(ByteOrder.LITTLE_ENDIAN);
            chunk.limit(len);
            for (int i = 0; i + 8 <= len; i += 8) {
                chunk.putLong(i, i);
            }
            byte[] seen = new byte[len];
            ConcurrentHashMap<Long, Integer> pieces = new ConcurrentHashMap<>();
            PinnedStaging.inSlices(chunk, (piece, off) -> {
                assertThat(piece.position()).isZero();
                assertThat(piece.order()).isEqualTo(ByteOrder.LITTLE_ENDIAN);
                assertThat(off % 8).isZero();
                pieces.put(off, piece.remaining());
                for (int i = 0; i + 8 <= piece.remaining(); i += 8) {
                    assertThat(piece.getLong(i)).isEqualTo(off + i); // the slice's bytes are the chunk's at off
                }
                for (int i = 0; i < piece.remaining(); i++) {
                    seen[(int) off + i]++;
                }
            });
            for (int i = 0; i < len; i++) {
                assertThat(seen[i]).as("byte %d of %d", i, len).isEqualTo((byte) 1);
            }
            if (len >= 2 * PinnedStaging.SLICE_BYTES) {
                assertThat(pieces.size()).as("slices of %d bytes", len).isGreaterThan(1);
            }
        }
    }

    @Test
    void aFailingSliceThrowsItsOwnException() {
        ByteBuffer chunk = ByteBuffer.allocateDirect(4 * PinnedStaging.SLICE_BYTES).order(ByteOrder.nativeOrder());
        AtomicInteger calls = new AtomicInteger();
        assertThatThrownBy(() -> PinnedStaging.inSlices(chunk, (piece, off) -> {
            calls.incrementAndGet();
            if (off > 0) {
                throw new IllegalArgumentException("slice at " + off);
            }
        })).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("slice at "); // fork-join may wrap it in a copy of its type
        assertThat(calls.get()).isPositive();
    }
}
