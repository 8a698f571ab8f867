package io.sparkprune.kernels;

/**
 * Optional capability of a {@link Backend}: a {@link ForwardWorkspace} whose matrices stay in the
 * backend's device memory, so a transformer block runs with one upload of its input and one download
 * of its output instead of a round trip per op. {@link ForwardWorkspace#open} picks it when present.
 */
public interface ResidentForward {

    /**
     * @param precision products of {@link ForwardWorkspace#linear}
     * @param label what the workspace is for, in messages
     * @return a new resident workspace; close it to free its device memory
     */
    ForwardWorkspace openWorkspace(ForwardPrecision precision, String label);
}
