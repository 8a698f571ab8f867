package io.sparkprune.jobs.convert;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.jobs.cli.CliRun;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.CheckpointFormat;
import io.sparkprune.pipeline.formats.Decompressor;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.formats.parquet.ParquetShardManifest;
import io.sparkprune.pipeline.formats.parquet.ParquetShardWriter;
import io.sparkprune.pipeline.formats.parquet.ParquetShards;
import io.sparkprune.pipeline.formats.parquet.WorkItem;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.recipe.TensorSelector;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link ConvertJob} in Spark local[2] on a small two-shard bf16 checkpoint (2:4 and unstructured
 * targets, dense others): several parts written by parallel tasks, audited with Spark SQL (records
 * and bytes per tensor against the checkpoint's headers and an independent sum of the payload
 * columns), and parquet → hf bit-identical to the input; a sparse input keeps its encodings; the
 * CLI wiring of {@code convert --to parquet} (Spark) and {@code --from parquet} (no Spark).
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConvertJobTest {

    @TempDir
    static Path tmp;

    private static SparkSession spark;
    private static Path hf;

    static final String Q = "model.layers.0.self_attn.q_proj.weight";
    static final String UP = "model.layers.0.mlp.up_proj.weight";

    @BeforeAll
    static void setUp() {
        spark = SparkSession.builder().master("local[2]").appName("convert-job-test")
                .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.shuffle.partitions", "2").getOrCreate();
        Random rnd = new Random(9);
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", HostTensor.fromFloats(DType.BF16, new long[] {16, 32}, gaussian(rnd, 16 * 32)));
        float[] q = gaussian(rnd, 192 * 32);
        for (int i = 0; i < q.length; i += 4) { // 2:4: zero two of every four
            q[i + rnd.nextInt(2)] = 0f;
            q[i + 2 + rnd.nextInt(2)] = 0f;
        }
        t.put(Q, HostTensor.fromFloats(DType.BF16, new long[] {192, 32}, q));
        float[] up = gaussian(rnd, 128 * 32);
        for (int i = 0; i < up.length; i++) {
            if (rnd.nextDouble() < 0.7) {
                up[i] = 0f;
            }
        }
        t.put(UP, HostTensor.fromFloats(DType.BF16, new long[] {128, 32}, up));
        t.put("model.norm.weight", HostTensor.fromFloats(DType.BF16, new long[] {32}, gaussian(rnd, 32)));
        hf = tmp.resolve("hf");
        HfDirectoryWriter.write(hf, "{\"model_type\": \"llama\"}\n",
                Map.of("tokenizer.json", "{\"v\": 1}".getBytes(StandardCharsets.UTF_8)), t, Map.of("format", "pt"), 20_000);
    }

    private static float[] gaussian(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    @AfterAll
    static void tearDown() {
        if (spark != null) {
            spark.stop();
        }
    }

    /** 64-row items for the 192- and 128-row targets; parts of about two items. */
    static ParquetShardWriter.Options small() {
        return new ParquetShardWriter.Options(TensorSelector.DEFAULT_TARGETS, TensorSelector.DEFAULT_IGNORE, null,
                4096, 9000);
    }

    @Test
    @Order(1)
    void convertsInParallelTasksAuditsWithSparkSqlAndRoundTripsBitForBit() throws IOException {
        Path pq = tmp.resolve("pq");
        ConvertJob.Outcome o = ConvertJob.toParquet(spark, new ConvertJob.Request(hf.toString(), false, pq, small()));
        assertThat(o.tasks()).isGreaterThan(2);
        assertThat(o.manifest().parts()).hasSize(o.tasks());
        assertThat(CheckpointFormat.detect(pq)).isEqualTo(CheckpointFormat.PARQUET);
        try (Stream<Path> s = Files.list(tmp)) {
            assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith(".pq"));
        }

        // audit with Spark SQL: records and dense bytes per tensor against the headers, stored bytes against the payloads
        spark.read().parquet(pq.resolve(ParquetShardWriter.PARTS_DIR).toString()).createOrReplaceTempView("shards");
        List<Row> rows = spark.sql("SELECT tensor, count(*) AS records, sum(dense_bytes) AS dense, "
                + "sum(stored_bytes) AS stored, sum(length(values) + coalesce(length(indices), 0) "
                + "+ coalesce(length(col_indices), 0) + coalesce(length(row_ptr), 0) + coalesce(length(mask), 0)) AS payload, "
                + "collect_set(encoding) AS encodings FROM shards GROUP BY tensor").collectAsList();
        Map<String, Row> byTensor = new HashMap<>();
        rows.forEach(r -> byTensor.put(r.getString(0), r));
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            assertThat(byTensor.keySet()).containsExactlyInAnyOrderElementsOf(c.tensorNames());
            for (String n : c.tensorNames()) {
                Row r = byTensor.get(n);
                assertThat(r.getLong(2)).as(n).isEqualTo(c.info(n).byteLength());
                assertThat(r.getLong(3)).as(n).isEqualTo(r.getLong(4));
                long expectedRecords = c.info(n).rows() * c.info(n).rowBytes() > 4096 ? (c.info(n).rows() + 63) / 64 : 1;
                assertThat(r.getLong(1)).as(n).isEqualTo(expectedRecords);
            }
        }
        assertThat(byTensor.get(Q).getList(5)).containsExactly("2:4");
        assertThat(byTensor.get(UP).getList(5)).containsExactly("unstructured");
        assertThat(byTensor.get(Q).getLong(3)).isLessThanOrEqualTo(byTensor.get(Q).getLong(2) * 5625 / 10000);

        Path back = tmp.resolve("back");
        Decompressor.toHf(pq, back, 1L << 30);
        assertSameCheckpoint(hf, back);
    }

    @Test
    @Order(2)
    void aSparseInputKeepsItsEncodingsAndRoundTrips() throws IOException {
        Path sparse = tmp.resolve("sparse");
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            SparseWriter.write(DenseTensors.of(c), SideFiles.read(hf), Map.of("format", "pt"),
                    SparseWriter.Options.defaults(), sparse);
        }
        Path pq = tmp.resolve("pq-from-sparse");
        ConvertJob.toParquet(spark, new ConvertJob.Request(sparse.toString(), true, pq, small()));
        try (ParquetShards p = ParquetShards.open(pq);
             io.sparkprune.pipeline.formats.sparse.SparseCheckpoint s =
                     io.sparkprune.pipeline.formats.sparse.SparseCheckpoint.open(sparse)) {
            for (String n : s.names()) {
                assertThat(p.records(n)).as(n).allSatisfy(r -> assertThat(r.encoding()).isEqualTo(s.encoding(n)));
            }
        }
        Path back = tmp.resolve("back-from-sparse");
        Decompressor.toHf(pq, back, 1L << 30);
        assertSameCheckpoint(hf, back);
    }

    @Test
    @Order(3)
    void theCliConvertsFromParquetWithoutSparkAndRefusesAMismatchedFormat() throws IOException {
        Path pq = tmp.resolve("pq");
        Path back = tmp.resolve("back-cli");
        String[] r = run("convert", "--from", "parquet", "--to", "hf", pq.toString(), back.toString());
        assertThat(r[0]).as(r[2]).isEqualTo("0");
        assertSameCheckpoint(hf, back);
        String[] bad = run("convert", "--from", "parquet", "--to", "hf", hf.toString(), tmp.resolve("x").toString());
        assertThat(bad[0]).isEqualTo("3");
        assertThat(bad[2]).contains("is a hf checkpoint, not parquet");
    }

    /** Last: the CLI's Spark path stops the session it gets (here the test's, via getOrCreate). */
    @Test
    @Order(4)
    void theCliConvertsToParquetWithASparkJob() throws IOException {
        Path pq = tmp.resolve("pq-cli");
        String[] r = run("convert", "--from", "hf", "--to", "parquet", "--master", "local[2]", hf.toString(), pq.toString());
        assertThat(r[0]).as(r[2]).isEqualTo("0");
        assertThat(r[1]).contains("Spark tasks");
        try (ParquetShards p = ParquetShards.open(pq); ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            assertThat(p.names()).containsExactlyElementsOf(c.tensorNames());
            for (ParquetShardManifest.Part part : p.manifest().parts()) {
                assertThat(part.items()).extracting(WorkItem::rowStart).containsOnly(0L); // default 64 MiB items: whole tensors
            }
        }
    }

    /** {@link CliRun#run} as (exit code, standard output, standard error). */
    private static String[] run(String... args) {
        CliRun r = CliRun.run(args);
        return new String[] {Integer.toString(r.code()), r.out(), r.err()};
    }

    static void assertSameCheckpoint(Path a, Path b) throws IOException {
        assertThat(Files.readAllBytes(b.resolve("config.json"))).isEqualTo(Files.readAllBytes(a.resolve("config.json")));
        assertThat(Files.readAllBytes(b.resolve("tokenizer.json"))).isEqualTo(Files.readAllBytes(a.resolve("tokenizer.json")));
        try (ShardedCheckpoint x = ShardedCheckpoint.open(a); ShardedCheckpoint y = ShardedCheckpoint.open(b)) {
            assertThat(y.tensorNames()).containsExactlyElementsOf(x.tensorNames());
            for (String n : x.tensorNames()) {
                assertThat(y.info(n).dtype()).as(n).isEqualTo(x.info(n).dtype());
                assertThat(y.info(n).shape()).as(n).isEqualTo(x.info(n).shape());
                assertThat(bytes(y.read(n))).as(n).isEqualTo(bytes(x.read(n)));
            }
            assertThat(y.shard(y.files().get(0)).metadata()).isEqualTo(x.shard(x.files().get(0)).metadata());
        }
    }

    private static byte[] bytes(HostTensor t) {
        byte[] b = new byte[(int) t.byteLength()];
        t.data().duplicate().get(b);
        return b;
    }
}
