package io.sparkprune.pipeline.tokenizer;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A batch of token sequences of one fixed length, as a BERT-style encoder takes it: token ids,
 * attention mask and token type ids, each (rows x seqLength) row-major int32, plus the number of real
 * (non-padding) tokens per row.
 *
 * <p>Row {@code r}, position {@code t} is at index {@code r * seqLength + t}. Positions
 * {@code t >= lengths[r]} are padding: id = the tokenizer's pad id, mask 0, type id = the pad type
 * id. Real positions have mask 1. Instances are immutable; accessors return copies.
 */
public final class EncodedBatch {
    private final int rows;
    private final int seqLength;
    private final int[] ids;            // (rows, seqLength) row-major
    private final int[] attentionMask;  // (rows, seqLength) row-major, 1 = real token, 0 = padding
    private final int[] tokenTypeIds;   // (rows, seqLength) row-major
    private final int[] lengths;        // (rows) real tokens per row, <= seqLength
    private final int[] fullLengths;    // (rows) tokens the row would have had without truncation

    /**
     * @param rows number of sequences, ≥ 0
     * @param seqLength positions per sequence, ≥ 1
     * @param ids (rows x seqLength) token ids, row-major
     * @param attentionMask (rows x seqLength) 1 for real tokens, 0 for padding
     * @param tokenTypeIds (rows x seqLength) segment ids
     * @param lengths (rows) real tokens per row, each in [0, seqLength]
     * @param fullLengths (rows) tokens per row before truncation, each ≥ lengths[r]
     * @throws IllegalArgumentException when an array length does not match the shape or a mask
     *     disagrees with the lengths
     */
    public EncodedBatch(int rows, int seqLength, int[] ids, int[] attentionMask, int[] tokenTypeIds,
                        int[] lengths, int[] fullLengths) {
        if (rows < 0 || seqLength < 1) {
            throw new IllegalArgumentException("batch shape must be rows >= 0, seqLength >= 1, got " + rows + " x " + seqLength);
        }
        long n = (long) rows * seqLength;
        if (ids.length != n || attentionMask.length != n || tokenTypeIds.length != n) {
            throw new IllegalArgumentException("batch " + rows + " x " + seqLength + " needs " + n + " entries per array, got ids "
                    + ids.length + ", mask " + attentionMask.length + ", type ids " + tokenTypeIds.length);
        }
        if (lengths.length != rows || fullLengths.length != rows) {
            throw new IllegalArgumentException("lengths arrays must have " + rows + " entries, got " + lengths.length
                    + " and " + fullLengths.length);
        }
        for (int r = 0; r < rows; r++) {
            if (lengths[r] < 0 || lengths[r] > seqLength || fullLengths[r] < lengths[r]) {
                throw new IllegalArgumentException("row " + r + ": length " + lengths[r] + ", full length " + fullLengths[r]
                        + " do not fit seqLength " + seqLength);
            }
            for (int t = 0; t < seqLength; t++) {
                int expected = t < lengths[r] ? 1 : 0;
                if (attentionMask[r * seqLength + t] != expected) {
                    throw new IllegalArgumentException("row " + r + ": attention mask at " + t + " must be " + expected
                            + " for length " + lengths[r]);
                }
            }
        }
        this.rows = rows;
        this.seqLength = seqLength;
        this.ids = ids.clone();
        this.attentionMask = attentionMask.clone();
        this.tokenTypeIds = tokenTypeIds.clone();
        this.lengths = lengths.clone();
        this.fullLengths = fullLengths.clone();
    }

    /** @return number of sequences */
    public int rows() {
        return rows;
    }

    /** @return positions per sequence (the maximum length the batch was padded/truncated to) */
    public int seqLength() {
        return seqLength;
    }

    /** @return (rows x seqLength) token ids, row-major; a copy */
    public int[] ids() {
        return ids.clone();
    }

    /** @return (rows x seqLength) attention mask (1 real, 0 padding), row-major; a copy */
    public int[] attentionMask() {
        return attentionMask.clone();
    }

    /** @return (rows x seqLength) token type (segment) ids, row-major; a copy */
    public int[] tokenTypeIds() {
        return tokenTypeIds.clone();
    }

    /** @return (rows) number of real tokens per row; a copy */
    public int[] lengths() {
        return lengths.clone();
    }

    /**
     * @return (rows) number of tokens each row had before truncation (special tokens included);
     *     greater than {@link #lengths()} exactly for truncated rows; a copy
     */
    public int[] fullLengths() {
        return fullLengths.clone();
    }

    /**
     * @param row 0-based row
     * @return the real tokens of one row (length {@code lengths()[row]}), without padding
     * @throws IndexOutOfBoundsException when the row is out of range
     */
    public int[] rowIds(int row) {
        if (row < 0 || row >= rows) {
            throw new IndexOutOfBoundsException("row " + row + " of " + rows);
        }
        return Arrays.copyOfRange(ids, row * seqLength, row * seqLength + lengths[row]);
    }

    /** @return the ids as an I64 tensor of shape [rows, seqLength] (ONNX BERT {@code input_ids}) */
    public HostTensor idsTensor() {
        return i64(ids);
    }

    /** @return the attention mask as an I64 tensor of shape [rows, seqLength] */
    public HostTensor attentionMaskTensor() {
        return i64(attentionMask);
    }

    /** @return the token type ids as an I64 tensor of shape [rows, seqLength] */
    public HostTensor tokenTypeIdsTensor() {
        return i64(tokenTypeIds);
    }

    private HostTensor i64(int[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < values.length; i++) {
            b.putLong(i * Long.BYTES, values[i]);
        }
        return new HostTensor(DType.I64, new long[] {rows, seqLength}, b);
    }

    @Override
    public String toString() {
        return "EncodedBatch[" + rows + " x " + seqLength + "]";
    }
}
