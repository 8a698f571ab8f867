package io.sparkprune.kernels.cuda;

import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.function.BiFunction;

/**
 * Device copies of weight arrays, kept across {@link CudaWorkspace}s so that the batches and tasks
 * of one layer upload each weight once per executor. Keyed by the host array's identity (the arrays of
 * {@code io.sparkprune.pipeline.forward.Weights} never change after loading) and held weakly: when the
 * array is garbage-collected its device copy is freed at the next lookup. Entries in use by an open
 * workspace are pinned; the least recently used unpinned entries are evicted when the cache would grow
 * past its byte limit (pinned entries may push it over, the device's memory being the real bound).
 *
 * <p>Not thread-safe: the owning {@link CudaBackend} calls it under its lock with its context current.
 */
final class DeviceWeightCache {
    /** One weight's device copy. */
    static final class Entry {
        private final WeakReference<float[]> key;
        private final DeviceBuffer buffer;
        private int pins;
        private long lastUse;

        Entry(float[] key, DeviceBuffer buffer) {
            this.key = new WeakReference<>(key);
            this.buffer = buffer;
        }

        /** @return the device copy, {@code 4·length} bytes */
        DeviceBuffer buffer() {
            return buffer;
        }
    }

    private final List<Entry> entries = new ArrayList<>();
    private final BiFunction<Long, String, DeviceBuffer> allocator;
    private final long limitBytes;
    private long bytes;
    private long clock;

    /**
     * @param allocator allocates a device buffer of (bytes, label)
     * @param limitBytes soft bound of the cached bytes
     */
    DeviceWeightCache(BiFunction<Long, String, DeviceBuffer> allocator, long limitBytes) {
        this.allocator = allocator;
        this.limitBytes = limitBytes;
    }

    /** @return bytes of device memory the cache holds */
    long bytes() {
        return bytes;
    }

    /** @return the byte limit */
    long limitBytes() {
        return limitBytes;
    }

    /** @return entries held */
    int size() {
        return entries.size();
    }

    /**
     * The pinned device copy of {@code w}, uploaded on a miss. Call {@link #unpin} once per acquire.
     *
     * @param w the weight's values (must not change afterwards)
     * @param label what it is, for messages
     * @return the entry, pinned once more
     */
    Entry acquire(float[] w, String label) {
        dropCollected();
        clock++;
        for (Entry e : entries) {
            if (e.key.get() == w) {
                e.pins++;
                e.lastUse = clock;
                return e;
            }
        }
        long need = 4L * Math.max(1, w.length);
        evictFor(need);
        DeviceBuffer b = allocator.apply(need, "weight " + label + " (" + w.length + " fp32)");
        try {
            b.upload(w, 0, w.length, 0);
        } catch (RuntimeException ex) {
            b.close();
            throw ex;
        }
        Entry e = new Entry(w, b);
        e.pins = 1;
        e.lastUse = clock;
        entries.add(e);
        bytes += b.bytes();
        return e;
    }

    /**
     * Releases one pin.
     *
     * @param e an entry returned by {@link #acquire}
     */
    void unpin(Entry e) {
        if (e.pins > 0) {
            e.pins--;
        }
        dropCollected();
        evictFor(0);
    }

    private void dropCollected() {
        for (Iterator<Entry> it = entries.iterator(); it.hasNext(); ) {
            Entry e = it.next();
            if (e.pins == 0 && e.key.get() == null) {
                it.remove();
                free(e);
            }
        }
    }

    private void evictFor(long need) {
        while (bytes + need > limitBytes) {
            Entry lru = null;
            for (Entry e : entries) {
                if (e.pins == 0 && (lru == null || e.lastUse < lru.lastUse)) {
                    lru = e;
                }
            }
            if (lru == null) {
                return;
            }
            entries.remove(lru);
            free(lru);
        }
    }

    private void free(Entry e) {
        bytes -= e.buffer.bytes();
        e.buffer.close();
    }

    /** Frees every entry, pinned or not (the backend is closing). */
    void clear() {
        for (Entry e : entries) {
            e.buffer.close();
        }
        entries.clear();
        bytes = 0;
    }
}
