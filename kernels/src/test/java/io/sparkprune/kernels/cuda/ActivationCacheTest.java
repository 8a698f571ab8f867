package io.sparkprune.kernels.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.ResidentForward;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * {@link ActivationCache} against a fake device whose buffers hold a copy of the values they were
 * "downloaded" from (no GPU): the budget (bytes, 0 = off, automatic = a quarter of the free memory),
 * keep / look up / take, prefixes, and the prune job's order of passes over many layers and partitions
 * — every value an upload gets equals the host array's (a stale or foreign buffer would show), each
 * buffer is freed exactly once or handed over, and with enough budget every upload after the first
 * block comes from the cache while the cache holds at most one block's outputs per partition plus one
 * batch.
 */
class ActivationCacheTest {

    /** A fake device buffer holding values (what a device copy would hold). */
    static final class Buf {
        final float[] values;
        final long bytes;
        int frees;

        Buf(float[] values, long bytes) {
            this.values = values;
            this.bytes = bytes;
        }
    }

    /** The fake device's memory: allocated bytes, every buffer freed at most once. */
    static final class Memory implements DeviceArrayCache.Memory<Buf> {
        long allocated;
        long frees;

        Buf allocate(float[] values) {
            Buf b = new Buf(values.clone(), 4L * values.length);
            allocated += b.bytes;
            return b;
        }

        @Override
        public long bytes(Buf b) {
            return b.bytes;
        }

        @Override
        public void free(Buf b) {
            assertThat(++b.frees).isEqualTo(1);
            allocated -= b.bytes;
            frees++;
        }

        /** The taker of a buffer frees it (a workspace's close). */
        void freeTaken(Buf b) {
            free(b);
        }
    }

    private final Memory memory = new Memory();
    private final AtomicLong free = new AtomicLong(4000);

    private ActivationCache<Buf> cache() {
        return new ActivationCache<>(memory, free::get);
    }

