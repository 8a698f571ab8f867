package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.model.BertConfig;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A whole-model forward loads the next blocks in the background ({@link TransformerModel#prefetch}): every
 * tensor is still read once, the output is the block-by-block chain's, a failed background load surfaces as
 * the foreground's own error, and closing waits for a load in progress.
 */
class TransformerModelPrefetchTest {
    private static final BertConfig SIX = new BertConfig(32, 6, 4, 64, 50, 40, 2, 1e-12, "gelu", 0, "float32");
    private static CpuBackend cpu;

    @BeforeAll
    static void open() {
        cpu = CpuBackend.create(1);
    }

    @AfterAll
    static void close() {
        cpu.close();
    }

    /** Counts reads per tensor and the threads that read them; may fail or block reads of one tensor. */
    private static final class Recording extends DelegatingTensorSource {
        final Map<String, AtomicInteger> reads = new ConcurrentHashMap<>();
        final Map<String, String> threads = new ConcurrentHashMap<>();
        volatile String failing;
        volatile CountDownLatch gate;
        final CountDownLatch entered = new CountDownLatch(1);

        Recording(TensorSource inner) {
            super(inner);
        }

        @Override
        public HostTensor read(String name) {
            reads.computeIfAbsent(name, k -> new AtomicInteger()).incrementAndGet();
            threads.put(name, Thread.currentThread().getName());
            if (name.equals(failing)) {
                throw new ModelWeightsException(name + ": unreadable (test)");
            }
            CountDownLatch g = gate;
            if (g != null && name.contains("layer.0.")) {
                entered.countDown();
                try {
                    g.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            return inner.read(name);
        }
    }

    private static TokenBatch tokens() {
        return TokenBatch.of(new int[] {2, 7, 11, 3, 5, 9, 1}, new int[] {4, 4, 8, 12, 13, 1, 0});
    }

    @Test
    void aWholeModelForwardReadsEachTensorOnceAndMatchesTheBlockChain() {
        Recording src = new Recording(TensorSource.of(TinyBert.tensors(SIX, 11), "six"));
        TransformerModel model = TransformerModel.of(SIX, src, cpu);
        HiddenStates got = model.encode(tokens());
        assertThat(src.reads).allSatisfy((name, n) -> assertThat(n.get()).as(name).isEqualTo(1));
        assertThat(src.reads).hasSize(TinyBert.tensors(SIX, 11).size());

        // the reference: the adapter's blocks one after the other, each block loaded by this thread
        TensorSource plain = TensorSource.of(TinyBert.tensors(SIX, 11), "six");
        ModelAdapter a = ModelAdapter.of(SIX);
        Weights global = a.loadGlobal(plain);
        HiddenStates h = a.embed(cpu, global, tokens());
        try (io.sparkprune.kernels.ForwardWorkspace ws = io.sparkprune.kernels.ForwardWorkspace.open(cpu,
                io.sparkprune.kernels.ForwardPrecision.FP32, "reference")) {
            for (int l = 0; l < SIX.numHiddenLayers(); l++) {
                h = a.block(ws, l, a.loadBlock(plain, l), h, LinearObserver.NONE);
            }
        }
        assertThat(got.data()).containsExactly(h.data());
    }

    @Test
    void backgroundLoadsRunOnTheLoaderAndAreNotRepeated() throws Exception {
        Recording src = new Recording(TensorSource.of(TinyBert.tensors(SIX, 12), "six"));
        TransformerModel model = TransformerModel.of(SIX, src, cpu);
        model.prefetch(2, 4);
        model.prefetch(2, 4); // queued or done already: nothing more
        awaitNoPrefetch(model);
        for (int l = 2; l <= 4; l++) {
            model.blockWeights(l);
        }
        src.reads.forEach((name, n) -> assertThat(n.get()).as(name).isEqualTo(1));
        src.threads.forEach((name, thread) -> {
            if (name.contains("layer.2.") || name.contains("layer.3.") || name.contains("layer.4.")) {
                assertThat(thread).as(name).isEqualTo("sparkprune-block-prefetch");
            }
        });
        assertThat(src.reads.keySet()).noneMatch(n -> n.contains("layer.0.") || n.contains("layer.1.") || n.contains("layer.5."));
        model.prefetch(-3, 99); // clamped to the model's blocks
        awaitNoPrefetch(model);
        assertThat(src.reads.keySet()).anyMatch(n -> n.contains("layer.5."));
    }

    @Test
    void aFailedBackgroundLoadIsTheForegroundsError() {
        Recording src = new Recording(TensorSource.of(TinyBert.tensors(SIX, 13), "six"));
        ModelAdapter a = ModelAdapter.of(SIX);
        String bad = a.layerPrefix(3) + a.blockParameters().get(0).name();
        src.failing = bad;
        TransformerModel model = TransformerModel.of(SIX, src, cpu);
        assertThatThrownBy(() -> model.encode(tokens())).isInstanceOf(ModelWeightsException.class).hasMessageContaining(bad);
        assertThat(src.reads.get(bad).get()).as("read in the background, then again by the forward pass").isGreaterThanOrEqualTo(1);
    }

    @Test
    void closeWaitsForALoadInProgress() throws Exception {
        Recording src = new Recording(TensorSource.of(TinyBert.tensors(SIX, 14), "six"));
        AtomicInteger closes = new AtomicInteger();
        TransformerModel model = TransformerModel.of(SIX, src, cpu);
        src.gate = new CountDownLatch(1);
        model.prefetch(0, 0);
        assertThat(src.entered.await(30, TimeUnit.SECONDS)).as("the background load started").isTrue();
        Thread closer = new Thread(() -> {
            model.close();
            closes.incrementAndGet();
        });
        closer.start();
        closer.join(200);
        assertThat(closes.get()).as("close returned while a load was reading").isZero();
        src.gate.countDown();
        closer.join(30_000);
        assertThat(closes.get()).isEqualTo(1);
        assertThat(model.prefetchesInFlight()).isZero();
        model.prefetch(1, 5); // closed: starts nothing
        assertThat(model.prefetchesInFlight()).isZero();
        assertThat(List.copyOf(src.reads.keySet())).noneMatch(n -> n.contains("layer.1."));
    }

    private static void awaitNoPrefetch(TransformerModel model) throws InterruptedException {
        for (int i = 0; i < 3000 && model.prefetchesInFlight() > 0; i++) {
            Thread.sleep(10);
        }
        assertThat(model.prefetchesInFlight()).isZero();
    }
}
