package io.sparkprune.jobs.prune;

import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.apache.spark.util.AccumulatorV2;

/**
 * Executor seconds of the prune job's tasks by phase (e.g. {@code hessians.forward},
 * {@code group.factor}, {@code solve.error}), summed over tasks: a Spark accumulator, so the
 * figures come back with each task's result and the driver reports them
 * ({@code report.json}: {@code run.executor_seconds}; docs/report.md) and logs them per layer.
 * Tasks that run at the same time add their own seconds, and so do the row shards that one group
 * task solves at once ({@link GroupSolve}), so a phase can exceed the stage's wall time; {@link #add}
 * may be called from several threads. Failed task attempts do not count (Spark drops their updates of a registered accumulator);
 * a successful re-run does (a lost map output recomputed, an evicted partition of the persisted
 * activations recomputed). Phases may nest: {@code group.shuffle_read} is part of
 * {@code group.read_and_reduce}.
 */
public final class ExecutorPhases extends AccumulatorV2<ExecutorPhases.Sample, Map<String, Double>> {
    private static final long serialVersionUID = 1L;

    /**
     * One measurement.
     *
     * @param phase the phase's name
     * @param seconds wall seconds spent in it
     */
    public record Sample(String phase, double seconds) implements Serializable {
    }

    private final TreeMap<String, Double> sums = new TreeMap<>();

    /**
     * Adds the seconds since {@code sinceNanos}.
     *
     * @param phase the phase's name
     * @param sinceNanos a {@link System#nanoTime()} reading taken when the phase began
     */
    public void time(String phase, long sinceNanos) {
        long nanos = System.nanoTime() - sinceNanos;
        add(new Sample(phase, nanos / 1e9));
        if (TRACE) {
            trace(phase, nanos);
        }
    }

    /** The environment variable that turns {@link #TRACE} on. */
    static final String TRACE_ENV = "SPARKPRUNE_TRACE_PHASES";

    /**
     * Whether every {@link #time} is also logged with its start and end ({@value #TRACE_ENV}{@code =1} in
     * the executor's environment, e.g. {@code --conf spark.executorEnv.SPARKPRUNE_TRACE_PHASES=1}): one
     * INFO line per phase of a task, for a timeline of how the tasks sharing a GPU overlap (the
     * Spark event log has the tasks' own launch and finish times).
     */
    static final boolean TRACE = "1".equals(System.getenv(TRACE_ENV));
    private static final org.slf4j.Logger TRACE_LOG = org.slf4j.LoggerFactory.getLogger(ExecutorPhases.class);

    /** Per thread: the task attempt (-1 outside a task) and time of the last {@link #mark}, or absent. */
    private static final ThreadLocal<long[]> MARK = new ThreadLocal<>();

    /**
     * Remembers the current time on the calling thread, for a later {@link #timeSinceMark} on the same
     * thread (a task thread: e.g. from the end of the forward pass that computes a persisted partition
     * to the start of the function that consumes it, which covers Spark's storing of the partition).
     */
    public void mark() {
        MARK.set(new long[] {attempt(), System.nanoTime()});
    }

    private static long attempt() {
        org.apache.spark.TaskContext tc = org.apache.spark.TaskContext.get();
        return tc == null ? -1 : tc.taskAttemptId();
    }

    /**
     * Adds the seconds since this thread's last {@link #mark} to {@code phase} and forgets the mark; does
     * nothing when there is none (e.g. the partition came from the cache, computed by another task) or
     * when an earlier task attempt on this (reused) thread left it.
     *
     * @param phase the phase's name
     */
    public void timeSinceMark(String phase) {
        long[] m = MARK.get();
        if (m != null) {
            MARK.remove();
            if (m[0] == attempt()) { // a mark left by an earlier task on this reused thread does not count
                time(phase, m[1]);
            }
        }
    }

    private static void trace(String phase, long nanos) {
        long end = System.currentTimeMillis();
        org.apache.spark.TaskContext tc = org.apache.spark.TaskContext.get();
        TRACE_LOG.info("phase {} stage {} partition {} attempt {} thread {} start_ms {} end_ms {}", phase,
                tc == null ? -1 : tc.stageId(), tc == null ? -1 : tc.partitionId(), tc == null ? -1 : tc.attemptNumber(),
                Thread.currentThread().getName(), end - nanos / 1_000_000, end);
    }

