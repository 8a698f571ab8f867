package io.sparkprune.pipeline.data;

import io.sparkprune.pipeline.tokenizer.EncodedBatch;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.SplittableRandom;

/**
 * Draws N calibration sequences of L tokens from a list of documents, deterministically from a
 * seed. Two styles:
 *
 * <p><b>Decoder windows</b> ({@link #sampleWindows}) follow the SparseGPT reference's C4 loader
 * (github.com/IST-DASLab/sparsegpt, {@code datautils.py}, {@code get_c4}):
 * <pre>
 *   random.seed(seed)
 *   for _ in range(nsamples):
 *       while True:
 *           i = random.randint(0, len(traindata) - 1)
 *           trainenc = tokenizer(traindata[i]['text'], return_tensors='pt')
 *           if trainenc.input_ids.shape[1] &gt; seqlen:
 *               break
 *       i = random.randint(0, trainenc.input_ids.shape[1] - seqlen - 1)
 *       j = i + seqlen
 *       inp = trainenc.input_ids[:, i:j]
 * </pre>
 * Here: {@code rng = new SplittableRandom(seed)}, {@code randint(a, b) = a + rng.nextInt(b - a + 1)}
 * (inclusive bounds, as Python's), D = number of documents. For each of the N samples: draw
 * {@code d = randint(0, D - 1)} and tokenize document d without special tokens (with a BOS id
 * requested, {@code [bos] + ids}, as a Hugging Face tokenizer that adds BOS would give); redraw while
 * the length is ≤ L; then {@code start = randint(0, len - L - 1)} and the sample is
 * {@code ids[start, start + L)}. Documents already found too short are remembered (the draw is still
 * consumed, so the result does not depend on this cache). The RNG is Java's, not Python's Mersenne
 * Twister: the rule matches the reference, the particular windows do not.
 *
 * <p>It never loops forever: when every document has been found too short, or when
 * {@link #maxAttempts()} draws in a row (default {@value #DEFAULT_MAX_ATTEMPTS}) found none long
 * enough, it throws a {@link CalibrationDataException} naming the corpus, N, L, the longest document
 * seen and the fix.
 *
 * <p><b>Encoder sentences</b> ({@link #sampleSentences}): for BERT-style encoders a calibration
 * sample is one document as the model sees it in use: {@code [CLS] tokens [SEP]}, truncated to L
 * and padded to L with an attention mask ({@link HfTokenizer#encodeBatch}). The N documents are
 * drawn without replacement by a partial Fisher-Yates shuffle with the same RNG: for
 * {@code k = 0, 1, ...}: {@code j = k + rng.nextInt(D - k)}, swap positions k and j of
 * {@code [0, D)}, take position k; documents with no token besides the special ones are passed over.
 *
 * <p>The sampler borrows the tokenizer (does not close it). Documents are held in memory, as the
 * reference holds its C4 shard: limit the corpus with {@link DocumentSource#readAll(int)}.
 */
public final class CalibrationSampler {

    /** Default cap on consecutive draws that find no document long enough for one window. */
    public static final int DEFAULT_MAX_ATTEMPTS = 100_000;

    private final HfTokenizer tokenizer;
    private final int maxAttempts;

    /**
     * @param tokenizer the model's tokenizer; borrowed, not closed
     */
    public CalibrationSampler(HfTokenizer tokenizer) {
        this(tokenizer, DEFAULT_MAX_ATTEMPTS);
    }

    private CalibrationSampler(HfTokenizer tokenizer, int maxAttempts) {
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
        if (maxAttempts < 1) {
            throw new IllegalArgumentException("maxAttempts must be >= 1, got " + maxAttempts);
        }
        this.maxAttempts = maxAttempts;
    }

    /**
     * @param attempts cap on consecutive unsuccessful draws per window, ≥ 1
     * @return a sampler with that cap
     */
    public CalibrationSampler withMaxAttempts(int attempts) {
        return new CalibrationSampler(tokenizer, attempts);
    }

    /** @return the cap on consecutive unsuccessful draws per window */
    public int maxAttempts() {
        return maxAttempts;
    }

