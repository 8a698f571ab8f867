package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.pipeline.model.BertConfig;
import io.sparkprune.pipeline.model.LlamaConfig;
import io.sparkprune.pipeline.model.ModelConfig;
import java.util.List;

/**
 * What a layer-sequential pruning driver needs to know about one architecture family
 * ({@link io.sparkprune.pipeline.model.ModelFamily}): the tensor names of its blocks, its target
 * linears and their calibration groups, the embedding, and a forward pass of one block with the
 * weights passed in. One implementation per family; the driver and the Spark job are written once
 * against this interface.
 *
 * <p>Naming: block parameters are named relative to {@link #layerPrefix(int)} (the full name is
 * {@code layerPrefix(layer) + spec.name()}); global parameters (embeddings, final norm, LM head)
 * have full names. Implementations are immutable and thread-safe.
 */
public sealed interface ModelAdapter permits LlamaAdapter, BertAdapter {

    /**
     * @param config a parsed config
     * @return the adapter of its family
     * @throws io.sparkprune.pipeline.model.ModelConfigException when the config uses a feature the
     *     forward pass does not implement
     */
    static ModelAdapter of(ModelConfig config) {
        if (config instanceof LlamaConfig l) {
            return new LlamaAdapter(l);
        }
        return new BertAdapter((BertConfig) config);
    }

    /** @return the model's config */
    ModelConfig config();

    /** @return number of transformer blocks */
    default int numLayers() {
        return config().numHiddenLayers();
    }

    /** @return width of the residual stream */
    default int hiddenSize() {
        return config().hiddenSize();
    }

    /**
     * @param layer block index
     * @return the prefix of the block's parameter names, e.g. {@code "model.layers.3."}
     */
    String layerPrefix(int layer);

    /** @return every parameter of one block (names relative to the layer prefix), with shapes */
    List<ParameterSpec> blockParameters();

    /**
     * @param source the checkpoint's tensors (some global parameters are optional, e.g. a tied LM head)
     * @return the global parameters the forward pass needs, full names
     */
    List<ParameterSpec> globalParameters(TensorSource source);

    /** @return the pruning targets of one block, in execution order */
    List<LinearSpec> targets();

    /** @return the targets grouped by shared input, in execution order */
    List<CalibrationGroup> calibrationGroups();

    /**
     * @param source tensors
     * @param layer block index
     * @return the block's weights in the checkpoint's dtype, widened to fp32 on first use
     *     ({@link Weights#load}: on the host by a request for an array, on the device by a resident
     *     workspace's {@link Weights#weight})
     * @throws ModelWeightsException when a tensor is missing or misshapen
     */
    default Weights loadBlock(TensorSource source, int layer) {
        checkLayer(layer);
        return Weights.load(source, layerPrefix(layer), blockParameters());
    }

    /**
     * @param source tensors
     * @return the global weights in the checkpoint's dtype, widened to fp32 on first use ({@link Weights#load})
     * @throws ModelWeightsException when a tensor is missing or misshapen
     */
    default Weights loadGlobal(TensorSource source) {
        return Weights.load(source, "", globalParameters(source));
    }

    /**
     * The input of block 0.
     *
     * @param backend kernels
     * @param global global weights ({@link #loadGlobal})
     * @param tokens the batch
     * @return {@code tokens × hidden} hidden states
     * @throws ModelInputException for an id outside the vocabulary or a sequence the model cannot take
     */
    HiddenStates embed(Backend backend, Weights global, TokenBatch tokens);

    /**
     * Runs one transformer block. The input is not modified.
     *
     * @param backend kernels
     * @param layer block index (for the observer and messages)
     * @param weights the block's weights (dense, or pruned: any values of the right shapes)
     * @param input {@code tokens × hidden} block input
     * @param observer sees the input of every calibration group; {@link LinearObserver#NONE} for none
     * @return {@code tokens × hidden} block output, same layout
     */
    HiddenStates block(Backend backend, int layer, Weights weights, HiddenStates input, LinearObserver observer);

    /**
     * Runs one transformer block in a {@link ForwardWorkspace}: on a resident workspace (the CUDA
     * backend's) the activations stay in device memory from the input's upload to the output's download,
     * and the observer is given workspace matrices. Same result as
     * {@link #block(Backend, int, Weights, HiddenStates, LinearObserver)} on the workspace's backend
     * when the workspace's precision is {@link io.sparkprune.kernels.ForwardPrecision#FP32} (the host-array
     * form opens an fp32 workspace and calls this).
     *
     * <p>The input is read with {@link io.sparkprune.kernels.ForwardWorkspace#upload} and the output
     * returned through {@link io.sparkprune.kernels.ForwardWorkspace#downloadAndRelease}, so that a
     * {@link io.sparkprune.kernels.ForwardWorkspace.Handoff#PIPELINE} workspace keeps the output on the
     * device for the next block (the output's array must then never be modified, which
     * {@link HiddenStates} guarantees).
     *
     * @param workspace working memory and kernels; open it once for many batches so its memory is reused
     * @param layer block index
     * @param weights the block's weights
     * @param input {@code tokens × hidden} block input (not modified)
     * @param observer sees the input of every calibration group
     * @return {@code tokens × hidden} block output, same layout
     */
    HiddenStates block(ForwardWorkspace workspace, int layer, Weights weights, HiddenStates input,
                       LinearObserver observer);

    /**
     * Runs one transformer block for its observer only (a Hessian pass): the observer sees exactly
     * what {@link #block(ForwardWorkspace, int, Weights, HiddenStates, LinearObserver)} shows it, but the
     * block stops after the last calibration group's input, so the rest of the block is not computed
     * and no output is downloaded (on the CUDA workspace that saves the block output's device-to-host
     * copy, {@code tokens × hidden} fp32, and the last linear's product). Every matrix it makes is
     * released.
     *
     * @param workspace working memory and kernels
     * @param layer block index
     * @param weights the block's weights
     * @param input {@code tokens × hidden} block input (not modified)
     * @param observer sees the input of every calibration group
     */
    void observe(ForwardWorkspace workspace, int layer, Weights weights, HiddenStates input, LinearObserver observer);

    /**
     * @param layer block index
     * @throws IllegalArgumentException when outside {@code [0, numLayers())}
     */
    default void checkLayer(int layer) {
        if (layer < 0 || layer >= numLayers()) {
            throw new IllegalArgumentException("layer " + layer + " outside [0, " + numLayers() + ")");
        }
    }
}
