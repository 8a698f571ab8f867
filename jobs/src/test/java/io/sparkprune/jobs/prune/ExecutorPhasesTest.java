package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ExecutorPhasesTest {

    @Test
    void sumsByPhaseMergeAndDifferences() {
        ExecutorPhases a = new ExecutorPhases();
        assertThat(a.isZero()).isTrue();
        a.add(new ExecutorPhases.Sample("x", 1.5));
        a.add(new ExecutorPhases.Sample("x", 0.5));
        a.add(new ExecutorPhases.Sample("y", 3.0));
        ExecutorPhases b = a.copy();
        b.add(new ExecutorPhases.Sample("z", 1.0));
        assertThat(a.value()).isEqualTo(Map.of("x", 2.0, "y", 3.0));
        a.merge(b);
        assertThat(a.value()).isEqualTo(Map.of("x", 4.0, "y", 6.0, "z", 1.0));
        assertThat(ExecutorPhases.since(Map.of("x", 1.0, "y", 6.0), a.value())).isEqualTo(Map.of("x", 3.0, "z", 1.0));
        a.reset();
        assertThat(a.isZero()).isTrue();
    }

    @Test
    void iteratorsReportOnceWhenExhausted() throws Exception {
        ExecutorPhases p = new ExecutorPhases();
        Iterator<Integer> calls = p.timeCalls(List.of(1, 2).iterator(), "read");
        Iterator<Integer> consumer = p.timeConsumer(List.of(1, 2).iterator(), "write");
        while (consumer.hasNext()) {
            consumer.next();
            Thread.sleep(20); // the consumer's work between calls is what counts
        }
        while (calls.hasNext()) {
            calls.next();
        }
        assertThat(calls.hasNext()).isFalse(); // a second exhausted call adds nothing
        assertThat(consumer.hasNext()).isFalse();
        assertThat(p.value()).containsOnlyKeys("read", "write");
        assertThat(p.value().get("write")).isGreaterThanOrEqualTo(0.04);
        assertThat(p.value().get("read")).isLessThan(p.value().get("write"));
    }

    @Test
    void phasesFormatLargestFirst() {
        assertThat(PruneJob.formatPhases(Map.of("a", 1.0, "b", 2.5))).isEqualTo("b 2.50, a 1.00");
    }

    @Test
    void markTimesOnlyItsOwnThreadOnce() throws Exception {
        ExecutorPhases p = new ExecutorPhases();
        p.timeSinceMark("store"); // no mark: nothing
        assertThat(p.value()).isEmpty();
        p.mark();
        Thread.sleep(30);
        Thread other = new Thread(() -> p.timeSinceMark("store")); // another thread has no mark
        other.start();
        other.join();
        assertThat(p.value()).isEmpty();
        p.timeSinceMark("store");
        p.timeSinceMark("store"); // the mark is used up
        assertThat(p.value()).containsOnlyKeys("store");
        assertThat(p.value().get("store")).isBetween(0.03, 10.0);
    }
}
