package io.sparkprune.pipeline.safetensors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Sharded Hugging Face checkpoints: writing, reading back, and index/shard consistency checks. */
class ShardedCheckpointTest {
    @TempDir
    Path tmp;

    private static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private static LinkedHashMap<String, HostTensor> model(Random r) {
        LinkedHashMap<String, HostTensor> m = new LinkedHashMap<>();
        m.put("model.embed_tokens.weight", Fixtures.randomTensor(r, DType.BF16, new long[] {50, 16})); // 1600
        for (int l = 0; l < 3; l++) {
            m.put("model.layers." + l + ".q_proj.weight", Fixtures.randomTensor(r, DType.F32, new long[] {16, 16})); // 1024
            m.put("model.layers." + l + ".norm.weight", Fixtures.randomTensor(r, DType.F16, new long[] {16})); // 32
            m.put("model.layers." + l + ".empty", Fixtures.randomTensor(r, DType.I8, new long[] {0, 4})); // 0
        }
        m.put("lm_head.weight", Fixtures.randomTensor(r, DType.F32, new long[] {50, 16})); // 3200 > max: own shard
        m.put("scale", Fixtures.randomTensor(r, DType.F64, new long[] {})); // 8
        return m;
    }

    /** Greedy split computed independently: sizes in order, new shard when the next would exceed max. */
    private static List<List<String>> expectedShards(Map<String, HostTensor> m, long max) {
        List<List<String>> out = new ArrayList<>();
        List<String> cur = new ArrayList<>();
        long size = 0;
        for (Map.Entry<String, HostTensor> e : m.entrySet()) {
            long b = e.getValue().byteLength();
            if (!cur.isEmpty() && size + b > max) {
                out.add(cur);
                cur = new ArrayList<>();
                size = 0;
            }
            cur.add(e.getKey());
            size += b;
        }
        out.add(cur);
        return out;
    }

    @Test
    void writesShardsAndIndexAndReadsThemBack() throws Exception {
        LinkedHashMap<String, HostTensor> m = model(new Random(1));
        long max = 2100;
        Path dir = tmp.resolve("out");
        Map<String, String> weightMap = ShardedCheckpointWriter.write(dir, max, Map.of("format", "pt"), m);

        List<List<String>> shards = expectedShards(m, max);
        int n = shards.size();
        assertThat(n).isGreaterThan(2);
        List<String> files = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            files.add(String.format("model-%05d-of-%05d.safetensors", i + 1, n));
        }
        List<String> expectedListing = new ArrayList<>(files);
        expectedListing.add("model.safetensors.index.json");
        assertThat(list(dir)).containsExactlyInAnyOrderElementsOf(expectedListing);

