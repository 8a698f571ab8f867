package io.sparkprune.jobs.prune;

import io.sparkprune.pipeline.recipe.Recipe;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@link PruneJob#runFingerprint}: settings that change the pruned weights (here the Hessian and
 * forward precisions) change the fingerprint, so {@code --resume} refuses to mix exact and TF32 layers;
 * settings that do not (gates, output formats) leave it alone.
 */
class RunFingerprintTest {
    private static final String MODEL = "a".repeat(64);
    private static final String DATA = "b".repeat(64);

    @Test
    void hessianPrecisionEntersTheFingerprint() {
        Recipe exact = Recipe.defaults();
        Recipe tf32 = exact.withOverrides(Map.of("calibration.hessian_precision", "tf32"));
        String fe = PruneJob.runFingerprint(MODEL, exact, DATA);
        String ft = PruneJob.runFingerprint(MODEL, tf32, DATA);
        assertThat(fe).matches("[0-9a-f]{64}");
        assertThat(ft).matches("[0-9a-f]{64}").isNotEqualTo(fe);
        assertThat(PruneJob.runFingerprint(MODEL, exact.withOverrides(Map.of("calibration.hessian_precision", "exact")),
                DATA)).isEqualTo(fe);
        // gates and formats do not change the computed weights
        assertThat(PruneJob.runFingerprint(MODEL, tf32.withOverrides(Map.of("gates.max_layer_error", "0.5",
                "prune.format", "sparse")), DATA)).isEqualTo(ft);
        assertThat(PruneJob.runFingerprint(MODEL, tf32, "c".repeat(64))).isNotEqualTo(ft);
    }

    @Test
    void forwardPrecisionEntersTheFingerprint() {
        Recipe fp32 = Recipe.defaults();
        Recipe tf32 = fp32.withOverrides(Map.of("calibration.forward_precision", "tf32"));
        String f32 = PruneJob.runFingerprint(MODEL, fp32, DATA);
        String ft = PruneJob.runFingerprint(MODEL, tf32, DATA);
        assertThat(ft).matches("[0-9a-f]{64}").isNotEqualTo(f32);
        assertThat(PruneJob.runFingerprint(MODEL, fp32.withOverrides(Map.of("calibration.forward_precision", "fp32")),
                DATA)).isEqualTo(f32);
        // distinct from TF32 Hessians: the two settings are separate keys
        assertThat(PruneJob.runFingerprint(MODEL, fp32.withOverrides(Map.of("calibration.hessian_precision", "tf32")),
                DATA)).isNotEqualTo(ft);
    }

    @Test
    void rowShardHeightEntersOnlyWithAllRowsMasks() {
        Recipe perRow = Recipe.defaults();
        // per-row masks: shards change no weight, and the text is what earlier versions hashed
        assertThat(PruneJob.executionSettings(perRow, 4096, 1024)).isEqualTo("\nbatch tokens 4096");
        // TF32 forwards: attention's products are TF32 too, which runs staged before that change did not have
        assertThat(PruneJob.executionSettings(perRow.withOverrides(java.util.Map.of("calibration.forward_precision", "tf32")),
                4096, 1024)).isEqualTo("\nbatch tokens 4096\nattention tf32");
        assertThat(PruneJob.executionSettings(perRow, 4096, 16384)).isEqualTo(PruneJob.executionSettings(perRow, 4096, 1024));
        assertThat(PruneJob.executionSettings(perRow, 32768, 1024)).isNotEqualTo(PruneJob.executionSettings(perRow, 4096, 1024));
        Recipe allRows = perRow.withOverrides(Map.of("prune.pattern", "unstructured:0.5", "prune.mask_scope", "all_rows"));
        String a = PruneJob.runFingerprint(MODEL, allRows, DATA + PruneJob.executionSettings(allRows, 4096, 1024));
        String b = PruneJob.runFingerprint(MODEL, allRows, DATA + PruneJob.executionSettings(allRows, 4096, 16384));
        assertThat(a).matches("[0-9a-f]{64}").isNotEqualTo(b);
    }
}
