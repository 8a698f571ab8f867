package io.sparkprune.kernels.cuda;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class LaunchProfileTest {

    @Test
    void sitesDropTheLoopIndexAndShapeButKeepKernelNames() {
        assertThat(LaunchProfile.site("potf2_inv_f64 block 512")).isEqualTo("potf2_inv_f64 block");
        assertThat(LaunchProfile.site("load_reversed_f64 n=11008")).isEqualTo("load_reversed_f64");
        assertThat(LaunchProfile.site("dgemm_dmma trtri B·A^-1 level 256")).isEqualTo("dgemm_dmma trtri B·A^-1 level");
        assertThat(LaunchProfile.site("wg_gemm_3xtf32_nt lazy update block 128 4096x3968x128"))
                .isEqualTo("wg_gemm_3xtf32_nt lazy update block");
        assertThat(LaunchProfile.site("  sgemm_f32  ")).isEqualTo("sgemm_f32");
    }

    @Test
    void entriesSumPerSiteAndSortByTotal() {
        LaunchProfile p = new LaunchProfile();
        p.enable(true);
        p.add("potf2_inv_f64 block 0", 50_000);
        p.add("potf2_inv_f64 block 64", 70_000);
        p.add("dgemm_f64 panel 0", 200_000);
        List<LaunchProfile.Entry> e = p.entries();
        assertThat(e).extracting(LaunchProfile.Entry::site).containsExactly("dgemm_f64 panel", "potf2_inv_f64 block");
        assertThat(e.get(1).calls()).isEqualTo(2);
        assertThat(e.get(1).nanos()).isEqualTo(120_000);
        assertThat(LaunchProfile.format(e)).contains("60.0 us/call  potf2_inv_f64 block");
        p.enable(true); // a restart clears
        assertThat(p.entries()).isEmpty();
    }
}
