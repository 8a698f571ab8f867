package io.sparkprune.pipeline.driver;

import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.HessianPrecision;
import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.pipeline.forward.CalibrationGroup;
import io.sparkprune.pipeline.forward.HiddenStates;
import io.sparkprune.pipeline.forward.HessianObserver;
import io.sparkprune.pipeline.forward.LinearObserver;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.TensorSource;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.forward.Weights;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Prunes a model block by block on calibration batches, for any {@link ModelAdapter}
 * (SparseGPT's layer-wise scheme, Frantar &amp; Alistarh 2023, arXiv 2301.00774, §3 and the
 * reference's {@code llama_sequential}):
 * <ol>
 *   <li>embed every calibration batch ({@link ModelAdapter#embed}) — the inputs of block 0;</li>
 *   <li>for each block ℓ: load its dense weights; run it on every batch with an observer that adds
 *       each calibration group's input to that group's {@link HessianAccumulator} (one per group:
 *       q/k/v share one); hand the dense weights and the Hessians to the {@link BlockPruner}; pass
 *       the returned weights to the {@link BlockSink};</li>
 *   <li>the inputs of block ℓ+1 are, in {@link Mode#SEQUENTIAL} mode, the outputs of block ℓ re-run
 *       with the pruned weights (the reference's behaviour: later blocks calibrate on the pruned
 *       model's activations); in {@link Mode#INDEPENDENT} mode, the dense outputs of step 2 (every
 *       block sees the dense model's activations).</li>
 * </ol>
 * All groups of a block are observed in one dense pass of that block, as in the reference (the
 * input of {@code down_proj} is computed with the block's dense {@code gate/up_proj}).
 *
 * <p>Memory: the hidden states of all batches ({@code tokens × hidden} fp32 each), one block's
 * weights and one block's Hessians. Not thread-safe; the backend parallelises each kernel.
 */
public final class LayerSequentialDriver {

    /** Where the inputs of block ℓ+1 come from. */
    public enum Mode {
        /** From block ℓ re-run with its pruned weights (the default, as the reference). */
        SEQUENTIAL,
        /** From the dense block ℓ (the pruned weights never feed later blocks). */
        INDEPENDENT
    }

    /** Prunes one block. */
    @FunctionalInterface
    public interface BlockPruner {
        /**
         * @param layer block index
         * @param dense the block's dense weights
         * @param hessians one accumulator per calibration group, by group name
         *     ({@link CalibrationGroup#name()}), holding Σ xᵀx over every calibration token
         * @return the block's new weights (e.g. {@code dense.with(name, pruned)} per target)
         */
        Weights prune(int layer, Weights dense, Map<String, HessianAccumulator> hessians);
    }

    /** Receives every block's final weights, in block order (e.g. to write them). */
    @FunctionalInterface
    public interface BlockSink {
        /**
         * @param layer block index
         * @param weights the weights the pruner returned
         */
        void accept(int layer, Weights weights);
    }

    private final ModelAdapter adapter;
    private final TensorSource source;
    private final Backend backend;
    private final HessianPrecision precision;

    /**
     * A driver with exact (fp64) Hessians.
     *
     * @param adapter the model's architecture
     * @param source its dense tensors
     * @param backend kernels (borrowed)
     */
    public LayerSequentialDriver(ModelAdapter adapter, TensorSource source, Backend backend) {
        this(adapter, source, backend, HessianPrecision.EXACT);
    }

    /**
     * @param adapter the model's architecture
     * @param source its dense tensors
     * @param backend kernels (borrowed)
     * @param precision how the Hessian accumulators add each batch (recipe key
     *     {@code calibration.hessian_precision})
     */
    public LayerSequentialDriver(ModelAdapter adapter, TensorSource source, Backend backend, HessianPrecision precision) {
        this.adapter = Objects.requireNonNull(adapter, "adapter");
        this.source = Objects.requireNonNull(source, "source");
        this.backend = Objects.requireNonNull(backend, "backend");
        this.precision = Objects.requireNonNull(precision, "precision");
    }

    /**
     * Runs every block.
     *
     * @param batches calibration batches (each packed, see {@link TokenBatch})
     * @param mode where later blocks' inputs come from
     * @param pruner prunes each block
     * @param sink receives each block's weights
     * @return per batch, the output of the last block (in SEQUENTIAL mode: of the pruned model)
     * @throws io.sparkprune.pipeline.forward.ModelWeightsException when a tensor is missing or misshapen
     * @throws io.sparkprune.pipeline.forward.ModelInputException for token ids the model cannot take
     */
    public List<HiddenStates> run(List<TokenBatch> batches, Mode mode, BlockPruner pruner, BlockSink sink) {
        Objects.requireNonNull(mode, "mode");
        Weights global = adapter.loadGlobal(source);
        List<HiddenStates> hidden = new ArrayList<>(batches.size());
        for (TokenBatch b : batches) {
            hidden.add(adapter.embed(backend, global, b));
        }
        for (int layer = 0; layer < adapter.numLayers(); layer++) {
            Weights dense = adapter.loadBlock(source, layer);
            Map<String, HessianAccumulator> hessians = new LinkedHashMap<>();
            for (CalibrationGroup g : adapter.calibrationGroups()) {
                hessians.put(g.name(), new HessianAccumulator(adapter.layerPrefix(layer) + g.name() + " input", g.inFeatures(),
                        precision));
            }
            LinearObserver observer = new HessianObserver(backend, hessians);
            List<HiddenStates> denseOut = new ArrayList<>(hidden.size());
            try (ForwardWorkspace ws = ForwardWorkspace.open(backend, ForwardPrecision.FP32, "layer " + layer + " Hessians")) {
                for (HiddenStates h : hidden) {
                    denseOut.add(adapter.block(ws, layer, dense, h, observer));
                }
                for (HessianAccumulator acc : hessians.values()) {
                    acc.flush(); // fold device-resident sums (CUDA backend) into the host sums, free device memory
                }
            } finally {
                for (HessianAccumulator acc : hessians.values()) {
                    acc.discard(); // no-op after flush; releases device memory when the forward failed
                }
            }
            Weights pruned = Objects.requireNonNull(pruner.prune(layer, dense, Collections.unmodifiableMap(hessians)),
                    "pruner returned null for layer " + layer);
            sink.accept(layer, pruned);
            if (mode == Mode.SEQUENTIAL) {
                List<HiddenStates> next = new ArrayList<>(hidden.size());
                try (ForwardWorkspace ws = ForwardWorkspace.open(backend, ForwardPrecision.FP32, "layer " + layer + " forward")) {
                    for (HiddenStates h : hidden) {
                        next.add(adapter.block(ws, layer, pruned, h, LinearObserver.NONE));
                    }
                }
                hidden = next;
            } else {
                hidden = denseOut;
            }
        }
        return hidden;
    }
}
