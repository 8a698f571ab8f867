package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparkprune.calibration.hessian.HessianAccumulator;
import io.sparkprune.calibration.hessian.HessianPrecision;
import io.sparkprune.calibration.hessian.InverseFactor;
import io.sparkprune.calibration.solver.SparseGptSolver;
import io.sparkprune.jobs.tools.RandomLlama;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.driver.LayerSequentialDriver;
import io.sparkprune.pipeline.forward.CalibrationGroup;
import io.sparkprune.pipeline.forward.LinearSpec;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.TensorSource;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.forward.Weights;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.recipe.PruneStage;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The distributed job against an in-process reference without Spark: the layer-sequential driver
 * of the pipeline module ({@link LayerSequentialDriver}) with a block pruner that calls
 * {@link SparseGptSolver} on whole weights with {@link InverseFactor}s of the driver's Hessians, on
 * the same calibration batches and recipe. The job splits the calibration over 4 partitions (4
 * batches of 4096 tokens), sums partial Hessians in a tree and solves row shards of 16 rows on
 * other threads, so the bits may differ; masks must agree on ≥ 99.9 % of the elements and the
 * weights closely. The reported reconstruction error is checked against the reference Hessian.
 * The {@code sequential-tf32} case runs both with {@code calibration.hessian_precision: tf32}: every
 * partial Hessian then comes from the TF32 kernel (chunks of 256 tokens of each batch, the same
 * batches in job and reference).
 */
class PruneJobReferenceTest {
    @TempDir
    static Path tmp;

    private static SparkSession spark;
    private static Path model;
    private static Path corpus;

