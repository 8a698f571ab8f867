package io.sparkprune.pipeline.formats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.parquet.ParquetShardManifest;
import io.sparkprune.pipeline.formats.parquet.ParquetShardSchema;
import io.sparkprune.pipeline.formats.parquet.ParquetShardWriter;
import io.sparkprune.pipeline.formats.parquet.ParquetShards;
import io.sparkprune.pipeline.formats.sparse.SparseCheckpoint;
import io.sparkprune.pipeline.formats.sparse.SparseEncoding;
import io.sparkprune.pipeline.formats.sparse.SparsePayloads;
import io.sparkprune.pipeline.formats.sparse.SparseWriter;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.recipe.TensorSelector;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetFileWriter;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.api.ReadSupport;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.hadoop.example.GroupReadSupport;
import org.apache.parquet.io.LocalInputFile;
import org.apache.parquet.io.LocalOutputFile;
import org.apache.parquet.io.api.Binary;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Parquet shards: hf → parquet → hf bit for bit (2:4, 4:8, block, unstructured and dense tensors,
 * split into row ranges over several parts), sparse → parquet → sparse with identical payload
 * bytes, typed errors for a missing, truncated or corrupted part, and a seeded fuzz test.
 */
class ParquetShardsTest {

    @TempDir
    Path tmp;

    static final String CONFIG = "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 64\n}\n";
    static final String L = "model.layers.0.";

    /** 128 × 64 tensors (two 64-row ranges each at the small item size) with every encoding, plus dense ones. */
    private Path hfCheckpoint(String name, DType dtype) {
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        Random rnd = new Random(5);
        float[] emb = new float[10 * 64];
        for (int i = 0; i < emb.length; i++) {
            emb[i] = (float) rnd.nextGaussian();
        }
        t.put("model.embed_tokens.weight", HostTensor.fromFloats(dtype, new long[] {10, 64}, emb));
        t.put(L + "self_attn.q_proj.weight", SparseFormatTest.pruned(dtype, 128, 64, new SparseEncoding.NofM(2, 4), 1));
        t.put(L + "self_attn.k_proj.weight", SparseFormatTest.pruned(dtype, 128, 64, new SparseEncoding.NofM(4, 8), 3));
        t.put(L + "self_attn.v_proj.weight", SparseFormatTest.pruned(dtype, 128, 64, new SparseEncoding.Bsr(16, 16), 4));
        t.put(L + "mlp.up_proj.weight", SparseFormatTest.pruned(dtype, 128, 64, new SparseEncoding.Bitmask(), 5));
        t.put(L + "input_layernorm.weight", HostTensor.fromFloats(dtype, new long[] {64}, Arrays.copyOf(emb, 64)));
        Path dir = tmp.resolve(name);
        HfDirectoryWriter.write(dir, CONFIG, Map.of("tokenizer.json", "{\"t\":2}".getBytes(StandardCharsets.UTF_8)), t,
                Map.of("format", "pt", "note", "kept"), 1L << 30);
        return dir;
    }

    /** Small items (64 rows of the 128-row tensors) and parts (about two items each). */
    static ParquetShardWriter.Options small() {
        return new ParquetShardWriter.Options(TensorSelector.DEFAULT_TARGETS, TensorSelector.DEFAULT_IGNORE, null,
                8192, 20_000);
    }

