package io.sparkprune.pipeline.formats.sparse;

import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.formats.PatternViolationException;

/**
 * The quantized N:M variant of the {@code sparse} format (docs/formats.md, "sparse", quantized
 * N:M): per row, the integer codes of the kept entries packed {@code 8 / bits} to a byte, their
 * in-group indices exactly as the unquantized N:M encoding packs them, and the row's grids
 * (scales in the tensor's float dtype, signed zero points when asymmetric).
 *
 * <p>An entry is stored when its code differs from its group's zero point (value ≠ 0); groups
 * with fewer than n such entries are padded with the lowest unstored positions, whose stored code
 * is the zero point. A code {@code c} (signed, {@code [-2^(bits-1), 2^(bits-1) - 1]}) is stored
 * as the unsigned {@code u = c + 2^(bits-1)}; for 4 bits the k-th kept code of a row is in byte
 * {@code k / 2}, low nibble for even k, high nibble for odd k. Rows are padded to whole bytes with
 * zero bits. The dense value is {@code scale · (c − z)} in fp32 with the stored (dtype-rounded)
 * scale, rounded to the dtype — {@link QuantizedWeights#dequantize()} then
 * {@link HostTensor#fromFloats}.
 */
final class QuantizedNm {
    private QuantizedNm() {
    }

    /**
     * @param nm the N:M structure
     * @param bits 4 or 8
     * @param cols in_features
     * @return bytes of one row of packed codes: {@code ceil(cols/m · n · bits / 8)}
     */
    static long codeRowBytes(long cols, SparseEncoding.NofM nm, int bits) {
        return (cols / nm.m() * nm.n() * bits + 7) / 8;
    }

    /**
     * @param tensor name for messages
     * @param q the codes and grids; scales must already be representable in {@code dtype}
     * @param nm the structure
     * @param dtype the dense dtype (the scales' stored dtype)
     * @return {codes, indices, scales, zero points (empty array when symmetric)} as stored bytes
     * @throws PatternViolationException when a group holds more than n codes different from its zero point
     */
    static byte[][] encode(String tensor, QuantizedWeights q, SparseEncoding.NofM nm, DType dtype) {
        int rows = q.rows();
        int cols = q.cols();
        int n = nm.n();
        int m = nm.m();
        int bits = q.spec().bits();
        int ib = nm.indexBits();
        int groups = cols / m;
        int codeRow = (int) codeRowBytes(cols, nm, bits);
        int idxRow = (int) SparseCodecs.nmIndexRowBytes(cols, nm);
        byte[] codes = new byte[rows * codeRow];
        byte[] indices = new byte[rows * idxRow];
        int off = 1 << (bits - 1);
        int[] slots = new int[n];
        for (int r = 0; r < rows; r++) {
            long ibit = (long) r * idxRow * 8;
            int k = 0;
            for (int g = 0; g < groups; g++) {
                int base = g * m;
                boolean[] used = new boolean[m];
                int count = 0;
                for (int j = 0; j < m; j++) {
                    int c = base + j;
                    if (q.codes()[r * cols + c] != zero(q, r, c)) {
                        if (count == n) {
                            throw new PatternViolationException(tensor, r, g, tensor + ": row " + r + ", group " + g
                                    + " (columns " + base + ".." + (base + m - 1) + ") has more than " + n
                                    + " non-zero quantized weights, so it is not " + nm.spec() + "; store it with the "
                                    + "pattern it was pruned with");
                        }
                        used[j] = true;
                        count++;
                    }
                }
                for (int j = 0; j < m && count < n; j++) {
                    if (!used[j]) {
                        used[j] = true;
                        count++;
                    }
                }
                int s = 0;
                for (int j = 0; j < m; j++) {
                    if (used[j]) {
                        slots[s++] = j;
                    }
                }
                for (s = 0; s < n; s++, k++) {
                    int c = base + slots[s];
                    int u = q.codes()[r * cols + c] + off;
                    if (bits == 8) {
                        codes[r * codeRow + k] = (byte) u;
                    } else {
                        codes[r * codeRow + k / 2] |= (byte) ((k & 1) == 0 ? u : u << 4);
                    }
                    for (int b = 0; b < ib; b++, ibit++) {
                        if (((slots[s] >>> b) & 1) != 0) {
                            indices[(int) (ibit >>> 3)] |= (byte) (1 << (ibit & 7));
                        }
                    }
                }
            }
        }
        int gs = q.groups();
        HostTensor scales = HostTensor.fromFloats(dtype, new long[] {rows, gs}, q.scales());
        byte[] zp = new byte[q.spec().symmetric() ? 0 : rows * gs];
        for (int i = 0; i < zp.length; i++) {
            zp[i] = (byte) q.zeroPoints()[i];
        }
        return new byte[][] {codes, indices, SparseWriter.bytes(scales), zp};
    }

