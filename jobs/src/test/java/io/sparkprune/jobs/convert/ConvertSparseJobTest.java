package io.sparkprune.jobs.convert;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.jobs.cli.CliRun;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.formats.sparse.PayloadCodec;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.recipe.TensorSelector;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.TreeMap;
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
 * {@link ConvertJob#toSparse} in Spark local[2] against the single-process {@link SparseWriter}
 * as reference: a small random checkpoint (2:4 bf16, 4:8 f32, block f32, unstructured bf16, dense
 * bf16 and f32 tensors) forced into several container files by a small shard size gives every
 * output file byte for byte the same, from an hf input and from a sparse input, with raw and with
 * deflated payloads (the executors deflate what the planning tasks measured); a target that
 * breaks a forced pattern (an executor's typed error) and a truncated input (CLI exit code 3)
 * leave no output or temporary directory.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ConvertSparseJobTest {

    @TempDir
    static Path tmp;

    private static SparkSession spark;
    private static Path hf;

    /** Small enough that the stored components fill several container files. */
    static final long SHARD = 3000;

    @BeforeAll
    static void setUp() {
        spark = SparkSession.builder().master("local[2]").appName("convert-sparse-job-test")
                .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .getOrCreate();
        Random rnd = new Random(17);
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", HostTensor.fromFloats(DType.BF16, new long[] {16, 32}, gaussian(rnd, 16 * 32)));
        float[] q = gaussian(rnd, 64 * 32);
        for (int i = 0; i < q.length; i += 4) { // 2:4
            q[i + rnd.nextInt(2)] = 0f;
            q[i + 2 + rnd.nextInt(2)] = 0f;
        }
        t.put("model.layers.0.self_attn.q_proj.weight", HostTensor.fromFloats(DType.BF16, new long[] {64, 32}, q));
        float[] k = gaussian(rnd, 64 * 32);
        for (int i = 0; i < k.length; i += 8) { // 4:8 with three kept in the first half: not 2:4
            k[i + 3] = 0f;
            for (int j = 4; j < 8; j++) {
                k[i + j] = 0f;
            }
            k[i + 4 + rnd.nextInt(4)] = (float) rnd.nextGaussian() + 3f;
        }
        t.put("model.layers.0.self_attn.k_proj.weight", HostTensor.fromFloats(DType.F32, new long[] {64, 32}, k));
        float[] v = new float[64 * 64]; // two non-zero 16 x 16 tiles of sixteen: block
        for (int r = 0; r < 16; r++) {
            for (int c = 0; c < 16; c++) {
                v[r * 64 + 16 + c] = (float) rnd.nextGaussian();
                v[(48 + r) * 64 + 32 + c] = (float) rnd.nextGaussian();
            }
        }
        t.put("model.layers.0.self_attn.v_proj.weight", HostTensor.fromFloats(DType.F32, new long[] {64, 64}, v));
        float[] o = gaussian(rnd, 64 * 32);
        for (int i = 0; i < o.length; i++) { // unstructured
            if (rnd.nextDouble() < 0.7) {
                o[i] = 0f;
            }
        }
        t.put("model.layers.0.self_attn.o_proj.weight", HostTensor.fromFloats(DType.BF16, new long[] {64, 32}, o));
        t.put("model.layers.0.mlp.up_proj.weight", HostTensor.fromFloats(DType.BF16, new long[] {32, 32}, gaussian(rnd, 32 * 32)));
        t.put("model.norm.weight", HostTensor.fromFloats(DType.F32, new long[] {32}, gaussian(rnd, 32)));
        hf = tmp.resolve("hf");
        HfDirectoryWriter.write(hf, "{\"model_type\": \"llama\"}\n",
                Map.of("tokenizer.json", "{\"v\": 1}".getBytes(StandardCharsets.UTF_8)), t, Map.of("format", "pt"), 6000);
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

    static ConvertJob.SparseRequest request(Path in, boolean sparse, Path out, String pattern) {
        return new ConvertJob.SparseRequest(in.toString(), sparse, out, TensorSelector.DEFAULT_TARGETS,
                TensorSelector.DEFAULT_IGNORE, pattern, SHARD);
    }

    @Test
    @Order(1)
    void fromHfTheJobWritesTheSingleProcessOutputByteForByte() throws IOException {
        Path reference = tmp.resolve("ref");
        ConvertJob.SparseRequest req = request(hf, false, tmp.resolve("job"), null);
        List<SparseWriter.TensorReport> expected;
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            expected = SparseWriter.write(DenseTensors.of(c), SideFiles.read(hf), c.shard(c.files().get(0)).metadata(),
                    req.writerOptions(), reference);
        }
        ConvertJob.SparseOutcome o = ConvertJob.toSparse(spark, req);

        assertThat(o.files()).isGreaterThan(2);
        assertThat(o.tasks()).isEqualTo(7 + o.files());
        assertThat(o.reports()).isEqualTo(expected);
        assertThat(o.reports()).extracting(r -> r.encoding().spec()).containsExactly(
                "dense", "2:4", "4:8", "block:16x16", "unstructured", "dense", "dense");
        assertSameFiles(reference, req.output());
        try (SparseCheckpoint s = SparseCheckpoint.open(req.output()); ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            for (String n : c.tensorNames()) {
                assertThat(bytes(s.read(n))).as(n).isEqualTo(bytes(c.read(n)));
            }
        }
        assertNoTemporaries();
    }

    @Test
    @Order(2)
    void fromSparseTheJobWritesTheSingleProcessOutputByteForByte() throws IOException {
        Path sparse = tmp.resolve("sparse-in");
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            SparseWriter.write(DenseTensors.of(c), SideFiles.read(hf), Map.of("format", "pt", "origin", "test"),
                    SparseWriter.Options.defaults(), sparse);
        }
        ConvertJob.SparseRequest req = request(sparse, true, tmp.resolve("job-from-sparse"), "unstructured");
        Path reference = tmp.resolve("ref-from-sparse");
        try (SparseCheckpoint s = SparseCheckpoint.open(sparse)) {
            SparseWriter.write(s, SideFiles.read(sparse), s.originalMetadata(), req.writerOptions(), reference);
        }
        ConvertJob.SparseOutcome o = ConvertJob.toSparse(spark, req);
        assertThat(o.files()).isGreaterThan(2);
        assertThat(o.reports()).filteredOn(r -> r.name().contains("layers.0.self_attn"))
                .extracting(r -> r.encoding().spec()).containsOnly("unstructured");
        assertSameFiles(reference, req.output());
        assertNoTemporaries();
    }

    @Test
    @Order(2)
    void withTheDeflateCodecTheJobWritesTheSingleProcessOutputByteForByte() throws IOException {
        ConvertJob.SparseRequest req = new ConvertJob.SparseRequest(hf.toString(), false, tmp.resolve("job-deflate"),
                TensorSelector.DEFAULT_TARGETS, TensorSelector.DEFAULT_IGNORE, null, SHARD, PayloadCodec.DEFLATE);
        Path reference = tmp.resolve("ref-deflate");
        List<SparseWriter.TensorReport> expected;
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            expected = SparseWriter.write(DenseTensors.of(c), SideFiles.read(hf), c.shard(c.files().get(0)).metadata(),
                    req.writerOptions(), reference);
        }
        ConvertJob.SparseOutcome o = ConvertJob.toSparse(spark, req);
        assertThat(o.reports()).isEqualTo(expected);
        assertSameFiles(reference, req.output());
        try (SparseCheckpoint s = SparseCheckpoint.open(req.output()); ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            // 2:4, 4:8 indices and the unstructured mask are deflated; BSR has no row payload to deflate
            assertThat(s.manifest().tensors()).filteredOn(e -> e.codec() == PayloadCodec.DEFLATE)
                    .extracting(e -> e.encoding().spec()).containsExactly("2:4", "4:8", "unstructured");
            for (String n : c.tensorNames()) {
                assertThat(bytes(s.read(n))).as(n).isEqualTo(bytes(c.read(n)));
            }
        }
        assertNoTemporaries();
    }

    @Test
    @Order(3)
    void aTargetBreakingTheForcedPatternFailsOnTheExecutorWithATypedErrorAndLeavesNothing() throws IOException {
        Path out = tmp.resolve("job-2of4");
        assertThatThrownBy(() -> ConvertJob.toSparse(spark, request(hf, false, out, "2:4")))
                .isInstanceOf(InvalidInputException.class)
                // k, v, o and up break 2:4; their planning tasks run in parallel, so any one may be reported first
                .hasMessageMatching("(?s)tensor 'model\\.layers\\.0\\.(self_attn\\.[kvo]_proj|mlp\\.up_proj)\\.weight' "
                        + "is stored as 2:4 .*");
        assertThat(out).doesNotExist();
        assertNoTemporaries();
    }

    /** Last: the CLI's Spark path stops the session it gets (here the test's, via getOrCreate). */
    @Test
    @Order(4)
    void theCliRunsTheJobAndATruncatedInputExitsWithCode3LeavingNothing() throws IOException {
        Path out = tmp.resolve("cli");
        String[] r = run("convert", "--from", "hf", "--to", "sparse", "--sparse-codec", "deflate", "--master", "local[2]",
                hf.toString(), out.toString());
        assertThat(r[0]).as(r[2]).isEqualTo("0");
        assertThat(r[1]).contains("Spark tasks").contains("2:4");
        Path reference = tmp.resolve("ref-cli");
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            SparseWriter.write(DenseTensors.of(c), SideFiles.read(hf), c.shard(c.files().get(0)).metadata(),
                    new SparseWriter.Options(TensorSelector.defaults(), Optional.empty(),
                            HfDirectoryWriter.DEFAULT_MAX_SHARD_BYTES, PayloadCodec.DEFLATE), reference);
        }
        assertSameFiles(reference, out);

        Path broken = tmp.resolve("hf-truncated");
        Files.createDirectories(broken);
        try (Stream<Path> s = Files.list(hf)) {
            for (Path p : s.toList()) {
                Files.copy(p, broken.resolve(p.getFileName()));
            }
        }
        Path last;
        try (ShardedCheckpoint c = ShardedCheckpoint.open(broken)) {
            last = broken.resolve(c.files().get(c.files().size() - 1));
        }
        try (RandomAccessFile f = new RandomAccessFile(last.toFile(), "rw")) {
            f.setLength(f.length() - 100);
        }
        Path out2 = tmp.resolve("cli-truncated");
        String[] bad = run("convert", "--from", "hf", "--to", "sparse", "--master", "local[2]", broken.toString(),
                out2.toString());
        assertThat(bad[0]).as(bad[1] + bad[2]).isEqualTo("3");
        assertThat(bad[2]).contains(last.getFileName().toString());
        assertThat(out2).doesNotExist();
        assertNoTemporaries();
    }

    private static void assertNoTemporaries() throws IOException {
        try (Stream<Path> s = Files.list(tmp)) {
            assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith("."));
        }
    }

    /** Same relative file names, and every file's bytes equal. */
    static void assertSameFiles(Path expected, Path actual) throws IOException {
        Map<String, byte[]> a = files(expected);
        Map<String, byte[]> b = files(actual);
        assertThat(b.keySet()).containsExactlyElementsOf(a.keySet());
        for (String n : a.keySet()) {
            assertThat(b.get(n)).as(n).isEqualTo(a.get(n));
        }
    }

    private static Map<String, byte[]> files(Path dir) throws IOException {
        Map<String, byte[]> m = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                m.put(dir.relativize(p).toString(), Files.readAllBytes(p));
            }
        }
        return m;
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
