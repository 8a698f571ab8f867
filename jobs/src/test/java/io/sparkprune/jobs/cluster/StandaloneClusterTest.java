package io.sparkprune.jobs.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The harness on a real 2-worker standalone cluster: an application runs tasks on both Workers, a
 * job survives the loss of an executor, and tasks see the GPU address of their Worker's discovery
 * script through {@link io.sparkprune.jobs.gpu.GpuBinding}.
 */
@Tag("cluster")
class StandaloneClusterTest {
    /** Fake GPU addresses of worker 0 and 1; neither is the config fallback (0). */
    private static final List<String> GPU_ADDRESSES = List.of("3", "5");
    private static final Duration DRIVER_TIMEOUT = Duration.ofSeconds(150);

    @RegisterExtension
    static final StandaloneClusterExtension CLUSTER = new StandaloneClusterExtension(
            StandaloneCluster.builder().workers(2).coresPerWorker(1).workerGpuAddresses(GPU_ADDRESSES));

    @TempDir
    Path tmp;

    /** One result line of {@link RangeSumApp}. */
    private record Row(int partition, long sum, String executor, Path dir, int attempt, long pid) {
        static Row parse(String line) {
            String[] f = line.split("\t");
            return new Row(Integer.parseInt(f[0]), Long.parseLong(f[1]), f[2], Path.of(f[3]), Integer.parseInt(f[4]),
                    Long.parseLong(f[5]));
        }
    }

    private static List<Row> rows(Path result) throws IOException {
        return Files.readAllLines(result).stream().filter(l -> !l.startsWith("total")).map(Row::parse).toList();
    }

    private static long total(Path result) throws IOException {
        return Files.readAllLines(result).stream().filter(l -> l.startsWith("total\t"))
                .mapToLong(l -> Long.parseLong(l.substring(6))).findFirst().orElseThrow();
    }

    @Test
    void applicationRunsTasksOnBothWorkers() throws Exception {
        StandaloneCluster cluster = CLUSTER.cluster();
        Path result = tmp.resolve("result.tsv");
        Path markers = Files.createDirectories(tmp.resolve("markers"));
        long n = 1000;

        // A small driver heap, as the prune job's cluster test needs (Spark's 450 MiB floor lowered).
        Submission.Result r = cluster.submitAsync(RangeSumApp.class.getName(),
                Map.of("spark.testing.reservedMemory", "16777216"),
                List.of(result.toString(), markers.toString(), "300", Long.toString(n), "4"), "128m")
                .waitFor(DRIVER_TIMEOUT);

        assertThat(r.exitCode()).as(r.output()).isZero();
        assertThat(total(result)).isEqualTo(n * (n + 1) / 2);
        List<Row> rows = rows(result);
        assertThat(rows).extracting(Row::partition).containsExactlyInAnyOrder(0, 1, 2, 3);
        Set<Integer> workers = new HashSet<>();
        for (Row row : rows) {
            workers.add(cluster.workerOf(row.dir()));
        }
        assertThat(workers).as("workers that ran tasks").containsExactlyInAnyOrder(0, 1);
        assertThat(rows).extracting(Row::executor).doesNotContain("driver");
    }

    @Test
    void jobFinishesAfterAnExecutorIsKilledMidTask() throws Exception {
        StandaloneCluster cluster = CLUSTER.cluster();
        Path result = tmp.resolve("result.tsv");
        Path markers = Files.createDirectories(tmp.resolve("markers"));
        long n = 2000;
        Submission driver = cluster.submitAsync(RangeSumApp.class.getName(), Map.of(),
                List.of(result.toString(), markers.toString(), "4000", Long.toString(n), "4"));

        Matcher started = awaitMarker(markers, driver, Duration.ofSeconds(120));
        int killedPartition = Integer.parseInt(started.group(1));
        long killedPid = Long.parseLong(started.group(3));
        cluster.killExecutor(killedPid);
        Submission.Result r = driver.waitFor(DRIVER_TIMEOUT);

        assertThat(r.exitCode()).as(r.output()).isZero();
        assertThat(total(result)).isEqualTo(n * (n + 1) / 2);
        List<Row> rows = rows(result);
        assertThat(rows).extracting(Row::partition).containsExactlyInAnyOrder(0, 1, 2, 3);
        Row retried = rows.stream().filter(row -> row.partition() == killedPartition).findFirst().orElseThrow();
        assertThat(retried.pid()).as("the killed executor's partition ran again elsewhere").isNotEqualTo(killedPid);
        assertThat(retried.attempt()).as("attempt number of the partition whose executor was killed").isPositive();
    }

    @Test
    void tasksSeeTheGpuAddressOfTheirWorker() throws Exception {
        StandaloneCluster cluster = CLUSTER.cluster();
        Path result = tmp.resolve("gpu.tsv");
        Map<String, String> conf = Map.of(
                "spark.executor.resource.gpu.amount", "1",
                "spark.task.resource.gpu.amount", "1",
                "spark.sparkprune.gpu.concurrentTasks", "1");

        Submission.Result r = cluster.submit(GpuProbeApp.class.getName(), conf, DRIVER_TIMEOUT,
                result.toString(), "4", "300");

        assertThat(r.exitCode()).as(r.output()).isZero();
        List<String> lines = Files.readAllLines(result);
        assertThat(lines).hasSize(4);
        Set<Integer> workers = new HashSet<>();
        for (String line : lines) {
            String[] f = line.split("\t");
            int worker = cluster.workerOf(Path.of(f[5]));
            workers.add(worker);
            assertThat(worker).as(line).isNotNegative();
            assertThat(f[1]).as("device of " + line).isEqualTo(GPU_ADDRESSES.get(worker));
            assertThat(f[2]).as(line).isEqualTo("TASK_RESOURCE");
            assertThat(f[3]).as(line).isEqualTo("1");
        }
        assertThat(workers).containsExactlyInAnyOrder(0, 1);
    }

    private static final Pattern MARKER = Pattern.compile("started-p(\\d+)-a(\\d+)-pid(\\d+)");

    private static Matcher awaitMarker(Path dir, Submission driver, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            try (Stream<Path> s = Files.list(dir)) {
                for (Path p : s.toList()) {
                    Matcher m = MARKER.matcher(p.getFileName().toString());
                    if (m.matches()) {
                        return m;
                    }
                }
            }
            if (!driver.process().isAlive()) {
                throw new AssertionError("driver exited before any task started:\n" + driver.output());
            }
            Thread.sleep(50);
        }
        throw new AssertionError("no task started within " + timeout.toSeconds() + " s:\n" + driver.output());
    }
}
