package io.sparkprune.jobs.commit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.InvalidInputException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.SortedMap;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The commit protocol on Hadoop's default local file system (checksummed) and on
 * {@link RawLocalFileSystem}: commit and assembly, resume after a crash, tampering, fingerprint
 * checks, retried task attempts. Expected bytes and digests come from the test's own data and
 * {@link MessageDigest}, not from the code under test.
 */
class CommitLogTest {
    private static final String FP = "recipe=sha256:aa11/model=sha256:bb22";
    private static final int LAYERS = 3;

    @TempDir
    java.nio.file.Path tmp;

    static Stream<Arguments> fileSystems() throws IOException {
        Configuration conf = new Configuration();
        RawLocalFileSystem raw = new RawLocalFileSystem();
        raw.initialize(URI.create("file:///"), conf);
        return Stream.of(Arguments.of("LocalFileSystem", FileSystem.getLocal(conf)),
                Arguments.of("RawLocalFileSystem", raw));
    }

    /** Deterministic test model: layer -> tensor -> shard bytes. */
    private static Map<Integer, Map<String, List<byte[]>>> model() {
        Random rnd = new Random(20260521L);
        Map<Integer, Map<String, List<byte[]>>> m = new LinkedHashMap<>();
        for (int layer = 0; layer < LAYERS; layer++) {
            Map<String, List<byte[]>> tensors = new LinkedHashMap<>();
            String[] names = {"model.layers." + layer + ".self_attn.q_proj.weight",
                "model.layers." + layer + ".mlp.down_proj.weight", "model.layers." + layer + ".odd/name:_x"};
            int[] shards = {3, 2, 1};
            for (int t = 0; t < names.length; t++) {
                List<byte[]> list = new ArrayList<>();
                for (int s = 0; s < shards[t]; s++) {
                    byte[] b = new byte[100 + rnd.nextInt(5000)];
                    rnd.nextBytes(b);
                    list.add(b);
                }
                tensors.put(names[t], list);
            }
            m.put(layer, tensors);
        }
        return m;
    }

    private static byte[] metrics(int layer) {
        return ("{\"layer\":" + layer + ",\"error\":0.25}").getBytes(StandardCharsets.UTF_8);
    }

    /** Stages, writes all shards (in reverse order, as tasks finish in any order) and commits. */
    private static LayerMarker runLayer(FileSystem fs, CommitLog log, int layer,
            Map<Integer, Map<String, List<byte[]>>> model) throws IOException {
        LayerStaging staging = log.stage(layer);
        List<ShardRecord> records = new ArrayList<>();
        for (Map.Entry<String, List<byte[]>> e : model.get(layer).entrySet()) {
            List<byte[]> shards = e.getValue();
            for (int s = shards.size() - 1; s >= 0; s--) {
                records.add(staging.writeShard(fs, e.getKey(), s, shards.size(), shards.get(s)));
            }
        }
        return log.commit(layer, records, metrics(layer));
    }

    private static byte[] concat(List<byte[]> parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        parts.forEach(out::writeBytes);
        return out.toByteArray();
    }

