package io.sparkprune.pipeline.forward;

import io.sparkprune.pipeline.tokenizer.EncodedBatch;
import java.util.Arrays;
import java.util.Objects;

/**
 * Token ids of a packed batch of sequences (see {@link SequenceLayout}), with optional token type
 * (segment) ids for BERT-style encoders.
 *
 * @param layout the sequences
 * @param ids {@code tokens} token ids, row-major by sequence
 * @param tokenTypeIds {@code tokens} segment ids, or null (all 0)
 */
public record TokenBatch(SequenceLayout layout, int[] ids, int[] tokenTypeIds) implements java.io.Serializable {

    /**
     * @param layout the sequences
     * @param ids {@code tokens} token ids (not copied)
     * @param tokenTypeIds {@code tokens} segment ids, or null
     * @throws IllegalArgumentException when an array's length is not the number of tokens
     */
    public TokenBatch {
        Objects.requireNonNull(layout, "layout");
        Objects.requireNonNull(ids, "ids");
        if (ids.length != layout.tokens()) {
            throw new IllegalArgumentException(ids.length + " ids for a layout of " + layout.tokens() + " tokens");
        }
        if (tokenTypeIds != null && tokenTypeIds.length != ids.length) {
            throw new IllegalArgumentException(tokenTypeIds.length + " token type ids for " + ids.length + " tokens");
        }
    }

    /**
     * @param sequences token ids of each sequence, each non-empty
     * @return the packed batch, no token types
     */
    public static TokenBatch of(int[]... sequences) {
        int[] lengths = new int[sequences.length];
        for (int s = 0; s < sequences.length; s++) {
            lengths[s] = sequences[s].length;
        }
        SequenceLayout layout = SequenceLayout.ofLengths(lengths);
        int[] ids = new int[layout.tokens()];
        for (int s = 0; s < sequences.length; s++) {
            System.arraycopy(sequences[s], 0, ids, layout.start(s), lengths[s]);
        }
        return new TokenBatch(layout, ids, null);
    }

    /**
     * Non-overlapping windows of a token stream: window w is {@code tokens[from + w·length, from + (w+1)·length)}.
     *
     * @param tokens the stream
     * @param from index of window 0's first token
     * @param windows number of windows
     * @param length tokens per window, ≥ 1
     * @return the packed batch
     * @throws IllegalArgumentException when the windows run past the stream
     */
    public static TokenBatch windows(int[] tokens, int from, int windows, int length) {
        long end = from + (long) windows * length;
        if (from < 0 || end > tokens.length) {
            throw new IllegalArgumentException(windows + " windows of " + length + " tokens from " + from
                    + " run past the " + tokens.length + " tokens of the stream");
        }
        return new TokenBatch(SequenceLayout.uniform(windows, length), Arrays.copyOfRange(tokens, from, (int) end), null);
    }

    /**
     * Drops the padding of a padded, right-padded tokenizer batch: row r keeps its first
     * {@code lengths[r]} tokens (the real ones, attention mask 1) and their token type ids.
     *
     * @param batch a tokenizer batch
     * @return the packed batch
     * @throws IllegalArgumentException when a row has no real token
     */
    public static TokenBatch fromEncoded(EncodedBatch batch) {
        int[] lengths = batch.lengths();
        SequenceLayout layout = SequenceLayout.ofLengths(lengths);
        int[] srcIds = batch.ids();
        int[] srcTypes = batch.tokenTypeIds();
        int[] ids = new int[layout.tokens()];
        int[] types = new int[layout.tokens()];
        for (int r = 0; r < lengths.length; r++) {
            System.arraycopy(srcIds, r * batch.seqLength(), ids, layout.start(r), lengths[r]);
            System.arraycopy(srcTypes, r * batch.seqLength(), types, layout.start(r), lengths[r]);
        }
        return new TokenBatch(layout, ids, types);
    }

    /** @return number of tokens */
    public int tokens() {
        return ids.length;
    }
}