        // the index, read as plain JSON
        JsonNode index = new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile());
        long total = m.values().stream().mapToLong(HostTensor::byteLength).sum();
        assertThat(index.get("metadata").get("total_size").asLong()).isEqualTo(total);
        JsonNode wm = index.get("weight_map");
        assertThat(wm.size()).isEqualTo(m.size());
        for (int i = 0; i < n; i++) {
            for (String name : shards.get(i)) {
                assertThat(wm.get(name).asText()).as(name).isEqualTo(files.get(i));
                assertThat(weightMap.get(name)).isEqualTo(files.get(i));
            }
            // each shard is a valid file holding exactly its tensors, in order, with the metadata
            try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(files.get(i)))) {
                assertThat(f.tensors()).extracting(TensorInfo::name).containsExactlyElementsOf(shards.get(i));
                assertThat(f.metadata()).containsExactly(Map.entry("format", "pt"));
            }
        }

        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            assertThat(c.isIndexed()).isTrue();
            assertThat(c.tensorNames()).containsExactlyElementsOf(m.keySet());
            assertThat(c.files()).containsExactlyElementsOf(files);
            assertThat(c.indexTotalSize()).hasValue(total);
            assertThat(c.indexMetadata()).containsEntry("total_size", Long.toString(total));
            c.validate();
            for (Map.Entry<String, HostTensor> e : m.entrySet()) {
                assertThat(c.read(e.getKey())).as(e.getKey()).isEqualTo(e.getValue());
                assertThat(c.info(e.getKey()).shape()).isEqualTo(e.getValue().shape());
            }
            HostTensor rows = c.readRows("lm_head.weight", 10, 5);
            assertThat(rows.shape()).containsExactly(5, 16);
            byte[] all = Fixtures.bytes(m.get("lm_head.weight"));
            assertThat(Fixtures.bytes(rows)).isEqualTo(java.util.Arrays.copyOfRange(all, 10 * 64, 15 * 64));
            assertThat(c.fileOf("lm_head.weight")).isEqualTo(files.get(shards.size() - 2));
            assertThatThrownBy(() -> c.read("nope")).isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageStartingWith(dir.toAbsolutePath() + ": 'nope': no such tensor");
        }

        // the same through a Hadoop file system (positioned reads), and through open(String, conf)
        try (RawLocalFileSystem raw = new RawLocalFileSystem()) {
            raw.initialize(java.net.URI.create("file:///"), new Configuration(false));
            try (ShardedCheckpoint c = ShardedCheckpoint.open(raw, new org.apache.hadoop.fs.Path(dir.toUri()))) {
                assertThat(c.source()).startsWith("file:");
                c.validate();
                for (Map.Entry<String, HostTensor> e : m.entrySet()) {
                    assertThat(c.read(e.getKey())).isEqualTo(e.getValue());
                }
            }
        }
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir.toUri().toString(), new Configuration(false));
                ShardedCheckpoint d = ShardedCheckpoint.open(dir.resolve("model.safetensors.index.json"))) {
            assertThat(c.read("scale")).isEqualTo(m.get("scale"));
            assertThat(d.isIndexed()).isTrue();
            assertThat(d.read("scale")).isEqualTo(m.get("scale"));
        }
    }

    @Test
    void oneShardIsASingleModelSafetensors() throws Exception {
        LinkedHashMap<String, HostTensor> m = model(new Random(2));
        Path dir = tmp.resolve("single");
        ShardedCheckpointWriter.write(dir, 1L << 40, Map.of(), m);
        assertThat(list(dir)).containsExactly("model.safetensors");
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            assertThat(c.isIndexed()).isFalse();
            assertThat(c.files()).containsExactly("model.safetensors");
            assertThat(c.tensorNames()).containsExactlyElementsOf(m.keySet());
            for (Map.Entry<String, HostTensor> e : m.entrySet()) {
                assertThat(c.read(e.getKey())).isEqualTo(e.getValue());
            }
        }
        // a single file of another name, or the file path itself, opens too
        Files.move(dir.resolve("model.safetensors"), dir.resolve("weights.safetensors"));
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir);
                ShardedCheckpoint d = ShardedCheckpoint.open(dir.resolve("weights.safetensors"))) {
            assertThat(c.files()).containsExactly("weights.safetensors");
            assertThat(d.read("scale")).isEqualTo(m.get("scale"));
        }
    }

    private Path sharded(String name) {
        Path dir = tmp.resolve(name);
        ShardedCheckpointWriter.write(dir, 2100, Map.of(), model(new Random(3)));
        return dir;
    }

    private static void rewriteIndex(Path dir, java.util.function.UnaryOperator<String> edit) throws IOException {
        Path index = dir.resolve("model.safetensors.index.json");
        Files.writeString(index, edit.apply(Files.readString(index)));
    }

    @Test
    void indexPointingAtAMissingFile() throws Exception {
        Path dir = sharded("missing");
        List<String> shards = list(dir).stream().filter(n -> n.endsWith(".safetensors")).toList();
        assertThat(shards).hasSizeGreaterThan(2);
        String second = shards.get(1);
        Files.delete(dir.resolve(second));
        assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).isInstanceOf(SafetensorsFormatException.class)
                .hasMessageStartingWith(dir.resolve("model.safetensors.index.json").toAbsolutePath() + ": '")
                .hasMessageContaining("to " + second + ", which is missing from")
                .hasMessageContaining("download or copy the missing shard");
    }

    @Test
    void indexedTensorMissingFromItsShard() throws Exception {
        Path dir = sharded("stale");
        String scaleFile;
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            scaleFile = c.fileOf("scale");
        }
        rewriteIndex(dir, s -> s.replace("\"scale\"", "\"ghost\" : \"" + scaleFile + "\",\n  \"scale\""));
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            assertThat(c.contains("ghost")).isTrue();
            assertThatThrownBy(() -> c.read("ghost")).isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageContaining("'ghost': the index maps this tensor to " + scaleFile
                            + ", but that file does not contain it");
            assertThatThrownBy(c::validate).isInstanceOf(SafetensorsFormatException.class).hasMessageContaining("ghost");
        }
    }

    @Test
    void tensorPresentInTwoShards() throws Exception {
        Path dir = tmp.resolve("dup");
        Files.createDirectories(dir);
        Random r = new Random(4);
        HostTensor t = Fixtures.randomTensor(r, DType.F32, new long[] {2});
        LinkedHashMap<String, HostTensor> s1 = new LinkedHashMap<>();
        s1.put("a", t);
        s1.put("shared", t);
        LinkedHashMap<String, HostTensor> s2 = new LinkedHashMap<>();
        s2.put("shared", t);
        s2.put("b", t);
        SafetensorsWriter.write(dir.resolve("model-00001-of-00002.safetensors"), Map.of(), s1);
        SafetensorsWriter.write(dir.resolve("model-00002-of-00002.safetensors"), Map.of(), s2);
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"metadata\":{\"total_size\":24},"
                + "\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"shared\":\"model-00002-of-00002.safetensors\","
                + "\"b\":\"model-00002-of-00002.safetensors\"}}");
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            assertThat(c.read("b")).isEqualTo(t); // shard 2 alone is consistent
            assertThatThrownBy(() -> c.read("a")).isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageContaining("model-00001-of-00002.safetensors: 'shared': this tensor is present in two "
                            + "shards, model-00001-of-00002.safetensors and model-00002-of-00002.safetensors");
        }
        // a tensor the index does not mention at all
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"weight_map\":{"
                + "\"shared\":\"model-00002-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\","
                + "\"x\":\"model-00001-of-00002.safetensors\"}}");
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            assertThatThrownBy(c::validate).isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageContaining("'x': the index maps this tensor to model-00001-of-00002.safetensors");
        }
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"weight_map\":{"
                + "\"shared\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\","
                + "\"a\":\"model-00001-of-00002.safetensors\"}}");
        try (ShardedCheckpoint c = ShardedCheckpoint.open(dir)) {
            assertThatThrownBy(() -> c.read("b")).isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageContaining("'shared': this tensor is present in two shards");
        }
    }

    @Test
    void malformedIndexesAreTyped() throws Exception {
        Path dir = sharded("bad");
        String label = dir.resolve("model.safetensors.index.json").toAbsolutePath().toString();
        String[][] cases = {
            {"{\"weight_map\": ", "is not valid JSON"},
            {"[]", "must be a JSON object"},
            {"{\"metadata\":{}}", "'weight_map': must be an object"},
            {"{\"weight_map\":[1]}", "'weight_map': must be an object"},
            {"{\"weight_map\":{\"a\":3}}", "'a': weight_map value must be a shard file name string, got number"},
            {"{\"weight_map\":{\"a\":\"../x.safetensors\"}}", "is not a plain file name"},
            {"{\"weight_map\":{\"a\":\"f\",\"a\":\"g\"}}", "'a': appears more than once in the index"},
            {"{\"metadata\":5,\"weight_map\":{}}", "'metadata': must be an object"},
        };
        for (String[] c : cases) {
            Files.writeString(dir.resolve("model.safetensors.index.json"), c[0]);
            assertThatThrownBy(() -> ShardedCheckpoint.open(dir)).as(c[0])
                    .isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageStartingWith(label + ": ")
                    .hasMessageContaining(c[1]);
        }
    }

    @Test
    void directoriesWithoutACheckpointAreTyped() throws Exception {
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        assertThatThrownBy(() -> ShardedCheckpoint.open(empty)).isInstanceOf(SafetensorsFormatException.class)
                .hasMessageContaining("no model.safetensors, model.safetensors.index.json or other .safetensors file");
        assertThatThrownBy(() -> ShardedCheckpoint.open(tmp.resolve("absent"))).isInstanceOf(SafetensorsFormatException.class)
                .hasMessageContaining("checkpoint directory not found");
        Path two = Files.createDirectories(tmp.resolve("two"));
        LinkedHashMap<String, HostTensor> one = new LinkedHashMap<>();
        one.put("a", Fixtures.randomTensor(new Random(1), DType.U8, new long[] {1}));
        SafetensorsWriter.write(two.resolve("x.safetensors"), Map.of(), one);
        SafetensorsWriter.write(two.resolve("y.safetensors"), Map.of(), one);
        assertThatThrownBy(() -> ShardedCheckpoint.open(two)).isInstanceOf(SafetensorsFormatException.class)
                .hasMessageContaining("2 .safetensors files [x.safetensors, y.safetensors] but no model.safetensors.index.json");
    }

    @Test
    void shardedWriterIsAllOrNothing() throws Exception {
        LinkedHashMap<String, HostTensor> m = model(new Random(5));
        Path dir = tmp.resolve("partial");
        ShardedCheckpointWriter w = ShardedCheckpointWriter.create(dir, 2100);
        for (Map.Entry<String, HostTensor> e : m.entrySet()) {
            w.declare(e.getKey(), e.getValue().dtype(), e.getValue().shape());
        }
        assertThatThrownBy(() -> w.write("scale", m.get("scale"))).isInstanceOf(IllegalStateException.class)
                .hasMessage("cannot write tensor data in state DECLARING: call planShards() first");
        w.planShards();
        assertThatThrownBy(() -> w.declare("late", DType.U8, new long[] {1})).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot declare a tensor in state WRITING");
        List<String> names = new ArrayList<>(m.keySet());
        assertThat(names.subList(names.size() - 3, names.size()))
                .containsExactly("model.layers.2.empty", "lm_head.weight", "scale");
        for (int i = 0; i < names.size() - 3; i++) { // several shards written and finished
            w.write(names.get(i), m.get(names.get(i)));
        }
        // the zero-byte tensor needs no write; lm_head.weight does
        assertThatThrownBy(() -> w.write("scale", m.get("scale"))).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("tensor 'lm_head.weight' (declared before it) has 3200 of 3200 bytes left");
        assertThat(list(dir)).allMatch(n -> n.endsWith(".tmp")).hasSizeGreaterThan(2);
        assertThatThrownBy(w::close).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot close in state WRITING: tensor 'lm_head.weight' has 3200 of 3200 bytes");
        assertThat(list(dir)).isEmpty();
        assertThat(w.state()).isEqualTo(SafetensorsWriter.State.ABORTED);

        ShardedCheckpointWriter w2 = ShardedCheckpointWriter.create(dir, 2100);
        w2.declare("a", DType.U8, new long[] {3000});
        w2.declare("b", DType.U8, new long[] {3000});
        w2.planShards();
        w2.write("a", ByteBuffer.wrap(new byte[3000]));
        w2.write("b", ByteBuffer.wrap(new byte[10]));
        w2.abort();
        assertThat(list(dir)).isEmpty();
    }

    @Test
    void refusesToWriteOverAnExistingCheckpoint() throws Exception {
        Path dir = sharded("exists");
        assertThatThrownBy(() -> ShardedCheckpointWriter.create(dir, 100)).isInstanceOf(SafetensorsFormatException.class)
                .hasMessageContaining("output directory already holds a checkpoint")
                .hasMessageContaining("write to an empty directory");
    }

    @Test
    void shardedWriterThroughHadoop() throws Exception {
        LinkedHashMap<String, HostTensor> m = model(new Random(6));
        Path dir = tmp.resolve("hdfs-like");
        try (RawLocalFileSystem raw = new RawLocalFileSystem()) {
            raw.initialize(java.net.URI.create("file:///"), new Configuration(false));
            org.apache.hadoop.fs.Path hdir = new org.apache.hadoop.fs.Path(dir.toUri());
            try (ShardedCheckpointWriter w = ShardedCheckpointWriter.create(raw, hdir, 2100)) {
                for (Map.Entry<String, HostTensor> e : m.entrySet()) {
                    w.declare(e.getKey(), e.getValue().dtype(), e.getValue().shape());
                }
                w.planShards();
                for (Map.Entry<String, HostTensor> e : m.entrySet()) {
                    w.write(e.getKey(), e.getValue());
                }
            }
        }
        // byte-identical to the local writer's output
        Path ref = tmp.resolve("ref");
        ShardedCheckpointWriter.write(ref, 2100, Map.of(), m);
        assertThat(list(dir)).isEqualTo(list(ref));
        for (String f : list(ref)) {
            assertThat(Files.readAllBytes(dir.resolve(f))).as(f).isEqualTo(Files.readAllBytes(ref.resolve(f)));
        }
    }
}
