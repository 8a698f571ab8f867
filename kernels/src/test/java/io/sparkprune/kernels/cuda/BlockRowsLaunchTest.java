package io.sparkprune.kernels.cuda;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The launch shape of {@code sparsegpt_block_rows} (no GPU needed): its shared memory grows with the
 * threads per block (one row each: 64 KiB of U plus 1,280 bytes per row and one padding row), so the
 * backend takes as many threads as the device's opt-in shared memory allows, and none on devices
 * where even one warp does not fit (there the warp-per-row kernel serves every block).
 */
class BlockRowsLaunchTest {
    @Test
    void threadLimitFollowsTheDevicesSharedMemory() {
        // 4·128·128 + (4 + 4 + 1 + 1)·128·(T + 1) bytes, the SR_SMEM of sparkprune.cu
        assertThat(CudaBackend.blockRowsThreadLimit(232_448)).isEqualTo(128); // H100, H200: 230,656 bytes
        assertThat(CudaBackend.blockRowsThreadLimit(230_656)).isEqualTo(128);
        assertThat(CudaBackend.blockRowsThreadLimit(230_655)).isEqualTo(96);
        assertThat(CudaBackend.blockRowsThreadLimit(166_912)).isEqualTo(64);  // A100: 148,736 bytes for 64
        assertThat(CudaBackend.blockRowsThreadLimit(107_776)).isEqualTo(32);
        assertThat(CudaBackend.blockRowsThreadLimit(101_376)).isZero();       // sm_86: not even one warp
    }

    @Test
    void threadsCoverTheRowsOnEveryMultiprocessorInWholeWarps() {
        assertThat(CudaBackend.blockRowsThreads(11_008, 132, 128)).isEqualTo(96);  // 84 rows per SM
        assertThat(CudaBackend.blockRowsThreads(14_336, 132, 128)).isEqualTo(128); // 109 per SM
        assertThat(CudaBackend.blockRowsThreads(14_336, 108, 64)).isEqualTo(64);   // capped by the device
        assertThat(CudaBackend.blockRowsThreads(8_192, 132, 128)).isEqualTo(64);
        assertThat(CudaBackend.blockRowsThreads(100, 132, 128)).isEqualTo(32);
        assertThat(CudaBackend.blockRowsThreads(1 << 30, 132, 128)).isEqualTo(128);
    }
}
