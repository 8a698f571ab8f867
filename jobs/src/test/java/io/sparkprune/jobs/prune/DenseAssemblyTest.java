package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import io.sparkprune.jobs.commit.CommitLog;
import io.sparkprune.jobs.commit.CorruptCommitException;
import io.sparkprune.jobs.commit.LayerStaging;
import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.safetensors.SafetensorsFile;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The dense output assembly's pipeline ({@link DenseAssembly}) on a multi-file checkpoint of many
 * small tensors, with pieces forced small: the output must equal, byte for byte, files built by
 * hand from the input (each pruned tensor's data range replaced by its staged shards' bytes, which
 * the test made) and the sequential code path's output; a corrupt or truncated staged shard fails
 * with {@link CorruptCommitException} and publishes nothing; a file that cannot be published stops
 * the assembly without leaving the next file's temporary file; the window bounds the bytes held; no
 * reader or closer thread outlives the call. Both output paths are run: the positional one (output on
 * Hadoop's local file system itself: pieces written at their offsets by several threads at once,
 * most tests) and the stream one (a file system {@link DenseAssembly#localDirectory} does not
 * recognise, here a subclass of the raw local one); a failing range of the positional path leaves
 * no file at all.
 */
class DenseAssemblyTest {
    private static final String FP = "recipe=sha256:0a/model=sha256:0b";
    private static final int LAYERS = 4;

    @TempDir
    java.nio.file.Path tmp;

    /**
     * @param model the input checkpoint directory
     * @param out the job's output directory
     * @param log the committed run
     * @param pruned tensor name to its staged bytes (the concatenation of its shards)
     */
    private record Fixture(java.nio.file.Path model, Path out, CommitLog log, Map<String, byte[]> pruned) {
    }

    private static FileSystem raw() throws IOException {
        RawLocalFileSystem raw = new RawLocalFileSystem();
        raw.initialize(URI.create("file:///"), new Configuration());
        return raw;
    }

    /**
     * Hadoop's raw local file system behind a subclass, which {@link DenseAssembly#localDirectory}
     * does not recognise: the output takes the stream path, as on any non-local file system.
     */
    private static FileSystem streamOnly() throws IOException {
        RawLocalFileSystem fs = new RawLocalFileSystem() {
        };
        fs.initialize(URI.create("file:///"), new Configuration());
        return fs;
    }

    private static ByteBuffer randomBytes(Random rnd, long n) {
        byte[] b = new byte[(int) n];
        rnd.nextBytes(b);
        return ByteBuffer.wrap(b);
    }

    /**
     * A checkpoint of {@value #LAYERS} layers (norms, projections, an empty tensor) plus embeddings,
     * sharded into several files; per layer the projections and the empty tensor are staged as
     * pruned, with new random bytes cut into 1 to 4 shards of uneven sizes (some empty) and committed.
     */
    private Fixture fixture(FileSystem fs) throws IOException {
        Random rnd = new Random(20260607L);
        LinkedHashMap<String, HostTensor> tensors = new LinkedHashMap<>();
        tensors.put("model.embed_tokens.weight", new HostTensor(DType.BF16, new long[] {40, 16},
                randomBytes(rnd, 40 * 16 * 2)));
        List<List<String>> prunedPerLayer = new ArrayList<>();
        for (int l = 0; l < LAYERS; l++) {
            String p = "model.layers." + l + ".";
            int rows = 8 + rnd.nextInt(40);
            int cols = 4 + rnd.nextInt(30);
            tensors.put(p + "input_layernorm.weight", new HostTensor(DType.F32, new long[] {cols},
                    randomBytes(rnd, cols * 4L)));
            tensors.put(p + "self_attn.q_proj.weight", new HostTensor(DType.BF16, new long[] {rows, cols},
                    randomBytes(rnd, rows * cols * 2L)));
            tensors.put(p + "self_attn.empty.weight", new HostTensor(DType.I8, new long[] {0, 5},
                    ByteBuffer.allocate(0)));
            tensors.put(p + "self_attn.o_proj.weight", new HostTensor(DType.F16, new long[] {cols, rows},
                    randomBytes(rnd, rows * cols * 2L)));
            tensors.put(p + "mlp.down_proj.weight", new HostTensor(DType.F32, new long[] {cols, 2 * rows},
                    randomBytes(rnd, 2L * rows * cols * 4)));
            prunedPerLayer.add(List.of(p + "self_attn.q_proj.weight", p + "self_attn.empty.weight",
                    p + "mlp.down_proj.weight"));
        }
        tensors.put("lm_head.weight", new HostTensor(DType.BF16, new long[] {40, 16}, randomBytes(rnd, 40 * 16 * 2)));
        java.nio.file.Path model = tmp.resolve("model");
        ShardedCheckpointWriter.write(model, 6000, Map.of("format", "pt"), tensors);

        Path out = new Path(tmp.resolve("out").toUri());
        CommitLog log = CommitLog.open(fs, out, FP, CommitLog.Mode.FRESH, CommitLog.Verify.SIZES);
        Map<String, byte[]> pruned = new TreeMap<>();
        for (int l = 0; l < LAYERS; l++) {
            LayerStaging staging = log.stage(l);
            List<ShardRecord> records = new ArrayList<>();
            for (String name : prunedPerLayer.get(l)) {
                HostTensor t = tensors.get(name);
                byte[] bytes = randomBytes(rnd, t.data().remaining()).array();
                pruned.put(name, bytes);
                int count = 1 + rnd.nextInt(4);
                int[] cuts = new int[count + 1];
                for (int i = 1; i < count; i++) {
                    cuts[i] = rnd.nextInt(bytes.length + 1);
                }
                cuts[count] = bytes.length;
                Arrays.sort(cuts, 1, count);
                for (int i = count - 1; i >= 0; i--) {
                    records.add(staging.writeShard(fs, name, i, count, Arrays.copyOfRange(bytes, cuts[i], cuts[i + 1])));
                }
            }
            log.commit(l, records, "{}".getBytes(java.nio.charset.StandardCharsets.UTF_8));
        }
        return new Fixture(model, out, log, pruned);
    }

    /** Each input file with the pruned tensors' data ranges replaced by their staged bytes. */
    private static Map<String, byte[]> expected(Fixture f) throws IOException {
        Map<String, byte[]> res = new TreeMap<>();
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(f.model())) {
            for (String file : ck.files()) {
                byte[] bytes = Files.readAllBytes(f.model().resolve(file));
                SafetensorsFile src = ck.shard(file);
                long data = src.header().dataSectionOffset();
                for (TensorInfo t : src.tensors()) {
                    byte[] staged = f.pruned().get(t.name());
                    if (staged != null) {
                        assertThat((long) staged.length).isEqualTo(t.byteLength());
                        System.arraycopy(staged, 0, bytes, (int) (data + t.dataBegin()), staged.length);
                    }
                }
                res.put(file, bytes);
            }
        }
        return res;
    }

    /** The same safetensors files, byte for byte. */
    private static void assertSameFiles(Map<String, byte[]> got, Map<String, byte[]> expected) {
        assertThat(got.keySet()).containsExactlyElementsOf(expected.keySet());
        for (String file : expected.keySet()) {
            assertThat(got.get(file)).as(file).isEqualTo(expected.get(file));
        }
    }

    /** The safetensors files and the index in {@code dir}. */
    private static Map<String, byte[]> written(java.nio.file.Path dir) throws IOException {
        Map<String, byte[]> res = new TreeMap<>();
        try (Stream<java.nio.file.Path> s = Files.list(dir)) {
            for (java.nio.file.Path p : s.toList()) {
                String n = p.getFileName().toString();
                if (n.endsWith(".safetensors")) {
                    res.put(n, Files.readAllBytes(p));
                }
            }
        }
        return res;
    }

    private static java.nio.file.Path local(Path p) {
        return java.nio.file.Path.of(p.toUri());
    }

    private static ShardedCheckpoint open(java.nio.file.Path model, boolean mapped, FileSystem fs) {
        return mapped ? ShardedCheckpoint.open(model) : ShardedCheckpoint.open(fs, new Path(model.toUri()));
    }

    static Stream<Arguments> settings() {
        return Stream.of(
                Arguments.of("mapped input, 3 readers, 64-byte pieces", true, new DenseAssembly.Settings(3, 64, 1 << 20)),
                Arguments.of("Hadoop input, 2 readers, 100-byte pieces", false, new DenseAssembly.Settings(2, 100, 4096)),
                Arguments.of("mapped input, 4 readers, a 7-byte window", true, new DenseAssembly.Settings(4, 1000, 7)),
                Arguments.of("Hadoop input, 1 reader, default sizes", false, new DenseAssembly.Settings(1,
                        DenseAssembly.Settings.CHUNK_BYTES, DenseAssembly.Settings.WINDOW_BYTES)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("settings")
    void outputEqualsHandBuiltFilesAndTheSequentialPath(String name, boolean mapped, DenseAssembly.Settings settings)
            throws Exception {
        FileSystem fs = raw();
        Fixture f = fixture(fs);
        Map<String, byte[]> expected = expected(f);
        assertThat(expected).hasSizeGreaterThanOrEqualTo(3);

        Path dense;
        try (ShardedCheckpoint in = open(f.model(), mapped, fs)) {
            dense = OutputAssembler.assembleDense(in, f.log(), fs, f.out(), JsonNodeFactory.instance.objectNode(),
                    settings);
        }
        Map<String, byte[]> got = written(local(dense));
        assertSameFiles(got, expected);
        assertThat(local(dense).resolve(ShardedCheckpoint.INDEX_FILE))
                .hasSameBinaryContentAs(f.model().resolve(ShardedCheckpoint.INDEX_FILE));

        java.nio.file.Path seq = Files.createDirectories(tmp.resolve("sequential"));
        try (ShardedCheckpoint in = open(f.model(), mapped, fs)) {
            DenseAssembly.writeSequential(in, f.log(), fs, new Path(seq.toUri()), 1000);
        }
        Map<String, byte[]> reference = written(seq);
        assertThat(reference.keySet()).containsExactlyElementsOf(expected.keySet());
        for (String file : expected.keySet()) {
            assertThat(got.get(file)).as(file).isEqualTo(reference.get(file));
        }
        assertReadersGone();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("settings")
    void startedBeforeTheLayersItWritesTheSameFilesWhateverTheCommitOrder(String name, boolean mapped,
                                                                         DenseAssembly.Settings settings) throws Exception {
        FileSystem fs = raw();
        Fixture f = fixture(fs);
        Map<String, byte[]> expected = expected(f);
        Map<String, List<ShardRecord>> all = f.log().committedShards();
        Path dense;
        try (ShardedCheckpoint in = open(f.model(), mapped, fs);
             OutputAssembler.DenseRun run = OutputAssembler.startDense(in, f.log(), fs, f.out(), all.keySet(), settings)) {
            // the layers handed over last first, one at a time, as a job would after a resume of the first
            for (int l = LAYERS - 1; l >= 0; l--) {
                String prefix = "model.layers." + l + ".";
                Map<String, List<ShardRecord>> layer = new TreeMap<>();
                all.forEach((t, shards) -> {
                    if (t.startsWith(prefix)) {
                        layer.put(t, shards);
                    }
                });
                run.commit(layer);
            }
            assertThatThrownBy(() -> run.commit(Map.of("model.layers.0.mlp.down_proj.weight",
                    all.get("model.layers.0.mlp.down_proj.weight")))).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("twice");
            run.commit(Map.of("model.layers.0.mlp.down_proj.weight.codes", List.of())); // not an input tensor: skipped
            dense = run.finish(JsonNodeFactory.instance.objectNode());
        }
        assertSameFiles(written(local(dense)), expected);
        assertReadersGone();
    }

    @Test
    void anAssemblyThatLacksATensorOrIsAbandonedPublishesNothing() throws Exception {
        FileSystem fs = raw();
        Fixture f = fixture(fs);
        Map<String, List<ShardRecord>> all = f.log().committedShards();
        Map<String, List<ShardRecord>> allButOne = new TreeMap<>(all);
        allButOne.remove("model.layers.2.self_attn.q_proj.weight");
        DenseAssembly.Settings settings = new DenseAssembly.Settings(3, 64, 1 << 20);
        java.nio.file.Path hf = local(new Path(f.out(), "_assembling/hf"));
        try (ShardedCheckpoint in = open(f.model(), true, fs)) {
            try (OutputAssembler.DenseRun run = OutputAssembler.startDense(in, f.log(), fs, f.out(), all.keySet(),
                    settings)) {
                run.commit(allButOne);
                assertThatThrownBy(() -> run.finish(JsonNodeFactory.instance.objectNode()))
                        .isInstanceOf(IllegalStateException.class)
                        .hasMessageContaining("model.layers.2.self_attn.q_proj.weight");
            }
            assertThat(written(hf)).as("no safetensors file published").isEmpty();
            try (Stream<java.nio.file.Path> left = Files.list(hf)) {
                assertThat(left.toList()).as("no temporary file left").isEmpty();
            }
            // abandoned while running (a failed layer): closed without finish
            try (OutputAssembler.DenseRun run = OutputAssembler.startDense(in, f.log(), fs, f.out(), all.keySet(),
                    settings)) {
                run.commit(allButOne);
            }
            try (Stream<java.nio.file.Path> left = Files.list(hf)) {
                assertThat(left.toList()).as("nothing left").isEmpty();
            }
        }
        assertReadersGone();
    }

    @Test
    void holdsAtMostTheWindowAndStillCompletes() throws Exception {
        FileSystem fs = raw();
        Fixture f = fixture(fs);
        Map<String, byte[]> expected = expected(f);
        long tensorBytes = 0;
        try (ShardedCheckpoint in = ShardedCheckpoint.open(f.model())) {
            for (String name : in.tensorNames()) {
                tensorBytes += in.info(name).byteLength();
            }
        }
        for (long window : new long[] {1, 5, 300}) {
            java.nio.file.Path dir = Files.createDirectories(tmp.resolve("window-" + window));
            DenseAssembly.Stats stats;
            try (ShardedCheckpoint in = ShardedCheckpoint.open(f.model())) {
                stats = DenseAssembly.write(in, f.log(), fs, new Path(dir.toUri()), new DenseAssembly.Settings(3, 64,
                        window));
            }
            assertThat(stats.peakWindowBytes()).as("window %d", window).isLessThanOrEqualTo(window).isPositive();
            assertThat(stats.files()).isEqualTo(expected.size());
            // a piece per window byte at most, and every tensor byte written once
            assertThat(stats.pieces()).isGreaterThanOrEqualTo(stats.bytes() / window);
            assertThat(stats.bytes()).isEqualTo(tensorBytes);
            assertSameFiles(written(dir), expected);
        }
        assertReadersGone();
    }

    static Stream<Arguments> corruptions() throws IOException {
        Configuration conf = new Configuration();
        FileSystem checksummed = FileSystem.newInstance(URI.create("file:///"), conf);
        return Stream.of(Arguments.of("one byte flipped, raw local", raw(), true),
                Arguments.of("truncated, raw local", raw(), false),
                Arguments.of("one byte flipped, checksummed local", checksummed, true),
                Arguments.of("truncated, checksummed local", checksummed, false),
                Arguments.of("one byte flipped, stream path", streamOnly(), true),
                Arguments.of("truncated, stream path", streamOnly(), false));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("corruptions")
    void aCorruptStagedShardFailsTheAssemblyAndPublishesNothing(String name, FileSystem fs, boolean flip)
            throws Exception {
        Fixture f = fixture(fs);
        // a shard in the middle of the output: layer 2's down projection, its largest shard
        ShardRecord victim = f.log().committedShards().get("model.layers.2.mlp.down_proj.weight").stream()
                .max(java.util.Comparator.comparingLong(ShardRecord::bytes)).orElseThrow();
        assertThat(victim.bytes()).isGreaterThan(10);
        java.nio.file.Path file = local(f.log().shardPath(victim));
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            if (flip) {
                raf.seek(victim.bytes() / 2);
                int b = raf.read();
                raf.seek(victim.bytes() / 2);
                raf.write(b ^ 0x10);
            } else {
                raf.setLength(victim.bytes() - 3);
            }
        }
        String outputFile;
        try (ShardedCheckpoint in = ShardedCheckpoint.open(f.model())) {
            outputFile = in.fileOf(victim.tensor());
            assertThatThrownBy(() -> OutputAssembler.assembleDense(in, f.log(), fs, f.out(),
                    JsonNodeFactory.instance.objectNode(), new DenseAssembly.Settings(3, 50, 400)))
                    .isInstanceOf(CorruptCommitException.class)
                    .hasMessageContaining("tensor " + victim.tensor())
                    .hasMessageContaining(victim.file())
                    .hasMessageContaining("rerun with --resume");
        }
        // nothing in the output directory but the staging and assembling areas, and the assembling
        // area lacks the file of the corrupt tensor (its temporary file deleted too)
        try (Stream<java.nio.file.Path> s = Files.list(local(f.out()))) {
            assertThat(s.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder(CommitLog.STAGING,
                    "_assembling");
        }
        java.nio.file.Path hf = local(f.out()).resolve("_assembling").resolve("hf");
        try (Stream<java.nio.file.Path> s = Files.list(hf)) {
            assertThat(s.map(p -> p.getFileName().toString()))
                    .noneMatch(n -> n.contains(outputFile))
                    .noneMatch(n -> n.endsWith(".tmp"));
        }
        assertReadersGone();
    }

    @Test
    void aFileThatCannotBePublishedStopsTheAssemblyAndLeavesNoTemporaryFile() throws Exception {
        FileSystem fs = raw();
        Fixture f = fixture(fs);
        String first;
        try (ShardedCheckpoint in = ShardedCheckpoint.open(f.model())) {
            first = in.files().get(0);
        }
        // renames into the first output file fail, as on a full or read-only target
        RawLocalFileSystem failing = new RawLocalFileSystem() {
            @Override
            public boolean rename(Path src, Path dst) throws IOException {
                return !dst.getName().equals(first) && super.rename(src, dst);
            }
        };
        failing.initialize(URI.create("file:///"), new Configuration());
        java.nio.file.Path dir = Files.createDirectories(tmp.resolve("failing"));
        try (ShardedCheckpoint in = ShardedCheckpoint.open(f.model())) {
            assertThatThrownBy(() -> DenseAssembly.write(in, f.log(), failing, new Path(dir.toUri()),
                    new DenseAssembly.Settings(2, 64, 4096)))
                    .isInstanceOf(java.io.UncheckedIOException.class)
                    .hasMessageContaining(first);
        }
        // the first file was not published, and the second (written while the first was closing)
        // was discarded instead of closed
        try (Stream<java.nio.file.Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString()).toList()).isEmpty();
        }
        assertReadersGone();
    }

    static Stream<Arguments> paths() throws IOException {
        FileSystem checksummed = FileSystem.newInstance(URI.create("file:///"), new Configuration());
        return Stream.of(
                Arguments.of("positional, raw local, 4 threads, 16-byte pieces", raw(), true,
                        new DenseAssembly.Settings(4, 16, 1 << 20)),
                Arguments.of("positional, checksummed local, 3 threads, 40-byte pieces, 100-byte window",
                        checksummed, true, new DenseAssembly.Settings(3, 40, 100)),
                Arguments.of("positional, raw local, 1 thread, default sizes", raw(), true,
                        new DenseAssembly.Settings(1, DenseAssembly.Settings.CHUNK_BYTES,
                                DenseAssembly.Settings.WINDOW_BYTES)),
                Arguments.of("stream path, 3 readers, 16-byte pieces", streamOnly(), false,
                        new DenseAssembly.Settings(3, 16, 1 << 20)));
    }

    /**
     * Both output paths, through {@link DenseAssembly#write}'s choice: several files, each tensor in
     * many small pieces written by several threads at once, give the hand-built files; the window
     * bounds the bytes held; the positional path leaves no Hadoop {@code .crc} and no temporary file.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("paths")
    void bothPathsWriteTheHandBuiltFilesFromManyRangesAtOnce(String name, FileSystem fs, boolean positional,
                                                              DenseAssembly.Settings settings) throws Exception {
        Fixture f = fixture(fs);
        Map<String, byte[]> expected = expected(f);
        assertThat(expected).hasSizeGreaterThanOrEqualTo(3);
        java.nio.file.Path dir = Files.createDirectories(tmp.resolve("paths"));
        Path out = new Path(dir.toUri());
        assertThat(DenseAssembly.localDirectory(fs, out)).as("recognised as local")
                .isEqualTo(positional ? java.util.Optional.of(dir) : java.util.Optional.empty());
        fs.setWriteChecksum(false); // as PruneJob does; the positional path ignores it either way
        DenseAssembly.Stats stats;
        try (ShardedCheckpoint in = ShardedCheckpoint.open(f.model())) {
            stats = DenseAssembly.write(in, f.log(), fs, out, settings);
        }
        assertThat(stats.files()).isEqualTo(expected.size());
        assertThat(stats.peakWindowBytes()).isPositive().isLessThanOrEqualTo(settings.windowBytes());
        try (Stream<java.nio.file.Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString()).toList())
                    .containsExactlyInAnyOrderElementsOf(expected.keySet());
        }
        Map<String, byte[]> got = written(dir);
        for (String file : expected.keySet()) {
            assertThat(got.get(file)).as(file).isEqualTo(expected.get(file));
        }
        assertReadersGone();
    }

    /**
     * The positional path with a read failure in one range of a tensor that was not pruned, in the
     * middle file (the input read through a Hadoop file system that fails positioned reads there):
     * the failure comes out as it was thrown and no file, temporary or published, is left.
     */
    @Test
    void aFailingRangeStopsThePositionalPathAndLeavesNoFile() throws Exception {
        FileSystem fs = raw();
        Fixture f = fixture(fs);
        String victim = "model.layers.2.self_attn.o_proj.weight";
        String file;
        long poison;
        try (ShardedCheckpoint in = ShardedCheckpoint.open(f.model())) {
            file = in.fileOf(victim);
            assertThat(in.files().indexOf(file)).isPositive();
            SafetensorsFile src = in.shard(file);
            poison = src.header().dataSectionOffset() + src.info(victim).dataBegin() + src.info(victim).byteLength() / 2;
        }
        FileSystem failing = failingReads(file, poison);
        java.nio.file.Path dir = Files.createDirectories(tmp.resolve("failing"));
        try (ShardedCheckpoint in = ShardedCheckpoint.open(failing, new Path(f.model().toUri()))) {
            assertThatThrownBy(() -> DenseAssembly.write(in, f.log(), fs, new Path(dir.toUri()),
                    new DenseAssembly.Settings(3, 16, 4096)))
                    .hasStackTraceContaining("injected read failure at byte " + poison);
        }
        try (Stream<java.nio.file.Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString()).toList()).isEmpty();
        }
        assertReadersGone();
    }

    /** A raw local file system whose positioned reads of {@code file} fail when they cover byte {@code poison}. */
    private static FileSystem failingReads(String file, long poison) throws IOException {
        RawLocalFileSystem fs = new RawLocalFileSystem() {
            @Override
            public org.apache.hadoop.fs.FSDataInputStream open(Path p, int bufferSize) throws IOException {
                org.apache.hadoop.fs.FSDataInputStream in = super.open(p, bufferSize);
                if (!p.getName().equals(file)) {
                    return in;
                }
                return new org.apache.hadoop.fs.FSDataInputStream(new org.apache.hadoop.fs.FSInputStream() {
                    @Override
                    public int read(long position, byte[] b, int off, int len) throws IOException {
                        if (position <= poison && poison < position + len) {
                            throw new IOException("injected read failure at byte " + poison);
                        }
                        return in.read(position, b, off, len);
                    }

                    @Override
                    public void seek(long pos) throws IOException {
                        in.seek(pos);
                    }

                    @Override
                    public long getPos() throws IOException {
                        return in.getPos();
                    }

                    @Override
                    public boolean seekToNewSource(long targetPos) {
                        return false;
                    }

                    @Override
                    public int read() throws IOException {
                        return in.read();
                    }

                    @Override
                    public void close() throws IOException {
                        in.close();
                    }
                });
            }
        };
        fs.initialize(URI.create("file:///"), new Configuration());
        return fs;
    }

    /** No reader thread is left (each is joined for up to 10 s first: a pool ends just before its threads). */
    private static void assertReadersGone() throws InterruptedException {
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith(DenseAssembly.THREAD_PREFIX)) {
                t.join(10_000);
            }
        }
        assertThat(Thread.getAllStackTraces().keySet()).noneMatch(t -> t.isAlive()
                && t.getName().startsWith(DenseAssembly.THREAD_PREFIX));
    }
}
