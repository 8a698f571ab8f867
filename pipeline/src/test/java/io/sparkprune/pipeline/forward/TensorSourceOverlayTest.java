package io.sparkprune.pipeline.forward;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** {@link TensorSource#overlay}: replaced tensors from the function, the rest (and names, shapes) from the base. */
class TensorSourceOverlayTest {

    @Test
    void replacedTensorsComeFromTheFunctionTheRestFromTheBase() {
        Map<String, HostTensor> m = new LinkedHashMap<>();
        m.put("a", HostTensor.fromFloats(DType.F32, new long[] {2}, new float[] {1, 2}));
        m.put("b", HostTensor.fromFloats(DType.F32, new long[] {2}, new float[] {3, 4}));
        TensorSource base = TensorSource.of(m, "base");
        TensorSource view = TensorSource.overlay(base, "base with b negated", name -> name.equals("b")
                ? HostTensor.fromFloats(DType.F32, new long[] {2}, new float[] {-3, -4}) : null);
        assertThat(view.source()).isEqualTo("base with b negated");
        assertThat(view.read("a").toFloatArray()).containsExactly(1, 2);
        assertThat(view.read("b").toFloatArray()).containsExactly(-3, -4);
        assertThat(view.contains("b")).isTrue();
        assertThat(view.contains("c")).isFalse();
        assertThat(view.shape("a")).containsExactly(2);
    }
}
