package io.sparkprune.jobs.gpu;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;

/**
 * {@link GpuBinding#forTask()} in a real {@code local[2]} SparkContext: tasks have a TaskContext but
 * no gpu resource, so the device comes from {@code spark.sparkprune.gpu.device}.
 */
class GpuBindingLocalModeTest {

    @Test
    void localTasksUseTheConfiguredDevice() {
        SparkConf conf = new SparkConf().setMaster("local[2]").setAppName("gpu-binding-local")
                .set("spark.ui.enabled", "false").set("spark.log.level", "WARN").set("spark.driver.host", "127.0.0.1")
                .set("spark.driver.bindAddress", "127.0.0.1")
                .set(GpuBinding.DEVICE_KEY, "2").set(GpuBinding.CONCURRENT_TASKS_KEY, "2");
        List<String> seen;
        String onDriver;
        try (JavaSparkContext sc = new JavaSparkContext(conf)) {
            seen = sc.parallelize(List.of(0, 1, 2, 3), 4).map(i -> {
                GpuBinding b = GpuBinding.forTask();
                try (GpuSemaphore.Permit p = b.acquire()) {
                    return b.device() + "/" + b.source() + "/" + b.semaphore().permits();
                }
            }).collect();
            GpuBinding driver = GpuBinding.forTask();
            onDriver = driver.device() + "/" + driver.source();
        }
        assertThat(seen).containsOnly("2/CONFIG/2").hasSize(4);
        assertThat(onDriver).isEqualTo("2/CONFIG");
    }
}
