package io.sparkprune.pipeline.data;

import io.sparkprune.pipeline.tokenizer.EncodedBatch;

import java.util.Objects;

/**
 * Calibration sequences drawn by {@link CalibrationSampler}: the tokens (N x L, row-major, with
 * attention mask and token type ids) and, per row, which document it came from and where.
 */
public final class CalibrationBatch {
    private final String source;
    private final long seed;
    private final EncodedBatch tokens;
    private final int[] documentIndices; // (N) index into the document list the sampler was given
    private final int[] windowStarts;    // (N) token offset of the row in its document's ids, 0 for sentences

    /**
     * @param source description of the corpus
     * @param seed the sampling seed
     * @param tokens the N x L token batch
     * @param documentIndices (N) 0-based index of each row's document in the sampled list
     * @param windowStarts (N) offset of each row's first token in its document's token ids
     * @throws IllegalArgumentException when the per-row arrays do not have N entries
     */
    public CalibrationBatch(String source, long seed, EncodedBatch tokens, int[] documentIndices, int[] windowStarts) {
        this.source = Objects.requireNonNull(source, "source");
        this.seed = seed;
        this.tokens = Objects.requireNonNull(tokens, "tokens");
        if (documentIndices.length != tokens.rows() || windowStarts.length != tokens.rows()) {
            throw new IllegalArgumentException("need " + tokens.rows() + " document indices and window starts, got "
                    + documentIndices.length + " and " + windowStarts.length);
        }
        this.documentIndices = documentIndices.clone();
        this.windowStarts = windowStarts.clone();
    }

    /** @return the corpus description */
    public String source() {
        return source;
    }

    /** @return the seed the rows were drawn with */
    public long seed() {
        return seed;
    }

    /** @return the (N x L) tokens with attention mask and token type ids */
    public EncodedBatch tokens() {
        return tokens;
    }

    /** @return (N) index of each row's document in the list given to the sampler; a copy */
    public int[] documentIndices() {
        return documentIndices.clone();
    }

    /** @return (N) offset of each row's first token within its document's token ids; a copy */
    public int[] windowStarts() {
        return windowStarts.clone();
    }

    /** @return number of rows N */
    public int samples() {
        return tokens.rows();
    }

    /** @return tokens per row L */
    public int seqLength() {
        return tokens.seqLength();
    }

    @Override
    public String toString() {
        return "CalibrationBatch[" + samples() + " x " + seqLength() + " from " + source + ", seed " + seed + "]";
    }
}
