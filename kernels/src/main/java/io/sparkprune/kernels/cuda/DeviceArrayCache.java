package io.sparkprune.kernels.cuda;

import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;

/**
 * Device copies of host data, keyed by the identity of a host object ({@code ==}, never its contents:
 * a {@code float[]} array, or a {@link io.sparkprune.kernels.HostTensor} whose values the device holds
 * widened to fp32) and held weakly: when a key is garbage-collected, its device copy is freed at the
 * cache's next call. The least recently used unpinned entries are evicted when the cache would grow
 * past its byte limit. The backend keeps two: weights ({@link CudaBackend#acquireWeight}, uploaded on a
 * miss and pinned while a workspace uses them) and block outputs ({@link CudaBackend#keepActivation},
 * adopted from the workspace that computed them, so that the next upload of the same array is a copy
 * on the device or no copy at all).
 *
 * <p>The cache holds what its caller puts in; it never uploads or compares contents. Its one rule of
 * correctness is the caller's: a key array must not be modified after its entry was put (the entry
 * would then differ from it). Buffers are handled through {@link Memory}, so that the logic runs
 * against a fake device in unit tests.
 *
 * <p>Not thread-safe: the owning {@link CudaBackend} calls it under its lock, with its context current
 * (freeing a buffer is a driver call).
 *
 * @param <B> the device buffer type ({@link DeviceBuffer} in the backend)
 */
final class DeviceArrayCache<B> {

    /**
     * Size and release of the cached buffers.
     *
     * @param <B> the device buffer type
     */
    interface Memory<B> {
        /**
         * @param buffer a cached buffer
         * @return its size in bytes, ≥ 0 (what counts against the limit)
         */
        long bytes(B buffer);

        /**
         * Frees a buffer that the cache evicted or dropped.
         *
         * @param buffer the buffer; not used again by the cache
         */
        void free(B buffer);
    }

    /**
     * One array's device copy.
     *
     * @param <B> the device buffer type
     */
    static final class Entry<B> {
        private final WeakReference<Object> key;
        private final long floats;
        private final B buffer;
        private final long bytes;
        private int pins;
        private long lastUse;
        private boolean removed;

        private Entry(Object key, long floats, B buffer, long bytes) {
            this.key = new WeakReference<>(key);
            this.floats = floats;
            this.buffer = buffer;
            this.bytes = bytes;
        }

        /** @return the device copy; its first {@code 4·floats()} bytes hold the array's values */
        B buffer() {
            return buffer;
        }

        /** @return the fp32 values the buffer holds (the key array's length when the entry was put) */
        long floats() {
            return floats;
        }

        /** @return the bytes the entry counts against the limit */
        long bytes() {
            return bytes;
        }

        /** @return pins held ({@link #pin}); a pinned entry is never evicted */
        int pins() {
            return pins;
        }
    }

    private final List<Entry<B>> entries = new ArrayList<>();
    private final Memory<B> memory;
    private long limitBytes;
    private long bytes;
    private long clock;

    /**
     * @param memory sizes and frees buffers
     * @param limitBytes bound of the bytes of unpinned entries, ≥ 0 (pinned entries may exceed it)
     * @throws IllegalArgumentException when the limit is negative
     */
    DeviceArrayCache(Memory<B> memory, long limitBytes) {
        this.memory = Objects.requireNonNull(memory, "memory");
        limitBytes(limitBytes);
    }

    /** @return bytes of the buffers held (pinned or not) */
    long bytes() {
        return bytes;
    }

    /** @return the byte limit */
    long limitBytes() {
        return limitBytes;
    }

    /**
     * Sets the byte limit and evicts least recently used unpinned entries until the cache fits it.
     *
     * @param limit bytes, ≥ 0 (0: hold nothing unpinned)
     * @throws IllegalArgumentException when negative
     */
    void limitBytes(long limit) {
        if (limit < 0) {
            throw new IllegalArgumentException("device cache limit must be >= 0 bytes, got " + limit);
        }
        this.limitBytes = limit;
        dropCollected();
        evictFor(0);
    }

    /** @return entries held (after dropping those whose arrays were collected) */
    int size() {
        dropCollected();
        return entries.size();
    }

    /**
     * The entry of a key, marked as just used.
     *
     * @param key the host array or tensor (compared by identity)
     * @return its entry, or null when it has none
     */
    Entry<B> get(Object key) {
        Objects.requireNonNull(key, "key");
        dropCollected();
        for (Entry<B> e : entries) {
            if (e.key.get() == key) {
                e.lastUse = ++clock;
                return e;
            }
        }
        return null;
    }