    private Path toParquet(Path hf, String name, ParquetShardWriter.Options o) {
        Path out = tmp.resolve(name);
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            ParquetShardWriter.write(DenseTensors.of(c), SideFiles.read(hf), c.shard(c.files().get(0)).metadata(), o, out);
        }
        return out;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F32"})
    void hfToParquetToHfIsBitExact(DType dtype) throws IOException {
        Path hf = hfCheckpoint("hf", dtype);
        Path pq = toParquet(hf, "pq", small());
        assertThat(CheckpointFormat.detect(pq)).isEqualTo(CheckpointFormat.PARQUET);
        assertThat(Files.readAllBytes(pq.resolve("config.json"))).isEqualTo(CONFIG.getBytes(StandardCharsets.UTF_8));
        Set<String> specs = new TreeSet<>();
        try (ParquetShards p = ParquetShards.open(pq)) {
            ParquetShardManifest m = p.manifest();
            assertThat(m.parts().size()).isGreaterThan(2);
            assertThat(m.parts()).allSatisfy(part -> assertThat(part.file()).startsWith("parts/part-"));
            for (String n : p.names()) {
                List<ParquetShards.Record> rs = p.records(n);
                if (n.startsWith(L + "self_attn") || n.startsWith(L + "mlp")) {
                    assertThat(rs).as(n).hasSize(2); // split into [0, 64) and [64, 128)
                    assertThat(rs.get(1).rowStart()).isEqualTo(64);
                }
                rs.forEach(r -> specs.add(r.encoding().spec()));
            }
            assertThat(p.records(L + "self_attn.q_proj.weight")).allSatisfy(r ->
                    assertThat(r.encoding()).isEqualTo(new SparseEncoding.NofM(2, 4)));
            assertThat(p.records(L + "mlp.up_proj.weight")).allSatisfy(r ->
                    assertThat(r.encoding()).isEqualTo(new SparseEncoding.Bitmask()));
        }
        assertThat(specs).contains("2:4", "unstructured", "dense").anyMatch(s -> s.startsWith("block:"));
        assertThat(specs).containsAnyOf("4:8", "2:4");
        Path back = tmp.resolve("back");
        assertThat(Decompressor.toHf(pq, back, 1L << 30)).isEqualTo(CheckpointFormat.PARQUET);
        SparseFormatTest.assertSameCheckpoint(hf, back);
    }

    @Test
    void sparseToParquetToSparseKeepsEveryPayloadByte() throws IOException {
        Path hf = hfCheckpoint("hf", DType.BF16);
        Path sparse = tmp.resolve("sparse");
        try (ShardedCheckpoint c = ShardedCheckpoint.open(hf)) {
            SparseWriter.write(DenseTensors.of(c), SideFiles.read(hf), Map.of("format", "pt"),
                    SparseWriter.Options.defaults(), sparse);
        }
        Path pq = tmp.resolve("pq");
        try (SparseCheckpoint s = SparseCheckpoint.open(sparse)) {
            ParquetShardWriter.write(s, SideFiles.read(sparse), s.originalMetadata(), ParquetShardWriter.Options.defaults(), pq);
        }
        // every record is a whole tensor; its payload columns are the sparse components' bytes
        try (SparseCheckpoint s = SparseCheckpoint.open(sparse); ShardedCheckpoint raw = ShardedCheckpoint.open(sparse);
             ParquetShards p = ParquetShards.open(pq)) {
            assertThat(p.names()).containsExactlyElementsOf(s.names());
            for (String n : s.names()) {
                List<ParquetShards.Record> rs = p.records(n);
                assertThat(rs).as(n).hasSize(1);
                assertThat(rs.get(0).encoding()).as(n).isEqualTo(s.encoding(n));
                List<String> comps = SparsePayloads.componentNames(s.encoding(n));
                for (int k = 0; k < comps.size(); k++) {
                    String stored = s.encoding(n) instanceof SparseEncoding.Dense ? n : n + "." + comps.get(k);
                    assertThat(rs.get(0).payload()[k]).as(stored).isEqualTo(SparseFormatTest.bytes(raw.read(stored)));
                }
            }
        }
        Path sparse2 = tmp.resolve("sparse2");
        try (ParquetShards p = ParquetShards.open(pq)) {
            SparseWriter.write(p, SideFiles.read(pq), p.originalMetadata(), SparseWriter.Options.defaults(), sparse2);
        }
        try (ShardedCheckpoint a = ShardedCheckpoint.open(sparse); ShardedCheckpoint b = ShardedCheckpoint.open(sparse2)) {
            assertThat(b.tensorNames()).containsExactlyElementsOf(a.tensorNames());
            for (String n : a.tensorNames()) {
                assertThat(SparseFormatTest.bytes(b.read(n))).as(n).isEqualTo(SparseFormatTest.bytes(a.read(n)));
            }
            assertThat(b.shard(b.files().get(0)).metadata()).isEqualTo(a.shard(a.files().get(0)).metadata());
        }
    }

    @Test
    void aMissingPartIsATypedErrorNamingTheFileAndItsTensors() throws IOException {
        Path pq = toParquet(hfCheckpoint("hf", DType.BF16), "pq", small());
        Files.delete(pq.resolve(ParquetShardWriter.partFile(1)));
        assertThatThrownBy(() -> ParquetShards.open(pq)).isInstanceOf(FormatException.class)
                .hasMessageContaining("part-00001.parquet").hasMessageContaining("missing").hasMessageContaining("rows [");
        Path out = tmp.resolve("out");
        assertThatThrownBy(() -> Decompressor.toHf(pq, out, 1L << 30)).isInstanceOf(FormatException.class);
        assertThat(out).doesNotExist();
        assertThat(tmp.toFile().list()).noneMatch(f -> f.startsWith(".out"));
    }

