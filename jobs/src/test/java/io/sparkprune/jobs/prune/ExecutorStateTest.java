package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.pipeline.forward.ParameterSpec;
import io.sparkprune.pipeline.forward.Weights;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The executor's block cache (concurrent loads, prefetch, failures, eviction) and the staged-shard handoff. */
class ExecutorStateTest {

    @AfterEach
    void clear() {
        ExecutorState.clear();
    }

    private static Weights block(float v) {
        return Weights.of("test", List.of(ParameterSpec.of("w", 2)), Map.of("w", new float[] {v, v}));
    }

    @Test
    void oneLoadPerKeyEvenWhenTasksAskAtOnce() throws Exception {
        AtomicInteger loads = new AtomicInteger();
        CountDownLatch inLoad = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        Weights[] got = new Weights[2];
        Thread first = new Thread(() -> got[0] = ExecutorState.blockWeights("block|a", () -> {
            loads.incrementAndGet();
            inLoad.countDown();
            await(release);
            return block(1f);
        }));
        first.start();
        assertThat(inLoad.await(10, TimeUnit.SECONDS)).isTrue();
        // a different block loads while the first is still loading (the loads run outside the cache's lock)
        assertThat(ExecutorState.blockWeights("block|b", () -> block(2f)).get("w")).containsExactly(2f, 2f);
        Thread second = new Thread(() -> got[1] = ExecutorState.blockWeights("block|a", () -> {
            loads.incrementAndGet();
            return block(9f);
        }));
        second.start();
        // release the first load only once the second caller waits for it (not after it finished)
        for (int i = 0; i < 1000 && second.getState() != Thread.State.WAITING; i++) {
            Thread.sleep(5);
        }
        assertThat(second.getState()).isEqualTo(Thread.State.WAITING);
        release.countDown();
        first.join(10_000);
        second.join(10_000);
        assertThat(loads.get()).isEqualTo(1);
        assertThat(got[0]).isSameAs(got[1]);
        assertThat(got[0].get("w")).containsExactly(1f, 1f);
    }

    @Test
    void failedLoadIsRethrownAndForgotten() {
        assertThatThrownBy(() -> ExecutorState.blockWeights("block|bad", () -> {
            throw new IllegalStateException("disk on fire");
        })).isInstanceOf(IllegalStateException.class).hasMessage("disk on fire");
        assertThat(ExecutorState.blockWeights("block|bad", () -> block(3f)).get("w")).containsExactly(3f, 3f);
    }

    @Test
    void prefetchIsFoundByTheLaterCallAndAFailedOneIsRetried() throws Exception {
        AtomicInteger loads = new AtomicInteger();
        ExecutorState.prefetchBlock("block|next", () -> {
            loads.incrementAndGet();
            return block(4f);
        });
        Weights w = ExecutorState.blockWeights("block|next", () -> {
            loads.incrementAndGet();
            return block(8f);
        });
        assertThat(w.get("w")).containsExactly(4f, 4f);
        assertThat(loads.get()).isEqualTo(1);

        CountDownLatch failed = new CountDownLatch(1);
        ExecutorState.prefetchBlock("block|flaky", () -> {
            failed.countDown();
            throw new IllegalStateException("transient");
        });
        assertThat(failed.await(10, TimeUnit.SECONDS)).isTrue();
        // the failed prefetch is forgotten: either the caller waits on it and gets its error, or loads again
        Weights again = null;
        for (int i = 0; i < 100 && again == null; i++) {
            try {
                again = ExecutorState.blockWeights("block|flaky", () -> block(5f));
            } catch (IllegalStateException e) {
                assertThat(e).hasMessage("transient");
                Thread.sleep(10);
            }
        }
        assertThat(again).isNotNull();
        assertThat(again.get("w")).containsExactly(5f, 5f);
    }

    @Test
    void keepsAtMostMaxBlocksOldestDroppedFirst() {
        AtomicInteger loads = new AtomicInteger();
        for (int i = 0; i <= ExecutorState.MAX_BLOCKS; i++) {
            float v = i;
            ExecutorState.blockWeights("block|" + i, () -> {
                loads.incrementAndGet();
                return block(v);
            });
        }
        assertThat(loads.get()).isEqualTo(ExecutorState.MAX_BLOCKS + 1);
        ExecutorState.blockWeights("block|" + ExecutorState.MAX_BLOCKS, () -> {
            loads.incrementAndGet();
            return block(-1f);
        });
        assertThat(loads.get()).as("the newest is still cached").isEqualTo(ExecutorState.MAX_BLOCKS + 1);
        ExecutorState.blockWeights("block|0", () -> {
            loads.incrementAndGet();
            return block(-1f);
        });
        assertThat(loads.get()).as("the oldest was dropped").isEqualTo(ExecutorState.MAX_BLOCKS + 2);
    }

    @Test
    void stagedShardsAreHandedOverOnceAndOnlyForTheirDigest() {
        byte[] a = {1, 2, 3};
        ExecutorState.offerStagedShard("/staging/layer-0/t.shard-0", "aa", a);
        assertThat(ExecutorState.takeStagedShard("/staging/layer-0/t.shard-0", "bb")).isNull();
        assertThat(ExecutorState.takeStagedShard("/staging/layer-0/t.shard-1", "aa")).isNull();
        assertThat(ExecutorState.takeStagedShard("/staging/layer-0/t.shard-0", "aa")).isSameAs(a);
        assertThat(ExecutorState.takeStagedShard("/staging/layer-0/t.shard-0", "aa")).isNull();
    }

    @Test
    void stagedShardsBeyondTheCapDropTheOldest() {
        long cap = 1000;
        byte[] x = new byte[480];
        byte[] y = new byte[480];
        byte[] z = new byte[64];
        ExecutorState.offerStagedShard("x", "1", x, cap);
        ExecutorState.offerStagedShard("y", "1", y, cap);
        ExecutorState.offerStagedShard("z", "1", z, cap); // over the cap: x goes
        ExecutorState.offerStagedShard("w", "1", new byte[1001], cap); // larger than the cap: not kept
        assertThat(ExecutorState.takeStagedShard("w", "1")).isNull();
        assertThat(ExecutorState.takeStagedShard("x", "1")).isNull();
        assertThat(ExecutorState.takeStagedShard("y", "1")).isSameAs(y);
        assertThat(ExecutorState.takeStagedShard("z", "1")).isSameAs(z);
    }

    private static void await(CountDownLatch l) {
        try {
            l.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
