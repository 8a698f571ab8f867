package io.sparkprune.kernels.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link DeviceArrayCache} against a fake device (no GPU): entries keyed by array identity, never by
 * contents; the byte accounting; least-recently-used eviction under the limit; pinned entries never
 * evicted (and allowed over the limit); {@code take} handing a buffer over without freeing it; entries
 * of garbage-collected arrays freed; every buffer freed exactly once.
 */
class DeviceArrayCacheTest {

    /** A fake device buffer: a size and whether the cache freed it (twice is an error). */
    static final class FakeBuffer {
        final String name;
        final long bytes;
        int frees;

        FakeBuffer(String name, long bytes) {
            this.name = name;
            this.bytes = bytes;
        }

        @Override
        public String toString() {
            return name;
        }
    }

    /** The fake device's memory: sizes, and the buffers freed in order. */
    static final class FakeMemory implements DeviceArrayCache.Memory<FakeBuffer> {
        final List<FakeBuffer> freed = new ArrayList<>();

        @Override
        public long bytes(FakeBuffer b) {
            return b.bytes;
        }

        @Override
        public void free(FakeBuffer b) {
            b.frees++;
            assertThat(b.frees).as("frees of " + b).isEqualTo(1);
            freed.add(b);
        }
    }

    private final FakeMemory memory = new FakeMemory();

