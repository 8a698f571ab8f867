package io.sparkprune.pipeline.forward;

import io.sparkprune.pipeline.model.RopeScaling;

/**
 * The cosine and sine tables of rotary position embedding (Su et al. 2021, "RoFormer",
 * arXiv 2104.09864, §3.4.2, θ_i = base^{-2i/d}), computed as Hugging Face transformers computes
 * them, in fp32 ({@code modeling_rope_utils}):
 * <ul>
 *   <li>{@code default}: {@code inv_freq[i] = 1 / base^(fp32(2i) / d)} for {@code i < d/2}
 *       ({@code _compute_default_rope_parameters}; the power is evaluated in fp64 and rounded);</li>
 *   <li>{@code linear}: {@code inv_freq / factor} (position interpolation, Chen et al. 2023, arXiv 2306.15595);</li>
 *   <li>{@code llama3}: {@code _compute_llama3_parameters} (Llama 3.1; Dubey et al. 2024, "The Llama
 *       3 Herd of Models", arXiv 2407.21783): with {@code wavelen = 2π / inv_freq},
 *       {@code low = original_max_position_embeddings / low_freq_factor},
 *       {@code high = original_max_position_embeddings / high_freq_factor}: wavelengths above
 *       {@code low} get {@code inv_freq / factor}; those below {@code high} keep {@code inv_freq};
 *       in between, {@code (1 - s)·inv_freq/factor + s·inv_freq} with
 *       {@code s = (original_max_position_embeddings / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)}.</li>
 * </ul>
 * The angle of position p is the fp32 product {@code inv_freq[i] · p}; the tables hold
 * {@code cos} and {@code sin} of it rounded to fp32 (the attention scaling of these three types is
 * 1). Tables have one row per position and {@code d/2} columns, the layout
 * {@link io.sparkprune.kernels.Backend#rope} takes.
 */
public final class RotaryEmbedding {
    private final RopeScaling rope;
    private final int headDim;
    private final float[] invFreq;
    private float[] cos = new float[0];
    private float[] sin = new float[0];
    private int positions;

    /**
     * @param rope the config's RoPE parameters
     * @param headDim head width d, even
     * @throws IllegalArgumentException for an odd head width or an unknown rope type
     */
    public RotaryEmbedding(RopeScaling rope, int headDim) {
        if (headDim < 2 || headDim % 2 != 0) {
            throw new IllegalArgumentException("rotary embedding needs an even head_dim, got " + headDim);
        }
        this.rope = rope;
        this.headDim = headDim;
        this.invFreq = inverseFrequencies(rope, headDim);
    }

    /**
     * @param rope RoPE parameters
     * @param headDim head width d, even
     * @return the {@code d/2} inverse frequencies, fp32
     */
    public static float[] inverseFrequencies(RopeScaling rope, int headDim) {
        int half = headDim / 2;
        float[] inv = new float[half];
        float base = (float) rope.theta();
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / (float) headDim;
            float p = (float) Math.pow(base, exponent);
            inv[i] = 1f / p;
        }
        switch (rope.ropeType()) {
            case "default":
                break;
            case "linear": {
                float factor = (float) rope.factor();
                for (int i = 0; i < half; i++) {
                    inv[i] = inv[i] / factor;
                }
                break;
            }
            case "llama3": {
                float factor = (float) rope.factor();
                double lowFreqFactor = rope.lowFreqFactor();
                double highFreqFactor = rope.highFreqFactor();
                double oldContext = rope.originalMaxPositionEmbeddings();
                float lowWavelen = (float) (oldContext / lowFreqFactor);
                float highWavelen = (float) (oldContext / highFreqFactor);
                float twoPi = (float) (2 * Math.PI);
                float oldContextF = (float) oldContext;
                float lowF = (float) lowFreqFactor;
                float span = (float) (highFreqFactor - lowFreqFactor);
                for (int i = 0; i < half; i++) {
                    // torch: 2π / t is t.reciprocal() * 2π, in fp32
                    float wavelen = (1f / inv[i]) * twoPi;
                    float llama = wavelen > lowWavelen ? inv[i] / factor : inv[i];
                    float smooth = ((1f / wavelen) * oldContextF - lowF) / span;
                    float smoothed = (1f - smooth) * llama / factor + smooth * llama;
                    boolean medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
                    inv[i] = medium ? smoothed : llama;
                }
                break;
            }
            default:
                throw new IllegalArgumentException("unsupported rope_type \"" + rope.ropeType() + "\"; supported: "
                        + RopeScaling.SUPPORTED_TYPES);
        }
        return inv;
    }

    /** @return the RoPE parameters */
    public RopeScaling rope() {
        return rope;
    }

    /** @return a copy of the inverse frequencies */
    public float[] inverseFrequencies() {
        return invFreq.clone();
    }

    /**
     * Cosine and sine tables for positions {@code [0, positions)} (at least; the arrays may cover
     * more rows).
     *
     * @param cos {@code rows × headDim/2}
     * @param sin {@code rows × headDim/2}
     * @param rows positions covered
     */
    public record Tables(float[] cos, float[] sin, int rows) {
    }

    /**
     * @param needed positions required, ≥ 0
     * @return tables covering at least {@code needed} positions (grown and cached)
     */
    public synchronized Tables tables(int needed) {
        if (needed > positions) {
            int rows = Math.max(needed, Math.min(Integer.MAX_VALUE / headDim, Math.max(64, positions * 2)));
            int half = headDim / 2;
            float[] c = new float[rows * half];
            float[] s = new float[rows * half];
            for (int p = 0; p < rows; p++) {
                float pf = p;
                for (int i = 0; i < half; i++) {
                    float angle = invFreq[i] * pf;
                    c[p * half + i] = (float) Math.cos(angle);
                    s[p * half + i] = (float) Math.sin(angle);
                }
            }
            cos = c;
            sin = s;
            positions = rows;
        }
        return new Tables(cos, sin, positions);
    }
}
