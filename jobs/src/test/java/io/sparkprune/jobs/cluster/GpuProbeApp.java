package io.sparkprune.jobs.cluster;

import io.sparkprune.jobs.gpu.GpuBinding;
import io.sparkprune.jobs.gpu.GpuSemaphore;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Iterator;
import java.util.List;
import java.util.stream.IntStream;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * A Spark application for the GPU-binding cluster test: each of {@code partitions} tasks resolves
 * {@link GpuBinding#forTask()}, holds its permit for {@code sleepMillis}, and reports
 * {@code partition<TAB>device<TAB>source<TAB>permits<TAB>executorId<TAB>executor user.dir}. The
 * driver writes those lines to {@code resultFile} (temp name, then rename).
 *
 * <p>Arguments: {@code resultFile partitions sleepMillis}.
 */
public final class GpuProbeApp {
    private GpuProbeApp() {
    }

    /**
     * @param args resultFile partitions sleepMillis
     * @throws Exception on any failure (the driver then exits non-zero)
     */
    public static void main(String[] args) throws Exception {
        Path result = Path.of(args[0]);
        int partitions = Integer.parseInt(args[1]);
        long sleepMillis = Long.parseLong(args[2]);
        try (JavaSparkContext sc = new JavaSparkContext(new SparkConf())) {
            List<Integer> ids = IntStream.range(0, partitions).boxed().toList();
            List<String> rows = sc.parallelize(ids, partitions).mapPartitionsWithIndex(
                    (Integer index, Iterator<Integer> it) -> {
                        GpuBinding binding = GpuBinding.forTask();
                        try (GpuSemaphore.Permit permit = binding.acquire()) {
                            Thread.sleep(sleepMillis);
                        }
                        return List.of(index + "\t" + binding.device() + "\t" + binding.source() + "\t"
                                + binding.semaphore().permits() + "\t" + SparkEnv.get().executorId() + "\t"
                                + System.getProperty("user.dir")).iterator();
                    }, false).collect();
            Path tmp = result.resolveSibling(result.getFileName() + ".tmp");
            Files.write(tmp, rows, StandardCharsets.UTF_8);
            Files.move(tmp, result, StandardCopyOption.ATOMIC_MOVE);
        }
    }
}
