package io.sparkprune.kernels.cuda;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link CudaBackend.UnstructuredSelect#parse}: the values of {@value CudaBackend#UNSTRUCTURED_SELECT_PROPERTY},
 * and {@link CudaBackend#selectChunk}, the key range per thread block of unstr_select (no device needed).
 */
class UnstructuredSelectTest {
    @Test
    void parsesTheTwoModesAndDefaultsToTheFusedLaunch() {
        assertThat(CudaBackend.UnstructuredSelect.parse(null)).isEqualTo(CudaBackend.UnstructuredSelect.FUSED);
        assertThat(CudaBackend.UnstructuredSelect.parse("radix4")).isEqualTo(CudaBackend.UnstructuredSelect.RADIX4);
        assertThat(CudaBackend.UnstructuredSelect.parse(" RADIX4 ")).isEqualTo(CudaBackend.UnstructuredSelect.RADIX4);
        assertThat(CudaBackend.UnstructuredSelect.parse("Fused")).isEqualTo(CudaBackend.UnstructuredSelect.FUSED);
    }

    @Test
    void rejectsAnyOtherValueNamingThePropertyAndTheChoices() {
        for (String bad : new String[] {"radix", "", "cooperative", "radix8"}) {
            assertThatThrownBy(() -> CudaBackend.UnstructuredSelect.parse(bad)).as("'%s'", bad)
                    .isExactlyInstanceOf(CudaSettingException.class)
                    .hasMessageContaining(CudaBackend.UNSTRUCTURED_SELECT_PROPERTY)
                    .hasMessageContaining("'" + bad + "'")
                    .hasMessageContaining("'fused'")
                    .hasMessageContaining("'radix4'");
        }
    }

    /** Every block's range is a multiple of 32 keys and the ranges cover all n keys, with less than one range to spare. */
    @Test
    void chunksCoverEveryKeyInWarpMultiples() {
        long[][] cases = {{1, 1}, {6, 1}, {6, 7}, {4096L * 128, 264}, {14336L * 128, 264}, {11008L * 100, 396},
            {37L * 100, 8}, {Integer.MAX_VALUE, 1}, {Integer.MAX_VALUE, 528}};
        for (long[] c : cases) {
            long n = c[0];
            int grid = (int) c[1];
            long chunk = CudaBackend.selectChunk(n, grid);
            assertThat(chunk % 32).as("n %d grid %d", n, grid).isZero();
            assertThat(chunk * grid).as("n %d grid %d", n, grid).isGreaterThanOrEqualTo(n);
            assertThat(chunk - 32).as("n %d grid %d", n, grid).isLessThan((n + grid - 1) / grid);
        }
        // 14336 rows x 128 on 264 blocks (an H200's occupancy): 6976 keys per block, within unstr_select_r16's 16 x 512
        assertThat(CudaBackend.selectChunk(14336L * 128, 264))
                .isEqualTo(6976L)
                .isLessThanOrEqualTo((long) CudaBackend.SELECT_KEYS_PER_THREAD * CudaBackend.SELECT_THREADS);
    }
}
