package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.ResidentForward;
import java.util.Objects;
import java.util.function.LongSupplier;

/**
 * The activation cache of a {@link CudaBackend} ({@link ResidentForward}): device copies of block
 * outputs, keyed by the identity of the host arrays they were downloaded into, so that the prune job's
 * next passes over the same activations (the next block's Hessian pass, then its forward pass) skip the
 * host-to-device copy. The host array is the source of truth; the cache is only ever a shortcut to the
 * same values, and a miss is an ordinary upload.
 *
 * <ul>
 *   <li><b>Keep</b> ({@link #keep}): a {@link io.sparkprune.kernels.ForwardWorkspace.Handoff#PIPELINE}
 *       workspace hands over the device buffer of an output it just downloaded, instead of recycling it.
 *       The buffer is kept when it fits the budget after evicting least recently used entries, else
 *       refused (the workspace recycles it).</li>
 *   <li><b>Look up</b> ({@link #lookup}): any workspace's upload copies a cached buffer on the device;
 *       the entry stays (the Hessian pass is not the activations' last reader).</li>
 *   <li><b>Take</b> ({@link #take}): a PIPELINE workspace's upload removes the entry and adopts its buffer
 *       (the forward pass to the next block is the last reader of its input), so the cache holds each
 *       activation from the forward pass that made it to the one that consumes it.</li>
 *   <li><b>Eviction:</b> least recently used first when a kept buffer needs room or the budget shrinks;
 *       an entry whose array was garbage-collected (its RDD unpersisted, or Spark's block dropped) is
 *       freed at the next call; everything unpinned is freed when another device allocation fails
 *       ({@link #evictAll}), and everything when the backend closes ({@link #clear}). Nothing listens to
 *       Spark's unpersist: taking on the last read frees entries earlier than an unpersist would.</li>
 * </ul>
 *
 * <p>Correctness rests on one rule that the PIPELINE workspace's caller promises: an array returned by
 * its {@code downloadAndRelease} is never modified ({@code HiddenStates} never modifies its array). A
 * cached buffer holds exactly the values downloaded into the array; an upload of a prefix of the array
 * gets that prefix.
 *
 * <p>The budget ({@link #budget}) is a number of bytes, 0 for off, or {@link ResidentForward#ACTIVATION_CACHE_AUTO}:
 * a quarter of the device's free memory when the budget is first needed after it was set. Generic in the
 * buffer type and given the free memory as a function, so that the logic runs against a fake device in
 * unit tests. Not thread-safe: the backend calls it under its lock, with its context current.
 *
 * @param <B> the device buffer type ({@link DeviceBuffer} in the backend)
 */
final class ActivationCache<B> {
    private final DeviceArrayCache.Memory<B> memory;
    private final LongSupplier freeDeviceBytes;
    /** The budget as set: bytes, or AUTO. */
    private long setting = ResidentForward.ACTIVATION_CACHE_AUTO;
    /** Created, with the setting resolved, on first need. */
    private DeviceArrayCache<B> cache;

    /**
     * @param memory sizes and frees buffers
     * @param freeDeviceBytes the device's free memory in bytes now (for the automatic budget)
     */
    ActivationCache(DeviceArrayCache.Memory<B> memory, LongSupplier freeDeviceBytes) {
        this.memory = Objects.requireNonNull(memory, "memory");
        this.freeDeviceBytes = Objects.requireNonNull(freeDeviceBytes, "freeDeviceBytes");
    }

    /**
     * Sets the budget; a smaller one evicts least recently used entries at once, 0 frees them all, and
     * {@link ResidentForward#ACTIVATION_CACHE_AUTO} is resolved again from the free memory now. Setting the
     * value already set changes nothing.
     *
     * @param bytes bytes ≥ 0, or {@link ResidentForward#ACTIVATION_CACHE_AUTO}
     * @throws IllegalArgumentException for another negative value
     */
    void budget(long bytes) {
        checkBudget(bytes);
        if (bytes == setting) {
            return;
        }
        setting = bytes;
        if (cache != null) {
            cache.limitBytes(resolve());
        }
    }

