package io.sparkprune.kernels;

/**
 * Optional capability of a {@link Backend}: a {@link ForwardWorkspace} whose matrices stay in the
 * backend's device memory, so a transformer block runs with one upload of its input and one download
 * of its output instead of a round trip per op. {@link ForwardWorkspace#open} picks it when present.
 *
 * <p>Such a backend also keeps an <b>activation cache</b>: device copies of block outputs that a
 * {@link ForwardWorkspace.Handoff#PIPELINE} workspace downloaded, keyed by the identity of the returned
 * host array, so that a later {@link ForwardWorkspace#upload} of that same array in any workspace of the
 * backend finds the values already on the device. The host array stays the source of truth: a miss
 * (evicted, another process, an array read back from disk) is an ordinary upload.
 */
public interface ResidentForward {

    /** {@link #activationCacheBytes(long)}: a quarter of the device's free memory when the cache is first used. */
    long ACTIVATION_CACHE_AUTO = -1;

    /**
     * A workspace that neither keeps its outputs nor hands over its inputs
     * ({@link ForwardWorkspace.Handoff#NONE}).
     *
     * @param precision products of {@link ForwardWorkspace#linear}
     * @param label what the workspace is for, in messages
     * @return a new resident workspace; close it to free its device memory
     */
    default ForwardWorkspace openWorkspace(ForwardPrecision precision, String label) {
        return openWorkspace(precision, label, ForwardWorkspace.Handoff.NONE);
    }

    /**
     * @param precision products of {@link ForwardWorkspace#linear}
     * @param label what the workspace is for, in messages
     * @param handoff what the workspace does with the activation cache
     * @return a new resident workspace; close it to free its device memory
     */
    ForwardWorkspace openWorkspace(ForwardPrecision precision, String label, ForwardWorkspace.Handoff handoff);

    /**
     * Sets the byte budget of the activation cache; entries beyond it are evicted, least recently used
     * first. Setting the value it already has changes nothing.
     *
     * @param bytes device bytes, ≥ 0 (0: keep nothing, and free what is kept), or
     *     {@link #ACTIVATION_CACHE_AUTO}
     * @throws IllegalArgumentException for another negative value
     */
    void activationCacheBytes(long bytes);
}