    /**
     * Decoder-style windows from a source: reads up to {@code maxDocuments} documents into memory,
     * then {@link #sampleWindows(List, String, int, int, long, OptionalInt)}.
     *
     * @param source the corpus
     * @param maxDocuments the most documents to read from it
     * @param samples N ≥ 1
     * @param seqLength L ≥ 1
     * @param seed RNG seed
     * @param bosId a BOS id to put before every document's tokens, or empty
     * @return N x L windows, mask all 1
     * @throws CalibrationDataException as the list variant, or when reading fails
     */
    public CalibrationBatch sampleWindows(DocumentSource source, int maxDocuments, int samples, int seqLength, long seed,
                                          OptionalInt bosId) {
        return sampleWindows(source.readAll(maxDocuments), source.description(), samples, seqLength, seed, bosId);
    }

    /**
     * Decoder-style windows: N contiguous slices of L token ids, each from a document with more
     * than L tokens, by the rule in the class comment.
     *
     * @param documents the corpus, D ≥ 1 documents
     * @param sourceName what the corpus is, for messages and the result
     * @param samples N ≥ 1
     * @param seqLength L ≥ 1
     * @param seed RNG seed
     * @param bosId a BOS id to put before every document's tokens (a window starting at 0 then
     *     begins with it), or empty for none
     * @return N x L windows: ids, attention mask all 1, type ids 0; document index and start offset
     *     per row
     * @throws CalibrationDataException when the corpus is empty or has no (or too few reachable)
     *     documents longer than L tokens
     */
    public CalibrationBatch sampleWindows(List<String> documents, String sourceName, int samples, int seqLength, long seed,
                                          OptionalInt bosId) {
        Objects.requireNonNull(documents, "documents");
        Objects.requireNonNull(sourceName, "sourceName");
        Objects.requireNonNull(bosId, "bosId");
        checkCounts(samples, seqLength);
        int d = documents.size();
        if (d == 0) {
            throw new CalibrationDataException("calibration corpus " + sourceName + " has no documents; fix: give a corpus with"
                    + " text (" + samples + " windows of " + seqLength + " tokens were requested)");
        }
        SplittableRandom rng = new SplittableRandom(seed);
        BitSet tooShort = new BitSet(d);
        int tooShortCount = 0;
        int longest = 0;
        int[] ids = new int[samples * seqLength];
        int[] docIndex = new int[samples];
        int[] starts = new int[samples];
        int[] fullLengths = new int[samples];
        for (int s = 0; s < samples; s++) {
            int[] tokens = null;
            int attempts = 0;
            while (tokens == null) {
                int i = randint(rng, 0, d - 1);
                if (!tooShort.get(i)) {
                    int[] t = tokenize(documents.get(i), bosId);
                    longest = Math.max(longest, t.length);
                    if (t.length > seqLength) {
                        tokens = t;
                        docIndex[s] = i;
                        break;
                    }
                    tooShort.set(i);
                    tooShortCount++;
                }
                attempts++;
                if (tooShortCount == d) {
                    throw new CalibrationDataException("calibration corpus " + sourceName + " has no document longer than "
                            + seqLength + " tokens (all " + d + " documents checked, the longest has " + longest + " tokens), so "
                            + samples + " windows of " + seqLength + " tokens cannot be drawn; fix: lower the sequence length"
                            + " below " + longest + " or give more/longer text");
                }
                if (attempts >= maxAttempts) {
                    throw new CalibrationDataException("calibration corpus " + sourceName + ": " + attempts + " draws in a row"
                            + " found no document longer than " + seqLength + " tokens (" + tooShortCount + " of " + d
                            + " documents are too short, the longest seen has " + longest + " tokens) while drawing window "
                            + (s + 1) + " of " + samples + "; fix: lower the sequence length or give a corpus with more long"
                            + " documents");
                }
            }
            int start = randint(rng, 0, tokens.length - seqLength - 1);
            System.arraycopy(tokens, start, ids, s * seqLength, seqLength);
            starts[s] = start;
            fullLengths[s] = tokens.length;
        }
        int[] mask = new int[ids.length];
        Arrays.fill(mask, 1);
        int[] lengths = new int[samples];
        Arrays.fill(lengths, seqLength);
        EncodedBatch batch = new EncodedBatch(samples, seqLength, ids, mask, new int[ids.length], lengths, fullLengths);
        return new CalibrationBatch(sourceName, seed, batch, docIndex, starts);
    }