    /**
     * @param bytes a budget
     * @throws IllegalArgumentException unless it is ≥ 0 or {@link ResidentForward#ACTIVATION_CACHE_AUTO}
     */
    static void checkBudget(long bytes) {
        if (bytes < 0 && bytes != ResidentForward.ACTIVATION_CACHE_AUTO) {
            throw new IllegalArgumentException("activation cache budget must be >= 0 bytes or ACTIVATION_CACHE_AUTO ("
                    + ResidentForward.ACTIVATION_CACHE_AUTO + "), got " + bytes);
        }
    }

    /** @return the budget as set: bytes, or {@link ResidentForward#ACTIVATION_CACHE_AUTO} */
    long budget() {
        return setting;
    }

    /** @return the byte limit in force (resolving the budget now when nothing was kept yet) */
    long limitBytes() {
        return cache().limitBytes();
    }

    /** @return bytes of device memory held */
    long bytes() {
        return cache == null ? 0 : cache.bytes();
    }

    /** @return entries held */
    int size() {
        return cache == null ? 0 : cache.size();
    }

    private long resolve() {
        return setting == ResidentForward.ACTIVATION_CACHE_AUTO ? Math.max(0, freeDeviceBytes.getAsLong()) / 4 : setting;
    }

    private DeviceArrayCache<B> cache() {
        if (cache == null) {
            cache = new DeviceArrayCache<>(memory, resolve());
        }
        return cache;
    }

    /**
     * Keeps a block output's device buffer, keyed by the host array it was just downloaded into.
     *
     * @param host the array (never to be modified afterwards); an empty array is not kept
     * @param buffer holds the array's values in its first {@code 4·host.length} bytes; on true the cache
     *     owns it
     * @return whether it was kept; false (the caller still owns the buffer) when the budget is 0, the
     *     buffer is larger than the budget, the array is already cached, or no room could be made
     */
    boolean keep(float[] host, B buffer) {
        Objects.requireNonNull(host, "host");
        Objects.requireNonNull(buffer, "buffer");
        if (setting == 0 || host.length == 0) {
            return false;
        }
        DeviceArrayCache<B> c = cache();
        long need = memory.bytes(buffer);
        if (need > c.limitBytes() || c.get(host) != null || !c.makeRoom(need)) {
            return false;
        }
        c.put(host, buffer);
        return true;
    }

    /**
     * The cached buffer of an array being uploaded, marked as just used; it stays cached and must be
     * read (copied) before the cache is called again.
     *
     * @param host the array being uploaded
     * @param floats floats wanted, from its start, ≥ 0
     * @return a buffer whose first {@code 4·floats} bytes hold them, or null (a miss; also for 0 floats)
     */
    B lookup(float[] host, long floats) {
        DeviceArrayCache.Entry<B> e = entry(host, floats);
        return e == null ? null : e.buffer();
    }

    /**
     * Removes an array's entry and hands its buffer over (the caller is the array's last reader).
     *
     * @param host the array being uploaded
     * @param floats floats wanted, from its start, ≥ 0
     * @return the buffer, now the caller's to free, whose first {@code 4·floats} bytes hold them; or null
     *     (a miss; also for 0 floats)
     */
    B take(float[] host, long floats) {
        DeviceArrayCache.Entry<B> e = entry(host, floats);
        return e == null || e.pins() > 0 ? null : cache.take(e);
    }

    private DeviceArrayCache.Entry<B> entry(float[] host, long floats) {
        Objects.requireNonNull(host, "host");
        if (cache == null || floats <= 0) {
            return null;
        }
        DeviceArrayCache.Entry<B> e = cache.get(host);
        return e == null || e.floats() < floats ? null : e;
    }

    /**
     * Frees every entry (another device allocation failed and needs the room).
     *
     * @return bytes freed
     */
    long evictAll() {
        return cache == null ? 0 : cache.evictUnpinned();
    }

    /** Frees every entry (the backend is closing). */
    void clear() {
        if (cache != null) {
            cache.clear();
        }
    }
}
