package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.cuda.CudaBackend.BlockKernel;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The launch shape and choice of the lane kernels of {@code sparsegpt_lanes.cuh} (no GPU needed):
 * their shared memory (the packed upper triangle of U, its diagonal, and per row 129 fp32 errors and
 * 132 code bytes, the kernels' SL_SMEM), threads per block spreading the rows evenly over the
 * multiprocessors, and the fall-back to the old kernels for N:M groups wider than the lanes.
 */
class BlockLanesLaunchTest {
    @Test
    void sharedMemoryIsThePackedTriangleAndTheRowsStaging() {
        // 4·(128·129/2 + 128) = 33,536 bytes; 4·129 + 132 = 648 bytes per row
        assertThat(CudaBackend.laneSmem(0)).isEqualTo(33_536);
        assertThat(CudaBackend.laneSmem(32)).isEqualTo(33_536 + 32 * 648);
        // the largest: 4 lanes per row, 512 threads = 128 rows, within an A100's 166,912 opt-in bytes
        assertThat(CudaBackend.laneSmem(128)).isEqualTo(116_480).isLessThan(166_912);
    }

    @Test
    void threadsSpreadTheRowsOverTheMultiprocessorsInWholeWarps() {
        // 4096 rows on 132 SMs: 32 rows per SM, 16 lanes each = 512 threads, one block per SM
        assertThat(CudaBackend.laneThreads(4_096, 132, 16, 1)).isEqualTo(512);
        // 11008 rows: 84 per SM x 8 lanes = 672 threads = 2 blocks of 336, rounded up to 352
        assertThat(CudaBackend.laneThreads(11_008, 132, 8, 1)).isEqualTo(352);
        // 14336 rows: 109 per SM x 8 = 872 = 2 blocks of 436 -> 448
        assertThat(CudaBackend.laneThreads(14_336, 132, 8, 1)).isEqualTo(448);
        // two rows per lane group: 55 pairs x 8 lanes = 440 threads, one block per SM -> 448
        assertThat(CudaBackend.laneThreads(14_336, 132, 8, 2)).isEqualTo(448);
        assertThat(CudaBackend.laneThreads(4_096, 132, 16, 2)).isEqualTo(256);
        assertThat(CudaBackend.laneThreads(100, 132, 8, 1)).isEqualTo(32);
        assertThat(CudaBackend.laneThreads(1 << 30, 132, 4, 1)).isEqualTo(512);
    }

    @Test
    void autoPicksLanesByRowsAndTheOldKernelsForWideGroups() {
        int min = CudaBackend.BLOCK_ROWS_MIN;
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, 4_096, 4, true)).isEqualTo(BlockKernel.L16);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, 4_096, 0, true)).isEqualTo(BlockKernel.L16);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, 4_096, 16, true)).isEqualTo(BlockKernel.L16);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, 4_096, 32, true)).isEqualTo(BlockKernel.WARP);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, min, 4, true)).isEqualTo(BlockKernel.L8);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, min, 8, true)).isEqualTo(BlockKernel.L8);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, min, 16, true)).isEqualTo(BlockKernel.L16);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, min, 32, true)).isEqualTo(BlockKernel.ROWS);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, min, 32, false)).isEqualTo(BlockKernel.WARP);
        int l4 = CudaBackend.LANES_L4_MIN;
        assertThat(l4).isGreaterThan(min);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, l4 - 1, 4, true)).isEqualTo(BlockKernel.L8);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, l4, 4, true)).isEqualTo(BlockKernel.L4);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, 14_336, 0, true)).isEqualTo(BlockKernel.L4);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, 14_336, 2, true)).isEqualTo(BlockKernel.L4);
        // groups wider than 4 lanes: the next lane kernel they fit, then the old kernels
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, 14_336, 8, true)).isEqualTo(BlockKernel.L8);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, 14_336, 16, true)).isEqualTo(BlockKernel.L16);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.AUTO, 14_336, 32, true)).isEqualTo(BlockKernel.ROWS);
        // forced kernels: kept where they apply, else the warp kernel
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.L4, 100, 4, true)).isEqualTo(BlockKernel.L4);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.L4, 100, 8, true)).isEqualTo(BlockKernel.WARP);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.ROWS, 100, 8, false)).isEqualTo(BlockKernel.WARP);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.ROWS, 100, 8, true)).isEqualTo(BlockKernel.ROWS);
        assertThat(CudaBackend.chooseBlockKernel(BlockKernel.WARP, min, 4, true)).isEqualTo(BlockKernel.WARP);
    }
}
