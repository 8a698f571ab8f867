package io.sparkprune.kernels;

import java.util.Objects;

/**
 * Arguments of scaled dot-product attention, {@link Backend#attention}: multi-head attention with
 * grouped key/value heads (Vaswani et al. 2017, arXiv 1706.03762, §3.2.1, Eq. 1; grouped-query
 * attention: Ainslie et al. 2023, arXiv 2305.13245), over a batch of independent sequences laid out
 * one after another in the rows of Q, K, V and the output.
 *
 * <p><b>Layout.</b> Row {@code t} of {@code q} holds the {@code heads} query vectors of token t,
 * head {@code h} in columns {@code [h·headDim, (h+1)·headDim)}; {@code k} and {@code v} likewise
 * with {@code kvHeads} heads; {@code out} like {@code q}. Sequence {@code s} occupies rows
 * {@code [seqStarts[s], seqStarts[s+1])}; tokens of different sequences never attend to each other.
 * Rows outside every sequence are neither read nor written. This covers both a packed batch
 * (sequences of different lengths back to back, {@code keyLengths == null}) and a padded batch
 * (every sequence {@code L} rows, {@code seqStarts[s] = s·L}, with {@code keyLengths[s]} real
 * tokens at the front and padding behind them).
 *
 * <p><b>Semantics.</b> For sequence s of length n, query position i (0-based within the sequence)
 * and query head h, which reads key/value head {@code g = h / (heads / kvHeads)} (the
 * {@code repeat_kv} mapping of Hugging Face transformers: consecutive query heads share a KV head),
 * the allowed keys are the positions j with
 * <ul>
 *   <li>{@code j < kl}, where {@code kl = keyLengths == null ? n : min(keyLengths[s], n)} (padding
 *       mask: keys at padding positions are excluded; queries at padding positions are still
 *       computed, over the real keys, as transformers does);</li>
 *   <li>{@code j ≤ i} when {@code causal};</li>
 *   <li>{@code i - j < window} when {@code window > 0} (a sliding window of {@code window} keys
 *       including the query's own position, as Mistral's {@code sliding_window}; needs
 *       {@code causal}).</li>
 * </ul>
 * Then {@code s_j = scale · ⟨q_i, k_j⟩}, {@code p = softmax(s)} over the allowed j (max-subtracted,
 * so numerically stable), {@code out_i = Σ_j p_j · v_j}. A query with no allowed key gets a zero
 * output. All arithmetic in fp32 (each {@code e^{s_j - max}} evaluated in fp64 and rounded),
 * except that the softmax denominator is summed in fp64.
 *
 * @param heads query heads, ≥ 1, a multiple of {@code kvHeads}
 * @param kvHeads key/value heads, ≥ 1
 * @param headDim width of one head, ≥ 1
 * @param scale factor of the dot products, usually {@code 1/√headDim}
 * @param causal mask keys after the query position
 * @param window sliding window in tokens, 0 for none
 * @param sequences number of sequences, ≥ 0
 * @param seqStarts {@code sequences + 1} non-decreasing row indices, ≥ 0
 * @param keyLengths per-sequence number of real (unpadded) keys, or null when every row is a real token
 * @param q {@code rows × heads·headDim} queries
 * @param k {@code rows × kvHeads·headDim} keys
 * @param v {@code rows × kvHeads·headDim} values
 * @param out {@code rows × heads·headDim} output; must not overlap q, k or v
 */
public record AttentionJob(int heads, int kvHeads, int headDim, float scale, boolean causal, int window,
                           int sequences, int[] seqStarts, int[] keyLengths,
                           FloatView q, FloatView k, FloatView v, FloatView out) {

    /**
     * @param heads query heads
     * @param kvHeads key/value heads
     * @param headDim width of one head
     * @param scale factor of the dot products
     * @param causal mask keys after the query position
     * @param window sliding window in tokens, 0 for none
     * @param sequences number of sequences
     * @param seqStarts {@code sequences + 1} row offsets
     * @param keyLengths per-sequence real keys, or null
     * @param q queries
     * @param k keys
     * @param v values
     * @param out output
     * @throws NullPointerException when a view or {@code seqStarts} is null
     */
    public AttentionJob {
        Objects.requireNonNull(seqStarts, "seqStarts");
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(k, "k");
        Objects.requireNonNull(v, "v");
        Objects.requireNonNull(out, "out");
    }

    /** @return rows covered by the sequences, {@code seqStarts[sequences]} */
    public int rows() {
        return seqStarts[sequences];
    }

    /**
     * @param s sequence index
     * @return the number of real keys of sequence s
     */
    public int keyLength(int s) {
        int n = seqStarts[s + 1] - seqStarts[s];
        return keyLengths == null ? n : Math.min(n, keyLengths[s]);
    }

    /**
     * Checks shapes and bounds of every operand.
     *
     * @throws IllegalArgumentException on any inconsistency
     */
    public void validate() {
        if (heads < 1 || kvHeads < 1 || headDim < 1 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("attention needs heads (" + heads + ") a positive multiple of kvHeads ("
                    + kvHeads + ") and headDim >= 1 (" + headDim + ")");
        }
        if (window < 0 || (window > 0 && !causal)) {
            throw new IllegalArgumentException("attention window " + window + " must be >= 0, and > 0 only with causal");
        }
        if (!Float.isFinite(scale)) {
            throw new IllegalArgumentException("attention scale must be finite, got " + scale);
        }
        if (sequences < 0 || seqStarts.length < sequences + 1) {
            throw new IllegalArgumentException("seqStarts needs " + (sequences + 1) + " entries, has " + seqStarts.length);
        }
        if (seqStarts[0] < 0) {
            throw new IllegalArgumentException("seqStarts[0] = " + seqStarts[0] + " < 0");
        }
        for (int s = 0; s < sequences; s++) {
            if (seqStarts[s + 1] < seqStarts[s]) {
                throw new IllegalArgumentException("seqStarts decreases at " + s + ": " + seqStarts[s] + " > " + seqStarts[s + 1]);
            }
        }
        if (keyLengths != null) {
            if (keyLengths.length < sequences) {
                throw new IllegalArgumentException("keyLengths needs " + sequences + " entries, has " + keyLengths.length);
            }
            for (int s = 0; s < sequences; s++) {
                if (keyLengths[s] < 0) {
                    throw new IllegalArgumentException("keyLengths[" + s + "] = " + keyLengths[s] + " < 0");
                }
            }
        }
        int rows = rows();
        q.checkFits("attention q", rows, heads * headDim);
        k.checkFits("attention k", rows, kvHeads * headDim);
        v.checkFits("attention v", rows, kvHeads * headDim);
        out.checkFits("attention out", rows, heads * headDim);
    }
}
