/**
 * Model forward passes on the CPU (or any {@link io.sparkprune.kernels.Backend}): the Llama family
 * ({@code llama}, {@code mistral}, {@code qwen2}) and the BERT family, built from the backend's
 * forward-pass kernels, and the block-level API the pruning pipeline drives.
 *
 * <h2>Data layout</h2>
 * A batch of sequences is packed: the tokens of all sequences back to back, no padding
 * ({@link io.sparkprune.pipeline.forward.SequenceLayout}: per-sequence start offsets; positions
 * restart at 0 in every sequence; tokens of different sequences never attend to each other, which
 * is exactly what a padded batch with an attention mask computes for the real tokens). Activations
 * between blocks are {@link io.sparkprune.pipeline.forward.HiddenStates}: one fp32 array of
 * {@code tokens × hidden}, row-major, plus that layout, serializable so a Spark job can persist them
 * per partition.
 *
 * <h2>Block API</h2>
 * A {@link io.sparkprune.pipeline.forward.ModelAdapter} per architecture gives the tensor names of a
 * block, its target linears and their calibration groups (linears that read the same input and so
 * share one Hessian), the embedding, and {@code block(...)}: one transformer block on a batch of
 * hidden states with its weights passed in as a {@link io.sparkprune.pipeline.forward.Weights}
 * (so the same block can be re-run with pruned weights), reporting the input of every calibration
 * group to a {@link io.sparkprune.pipeline.forward.LinearObserver}. Everything above it (the
 * layer-sequential driver, the Spark job) is written once against that interface.
 *
 * <h2>Numerics</h2>
 * Weights are stored F32, F16 or BF16 in the checkpoint, kept in that dtype by
 * {@link io.sparkprune.pipeline.forward.Weights} and widened exactly to fp32 where they are used (on the
 * host on first request, or on the GPU by the CUDA workspace); all arithmetic is fp32 (reductions
 * inside the kernels in fp64), as transformers computes in {@code torch.float32}.
 */
package io.sparkprune.pipeline.forward;
