package io.sparkprune.pipeline.forward;

/**
 * Sentence embeddings from an encoder's {@code last_hidden_state}, as sentence-transformers'
 * {@code Pooling} module computes them, optionally followed by its {@code Normalize} module
 * ({@code torch.nn.functional.normalize(x, p=2, dim=1)}: {@code x / max(‖x‖₂, 1e-12)}).
 * all-MiniLM-L6-v2 uses {@link #MEAN} + normalisation; BGE uses {@link #CLS} + normalisation.
 */
public enum Pooling {
    /**
     * Mean over the sequence's real tokens ({@code pooling_mode_mean_tokens}: the attention-masked
     * sum divided by the token count; padding never enters a packed batch).
     */
    MEAN,
    /** The first token's vector ({@code [CLS]}, {@code pooling_mode_cls_token}). */
    CLS;

    /**
     * @param hidden {@code tokens × width} last hidden state
     * @param normalize L2-normalise each embedding
     * @return {@code sequences × width} embeddings, row-major; sums in fp64, results fp32
     */
    public float[] apply(HiddenStates hidden, boolean normalize) {
        SequenceLayout layout = hidden.layout();
        int w = hidden.width();
        float[] data = hidden.data();
        int n = layout.sequences();
        float[] out = new float[n * w];
        double[] acc = new double[w];
        for (int s = 0; s < n; s++) {
            int start = layout.start(s);
            int len = layout.length(s);
            if (this == CLS) {
                for (int c = 0; c < w; c++) {
                    acc[c] = data[start * w + c];
                }
            } else {
                java.util.Arrays.fill(acc, 0.0);
                for (int t = start; t < start + len; t++) {
                    for (int c = 0; c < w; c++) {
                        acc[c] += data[t * w + c];
                    }
                }
                for (int c = 0; c < w; c++) {
                    acc[c] /= Math.max(len, 1e-9);
                }
            }
            double scale = 1.0;
            if (normalize) {
                double ss = 0;
                for (int c = 0; c < w; c++) {
                    ss += acc[c] * acc[c];
                }
                scale = 1.0 / Math.max(Math.sqrt(ss), 1e-12);
            }
            for (int c = 0; c < w; c++) {
                out[s * w + c] = (float) (acc[c] * scale);
            }
        }
        return out;
    }
}
