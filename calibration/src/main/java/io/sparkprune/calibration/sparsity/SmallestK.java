package io.sparkprune.calibration.sparsity;

import java.util.Arrays;

/**
 * Exact selection of the k smallest scores, ties broken by position (lower index first), in
 * O(n): a two-pass radix select on the IEEE bits of the non-negative fp32 scores (whose bit
 * patterns order like the values), or a sort for small inputs. Deterministic, so masks do not
 * depend on thread timing.
 */
public final class SmallestK {
    private static final int SORT_BELOW = 4096;

    private SmallestK() {
    }

    /**
     * Sets {@code out[outOff + i] = 1} for the {@code k} indices {@code i ∈ [0, n)} with the smallest
     * {@code scores[off + i]}; other entries of {@code out} are left unchanged. For {@code n ≤ 16}
     * the range of {@code out} must be all zeros on entry.
     *
     * @param scores non-negative scores (+0 and -0 are equal; +∞ allowed)
     * @param off index of the first score
     * @param n number of scores
     * @param k how many to mark; ≤ 0 marks none, ≥ n marks all
     * @param out receives the marks
     * @param outOff index in {@code out} of score 0's mark
     * @throws IllegalArgumentException for a negative or NaN score
     */
    public static void mark(float[] scores, int off, int n, int k, byte[] out, int outOff) {
        if (k <= 0 || n <= 0) {
            return;
        }
        if (k >= n) {
            Arrays.fill(out, outOff, outOff + n, (byte) 1);
            return;
        }
        if (n <= 16) {
            // small groups (N:M): repeated minimum, no allocation
            for (int p = 0; p < k; p++) {
                int best = -1;
                int bestKey = 0;
                for (int i = 0; i < n; i++) {
                    if (out[outOff + i] == 0) {
                        int b = key(scores[off + i]);
                        if (best < 0 || b < bestKey) {
                            best = i;
                            bestKey = b;
                        }
                    }
                }
                out[outOff + best] = 1;
            }
            return;
        }
        if (n < SORT_BELOW) {
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                keys[i] = ((long) key(scores[off + i]) << 32) | i;
            }
            Arrays.sort(keys);
            for (int i = 0; i < k; i++) {
                out[outOff + (int) (keys[i] & 0xffffffffL)] = 1;
            }
            return;
        }
        int[] keys = new int[n];
        int[] hist = new int[1 << 16];
        int max = 0;
        for (int i = 0; i < n; i++) {
            int b = Float.floatToRawIntBits(scores[off + i] + 0.0f);
            max = Math.max(max, b);
            keys[i] = b;
            hist[(b >>> 16) & 0xffff]++;
        }
        if (max > 0x7f800000 || countNegative(hist) > 0) {
            for (int i = 0; i < n; i++) {
                key(scores[off + i]); // throws with the offending value
            }
        }
        int hi = 0;
        int below = 0;
        while (below + hist[hi] < k) {
            below += hist[hi++];
        }
        java.util.Arrays.fill(hist, 0);
        for (int i = 0; i < n; i++) {
            int b = keys[i];
            if (b >>> 16 == hi) {
                hist[b & 0xffff]++;
            }
        }
        int lo = 0;
        while (below + hist[lo] < k) {
            below += hist[lo++];
        }
        int threshold = (hi << 16) | lo;
        int ties = k - below; // entries equal to the threshold to take, in index order
        for (int i = 0; i < n; i++) {
            // branch-free: 1 when keys[i] < threshold (both non-negative)
            out[outOff + i] |= (byte) ((keys[i] - threshold) >>> 31);
        }
        for (int i = 0; i < n && ties > 0; i++) {
            if (keys[i] == threshold) {
                out[outOff + i] = 1;
                ties--;
            }
        }
    }

    /** Entries whose sign bit is set (negative numbers), from the high-half histogram. */
    private static int countNegative(int[] hist) {
        int c = 0;
        for (int h = 0x8000; h < 0x10000; h++) {
            c += hist[h];
        }
        return c;
    }

    private static int key(float v) {
        int b = Float.floatToRawIntBits(v + 0.0f);
        if (b < 0 || b > 0x7f800000) {
            throw new IllegalArgumentException("scores must be non-negative numbers, got " + v);
        }
        return b;
    }
}
