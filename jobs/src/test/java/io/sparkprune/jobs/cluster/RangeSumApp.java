package io.sparkprune.jobs.cluster;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.stream.LongStream;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * A tiny Spark application for the cluster tests: sums 1..n over {@code partitions} partitions.
 * Each task first creates {@code <markerDir>/started-p<partition>-a<attempt>-pid<executor pid>},
 * sleeps {@code sleepMillis}, then sums its slice. The driver writes {@code resultFile}: one line
 * per partition, {@code partition<TAB>sum<TAB>executorId<TAB>executor user.dir<TAB>attempt<TAB>pid},
 * then {@code total<TAB><sum>}; written to a temp name and renamed.
 *
 * <p>Arguments: {@code resultFile markerDir sleepMillis n partitions}.
 */
public final class RangeSumApp {
    private RangeSumApp() {
    }

    /**
     * @param args resultFile markerDir sleepMillis n partitions
     * @throws Exception on any failure (the driver then exits non-zero)
     */
    public static void main(String[] args) throws Exception {
        Path result = Path.of(args[0]);
        String markerDir = args[1];
        long sleepMillis = Long.parseLong(args[2]);
        long n = Long.parseLong(args[3]);
        int partitions = Integer.parseInt(args[4]);
        try (JavaSparkContext sc = new JavaSparkContext(new SparkConf())) {
            List<Long> values = LongStream.rangeClosed(1, n).boxed().toList();
            List<String> rows = sc.parallelize(values, partitions).mapPartitionsWithIndex(
                    (Integer index, Iterator<Long> it) -> {
                        TaskContext tc = TaskContext.get();
                        long pid = ProcessHandle.current().pid();
                        Files.createFile(Path.of(markerDir,
                                "started-p" + index + "-a" + tc.attemptNumber() + "-pid" + pid));
                        Thread.sleep(sleepMillis);
                        long sum = 0;
                        while (it.hasNext()) {
                            sum += it.next();
                        }
                        return List.of(index + "\t" + sum + "\t" + SparkEnv.get().executorId() + "\t"
                                + System.getProperty("user.dir") + "\t" + tc.attemptNumber() + "\t" + pid).iterator();
                    }, false).collect();
            long total = 0;
            List<String> lines = new ArrayList<>(rows);
            for (String row : rows) {
                total += Long.parseLong(row.split("\t")[1]);
            }
            lines.add("total\t" + total);
            Path tmp = result.resolveSibling(result.getFileName() + ".tmp");
            Files.write(tmp, lines, StandardCharsets.UTF_8);
            Files.move(tmp, result, StandardCopyOption.ATOMIC_MOVE);
        }
    }
}
