package io.sparkprune.kernels;

import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.kernels.cuda.CudaBackend;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Backend selection and the CUDA backend's declared kernel status (no device needed). */
class BackendsTest {

    @Test
    void cpuChoiceGivesTheCpuBackend() {
        try (Backend b = Backends.create("CPU", 0, 1)) {
            assertThat(b).isInstanceOf(CpuBackend.class);
        }
    }

    @Test
    void autoGivesCudaOrFallsBackToCpu() {
        try (Backend b = Backends.create("auto", 0, 1)) {
            assertThat(b).isInstanceOfAny(CpuBackend.class, CudaBackend.class);
            // either way it computes: a 1x1 product
            float[] c = {0f};
            b.sgemm(false, false, 1, 1, 1, 1f, new float[] {3f}, 0, 1, new float[] {4f}, 0, 1, 0f, c, 0, 1);
            assertThat(c[0]).isEqualTo(12f);
        }
    }

    @Test
    void cudaOnAMissingDeviceFailsClearly() {
        assertThatThrownBy(() -> Backends.create("cuda", 4096, 1))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("--backend cuda")
                .hasMessageContaining("device 4096");
    }

    @Test
    void unknownChoiceIsBadInput() {
        assertThatThrownBy(() -> Backends.create("tpu", 0, 1))
                .isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("'tpu'")
                .hasMessageContaining("auto, cpu, cuda");
    }

    /**
     * A bad value of a CUDA backend setting ({@value CudaBackend#CHOL_PANEL_PROPERTY},
     * {@value CudaBackend#UNSTRUCTURED_SELECT_PROPERTY}, {@value CudaBackend#SOLVE_FORM_PROPERTY}) is the
     * user's input to fix: typed, naming the property, for {@code cuda} and for {@code auto} alike (which
     * must not quietly fall back to the CPU backend for it), with or without a device (the values are
     * checked before the driver).
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({
        CudaBackend.CHOL_PANEL_PROPERTY + ", cooperative",
        CudaBackend.UNSTRUCTURED_SELECT_PROPERTY + ", radix8",
        CudaBackend.SOLVE_FORM_PROPERTY + ", lower"})
    void badCudaSettingIsBadInputNotAFallBack(String property, String bad) {
        String before = System.getProperty(property);
        System.setProperty(property, bad);
        try {
            for (String choice : new String[] {"auto", "cuda"}) {
                assertThatThrownBy(() -> Backends.create(choice, 0, 1)).as(choice)
                        .isExactlyInstanceOf(io.sparkprune.kernels.cuda.CudaSettingException.class)
                        .hasMessageContaining(property)
                        .hasMessageContaining("'" + bad + "'");
            }
            try (Backend b = Backends.create("cpu", 0, 1)) { // the CPU backend does not read it
                assertThat(b).isInstanceOf(CpuBackend.class);
            }
        } finally {
            if (before == null) {
                System.clearProperty(property);
            } else {
                System.setProperty(property, before);
            }
        }
    }

    @Test
    void kernelStatusCoversEveryBackendOperation() {
        Set<String> ops = Arrays.stream(Backend.class.getDeclaredMethods())
                .filter(m -> Modifier.isAbstract(m.getModifiers()))
                .map(Method::getName)
                .filter(n -> !n.equals("name") && !n.equals("threads") && !n.equals("close"))
                .collect(Collectors.toSet());
        Map<String, String> status = CudaBackend.kernelStatus();
        assertThat(status.keySet()).containsExactlyInAnyOrderElementsOf(ops);
        for (String gpu : CudaBackend.gpuOps()) {
            assertThat(status.get(gpu)).startsWith("gpu");
        }
        assertThat(status.values().stream().filter(v -> v.startsWith("gpu")).count())
                .isEqualTo(CudaBackend.gpuOps().length);
    }
}
