package io.sparkprune.jobs.commit;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.hadoop.fs.ChecksumException;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * The driver's view of a run's staging area: which layers are committed, where tasks write the
 * next layer, the commit itself, and the listing of committed shards for the final assembly. File
 * layout and marker format: see the package documentation and {@link LayerMarker}.
 *
 * <p>Opening ({@link #open}):
 * <ul>
 *   <li>{@link Mode#FRESH}: the staging area must be absent or empty, else
 *       {@link StagingExistsException}; {@code _staging/_RUN.json} (the run fingerprint) is written.</li>
 *   <li>{@link Mode#RESUME} ({@code --resume}): with no staging area, as fresh. Otherwise the
 *       fingerprint in {@code _RUN.json} must equal this run's ({@link RunMismatchException}); every
 *       layer directory with a {@code _COMMITTED} marker is validated (marker parses, names this
 *       layer and fingerprint, every listed file exists with the listed size and, with
 *       {@link Verify#CHECKSUMS}, SHA-256; else {@link CorruptCommitException}); every layer directory
 *       without a marker (a crash between shard writes and the marker) is deleted and reported by
 *       {@link #discardedLayers()}; temp files are deleted.</li>
 * </ul>
 * The fingerprint is the caller's string identifying the run's inputs (for the prune job: a hash of
 * the effective recipe and of the model); it is compared exactly.
 *
 * <p>A layer's life: {@link #stage(int)} (empty directory, handle for tasks) → tasks
 * {@link LayerStaging#writeShard} → {@link #commit(int, Collection, byte[])} (checks the shards are
 * present and complete, writes {@code _metrics.json}, then the marker: temp, sync, rename). The
 * job assembles the output (each layer once committed, or after the last layer) from
 * {@link #committedShards()} /
 * {@link #readShard(ShardRecord)} (several shards at once) or
 * {@link #transferTensor(String, OutputStream)} and calls {@link #deleteStaging()}.
 *
 * <p>Not thread-safe: the driver's job thread uses it; only the {@link ShardReader}s of different
 * shards ({@link #readShard}) may run on other threads at the same time.
 */
public final class CommitLog {
    /** Name of the staging directory inside the output directory. */
    public static final String STAGING = "_staging";
    /** Run fingerprint file inside the staging directory. */
    public static final String RUN_FILE = "_RUN.json";
    /** Commit marker file inside a layer directory. */
    public static final String MARKER = "_COMMITTED";
    /** Metrics file inside a layer directory. */
    public static final String METRICS = "_metrics.json";
    /** Format tag of {@value #RUN_FILE}. */
    public static final String RUN_FORMAT = "sparkprune.run.v1";

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT)
            .enable(DeserializationFeature.FAIL_ON_MISSING_CREATOR_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_CREATOR_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES);
    private static final Comparator<ShardRecord> SHARD_ORDER = Comparator.comparing(ShardRecord::tensor)
            .thenComparingInt(ShardRecord::index);

    /** How a run starts. */
    public enum Mode {
        /** A new run: the staging area must not hold another run. */
        FRESH,
        /** Continue the run staged in the output directory ({@code --resume}). */
        RESUME
    }

    /** How thoroughly {@link Mode#RESUME} checks committed files. */
    public enum Verify {
        /** Existence and sizes only (cheap). */
        SIZES,
        /** Sizes and SHA-256 of every file (reads all committed data once). */
        CHECKSUMS
    }

    /**
     * Content of {@value #RUN_FILE}.
     *
     * @param format {@value #RUN_FORMAT}
     * @param fingerprint the run fingerprint
     */
    record RunInfo(String format, String fingerprint) {
    }

    private final FileSystem fs;
    private final Path staging;
    private final String fingerprint;
    private final TreeMap<Integer, LayerMarker> committed;
    private final List<Integer> discarded;

    private CommitLog(FileSystem fs, Path staging, String fingerprint, TreeMap<Integer, LayerMarker> committed,
            List<Integer> discarded) {
        this.fs = fs;
        this.staging = staging;
        this.fingerprint = fingerprint;
        this.committed = committed;
        this.discarded = List.copyOf(discarded);
    }

    /**
     * Opens (and, for a new run, creates) the staging area of {@code outputDir}.
     *
     * @param fs the output directory's file system
     * @param outputDir the job's output directory
     * @param fingerprint identifies the run's inputs (recipe and model); non-empty
     * @param mode {@link Mode#FRESH} or {@link Mode#RESUME}
     * @param verify how to check committed layers on resume
     * @return the log
     * @throws StagingExistsException if {@code FRESH} and a staging area with content exists
     * @throws RunMismatchException if {@code RESUME} and the staged run has another fingerprint
     * @throws CorruptCommitException if {@code RESUME} and a committed layer fails validation
     * @throws IOException on file system errors
     */
    public static CommitLog open(FileSystem fs, Path outputDir, String fingerprint, Mode mode, Verify verify)
            throws IOException {
        Objects.requireNonNull(mode, "mode");
        Objects.requireNonNull(verify, "verify");
        if (fingerprint == null || fingerprint.isEmpty()) {
            throw new IllegalArgumentException("the run fingerprint must be a non-empty string");
        }
        Path staging = new Path(fs.makeQualified(outputDir), STAGING);
        FileStatus[] content = fs.exists(staging) ? fs.listStatus(staging) : new FileStatus[0];
        if (content.length > 0 && mode == Mode.FRESH) {
            throw new StagingExistsException("output directory " + outputDir + " already holds the staging area "
                    + "of a run (" + staging + ", " + content.length + " entries); pass --resume to continue that "
                    + "run, or delete " + staging + " (or choose another output directory) to start over");
        }
        Path runFile = new Path(staging, RUN_FILE);
        if (content.length == 0 || (!fs.exists(runFile) && !anyMarker(fs, content))) {
            // Nothing committed yet (or a crash before _RUN.json was written): start clean.
            for (FileStatus st : content) {
                fs.delete(st.getPath(), true);
            }
            fs.mkdirs(staging);
            Durable.replaceAtomically(fs, runFile, JSON.writeValueAsBytes(new RunInfo(RUN_FORMAT, fingerprint)));
            return new CommitLog(fs, staging, fingerprint, new TreeMap<>(), List.of());
        }
        RunInfo run = readRunInfo(fs, runFile, staging);
        if (!fingerprint.equals(run.fingerprint())) {
            throw new RunMismatchException("cannot resume the run staged in " + staging + ": it was started with "
                    + "fingerprint " + run.fingerprint() + " but this run's fingerprint is " + fingerprint
                    + " (the recipe or the model differ); resume with the original recipe and model, or start "
                    + "over without --resume after deleting " + staging);
        }
        TreeMap<Integer, LayerMarker> committed = new TreeMap<>();
        List<Integer> discarded = new ArrayList<>();
        for (FileStatus st : content) {
            String name = st.getPath().getName();
            int layer = ShardNames.parseLayerDir(name);
            if (st.isDirectory() && layer >= 0) {
                Path marker = new Path(st.getPath(), MARKER);
                if (fs.exists(marker)) {
                    committed.put(layer, validate(fs, st.getPath(), layer, fingerprint, verify));
                } else {
                    fs.delete(st.getPath(), true);
                    discarded.add(layer);
                }
            } else if (name.startsWith(ShardNames.TEMP_PREFIX)) {
                fs.delete(st.getPath(), true);
            }
        }
        Durable.syncDirectory(fs, staging);
        Collections.sort(discarded);
        return new CommitLog(fs, staging, fingerprint, committed, discarded);
    }

    private static boolean anyMarker(FileSystem fs, FileStatus[] content) throws IOException {
        for (FileStatus st : content) {
            if (st.isDirectory() && fs.exists(new Path(st.getPath(), MARKER))) {
                return true;
            }
        }
        return false;
    }

    private static RunInfo readRunInfo(FileSystem fs, Path runFile, Path staging) throws IOException {
        try (InputStream in = fs.open(runFile)) {
            RunInfo run = JSON.readValue(in, RunInfo.class);
            if (!RUN_FORMAT.equals(run.format())) {
                throw new CorruptCommitException(runFile + " has format '" + run.format() + "', expected '"
                        + RUN_FORMAT + "'; it was written by another version; delete " + staging + " to start over");
            }
            return run;
        } catch (FileNotFoundException e) {
            throw new CorruptCommitException(staging + " has committed layers but no " + RUN_FILE + " (the run "
                    + "fingerprint); delete " + staging + " to start over", e);
        } catch (JsonProcessingException | ChecksumException e) {
            throw new CorruptCommitException(runFile + " is not a valid run file (" + e.getMessage()
                    + "); delete " + staging + " to start over", e);
        }
    }

    private static LayerMarker validate(FileSystem fs, Path dir, int layer, String fingerprint, Verify verify)
            throws IOException {
        Path markerPath = new Path(dir, MARKER);
        String fix = "; delete " + dir + " to recompute layer " + layer + " with --resume";
        LayerMarker marker;
        try (InputStream in = fs.open(markerPath)) {
            marker = JSON.readValue(in, LayerMarker.class);
        } catch (JsonProcessingException | ChecksumException e) {
            throw new CorruptCommitException(markerPath + " is not a valid commit marker (" + e.getMessage() + ")"
                    + fix, e);
        }
        if (!LayerMarker.FORMAT.equals(marker.format())) {
            throw new CorruptCommitException(markerPath + " has format '" + marker.format() + "', expected '"
                    + LayerMarker.FORMAT + "'" + fix);
        }
        if (marker.layer() != layer) {
            throw new CorruptCommitException(markerPath + " is the marker of layer " + marker.layer()
                    + " but lies in the directory of layer " + layer + fix);
        }
        if (!fingerprint.equals(marker.fingerprint())) {
            throw new RunMismatchException(markerPath + " was committed by a run with fingerprint "
                    + marker.fingerprint() + ", not this run's " + fingerprint + fix);
        }
        try {
            checkComplete(marker.shards(), layer);
        } catch (IllegalArgumentException e) {
            throw new CorruptCommitException(markerPath + ": " + e.getMessage() + fix, e);
        }
        List<FileDigest> files = new ArrayList<>();
        for (ShardRecord s : marker.shards()) {
            files.add(new FileDigest(s.file(), s.bytes(), s.sha256()));
        }
        files.add(marker.metrics());
        for (FileDigest f : files) {
            Path p = new Path(dir, f.file());
            FileStatus st;
            try {
                st = fs.getFileStatus(p);
            } catch (FileNotFoundException e) {
                throw new CorruptCommitException(p + " is listed in " + markerPath + " but missing" + fix, e);
            }
            if (st.getLen() != f.bytes()) {
                throw new CorruptCommitException(p + " has " + st.getLen() + " bytes but " + markerPath + " lists "
                        + f.bytes() + fix);
            }
            if (verify == Verify.CHECKSUMS) {
                String sha;
                try {
                    sha = Durable.sha256(fs, p);
                } catch (ChecksumException e) {
                    throw new CorruptCommitException(p + " fails the file system's checksum (" + e.getMessage()
                            + ")" + fix, e);
                }
                if (!sha.equals(f.sha256())) {
                    throw new CorruptCommitException(p + " has SHA-256 " + sha + " but " + markerPath + " lists "
                            + f.sha256() + " (the file was modified after the commit)" + fix);
                }
            }
        }
        deleteTempFiles(fs, dir);
        return marker;
    }

    /**
     * Checks that records belong to {@code layer}, are unique, and cover each tensor's shards 0 to
     * count - 1 with one count per tensor.
     */
    private static void checkComplete(Collection<ShardRecord> shards, int layer) {
        Map<String, Set<Integer>> seen = new HashMap<>();
        Map<String, Integer> counts = new HashMap<>();
        for (ShardRecord s : shards) {
            if (s.layer() != layer) {
                throw new IllegalArgumentException("shard " + s.file() + " belongs to layer " + s.layer()
                        + ", not layer " + layer);
            }
            Integer prev = counts.putIfAbsent(s.tensor(), s.count());
            if (prev != null && prev != s.count()) {
                throw new IllegalArgumentException("tensor " + s.tensor() + " has shards of " + prev + " and of "
                        + s.count() + " shards");
            }
            if (!seen.computeIfAbsent(s.tensor(), t -> new HashSet<>()).add(s.index())) {
                throw new IllegalArgumentException("shard " + s.index() + " of tensor " + s.tensor()
                        + " is listed twice");
            }
        }
        for (Map.Entry<String, Set<Integer>> e : seen.entrySet()) {
            int count = counts.get(e.getKey());
            if (e.getValue().size() != count) {
                Set<Integer> missing = new TreeSet<>();
                for (int i = 0; i < count; i++) {
                    if (!e.getValue().contains(i)) {
                        missing.add(i);
                    }
                }
                throw new IllegalArgumentException("tensor " + e.getKey() + " lacks shards " + missing + " of "
                        + count);
            }
        }
    }

    private static void deleteTempFiles(FileSystem fs, Path dir) throws IOException {
        for (FileStatus st : fs.listStatus(dir)) {
            if (st.getPath().getName().startsWith(ShardNames.TEMP_PREFIX)) {
                Durable.deleteQuietly(fs, st.getPath());
            }
        }
    }

    /** @return the staging directory, {@code <output>/_staging}, fully qualified */
    public Path stagingDir() {
        return staging;
    }

    /** @return the run fingerprint */
    public String fingerprint() {
        return fingerprint;
    }

    /** @return indices of committed layers, ascending */
    public SortedSet<Integer> committedLayers() {
        return Collections.unmodifiableSortedSet(new TreeSet<>(committed.keySet()));
    }

    /**
     * @return the smallest layer index that is not committed (0 for a new run); in sequential mode the
     *     layer to resume from
     */
    public int firstUncommittedLayer() {
        int i = 0;
        while (committed.containsKey(i)) {
            i++;
        }
        return i;
    }

    /**
     * @return layers whose partial staging directories (shards without a marker) {@link #open}
     *     deleted, ascending; empty for a new run
     */
    public List<Integer> discardedLayers() {
        return discarded;
    }

    /**
     * @param layer a layer index
     * @return whether it is committed
     */
    public boolean isCommitted(int layer) {
        return committed.containsKey(layer);
    }

    /**
     * @param layer a committed layer
     * @return its marker
     * @throws IllegalArgumentException if the layer is not committed
     */
    public LayerMarker marker(int layer) {
        LayerMarker m = committed.get(layer);
        if (m == null) {
            throw new IllegalArgumentException("layer " + layer + " is not committed; committed: "
                    + committed.keySet());
        }
        return m;
    }

    /**
     * @param layer a layer index
     * @return {@code <staging>/layer-NNNNN}
     */
    public Path layerDir(int layer) {
        return new Path(staging, ShardNames.layerDir(layer));
    }

    /**
     * Prepares an empty staging directory for {@code layer} (deleting what an earlier, failed attempt
     * of this run left there) and returns the handle tasks write to.
     *
     * @param layer a layer index that is not committed
     * @return the handle to ship to tasks
     * @throws IllegalStateException if the layer is already committed
     * @throws IOException on file system errors
     */
    public LayerStaging stage(int layer) throws IOException {
        if (committed.containsKey(layer)) {
            throw new IllegalStateException("layer " + layer + " is already committed in " + staging);
        }
        Path dir = layerDir(layer);
        if (fs.exists(dir)) {
            fs.delete(dir, true);
        }
        if (!fs.mkdirs(dir)) {
            throw new IOException("could not create " + dir);
        }
        Durable.syncDirectory(fs, staging);
        return new LayerStaging(layer, dir.toString());
    }

    /**
     * Commits a layer: checks that every record's file is present in the layer directory with the
     * recorded size and that each tensor's shards are complete, deletes leftover temp files, writes
     * {@value #METRICS} and finally the {@value #MARKER} marker (temp, sync, rename).
     *
     * @param layer the layer, staged with {@link #stage(int)}
     * @param shards every shard record the layer's tasks returned (one per shard; from successful
     *     attempts)
     * @param metricsJson the layer's metrics document (the job's per-tensor metrics), stored as given
     * @return the marker written
     * @throws IllegalStateException if the layer is already committed, or a record's file is missing
     *     or has another size
     * @throws IllegalArgumentException if records belong to another layer, repeat, or leave a tensor
     *     incomplete
     * @throws IOException on file system errors
     */
    public LayerMarker commit(int layer, Collection<ShardRecord> shards, byte[] metricsJson) throws IOException {
        if (committed.containsKey(layer)) {
            throw new IllegalStateException("layer " + layer + " is already committed in " + staging);
        }
        Objects.requireNonNull(metricsJson, "metricsJson");
        checkComplete(shards, layer);
        Path dir = layerDir(layer);
        Map<String, Long> sizes = new HashMap<>();
        for (FileStatus st : fs.listStatus(dir)) {
            sizes.put(st.getPath().getName(), st.getLen());
        }
        for (ShardRecord s : shards) {
            Long len = sizes.get(s.file());
            if (len == null || len != s.bytes()) {
                throw new IllegalStateException("cannot commit layer " + layer + ": shard " + new Path(dir, s.file())
                        + (len == null ? " is missing" : " has " + len + " bytes, the task reported " + s.bytes()));
            }
        }
        deleteTempFiles(fs, dir);
        Durable.Written metrics = Durable.replaceAtomically(fs, new Path(dir, METRICS), metricsJson);
        List<ShardRecord> sorted = new ArrayList<>(shards);
        sorted.sort(SHARD_ORDER);
        LayerMarker marker = new LayerMarker(LayerMarker.FORMAT, layer, fingerprint, sorted,
                new FileDigest(METRICS, metrics.bytes(), metrics.sha256()));
        byte[] json = JSON.writeValueAsBytes(marker);
        Path target = new Path(dir, MARKER);
        Path temp = Durable.tempSibling(target);
        Durable.writeTemp(fs, temp, out -> out.write(json));
        if (!Durable.rename(fs, temp, target)) {
            Durable.deleteQuietly(fs, temp);
            throw new IOException("could not rename " + temp + " to " + target);
        }
        committed.put(layer, marker);
        return marker;
    }

    /**
     * @param layer a committed layer
     * @return the bytes of its {@value #METRICS}
     * @throws IllegalArgumentException if the layer is not committed
     * @throws IOException on read failure
     */
    public byte[] readMetrics(int layer) throws IOException {
        marker(layer);
        try (InputStream in = fs.open(new Path(layerDir(layer), METRICS))) {
            return in.readAllBytes();
        }
    }

    /**
     * Every committed shard, grouped by tensor (sorted by name) and ordered by shard index.
     *
     * @return tensor name to its shards, index 0 first
     * @throws CorruptCommitException if a tensor appears in two committed layers
     */
    public SortedMap<String, List<ShardRecord>> committedShards() {
        TreeMap<String, List<ShardRecord>> out = new TreeMap<>();
        Map<String, Integer> layerOf = new HashMap<>();
        for (LayerMarker m : committed.values()) {
            for (ShardRecord s : m.shards()) {
                Integer other = layerOf.putIfAbsent(s.tensor(), m.layer());
                if (other != null && other != m.layer()) {
                    throw new CorruptCommitException("tensor " + s.tensor() + " is committed in layer " + other
                            + " and in layer " + m.layer() + " of " + staging + "; delete one of the layer "
                            + "directories to recompute it with --resume");
                }
                out.computeIfAbsent(s.tensor(), t -> new ArrayList<>()).add(s);
            }
        }
        out.values().forEach(l -> l.sort(Comparator.comparingInt(ShardRecord::index)));
        return Collections.unmodifiableSortedMap(out);
    }

    /**
     * @param shard a committed shard
     * @return its file
     */
    public Path shardPath(ShardRecord shard) {
        return new Path(layerDir(shard.layer()), shard.file());
    }

    /**
     * @param shard a committed shard
     * @return an open stream of its bytes
     * @throws IOException on failure
     */
    public FSDataInputStream openShard(ShardRecord shard) throws IOException {
        return fs.open(shardPath(shard));
    }

    /**
     * Streams a tensor's committed bytes (its shards in index order) to {@code out}, checking each
     * shard's size and SHA-256 against the marker on the way. On a mismatch part of the tensor has
     * already been written, so write to a temp file and rename only on success.
     *
     * @param tensor a committed tensor
     * @param out where to write; not closed
     * @return bytes written
     * @throws IllegalArgumentException if the tensor is not committed
     * @throws CorruptCommitException if a shard's size or SHA-256 differs from the marker
     * @throws IOException on read or write failure
     */
    public long transferTensor(String tensor, OutputStream out) throws IOException {
        List<ShardRecord> shards = committedShards().get(tensor);
        if (shards == null) {
            throw new IllegalArgumentException("tensor " + tensor + " is not committed in " + staging);
        }
        long total = 0;
        byte[] buf = new byte[1 << 16];
        for (ShardRecord s : shards) {
            try (ShardReader in = readShard(s)) {
                for (int r; (r = in.read(buf, 0, buf.length)) > 0;) {
                    out.write(buf, 0, r);
                }
                total += in.verify();
            }
        }
        return total;
    }

    /**
     * Opens one committed shard for reading its bytes in order while their SHA-256 is computed;
     * {@link ShardReader#verify()} then checks size and digest against the shard's record. This is
     * what {@link #transferTensor} does per shard, for callers that read several shards at once:
     * each reader belongs to one thread, and readers of different shards may run on different
     * threads at the same time (they only read; the log must not be changed meanwhile).
     *
     * @param shard a committed shard (from {@link #committedShards()})
     * @return the open reader; close it
     * @throws IOException when the file cannot be opened
     */
    public ShardReader readShard(ShardRecord shard) throws IOException {
        return new ShardReader(shard, openShard(shard));
    }

    /**
     * One committed shard read in order, its SHA-256 computed over the bytes read. Not
     * thread-safe; see {@link #readShard}.
     */
    public final class ShardReader implements java.io.Closeable {
        private final ShardRecord shard;
        private final InputStream in;
        private final MessageDigest sha = Durable.sha256();
        private long read;

        private ShardReader(ShardRecord shard, InputStream in) {
            this.shard = shard;
            this.in = in;
        }

        /** @return the shard being read */
        public ShardRecord shard() {
            return shard;
        }

        /** @return bytes read so far */
        public long position() {
            return read;
        }

        /**
         * Reads up to {@code len} bytes into {@code b[off, off + len)}, fewer only at the end of
         * the file, and adds them to the digest.
         *
         * @param b destination
         * @param off first index written
         * @param len bytes wanted, &gt;= 0
         * @return bytes read, {@code 0 <= n <= len}; less than {@code len} only at the end of the file
         * @throws CorruptCommitException when the file system's own checksum fails
         * @throws IOException on read failure
         */
        public int read(byte[] b, int off, int len) throws IOException {
            int n = 0;
            try {
                while (n < len) {
                    // at most 1 MiB a call: a local stream copies each call through a native buffer of its size
                    int r = in.read(b, off + n, Math.min(len - n, 1 << 20));
                    if (r < 0) {
                        break;
                    }
                    n += r;
                }
            } catch (ChecksumException e) {
                throw checksumFailure(e);
            }
            sha.update(b, off, n);
            read += n;
            return n;
        }

        /**
         * Reads the rest of the file (into the digest only), then compares the size read and the
         * SHA-256 with the shard's record.
         *
         * @return the shard's size in bytes
         * @throws CorruptCommitException if size or SHA-256 differ from the record (the message
         *     names the file, both values and the fix), or the file system's checksum fails
         * @throws IOException on read failure
         */
        public long verify() throws IOException {
            byte[] rest = new byte[1 << 16];
            while (read(rest, 0, rest.length) > 0) {
                // digest only
            }
            String got = HexFormat.of().formatHex(sha.digest());
            if (read != shard.bytes() || !got.equals(shard.sha256())) {
                throw new CorruptCommitException(label() + " has " + read + " bytes, SHA-256 " + got
                        + ", but its marker lists " + shard.bytes() + " bytes, SHA-256 " + shard.sha256()
                        + "; delete " + layerDir(shard.layer()) + " and rerun with --resume");
            }
            return read;
        }

        private CorruptCommitException checksumFailure(ChecksumException e) {
            return new CorruptCommitException(label() + " fails the file system's checksum ("
                    + e.getMessage() + "); delete " + layerDir(shard.layer()) + " and rerun with --resume", e);
        }

        /** @return names the tensor, the shard and its file, for messages */
        private String label() {
            return "tensor " + shard.tensor() + ", staged shard " + shard.index() + " of " + shard.count() + ": "
                    + shardPath(shard);
        }

        /** Closes the file. */
        @Override
        public void close() throws IOException {
            in.close();
        }
    }

    /**
     * Deletes the whole staging area; call after the output is assembled.
     *
     * @throws IOException on failure
     */
    public void deleteStaging() throws IOException {
        fs.delete(staging, true);
    }
}
