package io.sparkprune.pipeline.forward;

import io.sparkprune.kernels.Backend;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.onnx.ImportedModel;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * A model ready to run: its {@link ModelAdapter}, the tensors it reads its weights from and a
 * {@link Backend}. Global weights (embeddings, final norm, head) are loaded at construction; block
 * weights on first use and kept ({@link #blockWeights(int)}), so a whole-model forward holds all
 * weights in the checkpoint's dtype ({@link Weights}: 2 bytes per parameter for a bf16 checkpoint, heap
 * or mapped file pages) plus the fp32 arrays of what was widened on the host: on the CPU backend every
 * parameter once it ran (4 more bytes per parameter); on the CUDA backend only the global weights the
 * host-array embedding and LM head read, the blocks being uploaded in their dtype and widened on the
 * device. A whole-model forward ({@link #encode}) loads the next {@value #PREFETCH_BLOCKS} blocks in
 * the background while it runs a block (on a shared pool of {@value #PREFETCH_THREADS} daemon threads):
 * reading a 7B block from disk takes longer than running it on a GPU, so without this the quality check
 * waited on one load at a time. The layer-sequential driver instead loads one block at a time through
 * the adapter.
 *
 * <p>Thread-safe; the backend is borrowed (not closed) unless the model was opened with an owned
 * checkpoint, which {@link #close()} closes.
 */
public final class TransformerModel implements AutoCloseable {
    private final ModelAdapter adapter;
    private final TensorSource source;
    private final Backend backend;
    private final Weights global;
    private final AtomicReferenceArray<Weights> blocks;
    /** One lock per block: concurrent first uses of a block load it once (the others wait for it). */
    private final Object[] loadLocks;
    private final AutoCloseable owned;
    /** Guards {@link #inFlight}, {@link #running} and {@link #closed}'s change. */
    private final Object prefetchLock = new Object();
    /** Background loads queued or running. */
    private int inFlight;
    /** Background loads running ({@link #close} waits for them; queued ones find the model closed and do nothing). */
    private int running;
    /** 1 while a background load of the block is queued or running. */
    private final java.util.concurrent.atomic.AtomicIntegerArray prefetching;
    private volatile boolean closed;

    /** Blocks a whole-model forward loads ahead of the one it runs. */
    public static final int PREFETCH_BLOCKS = 2;
    /** Threads of the shared background loader. */
    public static final int PREFETCH_THREADS = 2;
    private static final java.util.concurrent.ExecutorService LOADER = java.util.concurrent.Executors.newFixedThreadPool(
            PREFETCH_THREADS, r -> {
                Thread t = new Thread(r, "sparkprune-block-prefetch");
                t.setDaemon(true);
                return t;
            });

    private TransformerModel(ModelAdapter adapter, TensorSource source, Backend backend, AutoCloseable owned) {
        this.adapter = adapter;
        this.source = source;
        this.backend = backend;
        this.global = adapter.loadGlobal(source);
        this.blocks = new AtomicReferenceArray<>(adapter.numLayers());
        this.loadLocks = new Object[adapter.numLayers()];
        java.util.Arrays.setAll(loadLocks, i -> new Object());
        this.prefetching = new java.util.concurrent.atomic.AtomicIntegerArray(adapter.numLayers());
        this.owned = owned;
    }

    /**
     * @param config the model's config
     * @param source its tensors (for BERT, names with a {@code bert.} prefix are found too)
     * @param backend kernels (borrowed)
     * @return the model, global weights loaded
     * @throws ModelWeightsException when a global tensor is missing or misshapen
     * @throws io.sparkprune.pipeline.model.ModelConfigException for an unsupported config feature
     */
    public static TransformerModel of(ModelConfig config, TensorSource source, Backend backend) {
        return new TransformerModel(ModelAdapter.of(config), prefixed(config, source), backend, null);
    }

    /**
     * Opens a Hugging Face checkpoint directory ({@code config.json} plus safetensors).
     *
     * @param dir the directory
     * @param backend kernels (borrowed)
     * @return the model; close it to close the checkpoint
     * @throws io.sparkprune.pipeline.model.ModelConfigException for a missing or invalid config
     * @throws io.sparkprune.pipeline.safetensors.SafetensorsFormatException for unreadable weights
     * @throws ModelWeightsException when a global tensor is missing or misshapen
     */
    public static TransformerModel open(Path dir, Backend backend) {
        ModelConfig config = ModelConfigs.read(dir);
        ShardedCheckpoint ckpt = ShardedCheckpoint.open(dir);
        try {
            return new TransformerModel(ModelAdapter.of(config), prefixed(config, TensorSource.of(ckpt)), backend, ckpt);
        } catch (RuntimeException e) {
            ckpt.close();
            throw e;
        }
    }

    /**
     * A BERT-family model imported from ONNX ({@link io.sparkprune.pipeline.onnx.OnnxImporter}).
     *
     * @param model the import
     * @param backend kernels (borrowed)
     * @return the model
     */
    public static TransformerModel fromOnnx(ImportedModel model, Backend backend) {
        ModelConfig config = ModelConfigs.parse(model.configJson().getBytes(StandardCharsets.UTF_8), model.source());
        return of(config, TensorSource.of(model.tensors(), model.source()), backend);
    }

    private static TensorSource prefixed(ModelConfig config, TensorSource source) {
        Objects.requireNonNull(source, "source");
        if (config instanceof io.sparkprune.pipeline.model.BertConfig && !source.contains(BertAdapter.WORD)
                && source.contains("bert." + BertAdapter.WORD)) {
            return TensorSource.withPrefix(source, "bert.");
        }
        return source;
    }

    /** @return the architecture adapter */
    public ModelAdapter adapter() {
        return adapter;
    }

    /** @return the model's config */
    public ModelConfig config() {
        return adapter.config();
    }

    /** @return the tensors the weights come from */
    public TensorSource source() {
        return source;
    }

    /** @return the kernels */
    public Backend backend() {
        return backend;
    }

    /** @return embeddings, final norm and head (checkpoint dtype, fp32 arrays widened on first use) */
    public Weights globalWeights() {
        return global;
    }

    /**
     * @param layer block index
     * @return the block's dense weights (loaded on first use, then cached; threads that ask for a
     *     block while another loads it wait for that load instead of loading it again — the quality
     *     check's tasks on one executor all start at block 0, and each load reads the block; its first
     *     forward widens it on the host, or on the GPU uploads it and widens it there)
     * @throws ModelWeightsException when a tensor is missing or misshapen
     */
    public Weights blockWeights(int layer) {
        adapter.checkLayer(layer);
        Weights w = blocks.get(layer);
        if (w != null) {
            return w;
        }
        synchronized (loadLocks[layer]) {
            w = blocks.get(layer);
            if (w == null) {
                w = adapter.loadBlock(source, layer);
                blocks.set(layer, w);
            }
            return w;
        }
    }

    /**
     * Starts background loads of blocks {@code from..to} (clamped to the model) that are neither loaded nor
     * being loaded. A background load is {@link #blockWeights} on a loader thread, so a caller that asks for
     * the block meanwhile waits for it (the block's lock) instead of loading it again. A load that fails is
     * dropped: the caller's own {@link #blockWeights} then loads the block and throws the error itself.
     *
     * @param from first block, inclusive
     * @param to last block, inclusive
     */
    void prefetch(int from, int to) {
        for (int l = Math.max(0, from); l <= Math.min(to, adapter.numLayers() - 1); l++) {
            if (closed || blocks.get(l) != null || !prefetching.compareAndSet(l, 0, 1)) {
                continue;
            }
            synchronized (prefetchLock) {
                if (closed) {
                    prefetching.set(l, 0);
                    return;
                }
                inFlight++;
            }
            int layer = l;
            try {
                LOADER.execute(() -> load(layer));
            } catch (java.util.concurrent.RejectedExecutionException e) {
                prefetching.set(layer, 0);
                done(false);
            }
        }
    }

    /** A background load: nothing once the model is closed (it may wait in the shared pool behind other models' loads). */
    private void load(int layer) {
        synchronized (prefetchLock) {
            if (closed) {
                prefetching.set(layer, 0);
                inFlight--;
                prefetchLock.notifyAll();
                return;
            }
            running++;
        }
        try {
            blockWeights(layer);
        } catch (RuntimeException e) {
            // the foreground load reports it (same source, same error)
        } finally {
            prefetching.set(layer, 0);
            done(true);
        }
    }

    private void done(boolean ran) {
        synchronized (prefetchLock) {
            inFlight--;
            if (ran) {
                running--;
            }
            prefetchLock.notifyAll();
        }
    }

    /** @return background loads queued or running (for tests) */
    int prefetchesInFlight() {
        synchronized (prefetchLock) {
            return inFlight;
        }
    }

    /**
     * @param tokens a batch
     * @return the input of block 0, {@code tokens × hidden}
     * @throws ModelInputException for ids the model cannot take
     */
    public HiddenStates embed(TokenBatch tokens) {
        return adapter.embed(backend, global, tokens);
    }

    /**
     * Embedding and every block: BERT's {@code last_hidden_state}; for the Llama family the hidden
     * states before the final norm.
     *
     * @param tokens a batch
     * @return {@code tokens × hidden}
     * @throws ModelInputException for ids the model cannot take
     */
    public HiddenStates encode(TokenBatch tokens) {
        return encode(tokens, ForwardPrecision.FP32);
    }

    /**
     * {@link #encode(TokenBatch)} with a choice of the blocks' arithmetic.
     *
     * @param tokens a batch
     * @param precision products of the linear layers and attention ({@link ForwardWorkspace#precision()}):
     *     {@link ForwardPrecision#FP32}, or {@link ForwardPrecision#TF32} (operands rounded to TF32, fp32 sums)
     * @return {@code tokens × hidden}
     * @throws ModelInputException for ids the model cannot take
     */
    public HiddenStates encode(TokenBatch tokens, ForwardPrecision precision) {
        HiddenStates h = embed(tokens);
        // one workspace for all blocks: on the GPU its buffers are allocated for the first block only
        try (ForwardWorkspace ws = ForwardWorkspace.open(backend, precision, "encode")) {
            for (int l = 0; l < adapter.numLayers(); l++) {
                Weights w = blockWeights(l);
                prefetch(l + 1, l + PREFETCH_BLOCKS);
                h = adapter.block(ws, l, w, h, LinearObserver.NONE);
            }
        }
        return h;
    }

    /**
     * Causal-LM logits (Llama family).
     *
     * @param tokens a batch
     * @return {@code tokens × vocab} logits, row-major; for a batch of B sequences of length L this
     *     is {@code [B, L, vocab]}
     * @throws UnsupportedOperationException for an encoder
     */
    public float[] logits(TokenBatch tokens) {
        return logits(tokens, ForwardPrecision.FP32);
    }

    /**
     * {@link #logits(TokenBatch)} with a choice of the blocks' arithmetic ({@link #encode(TokenBatch,
     * ForwardPrecision)}); the final norm and the LM head stay fp32.
     *
     * @param tokens a batch
     * @param precision products of the blocks' linear layers and attention
     * @return {@code tokens × vocab} logits, row-major
     * @throws UnsupportedOperationException for an encoder
     */
    public float[] logits(TokenBatch tokens, ForwardPrecision precision) {
        if (!(adapter instanceof LlamaAdapter l)) {
            throw new UnsupportedOperationException(config().modelType() + " is an encoder; it has no LM head");
        }
        return l.logits(backend, global, encode(tokens, precision));
    }

    /**
     * Sentence embeddings (BERT family).
     *
     * @param tokens a batch, one sentence per sequence
     * @param pooling how token vectors are pooled
     * @param normalize L2-normalise each embedding
     * @return {@code sequences × hidden}
     */
    public float[] sentenceEmbeddings(TokenBatch tokens, Pooling pooling, boolean normalize) {
        return sentenceEmbeddings(tokens, pooling, normalize, ForwardPrecision.FP32);
    }

    /**
     * {@link #sentenceEmbeddings(TokenBatch, Pooling, boolean)} with a choice of the blocks' arithmetic.
     *
     * @param tokens a batch, one sentence per sequence
     * @param pooling how token vectors are pooled
     * @param normalize L2-normalise each embedding
     * @param precision products of the linear layers and attention ({@link #encode(TokenBatch, ForwardPrecision)})
     * @return {@code sequences × hidden}
     */
    public float[] sentenceEmbeddings(TokenBatch tokens, Pooling pooling, boolean normalize, ForwardPrecision precision) {
        return pooling.apply(encode(tokens, precision), normalize);
    }

    /**
     * Stops background loading and closes an owned checkpoint, after waiting for the background loads that
     * are running (queued ones start nothing once the model is closed), so none reads a closed checkpoint; the backend is not closed.
     */
    @Override
    public void close() {
        synchronized (prefetchLock) {
            closed = true;
            boolean interrupted = false;
            while (running > 0) {
                try {
                    prefetchLock.wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        if (owned != null) {
            try {
                owned.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing " + source.source(), e);
            }
        }
    }

    @Override
    public String toString() {
        return "TransformerModel[" + config().modelType() + ", " + adapter.numLayers() + " layers, " + source.source() + "]";
    }
}