    /**
     * Keeps an entry from eviction until a matching {@link #unpin}.
     *
     * @param e an entry of this cache
     * @throws IllegalStateException when it was removed
     */
    void pin(Entry<B> e) {
        live(e);
        e.pins++;
    }

    /**
     * Releases one pin (no-op without pins or once removed), then evicts down to the limit.
     *
     * @param e an entry of this cache
     */
    void unpin(Entry<B> e) {
        if (e.pins > 0) {
            e.pins--;
        }
        dropCollected();
        evictFor(0);
    }

    /**
     * Evicts least recently used unpinned entries until {@code need} more bytes fit under the limit.
     *
     * @param need bytes about to be added, ≥ 0
     * @return whether they fit now ({@code bytes() + need ≤ limitBytes()}); false when pinned entries
     *     or the limit itself leave no room (what could be evicted was evicted)
     */
    boolean makeRoom(long need) {
        dropCollected();
        return evictFor(need);
    }

    /**
     * Adds an array's device copy, marked as just used; the cache owns the buffer from now on.
     * Call {@link #makeRoom} first: {@code put} does not evict, so an entry that does not fit takes the
     * cache over its limit until the next eviction.
     *
     * @param key the host array; it must not be modified while the entry lives
     * @param buffer its device copy, at least {@code 4·key.length} bytes of it holding the values
     * @return the entry, unpinned
     * @throws IllegalArgumentException when the array already has an entry
     */
    Entry<B> put(float[] key, B buffer) {
        return put(key, key.length, buffer);
    }

    /**
     * {@link #put(float[], Object)} for any key object, compared by identity (a
     * {@link io.sparkprune.kernels.HostTensor} whose values the buffer holds widened to fp32).
     *
     * @param key the host object; the values it stands for must not change while the entry lives
     * @param floats fp32 values the buffer holds, ≥ 0
     * @param buffer the device copy, at least {@code 4·floats} bytes of it holding the values
     * @return the entry, unpinned
     * @throws IllegalArgumentException when the key already has an entry
     */
    Entry<B> put(Object key, long floats, B buffer) {
        Objects.requireNonNull(buffer, "buffer");
        if (get(key) != null) {
            throw new IllegalArgumentException((key instanceof float[] ? "array" : String.valueOf(key)) + " of " + floats
                    + " floats is already cached");
        }
        Entry<B> e = new Entry<>(key, floats, buffer, memory.bytes(buffer));
        e.lastUse = ++clock;
        entries.add(e);
        bytes += e.bytes;
        return e;
    }

    /**
     * Removes an unpinned entry without freeing its buffer, which passes to the caller.
     *
     * @param e an entry of this cache
     * @return its buffer, now the caller's to free
     * @throws IllegalStateException when the entry is pinned or was removed
     */
    B take(Entry<B> e) {
        live(e);
        if (e.pins > 0) {
            throw new IllegalStateException("a pinned device cache entry (" + e.pins + " pins) cannot be taken");
        }
        entries.remove(e);
        e.removed = true;
        bytes -= e.bytes;
        return e.buffer;
    }

    /**
     * Frees every unpinned entry (a failed device allocation makes room this way).
     *
     * @return bytes freed
     */
    long evictUnpinned() {
        long freed = 0;
        for (Iterator<Entry<B>> it = entries.iterator(); it.hasNext(); ) {
            Entry<B> e = it.next();
            if (e.pins == 0) {
                it.remove();
                freed += e.bytes;
                free(e);
            }
        }
        return freed;
    }

    /** Frees every entry, pinned or not (the backend is closing). */
    void clear() {
        List<Entry<B>> all = new ArrayList<>(entries);
        entries.clear();
        for (Entry<B> e : all) {
            free(e);
        }
    }

    private void live(Entry<B> e) {
        if (e.removed) {
            throw new IllegalStateException("device cache entry of " + e.floats + " floats was already removed");
        }
    }

    private void dropCollected() {
        for (Iterator<Entry<B>> it = entries.iterator(); it.hasNext(); ) {
            Entry<B> e = it.next();
            if (e.pins == 0 && e.key.get() == null) {
                it.remove();
                free(e);
            }
        }
    }

    private boolean evictFor(long need) {
        while (bytes + need > limitBytes) {
            Entry<B> lru = null;
            for (Entry<B> e : entries) {
                if (e.pins == 0 && (lru == null || e.lastUse < lru.lastUse)) {
                    lru = e;
                }
            }
            if (lru == null) {
                return false;
            }
            entries.remove(lru);
            free(lru);
        }
        return true;
    }

    private void free(Entry<B> e) {
        e.removed = true;
        bytes -= e.bytes;
        memory.free(e.buffer);
    }
}
