package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Threads that ask for the same block at the same time (the quality check's tasks on one executor all
 * start at block 0) get one load of it: each tensor of the block is read once, and every thread gets
 * the same weights.
 */
class TransformerModelConcurrencyTest {

    @Test
    void concurrentFirstUsesOfABlockLoadItOnce() throws Exception {
        TensorSource tiny = TensorSource.of(TinyBert.tensors(7), "tiny");
        AtomicInteger blockReads = new AtomicInteger();
        TensorSource slow = new DelegatingTensorSource(tiny) {
            @Override
            public HostTensor read(String name) {
                if (name.contains("layer.0.")) {
                    blockReads.incrementAndGet();
                    try {
                        Thread.sleep(20); // a load long enough for the other threads to arrive during it
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                return tiny.read(name);
            }
        };
        try (CpuBackend cpu = CpuBackend.create(1)) {
            TransformerModel model = TransformerModel.of(TinyBert.CONFIG, slow, cpu);
            int perLoad = blockReads.get(); // global weights read nothing of block 0
            assertThat(perLoad).isZero();
            int threads = 6;
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            CountDownLatch start = new CountDownLatch(1);
            List<Future<Weights>> got = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                got.add(pool.submit(() -> {
                    start.await();
                    return model.blockWeights(0);
                }));
            }
            start.countDown();
            Weights first = got.get(0).get();
            for (Future<Weights> f : got) {
                assertThat(f.get()).isSameAs(first);
            }
            pool.shutdown();
            int oneLoad = blockReads.get();
            assertThat(oneLoad).as("tensors of block 0 read").isPositive();
            // a fresh model loads block 0 once more, by itself: the same number of reads as one load
            TransformerModel.of(TinyBert.CONFIG, slow, cpu).blockWeights(0);
            assertThat(blockReads.get()).as("one load's reads").isEqualTo(2 * oneLoad);
        }
    }
}