    @BeforeAll
    static void setUp() {
        model = tmp.resolve("model");
        RandomLlama.write(JobFixtures.TINY, model);
        corpus = JobFixtures.writeCorpus(tmp.resolve("data"));
        spark = JobFixtures.localSession();
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    /** A pruned weight of the reference run, with the Hessian of its input. */
    private record Pruned(float[] weights, int rows, int cols, double[] hessian) {
    }

    @ParameterizedTest
    @ValueSource(strings = {"sequential", "independent", "sequential-tf32"})
    void jobAgreesWithTheInProcessLayerSequentialDriver(String variant) throws Exception {
        String mode = variant.replace("-tf32", "");
        HessianPrecision precision = variant.endsWith("-tf32") ? HessianPrecision.TF32 : HessianPrecision.EXACT;
        Recipe recipe = JobFixtures.recipe(corpus, mode, 128, 128)
                .withOverrides(Map.of("calibration.hessian_precision", precision.id()));
        Path out = tmp.resolve("out-" + variant);
        PruneJob.run(spark, new PruneJob.Request(model.toString(), out.toString(), recipe, false));

        Map<String, Pruned> reference = reference(recipe, mode);
        assertThat(reference).hasSize(14);
        JsonNode report = JobFixtures.report(out);
        assertThat(report.at("/calibration/tokens").asLong()).isEqualTo(128 * 128);
        assertThat(report.at("/recipe/calibration/hessian_precision").asText()).isEqualTo(precision.id());

        long elements = 0;
        long maskAgree = 0;
        double diff2 = 0;
        double norm2 = 0;
        double maxAbs = 0;
        try (ShardedCheckpoint pruned = ShardedCheckpoint.open(out); ShardedCheckpoint denseCk = ShardedCheckpoint.open(model)) {
            for (Map.Entry<String, Pruned> e : reference.entrySet()) {
                float[] ref = e.getValue().weights();
                float[] got = pruned.read(e.getKey()).toFloatArray();
                assertThat(got).hasSameSizeAs(ref);
                for (int i = 0; i < ref.length; i++) {
                    elements++;
                    if ((ref[i] == 0f) == (got[i] == 0f)) {
                        maskAgree++;
                    }
                    double d = (double) got[i] - ref[i];
                    diff2 += d * d;
                    norm2 += (double) ref[i] * ref[i];
                    maxAbs = Math.max(maxAbs, Math.abs(d));
                }
                // the reported error, recomputed with the reference Hessian and the job's weights
                Pruned p = e.getValue();
                float[] dense = denseCk.read(e.getKey()).toFloatArray();
                double expected = relativeError(dense, got, p.rows(), p.cols(), p.hessian());
                JsonNode t = tensor(report, e.getKey());
                assertThat(t.get("relative_reconstruction_error").asDouble()).as(e.getKey())
                        .isCloseTo(expected, org.assertj.core.data.Percentage.withPercentage(0.1));
                assertThat(t.get("calibration_tokens").asLong()).isEqualTo(128 * 128);
            }
        }
        double maskAgreement = (double) maskAgree / elements;
        double relDiff = Math.sqrt(diff2 / norm2);
        System.out.printf(Locale.ROOT, "%s: %d elements, mask agreement %.6f, relative weight difference %.3g, "
                + "max |difference| %.3g%n", variant, elements, maskAgreement, relDiff, maxAbs);
        assertThat(maskAgreement).isGreaterThanOrEqualTo(0.999);
        // bf16 keeps 8 significant bits: a fp32 difference in the last bits flips a few roundings by one ulp (≤ 2^-8)
        assertThat(relDiff).isLessThan(1e-3);
        assertThat(maxAbs).isLessThan(0.01);
    }

    private static JsonNode tensor(JsonNode report, String name) {
        for (JsonNode t : report.get("tensors")) {
            if (t.get("tensor").asText().equals(name)) {
                return t;
            }
        }
        throw new AssertionError("report.json has no entry for " + name);
    }

    /** ‖(W − Ŵ)X‖ / ‖WX‖ = sqrt(Σ_r (w−ŵ)H(w−ŵ)ᵀ / Σ_r wHwᵀ), in fp64. */
    private static double relativeError(float[] w, float[] p, int rows, int cols, double[] h) {
        double num = 0;
        double den = 0;
        double[] d = new double[cols];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < cols; j++) {
                d[j] = (double) w[r * cols + j] - p[r * cols + j];
            }
            for (int i = 0; i < cols; i++) {
                double hd = 0;
                double hw = 0;
                for (int j = 0; j < cols; j++) {
                    hd += h[i * cols + j] * d[j];
                    hw += h[i * cols + j] * w[r * cols + j];
                }
                num += d[i] * hd;
                den += w[r * cols + i] * hw;
            }
        }
        return Math.sqrt(num / den);
    }

    /** Prunes the model in this JVM, block by block, as the SparseGPT reference does. */
    private static Map<String, Pruned> reference(Recipe recipe, String mode) {
        ModelConfig config = ModelConfigs.read(model);
        ModelAdapter adapter = ModelAdapter.of(config);
        List<int[]> sequences;
        try (HfTokenizer tok = HfTokenizer.fromFile(model.resolve("tokenizer.json"))) {
            sequences = CalibrationTokens.sample(recipe.calibration(), config, tok, new Configuration());
        }
        List<TokenBatch> batches = CalibrationTokens.pack(sequences, PruneJob.TOKENS_PER_BATCH);
        assertThat(batches).hasSize(JobFixtures.PARTITIONS);
        PruneStage stage = recipe.prune();
        Map<String, Pruned> result = new LinkedHashMap<>();
        try (CpuBackend be = CpuBackend.create(2); ShardedCheckpoint ck = ShardedCheckpoint.open(model)) {
            SparseGptSolver solver = new SparseGptSolver(be, stage.solverOptions());
            LayerSequentialDriver.BlockPruner pruner = (layer, dense, hessians) -> {
                Weights w = dense;
                for (CalibrationGroup g : adapter.calibrationGroups()) {
                    HessianAccumulator h = hessians.get(g.name());
                    InverseFactor f = InverseFactor.compute(be, h, stage.dampening());
                    for (LinearSpec l : g.linears()) {
                        String name = adapter.layerPrefix(layer) + l.weight();
                        if (!recipe.isTarget(name)) {
                            continue;
                        }
                        float[] p = solver.prune(name, dense.get(l.weight()), l.outFeatures(), l.inFeatures(), f,
                                stage.pattern(), stage.quantization()).weights();
                        // written in the checkpoint's dtype, and read back as such by the next layer
                        float[] rounded = HostTensor.fromFloats(ck.info(name).dtype(), ck.info(name).shape(), p)
                                .toFloatArray();
                        result.put(name, new Pruned(rounded, l.outFeatures(), l.inFeatures(), h.hessian()));
                        w = w.with(l.weight(), rounded);
                    }
                }
                return w;
            };
            new LayerSequentialDriver(adapter, TensorSource.of(ck), be, recipe.calibration().hessianPrecision()).run(batches,
                    mode.equals("sequential") ? LayerSequentialDriver.Mode.SEQUENTIAL : LayerSequentialDriver.Mode.INDEPENDENT,
                    pruner, (layer, weights) -> { });
        }
        return result;
    }
}