    private static int zero(QuantizedWeights q, int r, int c) {
        return q.zeroPoints()[r * q.groups() + (q.spec().groupSize() == 0 ? 0 : c / q.spec().groupSize())];
    }

    /**
     * @param where label for messages
     * @param spec the grid
     * @param nm the structure
     * @param dtype the scales' dtype
     * @param rows out_features
     * @param cols in_features
     * @param codes stored codes
     * @param indices stored indices
     * @param scales stored scales ({@code dtype}, rows × groups)
     * @param zeroPoints stored zero points (I8, rows × groups), or null when symmetric
     * @return the full codes (unstored entries take the zero point), scales widened to fp32, zero points
     * @throws FormatException for bad indices, set padding bits or zero points outside the code range
     */
    static QuantizedWeights decode(String where, QuantizationSpec spec, SparseEncoding.NofM nm, DType dtype, int rows,
                                   int cols, byte[] codes, byte[] indices, HostTensor scales, byte[] zeroPoints) {
        int gs = spec.groups(cols);
        int[] zp = new int[rows * gs];
        if (zeroPoints != null) {
            for (int i = 0; i < zp.length; i++) {
                zp[i] = zeroPoints[i];
                if (zp[i] < spec.minCode() || zp[i] > spec.maxCode()) {
                    throw new FormatException(where, "zero point " + zp[i] + " at " + i + " is outside the " + spec.bits()
                            + "-bit code range; the file is corrupt: re-create it");
                }
            }
        }
        float[] sc = scales.toFloatArray();
        byte[] full = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                full[r * cols + c] = (byte) zp[r * gs + (spec.groupSize() == 0 ? 0 : c / spec.groupSize())];
            }
        }
        // positions from the shared N:M index decoder: decode a 1-byte-per-entry "values" array of slot numbers
        int n = nm.n();
        int groups = cols / nm.m();
        int k = groups * n;
        byte[] slotIds = new byte[rows * k];
        int bits = spec.bits();
        int off = 1 << (bits - 1);
        int codeRow = (int) codeRowBytes(cols, nm, bits);
        byte[] kept = new byte[rows * k];
        for (int r = 0; r < rows; r++) {
            for (int s = 0; s < k; s++) {
                int u = bits == 8 ? codes[r * codeRow + s] & 0xff
                        : (codes[r * codeRow + s / 2] >>> ((s & 1) * 4)) & 0xf;
                kept[r * k + s] = (byte) (u - off);
                slotIds[r * k + s] = 1; // non-zero marker so nmDecode places it
            }
            int usedBits = k * bits;
            for (int b = usedBits; b < codeRow * 8; b++) {
                if (((codes[r * codeRow + (b >>> 3)] >>> (b & 7)) & 1) != 0) {
                    throw new FormatException(where, "row " + r + ": padding bit " + b + " of the code row is set; "
                            + "padding bits must be 0. The file is corrupt: re-create it");
                }
            }
        }
        // place (slot marker, code) pairs with the N:M decoder, 2 bytes per entry
        byte[] pairs = new byte[rows * k * 2];
        for (int i = 0; i < rows * k; i++) {
            pairs[2 * i] = slotIds[i];
            pairs[2 * i + 1] = kept[i];
        }
        byte[] placed = SparseCodecs.nmDecode(where, pairs, indices, rows, cols, 2, nm);
        for (int i = 0; i < rows * cols; i++) {
            if (placed[2 * i] != 0) {
                int c = placed[2 * i + 1];
                if (c < spec.minCode() || c > spec.maxCode()) {
                    throw new FormatException(where, "code " + c + " outside the " + bits + "-bit range");
                }
                full[i] = (byte) c;
            }
        }
        return new QuantizedWeights(spec, rows, cols, full, sc, zp);
    }
}
