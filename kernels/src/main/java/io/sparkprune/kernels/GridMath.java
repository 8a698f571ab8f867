package io.sparkprune.kernels;

/**
 * Uniform integer quantization grids, fp32 arithmetic exactly as GPTQ's {@code Quantizer}
 * (Frantar et al. 2022, arXiv 2210.17323, reference code {@code quant.py}) so that results match
 * the reference bit for bit.
 *
 * <p>Levels are unsigned integers {@code 0..maxq} with {@code maxq = 2^bits - 1}; a value {@code x}
 * maps to level {@code q = clamp(rint(x / scale) + zero, 0, maxq)} and back to
 * {@code scale * (q - zero)}. {@code rint} rounds half to even like {@code torch.round}. The zero
 * level {@code zero} is an integer in {@code [0, maxq]}, so 0.0 is always exactly representable and
 * quantizes to exactly 0.0.
 *
 * <ul>
 *   <li>Asymmetric fit (GPTQ): {@code xmin = min(min(x), 0)}, {@code xmax = max(max(x), 0)}, both
 *       zero → {@code -1, +1}; {@code scale = (xmax - xmin) / maxq}, {@code zero = rint(-xmin / scale)}.
 *   <li>Symmetric fit: {@code a = max(|xmin|, xmax)} (0 → 1), {@code scale = 2a / maxq},
 *       {@code zero = (maxq + 1) / 2}. This equals GPTQ's symmetric grid whenever the values
 *       include a negative one, and compressed-tensors' symmetric grid ({@code scale = absmax /
 *       (maxq / 2)}, signed codes {@code q - zero} in {@code [-2^(bits-1), 2^(bits-1) - 1]}) always.
 *       GPTQ's code keeps {@code xmin = 0} for all-non-negative values, which clips them at about half
 *       their range; we do not copy that quirk.
 * </ul>
 */
public final class GridMath {
    private GridMath() {
    }

    /**
     * @param bits bits per code, 2..8
     * @return {@code 2^bits - 1}
     * @throws IllegalArgumentException outside 2..8
     */
    public static int maxq(int bits) {
        if (bits < 2 || bits > 8) {
            throw new IllegalArgumentException("bits must be 2..8, got " + bits);
        }
        return (1 << bits) - 1;
    }

    /**
     * Fits a grid to {@code n} values {@code x[off], x[off + stride], ...}.
     *
     * @param x values (fp32)
     * @param off first index
     * @param n number of values, ≥ 1
     * @param stride distance between values
     * @param bits bits per code, 2..8
     * @param symmetric symmetric (zero level fixed at {@code (maxq+1)/2}) or asymmetric
     * @param out receives {@code out[outIdx] = scale}, {@code out[outIdx + 1] = zero level}
     * @param outIdx where to write
     */
    public static void fit(float[] x, int off, int n, int stride, int bits, boolean symmetric, float[] out, int outIdx) {
        int maxq = maxq(bits);
        float mn = 0f;
        float mx = 0f;
        for (int i = 0, p = off; i < n; i++, p += stride) {
            float v = x[p];
            mn = Math.min(mn, v);
            mx = Math.max(mx, v);
        }
        float scale;
        float zero;
        if (symmetric) {
            float a = Math.max(-mn, mx);
            if (a == 0f) {
                a = 1f;
            }
            scale = (a + a) / maxq;
            zero = (maxq + 1) / 2;
        } else {
            if (mn == 0f && mx == 0f) {
                mn = -1f;
                mx = 1f;
            }
            scale = (mx - mn) / maxq;
            zero = (float) Math.rint(-mn / scale);
        }
        out[outIdx] = scale;
        out[outIdx + 1] = zero;
    }

    /**
     * @param x value
     * @param scale grid step, &gt; 0
     * @param zero zero level, an integer in {@code [0, maxq]}
     * @param maxq highest level
     * @return the level {@code clamp(rint(x / scale) + zero, 0, maxq)}, an integer-valued float
     */
    public static float level(float x, float scale, float zero, int maxq) {
        float q = (float) Math.rint(x / scale) + zero;
        return Math.min(Math.max(q, 0f), (float) maxq);
    }

    /**
     * @param level a level from {@link #level}
     * @param scale grid step
     * @param zero zero level
     * @return {@code scale * (level - zero)} in fp32
     */
    public static float value(float level, float scale, float zero) {
        return scale * (level - zero);
    }
}
