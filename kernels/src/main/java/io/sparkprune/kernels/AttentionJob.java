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
 * <p><b>TF32</b> ({@code tf32}, the attention of a {@link ForwardPrecision#TF32} workspace): the
 * operands of both products are rounded to TF32 with {@link Tf32#round} (PTX
 * {@code cvt.rna.tf32.f32}) first, products and sums staying fp32, as the TF32 linears do:
 * {@code q' = tf32(fp32(scale · q))} and {@code k' = tf32(k)} give {@code s_j = ⟨q', k'_j⟩}; the
 * un-normalized weights {@code p'_j = tf32(fp32(e^{s_j - m}))}, {@code m} the maximum the
 * implementation subtracts (the row's maximum on the CPU, the running maximum of the online softmax
 * on the GPU), and {@code v' = tf32(v)} give {@code out_i = fp32(Σ_j p'_j · v'_j) · fp32(1 / l)} with
 * the denominator {@code l = Σ_j p'_j} of the same rounded weights (fp64 sum; on the GPU each
 * weight is further multiplied by the fp32 rescale factors of the online softmax). So the weights are
 * those of exact attention on the rounded operands up to a relative {@code 2^-11} each (TF32's unit
 * roundoff), and CPU and GPU differ by fp32 summation order and by at most one TF32 rounding per
 * weight. On the GPU the tensor-core kernel {@code attention_tf32} computes it for head widths
 * allowed by {@link #supportsTf32}; a TF32 workspace runs the fp32 attention for other widths.
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
 * @param tf32 round the operands of both products to TF32 (see above); false: fp32
 */
public record AttentionJob(int heads, int kvHeads, int headDim, float scale, boolean causal, int window,
                           int sequences, int[] seqStarts, int[] keyLengths,
                           FloatView q, FloatView k, FloatView v, FloatView out, boolean tf32) {

    /** Widest head that TF32 attention ({@link #supportsTf32}) handles: the GPU kernel's limit. */
    public static final int TF32_MAX_HEAD_DIM = 128;

    /**
     * Whether a {@link ForwardPrecision#TF32} workspace computes attention of this head width in TF32
     * (the width of one k-step of the tensor-core instruction divides it and the GPU kernel's register
     * tile holds it); for other widths it computes the fp32 attention, on the CPU and on the GPU alike.
     *
     * @param headDim width of one head
     * @return {@code headDim} a positive multiple of 8 and at most {@value #TF32_MAX_HEAD_DIM}
     */
    public static boolean supportsTf32(int headDim) {
        return headDim > 0 && headDim % 8 == 0 && headDim <= TF32_MAX_HEAD_DIM;
    }

    /**
     * An fp32 job ({@code tf32} false), with the arguments of the canonical constructor.
     *
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
    public AttentionJob(int heads, int kvHeads, int headDim, float scale, boolean causal, int window,
                        int sequences, int[] seqStarts, int[] keyLengths,
                        FloatView q, FloatView k, FloatView v, FloatView out) {
        this(heads, kvHeads, headDim, scale, causal, window, sequences, seqStarts, keyLengths, q, k, v, out, false);
    }

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
     * @param tf32 TF32 operands
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
