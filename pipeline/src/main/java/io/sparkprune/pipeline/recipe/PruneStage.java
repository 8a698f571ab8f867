package io.sparkprune.pipeline.recipe;

import io.sparkprune.calibration.hessian.Dampening;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.solver.SolverOptions;
import io.sparkprune.calibration.sparsity.MaskScope;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.pipeline.formats.sparse.PayloadCodec;

import java.io.Serial;
import java.io.Serializable;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * The {@code prune} section of a recipe: one pruning modifier, as llm-compressor's
 * {@code SparseGPTModifier} ({@code sparsity}/{@code mask_structure}, {@code targets},
 * {@code ignore}, {@code dampening_frac}, {@code block_size}) plus the joint quantization grid and
 * the pipeline mode. All values are validated here; see {@code docs/recipes.md} for the YAML keys.
 * Java serialization (Spark closures) writes the stage as recipe YAML and parses it again on reading.
 *
 * @param method how weights are pruned (key {@code method})
 * @param pattern which entries may be zeroed, parsed once (key {@code pattern})
 * @param selector which tensors are pruned (keys {@code targets}, {@code ignore})
 * @param dampening relative Hessian dampening and its retry schedule, starting at the value of key
 *     {@code dampening} (SparseGPT only)
 * @param blockSize columns per lazy-update block (key {@code block_size}; SparseGPT only), 1..65536
 * @param maskScope how unstructured and block masks are ranked (key {@code mask_scope}; SparseGPT only)
 * @param quantization joint quantization grid, or empty (key {@code quantization}; SparseGPT only)
 * @param pipeline sequential or independent calibration of the layers (key {@code pipeline})
 * @param formats the output formats in order (key {@code format}); empty = {@code auto}: {@code hf}
 *     for unquantized runs, {@code compressed-tensors} for quantized ones ({@link #outputFormats()})
 * @param sparseCodec how the {@code sparse} output stores its integer payloads (key
 *     {@code sparse_codec}): {@code none} (raw, the default) or {@code deflate} (docs/formats.md,
 *     "Payload codec")
 */
public record PruneStage(PruneMethod method, SparsityPattern pattern, TensorSelector selector, Dampening dampening,
                         int blockSize, MaskScope maskScope, Optional<QuantizationSpec> quantization,
                         PipelineMode pipeline, List<OutputFormat> formats, PayloadCodec sparseCodec)
        implements Serializable {

    /** Largest accepted {@code block_size}. */
    public static final int MAX_BLOCK_SIZE = 65536;

    /** SparseGPT, 2:4, default tensor selection, dampening 0.01, block 128, per-row masks, no quantization, sequential. */
    public static final PruneStage DEFAULT = new PruneStage(PruneMethod.SPARSEGPT, new SparsityPattern.NofM(2, 4),
            TensorSelector.defaults(), Dampening.DEFAULT, 128, MaskScope.PER_ROW, Optional.empty(),
            PipelineMode.SEQUENTIAL, List.of(), PayloadCodec.NONE);

    /**
     * @throws RecipeException (key path under {@code prune}) when the block size is outside
     *     1..{@value #MAX_BLOCK_SIZE}, or, for SparseGPT, not a multiple of the N:M group length M,
     *     of the block pattern's tile width or of the quantization group size; or when quantization
     *     is asked of a method other than SparseGPT; or (key {@code prune.format}) when
     *     {@code compressed-tensors} is asked of an unquantized run or of bits other than 4 and 8; or (key
     *     {@code prune.sparse_codec}) when {@code deflate} is asked without the {@code sparse} format
     */
    public PruneStage {
        Objects.requireNonNull(method, "method");
        Objects.requireNonNull(pattern, "pattern");
        Objects.requireNonNull(selector, "selector");
        Objects.requireNonNull(dampening, "dampening");
        Objects.requireNonNull(maskScope, "maskScope");
        Objects.requireNonNull(quantization, "quantization");
        Objects.requireNonNull(pipeline, "pipeline");
        formats = List.copyOf(Objects.requireNonNull(formats, "formats"));
        Objects.requireNonNull(sparseCodec, "sparseCodec");
        String src = RecipeException.UNSPECIFIED_SOURCE;
        if (sparseCodec != PayloadCodec.NONE && !formats.contains(OutputFormat.SPARSE)) {
            throw new RecipeException(src, "prune.sparse_codec", sparseCodec.id() + " applies to the sparse output only, "
                    + "but the formats are " + (formats.isEmpty() ? "auto" : OutputFormat.join(formats))
                    + "; add sparse (e.g. --format sparse) or use --sparse-codec none");
        }
        if (formats.size() != new java.util.HashSet<>(formats).size()) {
            throw new RecipeException(src, "prune.format", "lists a format twice (" + OutputFormat.join(formats)
                    + "); list each format once");
        }
        if (formats.contains(OutputFormat.COMPRESSED_TENSORS)) {
            if (quantization.isEmpty()) {
                throw new RecipeException(src, "prune.format", "compressed-tensors (pack-quantized) stores quantized "
                        + "integer weights, but this run does not quantize; add quantization (e.g. --quant int4-g128) "
                        + "or choose --format hf or sparse");
            }
            if (quantization.get().bits() != 4 && quantization.get().bits() != 8) {
                throw new RecipeException(src, "prune.format", "compressed-tensors pack-quantized stores 4- or 8-bit "
                        + "integers, but the run quantizes to " + quantization.get().bits() + " bits; use 4 or 8 bits, "
                        + "or --format hf or sparse");
            }
        }
        if (blockSize < 1 || blockSize > MAX_BLOCK_SIZE) {
            throw new RecipeException(src, "prune.block_size", "must be in 1.." + MAX_BLOCK_SIZE + ", got " + blockSize
                    + "; use 128 (the SparseGPT default)");
        }
        if (method != PruneMethod.SPARSEGPT && quantization.isPresent()) {
            throw new RecipeException(src, "prune.quantization", "joint quantization needs method sparsegpt, but the "
                    + "method is " + method.id() + "; remove quantization or use method sparsegpt");
        }
        if (method == PruneMethod.SPARSEGPT) {
            if (pattern instanceof SparsityPattern.NofM nm && blockSize % nm.m() != 0) {
                throw new RecipeException(src, "prune.block_size", "pattern " + nm.spec() + " needs a block size that is "
                        + "a multiple of " + nm.m() + ", got " + blockSize + "; use 128");
            }
            if (pattern instanceof SparsityPattern.Block b && blockSize % b.cols() != 0) {
                throw new RecipeException(src, "prune.block_size", "pattern " + b.spec() + " needs a block size that is "
                        + "a multiple of the tile width " + b.cols() + ", got " + blockSize + "; use a multiple of "
                        + b.cols() + " (e.g. " + b.cols() * Math.max(1, 128 / b.cols()) + ")");
            }
            if (quantization.isPresent() && quantization.get().groupSize() > 0
                    && blockSize % quantization.get().groupSize() != 0) {
                int g = quantization.get().groupSize();
                throw new RecipeException(src, "prune.block_size", "quantization group size " + g + " must divide the "
                        + "block size, got block size " + blockSize + "; use a block size that is a multiple of " + g
                        + " (e.g. " + g * Math.max(1, 128 / g) + ") or another group size");
            }
        }
    }

    /**
     * The stage with raw sparse payloads (codec {@code none}).
     *
     * @param method see the record
     * @param pattern see the record
     * @param selector see the record
     * @param dampening see the record
     * @param blockSize see the record
     * @param maskScope see the record
     * @param quantization see the record
     * @param pipeline see the record
     * @param formats see the record
     * @throws RecipeException as the canonical constructor
     */
    public PruneStage(PruneMethod method, SparsityPattern pattern, TensorSelector selector, Dampening dampening,
                      int blockSize, MaskScope maskScope, Optional<QuantizationSpec> quantization, PipelineMode pipeline,
                      List<OutputFormat> formats) {
        this(method, pattern, selector, dampening, blockSize, maskScope, quantization, pipeline, formats,
                PayloadCodec.NONE);
    }

    /**
     * The stage as before {@code format} existed: formats {@code auto}.
     *
     * @param method see the record
     * @param pattern see the record
     * @param selector see the record
     * @param dampening see the record
     * @param blockSize see the record
     * @param maskScope see the record
     * @param quantization see the record
     * @param pipeline see the record
     * @throws RecipeException as the canonical constructor
     */
    public PruneStage(PruneMethod method, SparsityPattern pattern, TensorSelector selector, Dampening dampening,
                      int blockSize, MaskScope maskScope, Optional<QuantizationSpec> quantization, PipelineMode pipeline) {
        this(method, pattern, selector, dampening, blockSize, maskScope, quantization, pipeline, List.of());
    }

    /**
     * @return the formats to write: {@link #formats()}, or for {@code auto} {@code [compressed-tensors]}
     *     when quantizing to 4 or 8 bits and {@code [hf]} otherwise
     */
    public List<OutputFormat> outputFormats() {
        if (!formats.isEmpty()) {
            return formats;
        }
        boolean packable = quantization.isPresent() && (quantization.get().bits() == 4 || quantization.get().bits() == 8);
        return List.of(packable ? OutputFormat.COMPRESSED_TENSORS : OutputFormat.HF);
    }

    /**
     * @param newFormats the output formats (empty for {@code auto})
     * @return this stage writing {@code newFormats}
     * @throws RecipeException as the canonical constructor
     */
    public PruneStage withFormats(List<OutputFormat> newFormats) {
        return new PruneStage(method, pattern, selector, dampening, blockSize, maskScope, quantization, pipeline, newFormats,
                newFormats.contains(OutputFormat.SPARSE) ? sparseCodec : PayloadCodec.NONE);
    }

    /** @return the SparseGPT solver settings: block size and mask scope */
    public SolverOptions solverOptions() {
        return new SolverOptions(blockSize, maskScope);
    }

    /**
     * @param tensorName full tensor name as in the checkpoint
     * @return true when the tensor is selected by targets and not ignored (the caller checks it is 2-D)
     */
    public boolean isTarget(String tensorName) {
        return selector.isTarget(tensorName);
    }

    @Serial
    private Object writeReplace() {
        return new SerializedRecipe(new Recipe(this, CalibrationSpec.DEFAULT, EvaluationSpec.DEFAULT).toYaml(), true);
    }
}