    @Test
    void entriesAreKeyedByIdentityNotContents() {
        DeviceArrayCache<FakeBuffer> c = new DeviceArrayCache<>(memory, 1000);
        float[] a = {1, 2, 3};
        float[] same = {1, 2, 3};
        FakeBuffer ba = new FakeBuffer("a", 12);
        DeviceArrayCache.Entry<FakeBuffer> e = c.put(a, ba);
        assertThat(c.get(a)).isSameAs(e);
        assertThat(e.buffer()).isSameAs(ba);
        assertThat(e.floats()).isEqualTo(3);
        assertThat(e.bytes()).isEqualTo(12);
        assertThat(c.get(same)).as("equal contents, another array").isNull();
        assertThat(c.bytes()).isEqualTo(12);
        assertThat(c.size()).isEqualTo(1);
        assertThatThrownBy(() -> c.put(a, new FakeBuffer("again", 12))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("already cached");
    }

    @Test
    void anyKeyObjectIsComparedByIdentityWithTheFloatsItWasPutWith() {
        DeviceArrayCache<FakeBuffer> c = new DeviceArrayCache<>(memory, 1000);
        io.sparkprune.kernels.HostTensor t = io.sparkprune.kernels.HostTensor.fromFloats(io.sparkprune.kernels.DType.BF16,
                new long[] {5}, new float[] {1, 2, 3, 4, 5});
        io.sparkprune.kernels.HostTensor equal = io.sparkprune.kernels.HostTensor.fromFloats(
                io.sparkprune.kernels.DType.BF16, new long[] {5}, new float[] {1, 2, 3, 4, 5});
        assertThat(equal).as("equal records").isEqualTo(t);
        FakeBuffer bt = new FakeBuffer("t", 20); // the device holds fp32: 4 bytes per value of the 2-byte tensor
        DeviceArrayCache.Entry<FakeBuffer> e = c.put(t, 5, bt);
        assertThat(c.get(t)).isSameAs(e);
        assertThat(e.floats()).isEqualTo(5);
        assertThat(e.bytes()).isEqualTo(20);
        assertThat(c.bytes()).isEqualTo(20);
        assertThat(c.get(equal)).as("an equal tensor, another object").isNull();
        assertThatThrownBy(() -> c.put(t, 5, new FakeBuffer("again", 20))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("already cached");
        c.clear();
        assertThat(memory.freed).containsExactly(bt);
    }

    @Test
    void leastRecentlyUsedUnpinnedEntriesAreEvictedForRoom() {
        DeviceArrayCache<FakeBuffer> c = new DeviceArrayCache<>(memory, 300);
        float[] a = new float[1];
        float[] b = new float[1];
        float[] d = new float[1];
        FakeBuffer ba = new FakeBuffer("a", 100);
        FakeBuffer bb = new FakeBuffer("b", 100);
        FakeBuffer bd = new FakeBuffer("d", 100);
        c.put(a, ba);
        c.put(b, bb);
        c.put(d, bd);
        c.get(a); // a is now the most recently used; b the least
        assertThat(c.makeRoom(0)).isTrue();
        assertThat(memory.freed).isEmpty();
        assertThat(c.makeRoom(150)).isTrue(); // b then d go
        assertThat(memory.freed).containsExactly(bb, bd);
        assertThat(c.get(b)).isNull();
        assertThat(c.get(d)).isNull();
        assertThat(c.get(a)).isNotNull();
        assertThat(c.bytes()).isEqualTo(100);
        assertThat(c.makeRoom(301)).as("more than the limit").isFalse();
        assertThat(memory.freed).containsExactly(bb, bd, ba);
        assertThat(c.bytes()).isZero();
    }

    @Test
    void pinnedEntriesStayAndMayExceedTheLimitUntilUnpinned() {
        DeviceArrayCache<FakeBuffer> c = new DeviceArrayCache<>(memory, 150);
        float[] a = new float[1];
        float[] b = new float[1];
        FakeBuffer ba = new FakeBuffer("a", 100);
        FakeBuffer bb = new FakeBuffer("b", 100);
        DeviceArrayCache.Entry<FakeBuffer> ea = c.put(a, ba);
        c.pin(ea);
        assertThat(c.makeRoom(100)).as("only a pinned entry to evict").isFalse();
        assertThat(memory.freed).isEmpty();
        DeviceArrayCache.Entry<FakeBuffer> eb = c.put(b, bb); // over the limit: 200 > 150
        c.pin(eb);
        assertThat(c.bytes()).isEqualTo(200);
        assertThat(c.evictUnpinned()).isZero();
        assertThatThrownBy(() -> c.take(ea)).isInstanceOf(IllegalStateException.class).hasMessageContaining("pinned");
        c.pin(ea);
        c.unpin(ea);
        assertThat(memory.freed).as("a still has a pin").isEmpty();
        c.unpin(ea); // a unpinned: the cache shrinks to its limit, a being older than b
        assertThat(memory.freed).containsExactly(ba);
        assertThat(ea.pins()).isZero();
        assertThat(eb.pins()).isEqualTo(1);
        c.unpin(eb);
        assertThat(c.bytes()).isEqualTo(100); // b fits alone
        c.unpin(eb); // no pins left: a no-op
        assertThat(eb.pins()).isZero();
        c.limitBytes(50);
        assertThat(memory.freed).containsExactly(ba, bb);
        assertThat(c.size()).isZero();
    }

    @Test
    void takeHandsTheBufferOverWithoutFreeingIt() {
        DeviceArrayCache<FakeBuffer> c = new DeviceArrayCache<>(memory, 1000);
        float[] a = new float[4];
        FakeBuffer ba = new FakeBuffer("a", 16);
        DeviceArrayCache.Entry<FakeBuffer> e = c.put(a, ba);
        assertThat(c.take(e)).isSameAs(ba);
        assertThat(c.bytes()).isZero();
        assertThat(c.get(a)).isNull();
        assertThat(memory.freed).isEmpty();
        assertThatThrownBy(() -> c.take(e)).isInstanceOf(IllegalStateException.class).hasMessageContaining("removed");
        assertThatThrownBy(() -> c.pin(e)).isInstanceOf(IllegalStateException.class);
        c.clear();
        assertThat(memory.freed).as("a taken buffer is the taker's").isEmpty();
    }

    @Test
    void evictUnpinnedAndClearFreeWhatTheySay() {
        DeviceArrayCache<FakeBuffer> c = new DeviceArrayCache<>(memory, 1000);
        float[] a = new float[1];
        float[] b = new float[1];
        FakeBuffer ba = new FakeBuffer("a", 10);
        FakeBuffer bb = new FakeBuffer("b", 20);
        c.pin(c.put(a, ba));
        c.put(b, bb);
        assertThat(c.evictUnpinned()).isEqualTo(20);
        assertThat(memory.freed).containsExactly(bb);
        c.clear();
        assertThat(memory.freed).containsExactly(bb, ba);
        assertThat(c.bytes()).isZero();
        assertThat(c.size()).isZero();
    }

    @Test
    void negativeLimitIsRefused() {
        assertThatThrownBy(() -> new DeviceArrayCache<>(memory, -1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(">= 0");
    }

    @Test
    void entriesOfCollectedArraysAreFreedAtTheNextCall() {
        DeviceArrayCache<FakeBuffer> c = new DeviceArrayCache<>(memory, 1L << 30);
        FakeBuffer bg = new FakeBuffer("garbage", 4L << 20);
        WeakReference<float[]> gone = putUnreachable(c, bg);
        float[] kept = new float[8];
        FakeBuffer bk = new FakeBuffer("kept", 32);
        c.put(kept, bk);
        for (int i = 0; i < 50 && gone.get() != null; i++) {
            System.gc();
            byte[] pressure = new byte[1 << 20];
            assertThat(pressure).hasSize(1 << 20);
        }
        assumeTrue(gone.get() == null, "the JVM did not collect the array after 50 System.gc() calls");
        assertThat(c.size()).isEqualTo(1);
        assertThat(memory.freed).containsExactly(bg);
        assertThat(c.bytes()).isEqualTo(32);
        assertThat(c.get(kept)).isNotNull();
    }

    /** Puts an array that nothing else references; returns a weak reference to watch it go. */
    private static WeakReference<float[]> putUnreachable(DeviceArrayCache<FakeBuffer> c, FakeBuffer b) {
        float[] key = new float[1 << 20];
        c.put(key, b);
        return new WeakReference<>(key);
    }
}
