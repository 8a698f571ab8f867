package io.sparkprune.jobs.gpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.InvalidInputException;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Address parsing, fallback and permits of {@link GpuBinding}, with injected task resources. */
class GpuBindingTest {

    private static GpuBinding.TaskResources task(String... addresses) {
        return new GpuBinding.TaskResources() {
            @Override
            public Optional<List<String>> gpuAddresses() {
                return Optional.of(List.of(addresses));
            }

            @Override
            public String describe() {
                return "task 42 (stage 1.0, partition 7)";
            }
        };
    }

    private static final GpuBinding.TaskResources NO_GPU = Optional::empty;

    private static GpuBinding.Settings settings(Map<String, String> values) {
        return key -> Optional.ofNullable(values.get(key));
    }

    private static final GpuBinding.Settings NONE = key -> Optional.empty();

    @Test
    void oneTaskAddressIsTheDevice() {
        GpuBinding b = GpuBinding.resolve(task("2"), NONE, new GpuSemaphore(1));
        assertThat(b.device()).isEqualTo(2);
        assertThat(b.source()).isEqualTo(GpuBinding.Source.TASK_RESOURCE);
        assertThat(GpuBinding.resolve(task("17"), NONE, new GpuSemaphore(1)).device()).isEqualTo(17);
    }

    @Test
    void taskResourceWinsOverConfig() {
        GpuBinding b = GpuBinding.resolve(task("4"), settings(Map.of(GpuBinding.DEVICE_KEY, "1")),
                new GpuSemaphore(1));
        assertThat(b.device()).isEqualTo(4);
        assertThat(b.source()).isEqualTo(GpuBinding.Source.TASK_RESOURCE);
    }

    @Test
    void withoutTaskResourceTheDeviceComesFromConfig() {
        GpuBinding dflt = GpuBinding.resolve(NO_GPU, NONE, new GpuSemaphore(1));
        assertThat(dflt.device()).isEqualTo(GpuBinding.DEFAULT_DEVICE).isZero();
        assertThat(dflt.source()).isEqualTo(GpuBinding.Source.CONFIG);
        GpuBinding set = GpuBinding.resolve(NO_GPU, settings(Map.of(GpuBinding.DEVICE_KEY, " 3 ")),
                new GpuSemaphore(1));
        assertThat(set.device()).isEqualTo(3);
        assertThat(set.source()).isEqualTo(GpuBinding.Source.CONFIG);
    }

    @Test
    void zeroAddressesNameTheTaskAmountSetting() {
        assertThatThrownBy(() -> GpuBinding.resolve(task(), NONE, new GpuSemaphore(1)))
                .isInstanceOf(GpuBindingException.class).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("task 42 (stage 1.0, partition 7) was given 0 GPU addresses")
                .hasMessageContaining("spark.task.resource.gpu.amount=1");
    }

    @Test
    void severalAddressesNameTheTaskAmountSetting() {
        assertThatThrownBy(() -> GpuBinding.resolve(task("0", "1"), NONE, new GpuSemaphore(1)))
                .isInstanceOf(GpuBindingException.class)
                .hasMessageContaining("was given 2 GPU addresses [0, 1]")
                .hasMessageContaining("spark.task.resource.gpu.amount=1");
    }

    @Test
    void nonOrdinalAddressesNameTheDiscoveryScript() {
        for (String bad : new String[] {"GPU-8f3e2a", "-1", "", "1.0", "0x1", "01", "99999999999"}) {
            assertThatThrownBy(() -> GpuBinding.resolve(task(bad), NONE, new GpuSemaphore(1)))
                    .as("address '%s'", bad)
                    .isInstanceOf(GpuBindingException.class)
                    .hasMessageContaining("'" + bad + "'")
                    .hasMessageContaining("discoveryScript")
                    .hasMessageContaining("conf/gpu-discovery.sh");
        }
    }

    @Test
    void badSettingsAreTypedErrorsNamingTheKey() {
        for (String bad : new String[] {"-1", "gpu0", "1.5", ""}) {
            assertThatThrownBy(() -> GpuBinding.resolve(NO_GPU, settings(Map.of(GpuBinding.DEVICE_KEY, bad)),
                    new GpuSemaphore(1)))
                    .as("device '%s'", bad)
                    .isInstanceOf(GpuBindingException.class)
                    .hasMessageContaining(GpuBinding.DEVICE_KEY + " must be an integer >= 0")
                    .hasMessageContaining("'" + bad + "'");
        }
        assertThatThrownBy(() -> GpuBinding.concurrentTasks(settings(Map.of(GpuBinding.CONCURRENT_TASKS_KEY, "0"))))
                .isInstanceOf(GpuBindingException.class)
                .hasMessageContaining(GpuBinding.CONCURRENT_TASKS_KEY + " must be an integer >= 1");
    }

    @Test
    void concurrentTasksDefaultsToOne() {
        assertThat(GpuBinding.concurrentTasks(NONE)).isEqualTo(1);
        assertThat(GpuBinding.concurrentTasks(settings(Map.of(GpuBinding.CONCURRENT_TASKS_KEY, "3")))).isEqualTo(3);
    }

    @Test
    void permitsAreCappedAndReleasedOnce() throws InterruptedException {
        GpuSemaphore sem = new GpuSemaphore(2);
        GpuBinding b = GpuBinding.resolve(task("0"), NONE, sem);
        GpuSemaphore.Permit p1 = b.acquire();
        GpuSemaphore.Permit p2 = b.acquire();
        assertThat(sem.available()).isZero();
        p1.close();
        p1.close();
        assertThat(p1.held()).isFalse();
        assertThat(sem.available()).isEqualTo(1);
        try (GpuSemaphore.Permit p3 = b.acquire()) {
            assertThat(p3.held()).isTrue();
            assertThat(sem.available()).isZero();
        }
        p2.close();
        assertThat(sem.available()).isEqualTo(2);
    }

    @Test
    void aBlockedTaskGetsThePermitWhenItIsReleased() throws Exception {
        GpuSemaphore sem = new GpuSemaphore(1);
        GpuSemaphore.Permit held = sem.acquire();
        boolean[] got = new boolean[1];
        Thread waiter = new Thread(() -> {
            try (GpuSemaphore.Permit p = sem.acquire()) {
                got[0] = p.held();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        waiter.start();
        while (waiter.getState() != Thread.State.WAITING) {
            Thread.onSpinWait();
        }
        assertThat(got[0]).isFalse();
        held.close();
        waiter.join();
        assertThat(got[0]).isTrue();
        assertThat(sem.available()).isEqualTo(1);
    }

    @Test
    void executorWideSemaphoreIsSharedAndResizedOnlyWhenIdle() throws InterruptedException {
        GpuSemaphore a = GpuSemaphore.executorWide(2);
        assertThat(GpuSemaphore.executorWide(2)).isSameAs(a);
        try (GpuSemaphore.Permit p = a.acquire()) {
            assertThatThrownBy(() -> GpuSemaphore.executorWide(3)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("in use");
        }
        GpuSemaphore b = GpuSemaphore.executorWide(3);
        assertThat(b).isNotSameAs(a);
        assertThat(b.permits()).isEqualTo(3);
        assertThatThrownBy(() -> new GpuSemaphore(0)).isInstanceOf(IllegalArgumentException.class);
    }
}
