package io.sparkprune.pipeline.recipe;

import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.pipeline.data.SourceOptions;
import io.sparkprune.pipeline.model.ModelConfig;

import java.util.List;
import java.util.Objects;
import java.util.OptionalInt;

/**
 * The {@code evaluation} section of a recipe: the data on which quality is measured before and
 * after pruning (perplexity for decoders; embedding cosine and top-10 neighbour agreement for
 * encoders).
 *
 * @param source {@value #HELD_OUT_SOURCE} for the held-out part of the calibration source (split
 *     by {@link CalibrationSpec#split()}), else a path, directory or Hadoop glob (key {@code source},
 *     CLI {@code --eval})
 * @param options format, field and text mode of {@code source}; ignored for {@value #HELD_OUT_SOURCE},
 *     which is read as the calibration source is (keys {@code format}, {@code field}, {@code text_mode})
 * @param samples the most sequences (decoders) or sentences (encoders) scored, ≥ 1 (key {@code samples})
 * @param seqLen tokens per sequence, ≥ 2, or empty for {@code auto}: the calibration length (key {@code seq_len})
 * @param baselines methods also scored on the same data at the same pattern and targets, for comparison
 *     ({@link PruneMethod#MAGNITUDE}, {@link PruneMethod#WANDA}; no duplicates; empty for none; key
 *     {@code baselines}, CLI {@code --baselines magnitude,wanda})
 * @param forwardPrecision arithmetic of the linear layers' and attention's products in the quality check's
 *     forward passes of both models: {@link ForwardPrecision#FP32} (the default) or
 *     {@link ForwardPrecision#TF32} (operands rounded to TF32, fp32 sums; tensor cores on the GPU) (key
 *     {@code forward_precision}, CLI {@code --eval-forward-precision}); the dense and the pruned model are
 *     always scored with the same arithmetic
 */
public record EvaluationSpec(String source, SourceOptions options, int samples, OptionalInt seqLen,
                             List<PruneMethod> baselines, ForwardPrecision forwardPrecision) {

    /** The {@code source} value naming the held-out part of the calibration source. */
    public static final String HELD_OUT_SOURCE = "held_out";

    /** The default of {@code forward_precision}: fp32 products. */
    public static final ForwardPrecision DEFAULT_FORWARD_PRECISION = ForwardPrecision.FP32;

    /** The held-out split, at most 128 sequences, the calibration length. */
    public static final EvaluationSpec DEFAULT = new EvaluationSpec(HELD_OUT_SOURCE, SourceOptions.defaults(), 128,
            OptionalInt.empty());

    /**
     * @throws RecipeException (key path under {@code evaluation}) for a blank source, samples &lt; 1,
     *     seq_len &lt; 2 or N × L beyond one batch array, a baseline that is {@code sparsegpt} or repeated
     */
    public EvaluationSpec {
        Objects.requireNonNull(source, "source");
        Objects.requireNonNull(forwardPrecision, "forwardPrecision");
        baselines = List.copyOf(Objects.requireNonNull(baselines, "baselines"));
        for (int i = 0; i < baselines.size(); i++) {
            if (baselines.get(i) == PruneMethod.SPARSEGPT) {
                throw new RecipeException(RecipeException.UNSPECIFIED_SOURCE, "evaluation.baselines", "lists sparsegpt, "
                        + "which is the method being evaluated; baselines are magnitude and wanda");
            }
            if (baselines.indexOf(baselines.get(i)) != i) {
                throw new RecipeException(RecipeException.UNSPECIFIED_SOURCE, "evaluation.baselines", "lists "
                        + baselines.get(i).id() + " twice; list each baseline once");
            }
        }
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(seqLen, "seqLen");
        String src = RecipeException.UNSPECIFIED_SOURCE;
        if (source.isBlank()) {
            throw new RecipeException(src, "evaluation.source", "is empty; write " + HELD_OUT_SOURCE
                    + " for the held-out part of the calibration data, or a file, directory or glob");
        }
        SampleCounts.check(src, "evaluation", samples, seqLen);
    }

    /**
     * Evaluation without baselines.
     *
     * @param source see the record
     * @param options see the record
     * @param samples see the record
     * @param seqLen see the record
     */
    public EvaluationSpec(String source, SourceOptions options, int samples, OptionalInt seqLen) {
        this(source, options, samples, seqLen, List.of());
    }

    /**
     * Evaluation in fp32 ({@link #DEFAULT_FORWARD_PRECISION}).
     *
     * @param source see the record
     * @param options see the record
     * @param samples see the record
     * @param seqLen see the record
     * @param baselines see the record
     */
    public EvaluationSpec(String source, SourceOptions options, int samples, OptionalInt seqLen,
                          List<PruneMethod> baselines) {
        this(source, options, samples, seqLen, baselines, DEFAULT_FORWARD_PRECISION);
    }

    /** @return true when {@link #source()} is {@value #HELD_OUT_SOURCE} */
    public boolean usesHeldOut() {
        return HELD_OUT_SOURCE.equals(source);
    }

    /**
     * @param model the model's configuration
     * @param calibrationSeqLen the resolved calibration length ({@link CalibrationSpec#resolveSeqLen})
     * @return the explicit {@code seq_len}, or for {@code auto} the calibration length
     * @throws RecipeException (key {@code evaluation.seq_len}) when an explicit length exceeds the
     *     model's {@code max_position_embeddings}
     */
    public int resolveSeqLen(ModelConfig model, int calibrationSeqLen) {
        if (seqLen.isPresent()) {
            return SampleCounts.fit(seqLen.getAsInt(), model.maxPositionEmbeddings(), "evaluation.seq_len", model);
        }
        return calibrationSeqLen;
    }
}
