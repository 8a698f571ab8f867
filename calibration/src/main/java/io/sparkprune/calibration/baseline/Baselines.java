package io.sparkprune.calibration.baseline;

import io.sparkprune.calibration.CalibrationInputException;
import io.sparkprune.calibration.Finite;
import io.sparkprune.calibration.sparsity.BitMask;
import io.sparkprune.calibration.sparsity.SmallestK;
import io.sparkprune.calibration.sparsity.SparsityPattern;

/** Mask selection shared by the baselines: scores in, zeros and mask out. */
final class Baselines {
    private Baselines() {
    }

    static void checkWeights(String tensor, float[] weights, int rows, int cols, SparsityPattern pattern) {
        if (rows < 0 || cols < 1 || weights.length != (long) rows * cols) {
            throw new CalibrationInputException("weight " + tensor + " must be " + rows + " x " + cols + " ("
                    + (long) rows * cols + " values), got " + weights.length);
        }
        // no column blocks here: the whole row is one block
        pattern.checkShape(tensor, rows, cols, cols);
        Finite.check("weight " + tensor, weights, cols, "the checkpoint holds non-finite values; fix or"
                + " re-export it, or exclude this tensor from pruning (ignore)");
    }

    /**
     * @param perRowUnstructured rank unstructured scores per row (Wanda) instead of per matrix
     *     (magnitude)
     * @param perBandTiles rank block tiles per band of tile rows (Wanda) instead of per matrix
     */
    static MaskedWeights apply(String tensor, float[] weights, int rows, int cols, float[] scores,
                               SparsityPattern pattern, boolean perRowUnstructured, boolean perBandTiles) {
        byte[] m = new byte[rows * cols];
        if (pattern instanceof SparsityPattern.Unstructured un) {
            double p = un.sparsity();
            if (perRowUnstructured) {
                int k = (int) Math.round(p * cols);
                for (int r = 0; r < rows; r++) {
                    SmallestK.mark(scores, r * cols, cols, k, m, r * cols);
                }
            } else {
                SmallestK.mark(scores, 0, m.length, (int) Math.round(p * m.length), m, 0);
            }
        } else if (pattern instanceof SparsityPattern.NofM nm) {
            int g = nm.m();
            int prune = nm.m() - nm.n();
            for (int o = 0; o < m.length; o += g) {
                SmallestK.mark(scores, o, g, prune, m, o);
            }
        } else if (pattern instanceof SparsityPattern.Block bl) {
            int tr = bl.rows();
            int tc = bl.cols();
            int bands = rows / tr;
            int perBand = cols / tc;
            float[] ts = new float[bands * perBand];
            for (int b = 0; b < bands; b++) {
                for (int t = 0; t < perBand; t++) {
                    double s = 0.0;
                    for (int rr = 0; rr < tr; rr++) {
                        int o = (b * tr + rr) * cols + t * tc;
                        for (int cc = 0; cc < tc; cc++) {
                            s += (double) scores[o + cc] * scores[o + cc];
                        }
                    }
                    ts[b * perBand + t] = (float) s;
                }
            }
            byte[] tiles = new byte[ts.length];
            if (perBandTiles) {
                int k = (int) Math.round(bl.sparsity() * perBand);
                for (int b = 0; b < bands; b++) {
                    SmallestK.mark(ts, b * perBand, perBand, k, tiles, b * perBand);
                }
            } else {
                SmallestK.mark(ts, 0, ts.length, (int) Math.round(bl.sparsity() * ts.length), tiles, 0);
            }
            for (int b = 0; b < bands; b++) {
                for (int t = 0; t < perBand; t++) {
                    if (tiles[b * perBand + t] != 0) {
                        for (int rr = 0; rr < tr; rr++) {
                            int o = (b * tr + rr) * cols + t * tc;
                            java.util.Arrays.fill(m, o, o + tc, (byte) 1);
                        }
                    }
                }
            }
        }
        float[] out = weights.clone();
        BitMask mask = new BitMask(rows, cols);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                if (m[r * cols + c] != 0) {
                    out[r * cols + c] = 0f;
                    mask.set(r, c);
                }
            }
        }
        return new MaskedWeights(tensor, rows, cols, out, mask);
    }
}