    /**
     * Encoder-style samples from a source: reads up to {@code maxDocuments} documents, then
     * {@link #sampleSentences(List, String, int, int, long)}.
     *
     * @param source the corpus
     * @param maxDocuments the most documents to read from it
     * @param samples N ≥ 1
     * @param maxLength L, at least the tokenizer's special tokens + 1
     * @param seed RNG seed
     * @return N x L rows with special tokens, truncation, padding and mask
     * @throws CalibrationDataException as the list variant, or when reading fails
     */
    public CalibrationBatch sampleSentences(DocumentSource source, int maxDocuments, int samples, int maxLength, long seed) {
        return sampleSentences(source.readAll(maxDocuments), source.description(), samples, maxLength, seed);
    }

    /**
     * Encoder-style samples: N distinct documents drawn by the seeded partial shuffle of the class
     * comment, each encoded with the tokenizer's special tokens, truncated from the right to L and
     * padded to L with an attention mask.
     *
     * @param documents the corpus
     * @param sourceName what the corpus is, for messages and the result
     * @param samples N ≥ 1
     * @param maxLength L, at least the tokenizer's special tokens + 1
     * @param seed RNG seed
     * @return N x L rows; window starts are 0
     * @throws CalibrationDataException when fewer than N documents have a token
     * @throws io.sparkprune.pipeline.tokenizer.TokenizerException when L cannot hold the special tokens
     */
    public CalibrationBatch sampleSentences(List<String> documents, String sourceName, int samples, int maxLength, long seed) {
        Objects.requireNonNull(documents, "documents");
        Objects.requireNonNull(sourceName, "sourceName");
        checkCounts(samples, maxLength);
        int d = documents.size();
        if (d < samples) {
            throw new CalibrationDataException("calibration corpus " + sourceName + " has " + d + " documents, fewer than the "
                    + samples + " samples requested (of up to " + maxLength + " tokens each); fix: lower the number of samples"
                    + " or give more text");
        }
        SplittableRandom rng = new SplittableRandom(seed);
        int[] order = new int[d];
        for (int i = 0; i < d; i++) {
            order[i] = i;
        }
        List<String> chosen = new ArrayList<>(samples);
        int[] docIndex = new int[samples];
        for (int k = 0; k < d && chosen.size() < samples; k++) {
            int j = k + rng.nextInt(d - k);
            int tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
            String doc = documents.get(order[k]);
            if (tokenizer.encode(doc, false).length > 0) {
                docIndex[chosen.size()] = order[k];
                chosen.add(doc);
            }
        }
        if (chosen.size() < samples) {
            throw new CalibrationDataException("calibration corpus " + sourceName + " has only " + chosen.size() + " documents"
                    + " with at least one token, fewer than the " + samples + " samples requested; fix: lower the number of"
                    + " samples or give more text");
        }
        EncodedBatch batch = tokenizer.encodeBatch(chosen, maxLength);
        return new CalibrationBatch(sourceName, seed, batch, docIndex, new int[samples]);
    }

    private int[] tokenize(String document, OptionalInt bosId) {
        int[] ids = tokenizer.encode(document, false);
        if (bosId.isEmpty()) {
            return ids;
        }
        int[] withBos = new int[ids.length + 1];
        withBos[0] = bosId.getAsInt();
        System.arraycopy(ids, 0, withBos, 1, ids.length);
        return withBos;
    }

    /** Python's random.randint(a, b): uniform on the closed range [a, b]. */
    static int randint(SplittableRandom rng, int a, int b) {
        return a + rng.nextInt(b - a + 1);
    }

    private static void checkCounts(int samples, int seqLength) {
        if (samples < 1) {
            throw new CalibrationDataException("number of calibration samples must be at least 1, got " + samples
                    + "; fix: request 1 or more (the SparseGPT paper uses 128)");
        }
        if (seqLength < 1) {
            throw new CalibrationDataException("calibration sequence length must be at least 1 token, got " + seqLength
                    + "; fix: request 1 or more (the SparseGPT paper uses 2048 for decoders)");
        }
        if ((long) samples * seqLength > Integer.MAX_VALUE - 8) {
            throw new CalibrationDataException(samples + " samples of " + seqLength + " tokens do not fit one batch array;"
                    + " fix: draw fewer or shorter samples per batch");
        }
    }
}
