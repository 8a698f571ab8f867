package io.sparkprune.jobs.convert;

import static io.sparkprune.jobs.convert.ConvertSparseJobTest.assertSameFiles;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.jobs.cli.CliRun;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.CheckpointFormat;
import io.sparkprune.pipeline.formats.DenseHfWriter;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.formats.parquet.ParquetShardWriter;
import io.sparkprune.pipeline.formats.parquet.ParquetShards;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link ConvertJob#toHf} in Spark local[2] against the single-process {@link DenseHfWriter} as
 * reference: a small random checkpoint (2:4 bf16, unstructured f32, dense bf16 and f32 tensors)
 * stored as sparse and as Parquet shards (with non-default metadata) and written back to hf with a
 * shard size small enough for several safetensors files gives every output file (shards, index,
 * side files) byte for byte the same, and the tensors equal the original's; an hf input re-sharded
 * likewise. A Parquet part with a flipped payload byte (an executor's typed error) and, through the
 * CLI's {@code decompress}, a truncated sparse container (exit code 3) leave no output or
 * temporary directory.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConvertHfJobTest {

    @TempDir
    static Path tmp;

    private static SparkSession spark;
    private static Path hf;
    private static Path sparse;
    private static Path parquet;

    /** Small enough that the tensors fill several safetensors files (the largest is 8 KiB). */
    static final long SHARD = 5000;

    @BeforeAll
    static void setUp() {
        spark = SparkSession.builder().master("local[2]").appName("convert-hf-job-test")
                .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .getOrCreate();
        Random rnd = new Random(23);
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", HostTensor.fromFloats(DType.BF16, new long[] {16, 32}, gaussian(rnd, 16 * 32)));
        float[] q = gaussian(rnd, 64 * 32);
        for (int i = 0; i < q.length; i += 4) { // 2:4
            q[i + rnd.nextInt(2)] = 0f;
            q[i + 2 + rnd.nextInt(2)] = 0f;
        }
        t.put("model.layers.0.self_attn.q_proj.weight", HostTensor.fromFloats(DType.BF16, new long[] {64, 32}, q));
        float[] o = gaussian(rnd, 64 * 32);
        for (int i = 0; i < o.length; i++) { // unstructured
            if (rnd.nextDouble() < 0.7) {
                o[i] = 0f;
            }
        }
        t.put("model.layers.0.self_attn.o_proj.weight", HostTensor.fromFloats(DType.F32, new long[] {64, 32}, o));
        t.put("model.layers.0.mlp.up_proj.weight", HostTensor.fromFloats(DType.BF16, new long[] {32, 32}, gaussian(rnd, 32 * 32)));
        t.put("model.layers.1.mlp.up_proj.weight", HostTensor.fromFloats(DType.F32, new long[] {16, 32}, gaussian(rnd, 16 * 32)));
        t.put("model.norm.weight", HostTensor.fromFloats(DType.F32, new long[] {32}, gaussian(rnd, 32)));
        hf = tmp.resolve("hf");
        HfDirectoryWriter.write(hf, "{\"model_type\": \"llama\"}\n",
                Map.of("tokenizer.json", "{\"v\": 1}".getBytes(StandardCharsets.UTF_8)), t, Map.of("format", "pt"),
                HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES);
        sparse = tmp.resolve("sparse");
        parquet = tmp.resolve("parquet");
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            SparseWriter.write(DenseTensors.of(c), SideFiles.read(hf), Map.of("format", "pt", "origin", "sparse-test"),
                    SparseWriter.Options.defaults(), sparse);
            ParquetShardWriter.Options d = ParquetShardWriter.Options.defaults();
            ParquetShardWriter.write(DenseTensors.of(c), SideFiles.read(hf), Map.of("format", "pt", "origin", "parquet-test"),
                    new ParquetShardWriter.Options(d.targets(), d.ignore(), d.pattern(), 2048, 4096), parquet);
        }
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

    /** The job's output against {@link DenseHfWriter#write} of the same input, file by file, and the tensors against hf. */
    private static void assertJobMatchesSingleProcess(Path in, CheckpointFormat format, DenseTensors src,
                                                      Map<String, String> md, String name) throws IOException {
        Path reference = tmp.resolve("ref-" + name);
        DenseHfWriter.write(src, SideFiles.read(in), md, SHARD, reference);
        ConvertJob.HfRequest req = new ConvertJob.HfRequest(in.toString(), format, tmp.resolve("job-" + name), SHARD);
        ConvertJob.HfOutcome o = ConvertJob.toHf(spark, req);
        assertThat(o.tensors()).isEqualTo(6);
        assertThat(o.files()).isGreaterThan(2);
        assertThat(o.tasks()).isEqualTo(o.files());
        assertThat(req.output().resolve(ShardedCheckpoint.INDEX_FILE)).exists();
        assertThat(req.output().resolve("config.json")).exists();
        assertSameFiles(reference, req.output());
        try (ShardedCheckpoint out = ShardedCheckpoint.open(req.output()); ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            assertThat(out.files()).hasSize(o.files());
            assertThat(out.tensorNames()).containsExactlyElementsOf(c.tensorNames());
            assertThat(out.shard(out.files().get(0)).metadata()).isEqualTo(md);
            for (String n : c.tensorNames()) {
                assertThat(bytes(out.read(n))).as(n).isEqualTo(bytes(c.read(n)));
            }
        }
        assertNoTemporaries();
    }

    @Test
    @Order(1)
    void fromSparseTheJobWritesTheSingleProcessOutputByteForByte() throws IOException {
        try (SparseCheckpoint s = SparseCheckpoint.open(sparse)) {
            assertThat(s.originalMetadata()).containsEntry("origin", "sparse-test");
            assertJobMatchesSingleProcess(sparse, CheckpointFormat.SPARSE, s, s.originalMetadata(), "sparse");
        }
    }

    @Test
    @Order(2)
    void fromParquetTheJobWritesTheSingleProcessOutputByteForByte() throws IOException {
        try (ParquetShards p = ParquetShards.open(parquet)) {
            assertThat(p.manifest().parts()).hasSizeGreaterThan(1);
            assertThat(p.originalMetadata()).containsEntry("origin", "parquet-test");
            assertJobMatchesSingleProcess(parquet, CheckpointFormat.PARQUET, p, p.originalMetadata(), "parquet");
        }
    }

    @Test
    @Order(3)
    void fromHfTheJobReshardsAsTheSingleProcessWriter() throws IOException {
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            assertThat(c.files()).hasSize(1);
            assertJobMatchesSingleProcess(hf, CheckpointFormat.HF, DenseTensors.of(c), c.shard(c.files().get(0)).metadata(),
                    "hf");
        }
    }

    @Test
    @Order(4)
    void aCorruptParquetPayloadFailsOnTheExecutorWithATypedErrorAndLeavesNothing() throws IOException {
        Path broken = copy(parquet, "parquet-corrupt");
        Path part;
        try (ParquetShards p = ParquetShards.open(broken)) {
            part = broken.resolve(p.manifest().parts().get(0).file());
        }
        try (RandomAccessFile f = new RandomAccessFile(part.toFile(), "rw")) { // same size: the driver's checks pass
            for (long at = 40; at < 200; at += 16) { // in the first column's pages, past the magic and page header
                f.seek(at);
                int b = f.read();
                f.seek(at);
                f.write(b ^ 0x5a);
            }
        }
        Path out = tmp.resolve("job-corrupt");
        assertThatThrownBy(() -> ConvertJob.toHf(spark,
                new ConvertJob.HfRequest(broken.toString(), CheckpointFormat.PARQUET, out, SHARD)))
                .isInstanceOf(InvalidInputException.class)
                .hasMessageContaining(part.getFileName().toString());
        assertThat(out).doesNotExist();
        assertNoTemporaries();
    }

    @Test
    @Order(5)
    void theRequestRefusesSourcesTheJobDoesNotRead() {
        assertThatThrownBy(() -> new ConvertJob.HfRequest(hf.toString(), CheckpointFormat.COMPRESSED_TENSORS,
                tmp.resolve("x"), SHARD)).isInstanceOf(InvalidInputException.class).hasMessageContaining("compressed-tensors");
        assertThatThrownBy(() -> new ConvertJob.HfRequest(hf.toString(), CheckpointFormat.HF, tmp.resolve("x"), 0))
                .isInstanceOf(InvalidInputException.class);
    }

    /** Last: the CLI's Spark path stops the session it gets (here the test's, via getOrCreate). */
    @Test
    @Order(6)
    void theCliDecompressesAndConvertsWithTheJobAndATruncatedInputExitsWithCode3LeavingNothing() throws IOException {
        Path reference = tmp.resolve("ref-cli");
        try (SparseCheckpoint s = SparseCheckpoint.open(sparse)) {
            DenseHfWriter.write(s, SideFiles.read(sparse), s.originalMetadata(), HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES,
                    reference);
        }
        Path out = tmp.resolve("cli-decompress");
        String[] r = run("decompress", "--master", "local[2]", sparse.toString(), out.toString());
        assertThat(r[0]).as(r[2]).isEqualTo("0");
        assertThat(r[1]).contains("Spark tasks");
        assertSameFiles(reference, out);

        Path reference2 = tmp.resolve("ref-cli-parquet");
        try (ParquetShards p = ParquetShards.open(parquet)) {
            DenseHfWriter.write(p, SideFiles.read(parquet), p.originalMetadata(), HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES,
                    reference2);
        }
        Path out2 = tmp.resolve("cli-convert");
        String[] r2 = run("convert", "--from", "parquet", "--to", "hf", "--master", "local[2]", parquet.toString(),
                out2.toString());
        assertThat(r2[0]).as(r2[2]).isEqualTo("0");
        assertThat(r2[1]).contains("Spark tasks");
        assertSameFiles(reference2, out2);

        Path broken = copy(sparse, "sparse-truncated");
        Path last;
        try (Stream<Path> s = Files.list(broken)) {
            last = s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().reduce((a, b) -> b)
                    .orElseThrow();
        }
        try (RandomAccessFile f = new RandomAccessFile(last.toFile(), "rw")) {
            f.setLength(f.length() - 100);
        }
        Path out3 = tmp.resolve("cli-truncated");
        String[] bad = run("decompress", "--master", "local[2]", broken.toString(), out3.toString());
        assertThat(bad[0]).as(bad[1] + bad[2]).isEqualTo("3");
        assertThat(bad[2]).contains(last.getFileName().toString());
        assertThat(out3).doesNotExist();
        assertNoTemporaries();
    }

    private static Path copy(Path from, String name) throws IOException {
        Path to = tmp.resolve(name);
        try (Stream<Path> s = Files.walk(from)) { // parents first
            for (Path p : s.toList()) {
                Files.copy(p, to.resolve(from.relativize(p).toString()));
            }
        }
        return to;
    }

    private static void assertNoTemporaries() throws IOException {
        try (Stream<Path> s = Files.list(tmp)) {
            assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith("."));
        }
    }

    /** {@link CliRun#run} as (exit code, standard output, standard error). */
    private static String[] run(String... args) {
        CliRun r = CliRun.run(args);
        return new String[] {Integer.toString(r.code()), r.out(), r.err()};
    }

    private static byte[] bytes(HostTensor t) {
        byte[] b = new byte[(int) t.byteLength()];
        t.data().duplicate().get(b);
        return b;
    }
}
