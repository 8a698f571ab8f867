package io.sparkprune.kernels.cuda;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Per-call-site wall times of a {@link CudaBackend}'s kernel launches and device allocations, for
 * benchmarks ({@code KernelBench --profile}): while on, every launch is followed by a stream
 * synchronization, so each entry is the launch's own time (launch latency plus the kernel), and the
 * sum over entries is what a chain of launches costs when nothing overlaps. Off by default; it
 * changes timing (no overlap), never results.
 *
 * <p>Entries are keyed by the launch's description up to its first word (after the kernel's name)
 * that starts with a digit or holds {@code '='} (e.g. {@code "potf2_inv_f64 block 512"} →
 * {@code "potf2_inv_f64 block"}, {@code "load_reversed_f64 n=4096"} → {@code "load_reversed_f64"}),
 * so the steps of one loop share an entry. Not thread-safe: the backend calls it under its own lock.
 */
final class LaunchProfile {
    /** One call site: launches and their summed wall time in nanoseconds. */
    record Entry(String site, long calls, long nanos) {
        /** @return the summed time in milliseconds */
        double millis() {
            return nanos / 1e6;
        }
    }

    private final Map<String, long[]> sites = new LinkedHashMap<>();
    private boolean on;

    /** @return whether launches are being timed */
    boolean on() {
        return on;
    }

    /** @param enabled start (clearing earlier entries) or stop timing */
    void enable(boolean enabled) {
        if (enabled) {
            sites.clear();
        }
        on = enabled;
    }

    /**
     * Adds one timed call.
     *
     * @param what the launch's description
     * @param nanos its wall time, ns
     */
    void add(String what, long nanos) {
        long[] s = sites.computeIfAbsent(site(what), k -> new long[2]);
        s[0]++;
        s[1] += nanos;
    }

    /** @return the entries so far, largest total time first */
    List<Entry> entries() {
        List<Entry> out = new ArrayList<>();
        sites.forEach((k, v) -> out.add(new Entry(k, v[0], v[1])));
        out.sort((a, b) -> Long.compare(b.nanos(), a.nanos()));
        return out;
    }

    /**
     * @param what a launch description
     * @return its first word and the following ones up to (not including) the first that starts with a
     *     digit or holds {@code '='}
     */
    static String site(String what) {
        StringBuilder sb = new StringBuilder();
        for (String word : what.trim().split("\\s+")) {
            if (sb.length() > 0 && (Character.isDigit(word.charAt(0)) || word.indexOf('=') >= 0)) {
                break;
            }
            if (sb.length() > 0) {
                sb.append(' ');
            }
            sb.append(word);
        }
        return sb.toString();
    }

    /**
     * @param entries what {@link #entries()} returned
     * @return one line per entry: total ms, calls, mean µs, site
     */
    static String format(List<Entry> entries) {
        StringBuilder sb = new StringBuilder();
        for (Entry e : entries) {
            sb.append(String.format(Locale.ROOT, "  %9.2f ms %7d calls %9.1f us/call  %s%n", e.millis(), e.calls(),
                    e.nanos() / 1e3 / Math.max(1, e.calls()), e.site()));
        }
        return sb.toString();
    }
}