    @Test
    void automaticBudgetIsAQuarterOfTheFreeMemoryWhenFirstNeeded() {
        ActivationCache<Buf> c = cache();
        assertThat(c.budget()).isEqualTo(ResidentForward.ACTIVATION_CACHE_AUTO);
        free.set(8000); // changes before the first need count
        assertThat(c.limitBytes()).isEqualTo(2000);
        free.set(400); // resolved once: later changes do not
        assertThat(c.limitBytes()).isEqualTo(2000);
        c.budget(ResidentForward.ACTIVATION_CACHE_AUTO); // the same setting: nothing changes
        assertThat(c.limitBytes()).isEqualTo(2000);
        c.budget(1000);
        assertThat(c.limitBytes()).isEqualTo(1000);
        c.budget(ResidentForward.ACTIVATION_CACHE_AUTO); // set again: resolved again, from the free memory now
        assertThat(c.limitBytes()).isEqualTo(100);
        assertThatThrownBy(() -> c.budget(-2)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("ACTIVATION_CACHE_AUTO");
    }

    @Test
    void keepLookupAndTake() {
        ActivationCache<Buf> c = cache();
        c.budget(1000);
        float[] a = {1, 2, 3, 4};
        Buf ba = memory.allocate(a);
        assertThat(c.keep(a, ba)).isTrue();
        assertThat(c.bytes()).isEqualTo(16);
        assertThat(c.lookup(a, 4)).isSameAs(ba);
        assertThat(c.lookup(a, 3)).as("a prefix of the array").isSameAs(ba);
        assertThat(c.lookup(a, 5)).as("more than the array held").isNull();
        assertThat(c.lookup(a, 0)).isNull();
        assertThat(c.lookup(new float[] {1, 2, 3, 4}, 4)).as("equal values, another array").isNull();
        assertThat(c.keep(a, memory.allocate(a))).as("already kept").isFalse();
        assertThat(c.size()).isEqualTo(1);
        assertThat(c.take(a, 4)).isSameAs(ba);
        assertThat(c.bytes()).isZero();
        assertThat(c.take(a, 4)).isNull();
        assertThat(c.lookup(a, 4)).isNull();
        assertThat(memory.frees).isZero();
        assertThat(c.keep(new float[0], memory.allocate(new float[0]))).as("empty").isFalse();
    }

    @Test
    void offAndTooLargeAreNotKeptAndZeroFreesEverything() {
        ActivationCache<Buf> c = cache();
        c.budget(0);
        float[] a = new float[10];
        assertThat(c.keep(a, memory.allocate(a))).isFalse();
        assertThat(c.lookup(a, 10)).isNull();
        c.budget(100);
        float[] big = new float[26]; // 104 bytes
        float[] b = new float[10];
        Buf bb = memory.allocate(b);
        assertThat(c.keep(b, bb)).isTrue();
        assertThat(c.keep(big, memory.allocate(big))).as("larger than the budget").isFalse();
        assertThat(c.lookup(b, 10)).as("nothing evicted for an entry that cannot fit").isSameAs(bb);
        c.budget(0);
        assertThat(c.bytes()).isZero();
        assertThat(bb.frees).isEqualTo(1);
        assertThat(c.lookup(b, 10)).isNull();
    }

    @Test
    void leastRecentlyUsedEntriesMakeRoomAndEvictAllAndClearFreeTheRest() {
        ActivationCache<Buf> c = cache();
        c.budget(120); // three arrays of 40 bytes
        float[][] arrays = new float[4][10];
        Buf[] bufs = new Buf[4];
        for (int i = 0; i < 3; i++) {
            bufs[i] = memory.allocate(arrays[i]);
            assertThat(c.keep(arrays[i], bufs[i])).isTrue();
        }
        assertThat(c.lookup(arrays[0], 10)).isSameAs(bufs[0]); // 1 is now the least recently used
        bufs[3] = memory.allocate(arrays[3]);
        assertThat(c.keep(arrays[3], bufs[3])).isTrue();
        assertThat(bufs[1].frees).isEqualTo(1);
        assertThat(c.lookup(arrays[1], 10)).isNull();
        assertThat(c.evictAll()).isEqualTo(120);
        assertThat(c.bytes()).isZero();
        assertThat(memory.allocated).isZero();
        assertThat(c.evictAll()).isZero();
        c.clear();
        assertThat(memory.frees).isEqualTo(4);
    }

    /**
     * The prune job's passes (docs/architecture.md, "Advance"): per layer ℓ and partition, the forward
     * pass of block ℓ − 1 takes each input batch (block ℓ − 2's output) from the cache or uploads it,
     * and keeps its output; then block ℓ's Hessian pass looks every output up. Partitions interleave
     * the way two tasks sharing one executor do. Every upload must see the host array's values.
     */
    @Test
    void thePruneJobsPassesGetTheHostValuesAndHitAfterTheFirstBlock() {
        int partitions = 2;
        int batches = 4;
        int floats = 64; // 256 bytes per batch
        long batchBytes = 4L * floats;
        for (long budget : new long[] {1L << 20, 2 * partitions * batches * batchBytes, 3 * batchBytes, 0}) {
            Memory mem = new Memory();
            ActivationCache<Buf> c = new ActivationCache<>(mem, () -> 1L << 30);
            c.budget(budget);
            SplittableRandom r = new SplittableRandom(budget);
            List<List<float[]>> hidden = new ArrayList<>(); // per partition: the current block input (host, the RDD)
            for (int p = 0; p < partitions; p++) {
                List<float[]> part = new ArrayList<>();
                for (int b = 0; b < batches; b++) {
                    part.add(random(r, floats)); // the embeddings: host arrays, never kept
                }
                hidden.add(part);
            }
            long hits = 0;
            long uploads = 0;
            long peak = 0;
            int layers = 6;
            for (int layer = 0; layer < layers; layer++) {
                List<List<float[]>> next = new ArrayList<>();
                for (int p = 0; p < partitions; p++) {
                    next.add(new ArrayList<>());
                }
                for (int b = 0; b < batches; b++) {
                    for (int p = 0; p < partitions; p++) { // the forward pass of block `layer` (a PIPELINE workspace)
                        float[] in = hidden.get(p).get(b);
                        Buf t = c.take(in, floats);
                        uploads++;
                        float[] onDevice;
                        if (t != null) {
                            hits++;
                            onDevice = t.values;
                            mem.freeTaken(t); // the workspace reuses it; here it goes
                        } else {
                            onDevice = in.clone();
                        }
                        assertThat(onDevice).as("budget %d layer %d partition %d batch %d", budget, layer, p, b)
                                .containsExactly(in);
                        float[] out = block(onDevice, layer);
                        Buf ob = mem.allocate(out); // the output's device buffer, downloaded into `out`
                        if (!c.keep(out, ob)) {
                            mem.free(ob);
                        }
                        next.get(p).add(out);
                        peak = Math.max(peak, c.bytes());
                        assertThat(c.bytes()).isLessThanOrEqualTo(budget);
                    }
                }
                hidden = next;
                for (int p = 0; p < partitions; p++) { // the next block's Hessian pass (a NONE workspace)
                    for (float[] in : hidden.get(p)) {
                        Buf s = c.lookup(in, floats);
                        uploads++;
                        if (s != null) {
                            hits++;
                            assertThat(s.values).containsExactly(in);
                        }
                    }
                }
            }
            long hitsWanted = (2L * layers - 1) * partitions * batches; // all but the first forward pass's uploads
            if (budget >= 2L * partitions * batches * batchBytes) {
                assertThat(hits).as("budget %d", budget).isEqualTo(hitsWanted);
                assertThat(peak).as("one block's outputs per partition plus one batch")
                        .isLessThanOrEqualTo((long) partitions * batches * batchBytes + batchBytes);
            } else if (budget == 0) {
                assertThat(hits).isZero();
            } else {
                assertThat(hits).as("budget %d", budget).isPositive().isLessThan(hitsWanted);
            }
            assertThat(uploads).isEqualTo(2L * layers * partitions * batches);
            c.clear();
            assertThat(mem.allocated).as("every buffer freed or handed over").isZero();
        }
    }

    /** Stand-in for a block: a new array that depends on the input and the layer. */
    private static float[] block(float[] in, int layer) {
        float[] out = new float[in.length];
        for (int i = 0; i < in.length; i++) {
            out[i] = in[i] * 0.5f + layer + i;
        }
        return out;
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextDouble(-1, 1);
        }
        return a;
    }

    @Test
    void identityNotContentsAcrossManyArrays() {
        ActivationCache<Buf> c = cache();
        c.budget(1L << 20);
        Map<float[], Buf> kept = new IdentityHashMap<>();
        for (int i = 0; i < 20; i++) {
            float[] a = new float[] {i % 3}; // many arrays with equal values
            Buf b = memory.allocate(a);
            assertThat(c.keep(a, b)).isTrue();
            kept.put(a, b);
        }
        kept.forEach((a, b) -> assertThat(c.lookup(a, 1)).isSameAs(b));
    }
}
