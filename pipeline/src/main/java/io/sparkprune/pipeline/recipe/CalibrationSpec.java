package io.sparkprune.pipeline.recipe;

import io.sparkprune.calibration.hessian.HessianPrecision;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.pipeline.data.CalibrationSplit;
import io.sparkprune.pipeline.data.SourceOptions;
import io.sparkprune.pipeline.model.ModelConfig;

import java.util.Objects;
import java.util.OptionalInt;

/**
 * The {@code calibration} section of a recipe: where calibration text comes from and how many
 * sequences of how many tokens are drawn from it ({@code docs/data.md} describes sources, sampling
 * and the split).
 *
 * @param source {@value #DEFAULT_SOURCE} for the English Europarl lines that ship with SparkPrune,
 *     else a path, directory or Hadoop glob of text, JSONL or Parquet files (key {@code source})
 * @param options format, JSON field / Parquet column and text mode (keys {@code format},
 *     {@code field}, {@code text_mode})
 * @param samples number of calibration sequences N, ≥ 1 (key {@code samples})
 * @param seqLen tokens per sequence L, ≥ 2, or empty for {@code auto} (key {@code seq_len}; see
 *     {@link #resolveSeqLen(ModelConfig)})
 * @param seed seed of the sampler and of the calibration / held-out split (key {@code seed})
 * @param heldOutFraction fraction of the source's documents held out for evaluation, in [0, 1)
 *     (key {@code held_out_fraction}); calibration draws from the rest
 * @param hessianPrecision how the Hessians {@code Σ xᵀx} are accumulated: {@code exact} (fp64 products,
 *     the default) or {@code tf32} (TF32 tensor-core products, fp32 sums per 256-token chunk) (key
 *     {@code hessian_precision}; {@code docs/benchmarks.md} measures its effect on quality)
 * @param forwardPrecision arithmetic of the linear layers' and attention's products in the calibration forward passes:
 *     {@code fp32} (fp32 operands and fused multiply-adds, the default) or {@code tf32} (operands rounded
 *     to TF32, 10 mantissa bits, fp32 sums; tensor cores on the GPU) (key {@code forward_precision}; see
 *     {@link ForwardPrecision})
 */
