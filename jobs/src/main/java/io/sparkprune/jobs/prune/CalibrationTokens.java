package io.sparkprune.jobs.prune;

import io.sparkprune.pipeline.data.CalibrationBatch;
import io.sparkprune.pipeline.data.CalibrationSampler;
import io.sparkprune.pipeline.data.DocumentSource;
import io.sparkprune.pipeline.data.DocumentSources;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelFamily;
import io.sparkprune.pipeline.recipe.CalibrationSpec;
import io.sparkprune.pipeline.tokenizer.EncodedBatch;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.OptionalInt;
import org.apache.hadoop.conf.Configuration;

/**
 * Draws the calibration sequences on the driver (token ids only: N × L ints) and packs them into
 * batches for the executors: decoders get windows of L tokens (the SparseGPT reference's C4 rule),
 * encoders get sentences with special tokens, truncated to L and unpadded (the packed layout has
 * no padding, so padding tokens never reach a Hessian).
 */
final class CalibrationTokens {
    private CalibrationTokens() {
    }

    /**
     * @param spec the recipe's calibration section
     * @param config the model's config
     * @param tokenizer the model's tokenizer
     * @param hadoop configuration for non-local sources
     * @return the sampled sequences, one int[] each, in sample order
     */
    static List<int[]> sample(CalibrationSpec spec, ModelConfig config, HfTokenizer tokenizer, Configuration hadoop) {
        DocumentSource corpus = spec.isDefaultSource() ? DefaultAssets.englishEuroparl()
                : DocumentSources.open(spec.source(), spec.options(), hadoop);
        DocumentSource part = spec.split().calibrationPart(corpus);
        int seqLen = spec.resolveSeqLen(config);
        CalibrationSampler sampler = new CalibrationSampler(tokenizer);
        List<int[]> out = new ArrayList<>(spec.samples());
        if (config.family() == ModelFamily.BERT) {
            CalibrationBatch b = sampler.sampleSentences(part, Integer.MAX_VALUE, spec.samples(), seqLen, spec.seed());
            EncodedBatch e = b.tokens();
            for (int r = 0; r < e.rows(); r++) {
                out.add(Arrays.copyOf(e.rowIds(r), e.lengths()[r]));
            }
        } else {
            CalibrationBatch b = sampler.sampleWindows(part, Integer.MAX_VALUE, spec.samples(), seqLen, spec.seed(),
                    OptionalInt.empty());
            EncodedBatch e = b.tokens();
            for (int r = 0; r < e.rows(); r++) {
                out.add(e.rowIds(r));
            }
        }
        return out;
    }

    /**
     * Packs sequences into batches of at most {@code maxTokens} tokens (at least one sequence
     * each), in order.
     *
     * @param sequences token ids per sequence
     * @param maxTokens token budget of one batch
     * @return batches
     */
    static List<TokenBatch> pack(List<int[]> sequences, int maxTokens) {
        List<TokenBatch> batches = new ArrayList<>();
        List<int[]> cur = new ArrayList<>();
        int tokens = 0;
        for (int[] s : sequences) {
            if (!cur.isEmpty() && tokens + s.length > maxTokens) {
                batches.add(TokenBatch.of(cur.toArray(new int[0][])));
                cur.clear();
                tokens = 0;
            }
            cur.add(s);
            tokens += s.length;
        }
        if (!cur.isEmpty()) {
            batches.add(TokenBatch.of(cur.toArray(new int[0][])));
        }
        return batches;
    }

    /**
     * @param sequences token ids
     * @return SHA-256 (hex) of the sequences, for the run fingerprint and the report
     */
    static String fingerprint(List<int[]> sequences) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (int[] s : sequences) {
                ByteBuffer b = ByteBuffer.allocate(4 + 4 * s.length).order(ByteOrder.LITTLE_ENDIAN);
                b.putInt(s.length);
                for (int v : s) {
                    b.putInt(v);
                }
                md.update(b.array());
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
