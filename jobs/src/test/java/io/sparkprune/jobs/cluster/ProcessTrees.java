package io.sparkprune.jobs.cluster;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Killing a process and its descendants, with bounded waits. */
final class ProcessTrees {
    private ProcessTrees() {
    }

    /**
     * Sends SIGKILL to {@code root} and to its descendants (taken before the kill, since orphans are
     * re-parented), then waits for them to exit.
     *
     * @param root the process
     * @param wait longest total wait
     * @return true if all exited within {@code wait}
     * @throws InterruptedException if interrupted while waiting
     */
    static boolean killForcibly(ProcessHandle root, Duration wait) throws InterruptedException {
        List<ProcessHandle> all = new ArrayList<>(root.descendants().toList());
        all.add(0, root);
        all.forEach(ProcessHandle::destroyForcibly);
        return awaitExit(all, wait);
    }

    /**
     * @param processes processes to wait for
     * @param wait longest total wait
     * @return true if all exited within {@code wait}
     * @throws InterruptedException if interrupted while waiting
     */
    static boolean awaitExit(List<ProcessHandle> processes, Duration wait) throws InterruptedException {
        long deadline = System.nanoTime() + wait.toNanos();
        for (ProcessHandle p : processes) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return processes.stream().noneMatch(ProcessHandle::isAlive);
            }
            try {
                p.onExit().get(left, TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                return false;
            } catch (ExecutionException e) {
                // onExit never fails; treat as not exited and let the caller check isAlive.
            }
        }
        return true;
    }

    /** @return the process's command line, or "" when the OS does not tell */
    static String commandLine(ProcessHandle p) {
        return p.info().commandLine().orElse("");
    }
}