    @Test
    void aTruncatedPartIsATypedErrorAtOpenAndWhenTheManifestIsPatchedToo() throws IOException {
        Path pq = toParquet(hfCheckpoint("hf", DType.BF16), "pq", small());
        Path part = pq.resolve(ParquetShardWriter.partFile(0));
        byte[] b = Files.readAllBytes(part);
        Files.write(part, Arrays.copyOf(b, b.length / 2));
        assertThatThrownBy(() -> ParquetShards.open(pq)).isInstanceOf(FormatException.class)
                .hasMessageContaining("part-00000.parquet").hasMessageContaining("truncated");
        // with the manifest claiming the new size, the Parquet footer is gone: still typed, naming file and tensor
        patchManifestBytes(pq, 0, b.length / 2);
        try (ParquetShards p = ParquetShards.open(pq)) {
            String first = p.manifest().parts().get(0).items().get(0).tensor();
            assertThatThrownBy(() -> p.read(first)).isInstanceOf(FormatException.class)
                    .hasMessageContaining("part-00000.parquet").hasMessageContaining(first).hasMessageContaining("[0, ");
        }
    }

    private static void patchManifestBytes(Path pq, int part, long bytes) throws IOException {
        Path mf = pq.resolve(ParquetShardManifest.FILE_NAME);
        ParquetShardManifest m = ParquetShardManifest.parse(Files.readAllBytes(mf), mf.toString());
        List<ParquetShardManifest.Part> parts = new ArrayList<>(m.parts());
        ParquetShardManifest.Part p = parts.get(part);
        parts.set(part, new ParquetShardManifest.Part(p.file(), bytes, p.records(), p.rowGroups(), p.items()));
        Files.write(mf, new ParquetShardManifest(m.metadata(), m.tensors(), parts).toJson());
    }

    @Test
    void aFlippedPayloadByteIsCaughtByThePageChecksum() throws IOException {
        Path pq = toParquet(hfCheckpoint("hf", DType.BF16), "pq", small());
        String q = L + "self_attn.q_proj.weight";
        byte[] values;
        ParquetShards.Record rec;
        try (ParquetShards p = ParquetShards.open(pq)) {
            rec = p.records(q).get(1);
            values = rec.payload()[0];
        }
        Path part = Path.of(rec.file());
        byte[] file = Files.readAllBytes(part);
        int at = indexOf(file, Arrays.copyOf(values, 64));
        assertThat(at).isPositive();
        file[at + 10] ^= 0x04;
        Files.write(part, file);
        try (ParquetShards p = ParquetShards.open(pq)) {
            assertThatThrownBy(() -> p.read(q)).isInstanceOf(FormatException.class)
                    .hasMessageContaining(part.getFileName().toString()).hasMessageContaining(q)
                    .hasMessageContaining("[64, 128)");
        }
    }

    @Test
    void aRewrittenRecordWithAWrongPayloadOrDenseChecksumIsRefusedNamingTheRowRange() throws IOException {
        Path pq = toParquet(hfCheckpoint("hf", DType.BF16), "pq", small());
        String q = L + "self_attn.q_proj.weight";
        String file;
        try (ParquetShards p = ParquetShards.open(pq)) {
            file = p.records(q).get(1).file();
        }
        byte[] original = Files.readAllBytes(Path.of(file));
        // a valid Parquet file (page CRCs fine) whose q record has one flipped value byte: the payload SHA-256 catches it
        rewrite(Path.of(file), q, false);
        patchManifestBytes(pq, partIndex(pq, file), Files.size(Path.of(file)));
        try (ParquetShards p = ParquetShards.open(pq)) {
            assertThatThrownBy(() -> p.read(q)).isInstanceOf(FormatException.class)
                    .hasMessageContaining("payload SHA-256").hasMessageContaining(q).hasMessageContaining("rows [64, 128)");
        }
        // the same with the payload checksum recomputed: the decoded rows fail the dense SHA-256
        Files.write(Path.of(file), original);
        rewrite(Path.of(file), q, true);
        patchManifestBytes(pq, partIndex(pq, file), Files.size(Path.of(file)));
        try (ParquetShards p = ParquetShards.open(pq)) {
            assertThatThrownBy(() -> p.read(q)).isInstanceOf(FormatException.class)
                    .hasMessageContaining("dense SHA-256").hasMessageContaining("rows [64, 128)");
        }
    }