    @Override
    public boolean isZero() {
        synchronized (sums) {
            return sums.isEmpty();
        }
    }

    @Override
    public ExecutorPhases copy() {
        ExecutorPhases c = new ExecutorPhases();
        synchronized (sums) {
            c.sums.putAll(sums);
        }
        return c;
    }

    @Override
    public void reset() {
        synchronized (sums) {
            sums.clear();
        }
    }

    @Override
    public void add(Sample s) {
        synchronized (sums) {
            sums.merge(s.phase(), s.seconds(), Double::sum);
        }
    }

    @Override
    public void merge(AccumulatorV2<Sample, Map<String, Double>> other) {
        Map<String, Double> o = other.value();
        synchronized (sums) {
            o.forEach((k, v) -> sums.merge(k, v, Double::sum));
        }
    }

    /** @return a copy of the sums by phase, in name order */
    @Override
    public Map<String, Double> value() {
        synchronized (sums) {
            return new LinkedHashMap<>(sums);
        }
    }

    /**
     * Times the calls into an iterator (for a shuffle read: fetching and deserializing each record).
     *
     * @param it the iterator
     * @param phase the phase that its {@code hasNext}/{@code next} calls count to, added once it is exhausted
     * @param <T> element type
     * @return the timed iterator
     */
    <T> java.util.Iterator<T> timeCalls(java.util.Iterator<T> it, String phase) {
        return new java.util.Iterator<>() {
            private long nanos;
            private boolean done;

            @Override
            public boolean hasNext() {
                long t = System.nanoTime();
                boolean h = it.hasNext();
                nanos += System.nanoTime() - t;
                if (!h && !done) {
                    done = true;
                    add(new Sample(phase, nanos / 1e9));
                }
                return h;
            }

            @Override
            public T next() {
                long t = System.nanoTime();
                T x = it.next();
                nanos += System.nanoTime() - t;
                return x;
            }
        };
    }

    /**
     * Times what the consumer of an iterator does from its first {@code next} on (for a task's output
     * records: Spark serializing and writing them to the shuffle). Inside a Spark task the phase ends
     * when the task completes (a task-completion listener, which runs before the task's accumulator
     * updates are sent): a sort-based shuffle writer drains the iterator first and serializes the
     * records after, and the bypass writer concatenates its per-partition files after, so the end of
     * the iteration would miss that work. Outside a task it ends when the iterator is exhausted.
     *
     * @param it the iterator
     * @param phase the phase that the consumer's time counts to
     * @param <T> element type
     * @return the timed iterator
     */
    <T> java.util.Iterator<T> timeConsumer(java.util.Iterator<T> it, String phase) {
        org.apache.spark.TaskContext task = org.apache.spark.TaskContext.get();
        return new java.util.Iterator<>() {
            private long first = -1;
            private boolean done;

            @Override
            public boolean hasNext() {
                boolean h = it.hasNext();
                if (!h && !done && first >= 0 && task == null) {
                    done = true;
                    time(phase, first);
                }
                return h;
            }

            @Override
            public T next() {
                if (first < 0) {
                    long start = System.nanoTime();
                    first = start;
                    if (task != null) {
                        task.addTaskCompletionListener(new org.apache.spark.util.TaskCompletionListener() {
                            @Override
                            public void onTaskCompletion(org.apache.spark.TaskContext context) {
                                time(phase, start);
                            }
                        });
                    }
                }
                return it.next();
            }
        };
    }

    /**
     * @param before an earlier {@link #value()}
     * @param after a later one
     * @return the seconds added in between, by phase (phases with nothing added left out)
     */
    static Map<String, Double> since(Map<String, Double> before, Map<String, Double> after) {
        Map<String, Double> d = new LinkedHashMap<>();
        after.forEach((k, v) -> {
            double x = v - before.getOrDefault(k, 0.0);
            if (x > 0) {
                d.put(k, x);
            }
        });
        return d;
    }
}
