package io.sparkprune.kernels.cuda;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** {@link CudaBackend.PanelSteps#parse}: the values of {@value CudaBackend#CHOL_PANEL_PROPERTY} (no device needed). */
class PanelStepsTest {
    @Test
    void parsesTheTwoModesAndDefaultsToTheFusedPanel() {
        assertThat(CudaBackend.PanelSteps.parse(null)).isEqualTo(CudaBackend.PanelSteps.FUSED);
        assertThat(CudaBackend.PanelSteps.parse("steps")).isEqualTo(CudaBackend.PanelSteps.STEPS);
        assertThat(CudaBackend.PanelSteps.parse(" Fused ")).isEqualTo(CudaBackend.PanelSteps.FUSED);
    }

    @Test
    void rejectsAnyOtherValueNamingThePropertyAndTheChoices() {
        assertThatThrownBy(() -> CudaBackend.PanelSteps.parse("cooperative"))
                .isExactlyInstanceOf(CudaSettingException.class)
                .hasMessageContaining(CudaBackend.CHOL_PANEL_PROPERTY)
                .hasMessageContaining("'cooperative'")
                .hasMessageContaining("'steps'")
                .hasMessageContaining("'fused'");
    }
}