    private static int partIndex(Path pq, String file) {
        ParquetShardManifest m;
        try {
            m = ParquetShardManifest.parse(Files.readAllBytes(pq.resolve(ParquetShardManifest.FILE_NAME)), "m");
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        for (int i = 0; i < m.parts().size(); i++) {
            if (pq.resolve(m.parts().get(i).file()).toString().equals(file)) {
                return i;
            }
        }
        throw new IllegalStateException(file);
    }

    /** Copies a part file record by record, flipping a byte of the first value of {@code tensor}'s record at row 64. */
    private static void rewrite(Path file, String tensor, boolean fixPayloadSha) throws IOException {
        List<Group> rows = new ArrayList<>();
        try (ParquetReader<Group> r = new ParquetReader.Builder<Group>(new LocalInputFile(file)) {
            @Override
            protected ReadSupport<Group> getReadSupport() {
                return new GroupReadSupport();
            }
        }.build()) {
            for (Group g = r.read(); g != null; g = r.read()) {
                rows.add(g);
            }
        }
        SimpleGroupFactory f = new SimpleGroupFactory(ParquetShardSchema.SCHEMA);
        Path out = file.resolveSibling("rewritten.tmp");
        try (ParquetWriter<Group> w = ExampleParquetWriter.builder(new LocalOutputFile(out)).withType(ParquetShardSchema.SCHEMA)
                .withWriteMode(ParquetFileWriter.Mode.OVERWRITE).build()) {
            for (Group g : rows) {
                Group c = f.newGroup();
                boolean target = g.getString("tensor", 0).equals(tensor) && g.getLong("row_start", 0) == 64;
                for (int i = 0; i < ParquetShardSchema.SCHEMA.getFieldCount(); i++) {
                    String n = ParquetShardSchema.SCHEMA.getFieldName(i);
                    for (int k = 0; k < g.getFieldRepetitionCount(n); k++) {
                        switch (ParquetShardSchema.SCHEMA.getType(i).asPrimitiveType().getPrimitiveTypeName()) {
                            case INT64 -> c.add(n, g.getLong(n, k));
                            default -> {
                                byte[] b = g.getBinary(n, k).getBytes();
                                if (target && n.equals("values")) {
                                    b[1] ^= 0x01; // high byte of the first (non-zero) bf16 value: a different number
                                }
                                c.add(n, Binary.fromConstantByteArray(b));
                            }
                        }
                    }
                }
                if (target && fixPayloadSha) {
                    List<String> comps = SparsePayloads.componentNames(SparseEncoding.parse(g.getString("encoding", 0)));
                    byte[][] payload = new byte[comps.size()][];
                    for (int k = 0; k < comps.size(); k++) {
                        payload[k] = c.getBinary(comps.get(k), 0).getBytes();
                    }
                    Group d = f.newGroup();
                    for (int i = 0; i < ParquetShardSchema.SCHEMA.getFieldCount(); i++) {
                        String n = ParquetShardSchema.SCHEMA.getFieldName(i);
                        for (int k = 0; k < c.getFieldRepetitionCount(n); k++) {
                            if (n.equals(ParquetShardSchema.PAYLOAD_SHA256)) {
                                d.add(n, Binary.fromConstantByteArray(ParquetShardSchema.payloadSha256(payload)));
                            } else if (n.equals("row_start") || n.equals("row_end") || n.equals("shape")
                                    || n.equals("dense_bytes") || n.equals("stored_bytes")) {
                                d.add(n, c.getLong(n, k));
                            } else {
                                d.add(n, c.getBinary(n, k));
                            }
                        }
                    }
                    c = d;
                }
                w.write(c);
            }
        }
        Files.move(out, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    @Test
    void anExistingOutputIsRefusedAndAFailedWriteLeavesNothing() {
        Path hf = hfCheckpoint("hf", DType.BF16);
        Path pq = toParquet(hf, "pq", small());
        assertThatThrownBy(() -> toParquet(hf, "pq", small())).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("already exists");
        // 2:4 forced on tensors that are not 2:4: refused, and no output or staging directory remains
        ParquetShardWriter.Options forced = new ParquetShardWriter.Options(TensorSelector.DEFAULT_TARGETS,
                TensorSelector.DEFAULT_IGNORE, "2:4", 8192, 20_000);
        assertThatThrownBy(() -> toParquet(hf, "pq2", forced)).isInstanceOf(PatternViolationException.class)
                .hasMessageContaining("k_proj");
        assertThat(tmp.resolve("pq2")).doesNotExist();
        assertThat(tmp.toFile().list()).noneMatch(f -> f.startsWith(".pq2"));
        assertThat(pq).isDirectory();
    }

    /**
     * Seeded fuzz: 300 mutations of a part file or the manifest (byte flips, random runs, truncation
     * with and without a patched manifest size). Reading every tensor either throws an
     * {@link InvalidInputException} or returns exactly the original bytes; nothing else escapes.
     */
    @Test
    void fuzzedInputsGiveTypedErrorsOrTheOriginalBytes() throws IOException {
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        t.put(L + "self_attn.q_proj.weight", SparseFormatTest.pruned(DType.BF16, 8, 16, new SparseEncoding.NofM(2, 4), 1));
        t.put(L + "mlp.up_proj.weight", SparseFormatTest.pruned(DType.BF16, 8, 16, new SparseEncoding.Bitmask(), 2));
        t.put(L + "self_attn.v_proj.weight", SparseFormatTest.pruned(DType.BF16, 8, 16, new SparseEncoding.Bsr(4, 4), 3));
        t.put(L + "input_layernorm.weight", HostTensor.fromFloats(DType.BF16, new long[] {4}, new float[] {1, 2, 3, 4}));
        Path hf = tmp.resolve("hf");
        HfDirectoryWriter.write(hf, CONFIG, Map.of(), t, Map.of("format", "pt"), 1L << 30);
        Path pq = toParquet(hf, "pq", new ParquetShardWriter.Options(TensorSelector.DEFAULT_TARGETS,
                TensorSelector.DEFAULT_IGNORE, null, 1 << 20, 300));
        Map<String, byte[]> expected = new LinkedHashMap<>();
        t.forEach((k, v) -> expected.put(k, SparseFormatTest.bytes(v)));
        List<Path> files = new ArrayList<>();
        try (Stream<Path> s = Files.list(pq.resolve(ParquetShardWriter.PARTS_DIR))) {
            files.addAll(s.sorted().collect(Collectors.toList()));
        }
        assertThat(files.size()).isGreaterThan(1);
        files.add(pq.resolve(ParquetShardManifest.FILE_NAME));
        Map<Path, byte[]> original = new LinkedHashMap<>();
        for (Path f : files) {
            original.put(f, Files.readAllBytes(f));
        }
        Random rnd = new Random(20240607L);
        int typed = 0;
        for (int i = 0; i < 300; i++) {
            Path f = files.get(rnd.nextInt(files.size()));
            byte[] b = original.get(f).clone();
            int kind = rnd.nextInt(4);
            boolean manifest = f.getFileName().toString().equals(ParquetShardManifest.FILE_NAME);
            if (kind == 0) {
                b[rnd.nextInt(b.length)] ^= (byte) (1 << rnd.nextInt(8));
            } else if (kind == 1) {
                int at = rnd.nextInt(b.length);
                for (int k = at; k < Math.min(b.length, at + 1 + rnd.nextInt(16)); k++) {
                    b[k] = (byte) rnd.nextInt(256);
                }
            } else {
                b = Arrays.copyOf(b, rnd.nextInt(b.length));
            }
            Files.write(f, b);
            if (kind == 3 && !manifest) {
                patchManifestBytes(pq, files.indexOf(f), b.length);
            }
            try {
                try (ParquetShards p = ParquetShards.open(pq)) {
                    for (String n : p.names()) {
                        assertThat(SparseFormatTest.bytes(p.read(n))).as("mutation %d of %s: %s", i, f.getFileName(), n)
                                .isEqualTo(expected.get(n));
                    }
                    assertThat(p.names()).containsExactlyElementsOf(expected.keySet());
                }
            } catch (InvalidInputException e) {
                typed++;
            } catch (Throwable e) {
                fail("mutation " + i + " (kind " + kind + ") of " + f.getFileName() + " escaped as " + e, e);
            } finally {
                for (Map.Entry<Path, byte[]> e : original.entrySet()) {
                    Files.write(e.getKey(), e.getValue());
                }
            }
        }
        assertThat(typed).isGreaterThan(200);
    }
}
