package io.sparkprune.kernels.cuda;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** {@link CudaBackend.SolveForm#parse}: the values of {@value CudaBackend#SOLVE_FORM_PROPERTY} (no device needed). */
class SolveFormTest {
    @Test
    void parsesTheTwoFormsAndDefaultsToTheCholeskyForm() {
        assertThat(CudaBackend.SolveForm.parse(null)).isEqualTo(CudaBackend.SolveForm.CHOLESKY);
        assertThat(CudaBackend.SolveForm.parse("inverse")).isEqualTo(CudaBackend.SolveForm.INVERSE);
        assertThat(CudaBackend.SolveForm.parse(" Cholesky ")).isEqualTo(CudaBackend.SolveForm.CHOLESKY);
    }

    @Test
    void rejectsAnyOtherValueNamingThePropertyAndTheChoices() {
        assertThatThrownBy(() -> CudaBackend.SolveForm.parse("ldl"))
                .isExactlyInstanceOf(CudaSettingException.class)
                .hasMessageContaining(CudaBackend.SOLVE_FORM_PROPERTY)
                .hasMessageContaining("'ldl'")
                .hasMessageContaining("'cholesky'")
                .hasMessageContaining("'inverse'");
    }
}