    private static String sha256(byte[] b) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    }

    private static byte[] tensorBytes(CommitLog log, String tensor) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        log.transferTensor(tensor, out);
        return out.toByteArray();
    }

    private Path out(String name) {
        return new Path(tmp.resolve(name).toUri());
    }

    private java.nio.file.Path local(CommitLog log, int layer, String file) {
        return java.nio.file.Path.of(log.layerDir(layer).toUri()).resolve(file);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void commitsLayersAndAssemblesTensorsInShardOrder(String name, FileSystem fs) throws Exception {
        Map<Integer, Map<String, List<byte[]>>> model = model();
        CommitLog log = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.CHECKSUMS);
        assertThat(log.firstUncommittedLayer()).isZero();
        for (int layer = 0; layer < LAYERS; layer++) {
            runLayer(fs, log, layer, model);
        }

        assertThat(log.committedLayers()).containsExactly(0, 1, 2);
        assertThat(log.firstUncommittedLayer()).isEqualTo(LAYERS);
        SortedMap<String, List<ShardRecord>> shards = log.committedShards();
        assertThat(shards).hasSize(3 * LAYERS);
        for (int layer = 0; layer < LAYERS; layer++) {
            for (Map.Entry<String, List<byte[]>> e : model.get(layer).entrySet()) {
                List<ShardRecord> recs = shards.get(e.getKey());
                assertThat(recs).extracting(ShardRecord::index)
                        .containsExactlyElementsOf(java.util.stream.IntStream.range(0, e.getValue().size()).boxed()
                                .toList());
                for (ShardRecord r : recs) {
                    byte[] expected = e.getValue().get(r.index());
                    assertThat(r.layer()).isEqualTo(layer);
                    assertThat(r.bytes()).isEqualTo(expected.length);
                    assertThat(r.sha256()).isEqualTo(sha256(expected));
                }
                assertThat(tensorBytes(log, e.getKey())).isEqualTo(concat(e.getValue()));
            }
            assertThat(log.readMetrics(layer)).isEqualTo(metrics(layer));
            LayerMarker m = log.marker(layer);
            assertThat(m.metrics().sha256()).isEqualTo(sha256(metrics(layer)));
            assertThat(m.fingerprint()).isEqualTo(FP);
            List<String> files = new ArrayList<>();
            for (FileStatus st : fs.listStatus(log.layerDir(layer))) {
                files.add(st.getPath().getName());
            }
            List<String> expectedFiles = new ArrayList<>(List.of(CommitLog.MARKER, CommitLog.METRICS));
            m.shards().forEach(s -> expectedFiles.add(s.file()));
            assertThat(files).containsExactlyInAnyOrderElementsOf(expectedFiles);
        }
        String marker = Files.readString(local(log, 0, CommitLog.MARKER));
        assertThat(marker).contains("\"format\" : \"sparkprune.layer-commit.v1\"", "\"layer\" : 0",
                "\"fingerprint\" : \"" + FP + "\"", "model.layers.0.odd%2Fname%3A_x.shard-00000-of-00001.bin");

        CommitLog reopened = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.RESUME, CommitLog.Verify.CHECKSUMS);
        assertThat(reopened.committedLayers()).containsExactly(0, 1, 2);
        assertThat(reopened.discardedLayers()).isEmpty();
        for (int layer = 0; layer < LAYERS; layer++) {
            assertThat(reopened.marker(layer)).isEqualTo(log.marker(layer));
        }

        log.deleteStaging();
        assertThat(fs.exists(log.stagingDir())).isFalse();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void resumeAfterACrashBeforeTheMarkerRedoesThatLayerAndMatchesAnUninterruptedRun(String name, FileSystem fs)
            throws Exception {
        Map<Integer, Map<String, List<byte[]>>> model = model();
        CommitLog full = CommitLog.open(fs, out("full"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.CHECKSUMS);
        for (int layer = 0; layer < LAYERS; layer++) {
            runLayer(fs, full, layer, model);
        }

        CommitLog crashed = CommitLog.open(fs, out("crashed"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.CHECKSUMS);
        runLayer(fs, crashed, 0, model);
        LayerStaging l1 = crashed.stage(1);
        String q = "model.layers.1.self_attn.q_proj.weight";
        l1.writeShard(fs, q, 0, 3, model.get(1).get(q).get(0));
        l1.writeShard(fs, q, 2, 3, model.get(1).get(q).get(2));
        fs.create(new Path(crashed.stagingDir(), ShardNames.TEMP_PREFIX + "leftover"), false).close();
        // The driver dies here: shards of layer 1 written, no marker.

        CommitLog resumed = CommitLog.open(fs, out("crashed"), FP, CommitLog.Mode.RESUME,
                CommitLog.Verify.CHECKSUMS);
        assertThat(resumed.committedLayers()).containsExactly(0);
        assertThat(resumed.discardedLayers()).containsExactly(1);
        assertThat(resumed.firstUncommittedLayer()).isEqualTo(1);
        assertThat(fs.exists(resumed.layerDir(1))).isFalse();
        assertThat(fs.exists(new Path(resumed.stagingDir(), ShardNames.TEMP_PREFIX + "leftover"))).isFalse();
        for (int layer = resumed.firstUncommittedLayer(); layer < LAYERS; layer++) {
            runLayer(fs, resumed, layer, model);
        }

        assertThat(resumed.committedShards().keySet()).isEqualTo(full.committedShards().keySet());
        for (String tensor : full.committedShards().keySet()) {
            assertThat(tensorBytes(resumed, tensor)).as(tensor).isEqualTo(tensorBytes(full, tensor));
        }
        for (int layer = 0; layer < LAYERS; layer++) {
            assertThat(Files.readAllBytes(local(resumed, layer, CommitLog.MARKER)))
                    .isEqualTo(Files.readAllBytes(local(full, layer, CommitLog.MARKER)));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void aCrashWhileWritingTheMarkerLeavesTheLayerUncommitted(String name, FileSystem fs) throws Exception {
        Map<Integer, Map<String, List<byte[]>>> model = model();
        CommitLog log = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.SIZES);
        runLayer(fs, log, 0, model);
        LayerStaging l1 = log.stage(1);
        for (Map.Entry<String, List<byte[]>> e : model.get(1).entrySet()) {
            for (int s = 0; s < e.getValue().size(); s++) {
                l1.writeShard(fs, e.getKey(), s, e.getValue().size(), e.getValue().get(s));
            }
        }
        try (var metrics = fs.create(new Path(l1.path(), CommitLog.METRICS), false)) {
            metrics.write(metrics(1));
        }
        try (var marker = fs.create(new Path(l1.path(), ShardNames.TEMP_PREFIX + "x-" + CommitLog.MARKER), false)) {
            marker.write("{\"format\" : \"sparkprune.layer-co".getBytes(StandardCharsets.UTF_8));
        }

        CommitLog resumed = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.RESUME, CommitLog.Verify.SIZES);
        assertThat(resumed.committedLayers()).containsExactly(0);
        assertThat(resumed.discardedLayers()).containsExactly(1);
        assertThat(fs.exists(resumed.layerDir(1))).isFalse();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void aModifiedShardIsATypedErrorOnResumeAndAtAssembly(String name, FileSystem fs) throws Exception {
        Map<Integer, Map<String, List<byte[]>>> model = model();
        CommitLog log = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.CHECKSUMS);
        runLayer(fs, log, 0, model);
        ShardRecord victim = log.marker(0).shards().get(1);
        java.nio.file.Path file = local(log, 0, victim.file());
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.seek(victim.bytes() / 2);
            int b = raf.read();
            raf.seek(victim.bytes() / 2);
            raf.write(b ^ 0x40);
        }

        assertThatThrownBy(() -> CommitLog.open(fs, out("run"), FP, CommitLog.Mode.RESUME,
                CommitLog.Verify.CHECKSUMS))
                .isInstanceOf(CorruptCommitException.class).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining(victim.file())
                .hasMessageContaining("delete " + log.layerDir(0));
        // A size-only check cannot see a same-size change; assembly still verifies every byte.
        CommitLog sizesOnly = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.RESUME, CommitLog.Verify.SIZES);
        assertThat(sizesOnly.committedLayers()).containsExactly(0);
        assertThatThrownBy(() -> tensorBytes(sizesOnly, victim.tensor()))
                .isInstanceOf(CorruptCommitException.class).hasMessageContaining(victim.file());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void truncatedOrMissingShardsAndBrokenMarkersAreTypedErrors(String name, FileSystem fs) throws Exception {
        Map<Integer, Map<String, List<byte[]>>> model = model();
        CommitLog log = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.CHECKSUMS);
        runLayer(fs, log, 0, model);
        runLayer(fs, log, 1, model);
        ShardRecord truncated = log.marker(0).shards().get(0);
        try (RandomAccessFile raf = new RandomAccessFile(local(log, 0, truncated.file()).toFile(), "rw")) {
            raf.setLength(truncated.bytes() - 1);
        }
        assertThatThrownBy(() -> CommitLog.open(fs, out("run"), FP, CommitLog.Mode.RESUME, CommitLog.Verify.SIZES))
                .isInstanceOf(CorruptCommitException.class)
                .hasMessageContaining(truncated.file() + " has " + (truncated.bytes() - 1) + " bytes but");

        fs.delete(log.layerDir(0), true);
        ShardRecord missing = log.marker(1).shards().get(2);
        fs.delete(log.shardPath(missing), false);
        assertThatThrownBy(() -> CommitLog.open(fs, out("run"), FP, CommitLog.Mode.RESUME, CommitLog.Verify.SIZES))
                .isInstanceOf(CorruptCommitException.class)
                .hasMessageContaining(missing.file() + " is listed in").hasMessageContaining("but missing");

        fs.delete(log.layerDir(1), true);
        CommitLog again = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.RESUME, CommitLog.Verify.SIZES);
        runLayer(fs, again, 0, model);
        Files.writeString(local(again, 0, CommitLog.MARKER), "{\"format\": \"sparkprune.layer-commit.v1\", \"lay");
        fs.delete(new Path(again.layerDir(0), "." + CommitLog.MARKER + ".crc"), false);
        assertThatThrownBy(() -> CommitLog.open(fs, out("run"), FP, CommitLog.Mode.RESUME, CommitLog.Verify.SIZES))
                .isInstanceOf(CorruptCommitException.class)
                .hasMessageContaining("is not a valid commit marker");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void resumingWithAnotherFingerprintIsRefusedAndChangesNothing(String name, FileSystem fs) throws Exception {
        Map<Integer, Map<String, List<byte[]>>> model = model();
        CommitLog log = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.SIZES);
        runLayer(fs, log, 0, model);
        log.stage(1);

        String other = "recipe=sha256:cc33/model=sha256:bb22";
        assertThatThrownBy(() -> CommitLog.open(fs, out("run"), other, CommitLog.Mode.RESUME,
                CommitLog.Verify.SIZES))
                .isInstanceOf(RunMismatchException.class).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining(FP).hasMessageContaining(other);
        assertThat(fs.exists(log.layerDir(1))).as("a refused resume deletes nothing").isTrue();
        CommitLog same = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.RESUME, CommitLog.Verify.CHECKSUMS);
        assertThat(same.committedLayers()).containsExactly(0);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void aFreshRunRefusesAStagedDirectoryAndResumeWithoutStagingStartsFresh(String name, FileSystem fs)
            throws Exception {
        Map<Integer, Map<String, List<byte[]>>> model = model();
        CommitLog log = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.SIZES);
        runLayer(fs, log, 0, model);
        assertThatThrownBy(() -> CommitLog.open(fs, out("run"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.SIZES))
                .isInstanceOf(StagingExistsException.class).hasMessageContaining("--resume")
                .hasMessageContaining(log.stagingDir().toString());

        CommitLog nothing = CommitLog.open(fs, out("empty"), FP, CommitLog.Mode.RESUME, CommitLog.Verify.SIZES);
        assertThat(nothing.committedLayers()).isEmpty();
        assertThat(nothing.firstUncommittedLayer()).isZero();
        assertThat(fs.exists(new Path(nothing.stagingDir(), CommitLog.RUN_FILE))).isTrue();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void retriedAttemptsPublishOneIdenticalShardAndFailedAttemptsLeaveNothing(String name, FileSystem fs)
            throws Exception {
        CommitLog log = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.SIZES);
        LayerStaging staging = log.stage(0);
        byte[] bytes = new byte[3000];
        new Random(7).nextBytes(bytes);
        String t = "model.layers.0.mlp.up_proj.weight";

        ShardRecord first = staging.writeShard(fs, t, 0, 2, bytes);
        ShardRecord retry = staging.writeShard(fs, t, 0, 2, bytes.clone());
        assertThat(retry).isEqualTo(first);
        assertThat(first.sha256()).isEqualTo(sha256(bytes));

        byte[] different = bytes.clone();
        different[0] ^= 1;
        assertThatThrownBy(() -> staging.writeShard(fs, t, 0, 2, different))
                .isInstanceOf(NondeterministicShardException.class).hasMessageContaining(first.file())
                .hasMessageContaining(first.sha256()).hasMessageContaining(sha256(different));
        assertThat(Files.readAllBytes(local(log, 0, first.file()))).isEqualTo(bytes);

        assertThatThrownBy(() -> staging.writeShard(fs, t, 1, 2, out -> {
            out.write(bytes, 0, 100);
            throw new IOException("executor lost mid-write");
        })).hasMessage("executor lost mid-write");
        List<String> names = new ArrayList<>();
        for (FileStatus st : fs.listStatus(staging.path())) {
            names.add(st.getPath().getName());
        }
        assertThat(names).containsExactly(first.file());

        assertThatThrownBy(() -> log.commit(0, List.of(first), metrics(0)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("lacks shards [1] of 2");
        ShardRecord second = staging.writeShard(fs, t, 1, 2, new byte[] {1, 2, 3});
        fs.create(new Path(staging.path(), ShardNames.TEMP_PREFIX + "zombie-attempt"), false).close();
        log.commit(0, List.of(second, first), metrics(0));
        names.clear();
        for (FileStatus st : fs.listStatus(staging.path())) {
            names.add(st.getPath().getName());
        }
        assertThat(names).containsExactlyInAnyOrder(first.file(), second.file(), CommitLog.METRICS, CommitLog.MARKER);
        assertThat(log.marker(0).shards()).containsExactly(first, second);
        assertThatThrownBy(() -> log.commit(0, List.of(first, second), metrics(0)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("already committed");
        assertThatThrownBy(() -> log.stage(0)).isInstanceOf(IllegalStateException.class);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void aCommitNeedsEveryReportedShardOnDisk(String name, FileSystem fs) throws Exception {
        CommitLog log = CommitLog.open(fs, out("run"), FP, CommitLog.Mode.FRESH, CommitLog.Verify.SIZES);
        LayerStaging staging = log.stage(2);
        ShardRecord written = staging.writeShard(fs, "w", 0, 1, new byte[] {9, 9});
        ShardRecord ghost = new ShardRecord(2, "v", 0, 1, ShardNames.fileName("v", 0, 1), 2, written.sha256());
        assertThatThrownBy(() -> log.commit(2, List.of(written, ghost), metrics(2)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining(ghost.file() + " is missing");
        ShardRecord wrongLayer = new ShardRecord(1, "w", 0, 1, written.file(), 2, written.sha256());
        assertThatThrownBy(() -> log.commit(2, List.of(wrongLayer), metrics(2)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("belongs to layer 1");
        assertThat(log.isCommitted(2)).isFalse();
        assertThat(fs.exists(new Path(staging.path(), CommitLog.MARKER))).isFalse();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fileSystems")
    void filesAreSyncedTheWayTheFileSystemAllows(String name, FileSystem fs) throws Exception {
        Path p = out("sync-test.bin");
        Durable.Written w = Durable.writeTemp(fs, p, o -> o.write(new byte[] {1, 2, 3, 4}));
        assertThat(w.bytes()).isEqualTo(4);
        assertThat(w.sha256()).isEqualTo(sha256(new byte[] {1, 2, 3, 4}));
        // RawLocalFileSystem streams are Syncable (hsync = fsync); the checksummed LocalFileSystem's
        // are not, so the file is forced through its FileChannel after close.
        assertThat(w.sync()).isEqualTo(fs instanceof RawLocalFileSystem ? Durable.SyncMethod.HSYNC
                : Durable.SyncMethod.FILE_CHANNEL);
        assertThat(Files.readAllBytes(tmp.resolve("sync-test.bin"))).containsExactly(1, 2, 3, 4);
    }
}