public record CalibrationSpec(String source, SourceOptions options, int samples, OptionalInt seqLen, long seed,
                              double heldOutFraction, HessianPrecision hessianPrecision,
                              ForwardPrecision forwardPrecision) {

    /** The {@code source} value naming the bundled English Europarl lines. */
    public static final String DEFAULT_SOURCE = "default";
    /** {@code seq_len: auto} for encoders: at most this many tokens (capped by the model's positions). */
    public static final int AUTO_SEQ_LEN_ENCODER = 128;
    /** {@code seq_len: auto} for decoders on a user source: at most this many tokens (SparseGPT's 2048). */
    public static final int AUTO_SEQ_LEN_DECODER = 2048;
    /**
     * {@code seq_len: auto} for decoders on the default corpus, whose English documents have at most
     * about 3,400 characters (~850 tokens): windows of this length can be drawn from about half of them.
     */
    public static final int AUTO_SEQ_LEN_DECODER_DEFAULT_SOURCE = 256;

    /** The default of {@code hessian_precision} (see docs/benchmarks.md, "TF32 Hessians: quality on the default model"). */
    public static final HessianPrecision DEFAULT_HESSIAN_PRECISION = HessianPrecision.EXACT;

    /** The default of {@code forward_precision}: fp32 products. */
    public static final ForwardPrecision DEFAULT_FORWARD_PRECISION = ForwardPrecision.FP32;

    /**
     * Default source, AUTO format, field {@code text}, lines, 128 samples, auto length, seed 0, 10 % held
     * out, exact Hessians, fp32 forward products.
     */
    public static final CalibrationSpec DEFAULT = new CalibrationSpec(DEFAULT_SOURCE, SourceOptions.defaults(), 128,
            OptionalInt.empty(), 0L, CalibrationSplit.DEFAULT_HELD_OUT_FRACTION, DEFAULT_HESSIAN_PRECISION,
            DEFAULT_FORWARD_PRECISION);

    /**
     * @throws RecipeException (key path under {@code calibration}) for a blank source, samples &lt; 1,
     *     seq_len &lt; 2, N × L beyond one batch array ({@code 2^31 - 9} tokens) or a held-out
     *     fraction outside [0, 1)
     */
    public CalibrationSpec {
        Objects.requireNonNull(source, "source");
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(seqLen, "seqLen");
        Objects.requireNonNull(hessianPrecision, "hessianPrecision");
        Objects.requireNonNull(forwardPrecision, "forwardPrecision");
        String src = RecipeException.UNSPECIFIED_SOURCE;
        if (source.isBlank()) {
            throw new RecipeException(src, "calibration.source", "is empty; write " + DEFAULT_SOURCE
                    + " for the bundled English Europarl lines, or a file, directory or glob such as data/*.jsonl");
        }
        SampleCounts.check(src, "calibration", samples, seqLen);
        if (!(heldOutFraction >= 0.0 && heldOutFraction < 1.0)) {
            throw new RecipeException(src, "calibration.held_out_fraction", "must be in [0, 1), got " + heldOutFraction
                    + "; use e.g. " + CalibrationSplit.DEFAULT_HELD_OUT_FRACTION + " (0 holds nothing out)");
        }
    }

    /**
     * A spec with the default forward precision ({@link #DEFAULT_FORWARD_PRECISION}).
     *
     * @param source see the record's components
     * @param options see the record's components
     * @param samples see the record's components
     * @param seqLen see the record's components
     * @param seed see the record's components
     * @param heldOutFraction see the record's components
     * @param hessianPrecision see the record's components
     * @throws RecipeException as the canonical constructor
     */
    public CalibrationSpec(String source, SourceOptions options, int samples, OptionalInt seqLen, long seed,
                           double heldOutFraction, HessianPrecision hessianPrecision) {
        this(source, options, samples, seqLen, seed, heldOutFraction, hessianPrecision, DEFAULT_FORWARD_PRECISION);
    }

    /**
     * A spec with the default Hessian and forward precisions ({@link #DEFAULT_HESSIAN_PRECISION},
     * {@link #DEFAULT_FORWARD_PRECISION}).
     *
     * @param source see the record's components
     * @param options see the record's components
     * @param samples see the record's components
     * @param seqLen see the record's components
     * @param seed see the record's components
     * @param heldOutFraction see the record's components
     * @throws RecipeException as the canonical constructor
     */
    public CalibrationSpec(String source, SourceOptions options, int samples, OptionalInt seqLen, long seed,
                           double heldOutFraction) {
        this(source, options, samples, seqLen, seed, heldOutFraction, DEFAULT_HESSIAN_PRECISION);
    }

    /** @return true when {@link #source()} is {@value #DEFAULT_SOURCE}, the bundled English Europarl lines */
    public boolean isDefaultSource() {
        return DEFAULT_SOURCE.equals(source);
    }

    /** @return the calibration / held-out split of this section's seed and fraction */
    public CalibrationSplit split() {
        return new CalibrationSplit(seed, heldOutFraction);
    }

    /**
     * The sequence length to use for a model. An explicit {@code seq_len} must fit the model's
     * positions. {@code auto} is {@code min(cap, max_position_embeddings)} with cap
     * {@value #AUTO_SEQ_LEN_ENCODER} for encoders (BERT family), {@value #AUTO_SEQ_LEN_DECODER} for
     * decoders (Llama family), or {@value #AUTO_SEQ_LEN_DECODER_DEFAULT_SOURCE} for decoders on the
     * default corpus (its documents are too short for longer windows).
     *
     * @param model the model's configuration
     * @return L in tokens, ≥ 2
     * @throws RecipeException (key {@code calibration.seq_len}) when an explicit length exceeds the
     *     model's {@code max_position_embeddings}
     */
    public int resolveSeqLen(ModelConfig model) {
        int max = model.maxPositionEmbeddings();
        if (seqLen.isPresent()) {
            return SampleCounts.fit(seqLen.getAsInt(), max, "calibration.seq_len", model);
        }
        int cap = switch (model.family()) {
            case BERT -> AUTO_SEQ_LEN_ENCODER;
            case LLAMA -> isDefaultSource() ? AUTO_SEQ_LEN_DECODER_DEFAULT_SOURCE : AUTO_SEQ_LEN_DECODER;
        };
        return Math.max(2, Math.min(cap, max));
    }
}
