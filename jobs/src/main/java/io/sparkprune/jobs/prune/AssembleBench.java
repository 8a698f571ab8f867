package io.sparkprune.jobs.prune;

import io.sparkprune.jobs.commit.CommitLog;
import io.sparkprune.jobs.commit.LayerStaging;
import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.kernels.DType;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Throughput of the dense output assembly ({@code sparkprune bench assemble}): the sequential path
 * the job used before issue 9's assembly work ({@link DenseAssembly#writeSequential}, 16 MiB copy
 * chunks) against the pipeline's stream path ({@link DenseAssembly#writeStreamed}: parallel readers,
 * one writer in output order, what a non-local output gets) and its positional path
 * ({@link DenseAssembly#writePositional}: the pool's threads write their pieces at their offsets,
 * what the job's local output gets), on a synthetic checkpoint of
 * Llama-shaped bf16 layers (q, k, v, o: hidden x hidden; gate, up: intermediate x hidden; down:
 * hidden x intermediate; two norms) plus embeddings and head (vocab x hidden), every projection
 * staged as pruned (new random bytes cut into {@code --shards} shards, committed through
 * {@link CommitLog}), the norms, embeddings and head copied from the input.
 *
 * <p>As in the job: the input is opened like {@code ShardedCheckpoint.open(localPath)} (memory
 * mapped), staging and output go through Hadoop's checksummed local file system (staged shards
 * have {@code .crc} files, checked when read; the output is written with checksums off, as
 * {@code PruneJob} sets). All files are freshly written, so they are in the page cache (as on the
 * job's driver right after the last layer); the output is fsynced at each file's close. Each mode
 * runs {@code --repeat} times, in turn; every output is compared byte for byte with the first
 * sequential one. MB/s = tensor bytes (10^6) / wall seconds of the assembly call; process CPU s =
 * the CPU time (user and system, every thread) the call took, which does not depend on how many
 * cores are free.
 *
 * <p>Usage: {@code AssembleBench [--layers L] [--hidden H] [--intermediate I] [--vocab V]
 * [--shards S] [--repeat R] [--readers N] [--chunk-mib C] [--window-mib W] [--dir D] [--raw]};
 * defaults: Llama-2-7B shapes (4096, 11008, 32000), 2 layers (about 1.3 GB), 4 shards per tensor,
 * 3 repeats, {@link DenseAssembly.Settings#defaults()}, a temporary directory deleted at the end.
 * {@code --raw} uses Hadoop's raw local file system (no {@code .crc} files) instead.
 */
public final class AssembleBench {
    private static final int OLD_CHUNK = 16 << 20;

    private AssembleBench() {
    }

    /**
     * @param args see the class comment
     * @throws Exception on I/O failure
     */
    public static void main(String[] args) throws Exception {
        int layers = 2;
        int hidden = 4096;
        int inter = 11008;
        int vocab = 32000;
        int shards = 4;
        int repeat = 3;
        boolean raw = false;
        java.nio.file.Path base = null;
        DenseAssembly.Settings d = DenseAssembly.Settings.defaults();
        int readers = d.readers();
        int chunk = d.chunkBytes();
        long window = d.windowBytes();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--layers" -> layers = Integer.parseInt(value(args, ++i));
                case "--hidden" -> hidden = Integer.parseInt(value(args, ++i));
                case "--intermediate" -> inter = Integer.parseInt(value(args, ++i));
                case "--vocab" -> vocab = Integer.parseInt(value(args, ++i));
                case "--shards" -> shards = Integer.parseInt(value(args, ++i));
                case "--repeat" -> repeat = Integer.parseInt(value(args, ++i));
                case "--readers" -> readers = Integer.parseInt(value(args, ++i));
                case "--chunk-mib" -> chunk = Integer.parseInt(value(args, ++i)) << 20;
                case "--window-mib" -> window = Long.parseLong(value(args, ++i)) << 20;
                case "--dir" -> base = java.nio.file.Path.of(value(args, ++i));
                case "--raw" -> raw = true;
                default -> throw new IllegalArgumentException("unknown option " + args[i] + "; usage: AssembleBench "
                        + "[--layers L] [--hidden H] [--intermediate I] [--vocab V] [--shards S] [--repeat R] "
                        + "[--readers N] [--chunk-mib C] [--window-mib W] [--dir D] [--raw]");
            }
        }
        DenseAssembly.Settings settings = new DenseAssembly.Settings(readers, chunk, window);
        boolean temp = base == null;
        java.nio.file.Path dir = temp ? Files.createTempDirectory("assemble-bench") : Files.createDirectories(base);
        Configuration conf = new Configuration();
        FileSystem fs;
        if (raw) {
            fs = new org.apache.hadoop.fs.RawLocalFileSystem();
            fs.initialize(URI.create("file:///"), conf);
        } else {
            fs = FileSystem.newInstance(URI.create("file:///"), conf);
        }
        try {
            run(dir, fs, layers, hidden, inter, vocab, shards, repeat, settings);
        } finally {
            fs.close();
            if (temp) {
                deleteTree(dir);
            }
        }
    }

    private static void run(java.nio.file.Path dir, FileSystem fs, int layers, int hidden, int inter, int vocab,
                            int shards, int repeat, DenseAssembly.Settings settings) throws IOException {
        System.out.printf(Locale.ROOT, "# assembly benchmark: %d processors, load average %s, %s %s, Java %s%n",
                Runtime.getRuntime().availableProcessors(), loadAverage(), System.getProperty("os.name"),
                System.getProperty("os.arch"), System.getProperty("java.version"));
        java.nio.file.Path model = dir.resolve("model");
        Path out = new Path(dir.resolve("out").toUri());
        long t0 = System.nanoTime();
        Map<String, long[]> shapes = shapes(layers, hidden, inter, vocab);
        long tensorBytes = writeModel(model, shapes);
        CommitLog log = stage(fs, out, shapes, layers, shards);
        System.out.printf(Locale.ROOT, "# %d layers of %d x %d, vocab %d: %.1f MB of tensors in %d files, "
                        + "%d tensors staged as pruned in %d shards each (%s file system); set up in %.1f s%n",
                layers, hidden, inter, vocab, tensorBytes / 1e6, Files.list(model).filter(p -> p.toString()
                        .endsWith(".safetensors")).count(), log.committedShards().size(), shards,
                fs.getClass().getSimpleName(), (System.nanoTime() - t0) / 1e9);
        System.out.printf(Locale.ROOT, "# pipeline: %d threads, %d MiB pieces, %d MiB window%n", settings.readers(),
                settings.chunk() >> 20, settings.windowBytes() >> 20);
        fs.setWriteChecksum(false); // as PruneJob does before assembling
        System.out.println("| path | run | seconds | MB/s | process CPU s | peak window MiB | waiting for pieces s "
                + "| closing s |");
        System.out.println("|---|---|---|---|---|---|---|---|");
        java.nio.file.Path reference = null;
        Map<String, List<Double>> times = new LinkedHashMap<>();
        String[] paths = {"sequential (before)", "stream pipeline", "positional"};
        try (ShardedCheckpoint in = ShardedCheckpoint.open(model)) {
            for (int r = 0; r < repeat; r++) {
                for (int m = 0; m < paths.length; m++) {
                    java.nio.file.Path target = dir.resolve(new String[] {"sequential-", "stream-",
                            "positional-"}[m] + r);
                    Files.createDirectories(target);
                    long cpu = processCpuNanos();
                    long t = System.nanoTime();
                    DenseAssembly.Stats stats = switch (m) {
                        case 0 -> {
                            DenseAssembly.writeSequential(in, log, fs, new Path(target.toUri()), OLD_CHUNK);
                            yield null;
                        }
                        case 1 -> DenseAssembly.writeStreamed(in, log, fs, new Path(target.toUri()), settings);
                        default -> DenseAssembly.writePositional(in, log, target, settings);
                    };
                    double s = (System.nanoTime() - t) / 1e9;
                    double cpuSeconds = (processCpuNanos() - cpu) / 1e9;
                    times.computeIfAbsent(paths[m], k -> new ArrayList<>()).add(s);
                    System.out.printf(Locale.ROOT, "| %s | %d | %.2f | %.0f | %.2f | %s |%n", paths[m], r + 1, s,
                            tensorBytes / 1e6 / s, cpuSeconds, stats == null ? "- | - | -"
                            : String.format(Locale.ROOT, "%.0f | %.2f | %.2f", stats.peakWindowBytes() / 1048576.0,
                            stats.waitSeconds(), stats.closeSeconds()));
                    if (reference == null) {
                        reference = target;
                    } else {
                        compare(reference, target);
                        deleteTree(target);
                    }
                }
            }
        }
        StringBuilder summary = new StringBuilder("# median:");
        double before = median(times.get(paths[0]));
        for (String p : paths) {
            double s = median(times.get(p));
            summary.append(String.format(Locale.ROOT, " %s %.2f s (%.0f MB/s, %.2fx);", p, s, tensorBytes / 1e6 / s,
                    before / s));
        }
        System.out.printf(Locale.ROOT, "%s outputs identical; load average after %s%n", summary, loadAverage());
    }

    private static Map<String, long[]> shapes(int layers, int hidden, int inter, int vocab) {
        Map<String, long[]> m = new LinkedHashMap<>();
        m.put("model.embed_tokens.weight", new long[] {vocab, hidden});
        for (int l = 0; l < layers; l++) {
            String p = "model.layers." + l + ".";
            m.put(p + "input_layernorm.weight", new long[] {hidden});
            for (String t : List.of("q_proj", "k_proj", "v_proj", "o_proj")) {
                m.put(p + "self_attn." + t + ".weight", new long[] {hidden, hidden});
            }
            m.put(p + "post_attention_layernorm.weight", new long[] {hidden});
            m.put(p + "mlp.gate_proj.weight", new long[] {inter, hidden});
            m.put(p + "mlp.up_proj.weight", new long[] {inter, hidden});
            m.put(p + "mlp.down_proj.weight", new long[] {hidden, inter});
        }
        m.put("model.norm.weight", new long[] {hidden});
        m.put("lm_head.weight", new long[] {vocab, hidden});
        return m;
    }

    private static boolean isPruned(String name) {
        return name.contains("_proj.");
    }

    /** Writes the input checkpoint (files of at most 1 GB of tensors) with random bf16 bytes; @return tensor bytes */
    private static long writeModel(java.nio.file.Path model, Map<String, long[]> shapes) {
        SplittableRandom rnd = new SplittableRandom(9);
        long total = 0;
        try (ShardedCheckpointWriter w = ShardedCheckpointWriter.create(model, 1_000_000_000L)) {
            for (Map.Entry<String, long[]> e : shapes.entrySet()) {
                w.declare(e.getKey(), DType.BF16, e.getValue());
            }
            w.metadata(Map.of("format", "pt"));
            w.planShards();
            for (Map.Entry<String, long[]> e : shapes.entrySet()) {
                long bytes = 2 * Arrays.stream(e.getValue()).reduce(1, (a, b) -> a * b);
                for (long off = 0; off < bytes; off += OLD_CHUNK) {
                    w.write(e.getKey(), random(rnd, (int) Math.min(OLD_CHUNK, bytes - off)));
                }
                total += bytes;
            }
        }
        return total;
    }

    /** Stages every projection of each layer as pruned (new random bytes, {@code shards} row blocks) and commits. */
    private static CommitLog stage(FileSystem fs, Path out, Map<String, long[]> shapes, int layers, int shards)
            throws IOException {
        SplittableRandom rnd = new SplittableRandom(10);
        CommitLog log = CommitLog.open(fs, out, "bench", CommitLog.Mode.FRESH, CommitLog.Verify.SIZES);
        for (int l = 0; l < layers; l++) {
            LayerStaging staging = log.stage(l);
            List<ShardRecord> records = new ArrayList<>();
            String prefix = "model.layers." + l + ".";
            for (Map.Entry<String, long[]> e : shapes.entrySet()) {
                if (!e.getKey().startsWith(prefix) || !isPruned(e.getKey())) {
                    continue;
                }
                long rows = e.getValue()[0];
                long rowBytes = 2 * e.getValue()[1];
                for (int s = 0; s < shards; s++) {
                    long r0 = rows * s / shards;
                    long r1 = rows * (s + 1) / shards;
                    long bytes = (r1 - r0) * rowBytes;
                    records.add(staging.writeShard(fs, e.getKey(), s, shards, o -> {
                        for (long off = 0; off < bytes; off += OLD_CHUNK) {
                            ByteBuffer b = random(rnd, (int) Math.min(OLD_CHUNK, bytes - off));
                            o.write(b.array(), 0, b.remaining());
                        }
                    }));
                }
            }
            log.commit(l, records, "{}".getBytes(StandardCharsets.UTF_8));
        }
        return log;
    }

    private static ByteBuffer random(SplittableRandom rnd, int len) {
        ByteBuffer b = ByteBuffer.allocate(len).order(ByteOrder.LITTLE_ENDIAN);
        while (b.remaining() >= 8) {
            b.putLong(rnd.nextLong());
        }
        while (b.hasRemaining()) {
            b.put((byte) rnd.nextInt());
        }
        return b.flip();
    }

    private static void compare(java.nio.file.Path a, java.nio.file.Path b) throws IOException {
        try (Stream<java.nio.file.Path> s = Files.list(a)) {
            for (java.nio.file.Path f : s.filter(p -> p.toString().endsWith(".safetensors")).toList()) {
                java.nio.file.Path other = b.resolve(f.getFileName());
                long m = Files.mismatch(f, other);
                if (m != -1) {
                    throw new IllegalStateException(other + " differs from " + f + " at byte " + m);
                }
            }
        }
    }

    private static double median(List<Double> v) {
        List<Double> s = new ArrayList<>(v);
        s.sort(null);
        int n = s.size();
        return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
    }

    /** @return CPU time of this process, all threads, user and system, in ns (-1 where the JVM cannot tell) */
    private static long processCpuNanos() {
        return ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os
                ? os.getProcessCpuTime() : -1;
    }

    private static String loadAverage() {
        return String.format(Locale.ROOT, "%.2f", ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
    }

    private static void deleteTree(java.nio.file.Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<java.nio.file.Path> s = Files.walk(dir)) {
            for (java.nio.file.Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a value");
        }
        return args[i];
    }
}
