package io.sparkprune.jobs.prune;

import io.sparkprune.jobs.commit.CommitLog;
import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.pipeline.safetensors.SafetensorsFile;
import io.sparkprune.pipeline.safetensors.SafetensorsRangeWriter;
import io.sparkprune.pipeline.safetensors.SafetensorsWriter;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes the safetensors files of the dense pruned checkpoint (the input's files one for one, same
 * tensor order, header and bytes; each pruned tensor is the concatenation of its committed staged
 * shards, every other tensor is the input's bytes) through a bounded parallel pipeline. Two paths,
 * chosen by {@link #write} from the output file system, give the same bytes:
 *
 * <p><b>Positional path</b> ({@link #writePositional}; the output is on Hadoop's local file system
 * itself, see {@link #localDirectory}): every output file is opened at once as a
 * {@link SafetensorsRangeWriter} (header written, a temporary file beside the target), and a pool
 * of {@link Settings#readers()} threads both reads and writes: one task per staged shard (read in
 * order through {@link CommitLog#readShard}, which computes its SHA-256 on the way; each piece of
 * at most {@link Settings#chunkBytes()} written at its own offset as soon as it is read) and one
 * task per range of another tensor (its bytes written straight from the memory-mapped input to the
 * kernel, no copy in Java). Pieces of any file and any place in a file are written at once, by
 * positional writes ({@code pwrite(2)}) into the temporary files: no thread writes in order, so the
 * write rate grows with the threads instead of being one thread's. Tasks start in output order
 * (with {@link Positional} started before the layers: the pruned tensors' tasks as their layers are
 * handed over), so the files complete one after the other: a file is fsynced (on a closer thread) as soon as its
 * last piece is written, while the next files' pieces are written; only when every file is complete
 * and fsynced are they renamed into the directory, one after the other. (Linux takes a file's inode
 * lock for each buffered write on ext4, xfs and tmpfs, so the kernel's copy into the page cache runs
 * one thread at a time per file; the reading, hashing and Java-side work of the pieces run in
 * parallel, and different files are written at once when their tasks overlap. Tasks stay in output
 * order rather than interleaving the files so that each file's fsync starts while the next ones
 * are written.) Memory: a task reserves a piece's bytes from the window of
 * {@link Settings#windowBytes()} before reading it and gives them back once written (in arrival
 * order: a holder never waits for anything, so this cannot deadlock), so at most that many bytes of
 * tensor data are held, and at most one piece per thread. Verification: a shard's pieces are
 * written to the temporary file while it is read, but its last piece only once the whole file was
 * read and its size and SHA-256 match the shard's record; otherwise the task's
 * {@link io.sparkprune.jobs.commit.CorruptCommitException} stops the tasks not yet started, the
 * caller waits for the running ones, deletes every temporary file (and publishes none) and
 * rethrows it. The default of min(8, processors) threads is the most the driver gives the
 * assembly; each thread hashes (about 1.6 GB/s) and copies its pieces.
 *
 * <p><b>Stream path</b> ({@link #writeStreamed}; any other Hadoop {@link FileSystem}, e.g.
 * {@code hdfs://}, or a subclass of the local ones):
 * <ul>
 *   <li>The output is planned as a sequence of <em>pieces</em> in output order: each staged shard
 *       split into pieces of at most {@link Settings#chunkBytes()}, each other tensor split into byte
 *       ranges of that size.</li>
 *   <li>A pool of {@link Settings#readers()} threads reads them: one task per staged shard (read and
 *       hashed in order, so the parallelism comes from different shards and ranges being read and
 *       hashed at once) and one task per range of another tensor.</li>
 *   <li>The calling thread is the single writer: it takes the pieces strictly in output order and
 *       writes them with {@link SafetensorsWriter} (one file after the other). A written file is
 *       closed (fsync, rename into the directory) on one more thread while the next file is
 *       written; the writer waits for that close before handing over the next file's, and for the
 *       last one before returning.</li>
 *   <li>Memory: every piece reserves the bytes it will hold before it is read, in output order, from
 *       a window of {@link Settings#windowBytes()}; the writer gives them back once written. At most
 *       that many bytes of tensor data are held whatever the model's size (plus a 64 KiB scratch
 *       buffer per reader while it checks a shard's end). Reserving in output order cannot
 *       deadlock: the piece the writer waits for was reserved before any later one, and tasks start
 *       in output order.</li>
 *   <li>The writer hands each piece to the {@link SafetensorsWriter} in slices of at most 1 MiB
 *       (a local Hadoop stream copies every write through a native buffer of its size).</li>
 *   <li>Verification: the last piece of a staged shard is handed to the writer only once the whole
 *       file was read and its size and SHA-256 match the shard's record; otherwise the reader's
 *       {@link io.sparkprune.jobs.commit.CorruptCommitException} takes that piece's place and the
 *       writer throws it on reaching it. So nothing after a corrupt shard is written, the file being
 *       written is aborted (its temporary file deleted) and never published; files already finished
 *       stay in the assembling directory, which nothing publishes and the next attempt deletes.</li>
 * </ul>
 *
 * <p>Both paths: a staged-shard piece of at least a quarter chunk is read into a reused array of
 * one chunk and reserves the whole chunk (so that large arrays are not allocated and collected
 * again and again; a written piece's array goes back to that pool and no longer counts against the
 * window, so the heap holds up to about twice the window); a smaller one, and a range of another
 * tensor, reserves its length. The pool is shut down, and its threads waited for, on every path
 * (never interrupted: an interrupt would close the memory-mapped input's shared channel). Any
 * failure is rethrown as it was thrown ({@code CorruptCommitException}, {@link IOException},
 * {@link RuntimeException}). Staged shards are read with {@code fs.open}, the input through its
 * {@link ShardedCheckpoint}; when the input is memory-mapped (a local checkpoint), a stream-path
 * reader touches each page of its range so that the page faults are taken on the reader threads
 * rather than by the writer; the bytes are the same.
 */
final class DenseAssembly {
    /** Name prefix of the reader threads. */
    static final String THREAD_PREFIX = "sparkprune-assemble-";
    private static final Logger LOG = LoggerFactory.getLogger(DenseAssembly.class);
    private static final int PAGE = 4096;
    private static final int WRITE_SLICE = 1 << 20;
    private static final AtomicInteger POOLS = new AtomicInteger();
    /** Written so that the page touches of {@link RangeTask} are not optimised away. */
    @SuppressWarnings("unused")
    private static volatile int touched;

    /**
     * Pipeline settings.
     *
     * @param readers reader threads, &gt;= 1
     * @param chunkBytes largest piece in bytes, &gt;= 1 (capped at {@code windowBytes})
     * @param windowBytes most bytes of tensor data held at once, &gt;= 1
     */
    record Settings(int readers, int chunkBytes, long windowBytes) {
        /** Default piece size: 8 MiB. */
        static final int CHUNK_BYTES = 8 << 20;
        /** Default window: 256 MiB. */
        static final long WINDOW_BYTES = 256L << 20;

        /**
         * @throws IllegalArgumentException when a value is out of range
         */
        Settings {
            if (readers < 1 || chunkBytes < 1 || windowBytes < 1) {
                throw new IllegalArgumentException("assembly settings need readers, chunk and window >= 1, got "
                        + readers + " readers, " + chunkBytes + " bytes per chunk, window " + windowBytes + " bytes");
            }
        }

        /** @return min(8, available processors) readers, 8 MiB pieces, a 256 MiB window */
        static Settings defaults() {
            return new Settings(Math.min(8, Runtime.getRuntime().availableProcessors()), CHUNK_BYTES, WINDOW_BYTES);
        }

        /** @return the piece size used: {@code min(chunkBytes, windowBytes)} */
        int chunk() {
            return (int) Math.min(chunkBytes, windowBytes);
        }
    }

    private DenseAssembly() {
    }

    /**
     * Writes every safetensors file of {@code in} into {@code dir} (see the class comment): by
     * {@link #writePositional} when {@link #localDirectory} finds {@code dir} on the local file
     * system, else by {@link #writeStreamed}.
     *
     * @param in the input checkpoint
     * @param log the committed run; its {@link CommitLog#committedShards()} are the pruned tensors
     * @param fs the output file system
     * @param dir the (existing) directory to write the files into
     * @param settings the pipeline settings
     * @return what was written and the most window bytes held at once
     * @throws io.sparkprune.jobs.commit.CorruptCommitException when a staged shard's size or SHA-256
     *     differs from its record (the message names tensor, shard file and fix)
     * @throws IllegalArgumentException / IllegalStateException when a pruned tensor's shards do not add
     *     up to its size
     * @throws IOException on read or write failure, or when interrupted
     */
    static Stats write(ShardedCheckpoint in, CommitLog log, FileSystem fs, Path dir, Settings settings)
            throws IOException {
        Optional<java.nio.file.Path> local = localDirectory(fs, dir);
        long t = System.nanoTime();
        Stats stats = local.isPresent() ? writePositional(in, log, local.get(), settings)
                : writeStreamed(in, log, fs, dir, settings);
        log(local.isPresent() ? "positional path" : "stream path", settings, stats, (System.nanoTime() - t) / 1e9);
        return stats;
    }

    /** Logs an assembly's summary line at INFO; {@code how} names the path (and when it ran). */
    static void log(String how, Settings settings, Stats stats, double seconds) {
        LOG.info("output assembly ({}, {} threads): {} files, {} MB of tensors in {} s ({} MB/s); waited {} s "
                        + "for pieces, {} s for fsyncs and renames; at most {} MiB held", how, settings.readers(),
                stats.files(), Math.round(stats.bytes() / 1e6), String.format(java.util.Locale.ROOT, "%.2f", seconds),
                Math.round(stats.bytes() / 1e6 / Math.max(seconds, 1e-9)),
                String.format(java.util.Locale.ROOT, "%.2f", stats.waitSeconds()),
                String.format(java.util.Locale.ROOT, "%.2f", stats.closeSeconds()), stats.peakWindowBytes() >> 20);
    }

    /**
     * The local directory behind {@code dir} when {@code fs} is Hadoop's local file system itself
     * (exactly {@link RawLocalFileSystem}, or {@link LocalFileSystem} with its checksums: the
     * positional path writes no {@code .crc} side files, which the job turns off for its output
     * anyway); empty for any other file system, a subclass of those included (it may change what
     * create or rename do, so it keeps the stream path that goes through its methods).
     *
     * @param fs the output file system
     * @param dir a directory on it
     * @return the local path of {@code dir}, or empty
     */
    static Optional<java.nio.file.Path> localDirectory(FileSystem fs, Path dir) {
        FileSystem raw = fs.getClass() == LocalFileSystem.class ? ((LocalFileSystem) fs).getRawFileSystem() : fs;
        if (raw.getClass() != RawLocalFileSystem.class) {
            return Optional.empty();
        }
        return Optional.of(((RawLocalFileSystem) raw).pathToFile(fs.makeQualified(dir)).toPath());
    }

    /**
     * The stream path of {@link #write}: readers fill pieces, the calling thread writes them in
     * output order through {@link SafetensorsWriter#create(FileSystem, Path)} (see the class
     * comment). Works on any Hadoop file system.
     *
     * @return what was written; {@link Stats#waitSeconds()} is the time the writer waited for pieces,
     *     {@link Stats#closeSeconds()} for closes
     * @throws io.sparkprune.jobs.commit.CorruptCommitException when a staged shard's size or SHA-256
     *     differs from its record
     * @throws IllegalArgumentException / IllegalStateException when a pruned tensor's shards do not add
     *     up to its size (from {@link SafetensorsWriter})
     * @throws IOException on read or write failure, or when interrupted
     */
    static Stats writeStreamed(ShardedCheckpoint in, CommitLog log, FileSystem fs, Path dir, Settings settings)
            throws IOException {
        Map<String, List<ShardRecord>> pruned = log.committedShards();
        int chunk = settings.chunk();
        Window window = new Window(settings.windowBytes());
        Buffers buffers = new Buffers(chunk);
        List<FilePlan> files = new ArrayList<>();
        List<Runnable> tasks = new ArrayList<>();
        long seq = 0;
        for (String file : in.files()) {
            SafetensorsFile src = in.shard(file);
            FilePlan plan = new FilePlan(file, src, new ArrayList<>());
            for (TensorInfo t : src.tensors()) {
                List<ShardRecord> shards = pruned.get(t.name());
                if (shards != null) {
                    for (ShardRecord s : shards) {
                        List<Piece> pieces = new ArrayList<>();
                        long off = 0;
                        do { // at least one piece per shard: its verification needs a place in the order
                            int len = (int) Math.min(chunk, s.bytes() - off);
                            pieces.add(new Piece(seq++, t.name(), len, buffers.cost(len)));
                            off += len;
                        } while (off < s.bytes());
                        plan.pieces().addAll(pieces);
                        tasks.add(new ShardTask(log, s, pieces, window, buffers));
                    }
                } else {
                    for (long off = 0; off < t.byteLength(); off += chunk) {
                        int len = (int) Math.min(chunk, t.byteLength() - off);
                        Piece p = new Piece(seq++, t.name(), len, len);
                        plan.pieces().add(p);
                        tasks.add(new RangeTask(src, t.name(), off, p, window));
                    }
                }
            }
            files.add(plan);
        }
        ThreadPoolExecutor pool = new ThreadPoolExecutor(settings.readers(), settings.readers(), 0L,
                TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(), threads("read"));
        ThreadPoolExecutor closer = new ThreadPoolExecutor(1, 1, 0L, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(),
                threads("close"));
        try {
            tasks.forEach(pool::execute); // FIFO: tasks start in output order
            tasks.clear();
            long[] counters = new long[3]; // bytes, ns waiting for pieces, ns waiting for closes
            Future<?> closing = null;
            for (FilePlan f : files) {
                SafetensorsWriter w = writeFile(fs, dir, f, window, buffers, counters);
                if (closing != null) {
                    try {
                        counters[2] += await(closing, "closing a file of " + dir);
                    } catch (IOException | RuntimeException | Error e) {
                        w.abort(); // the previous file failed to close: this one is not published either
                        throw e;
                    }
                }
                closing = closer.submit(w::close); // fsync and rename while the next file is written
            }
            if (closing != null) {
                counters[2] += await(closing, "closing a file of " + dir);
            }
            return new Stats(files.size(), seq, counters[0], window.peak(), counters[1] / 1e9, counters[2] / 1e9);
        } finally {
            window.close(); // readers blocked in or arriving at reserve() fail at once
            pool.shutdown(); // no interrupts: one would close the memory-mapped input's shared FileChannel
            closer.shutdown(); // a close under way completes: its file is whole
            awaitTermination(closer);
            awaitTermination(pool);
        }
    }

    /** @return nanoseconds waited */
    private static long await(Future<?> f, String what) throws IOException {
        long t = System.nanoTime();
        try {
            f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("output assembly interrupted while " + what);
        } catch (ExecutionException e) {
            throw rethrow(e.getCause(), what);
        }
        return System.nanoTime() - t;
    }

    /** Rethrows a failure of another thread as it was thrown (unchecked, IOException), else wrapped. */
    private static IOException rethrow(Throwable c, String what) throws IOException {
        if (c instanceof IOException io) {
            throw io;
        }
        if (c instanceof RuntimeException re) {
            throw re;
        }
        if (c instanceof Error err) {
            throw err;
        }
        return new IOException("failed " + what + ": " + c, c);
    }

    /**
     * Writes one file's header and data; adds to {@code counters} the tensor bytes written and the
     * nanoseconds waited for pieces.
     *
     * @return the writer, every tensor complete, to close (which publishes the file)
     */
    private static SafetensorsWriter writeFile(FileSystem fs, Path dir, FilePlan f, Window window, Buffers buffers,
                                               long[] counters) throws IOException {
        SafetensorsWriter w = SafetensorsWriter.create(fs, new Path(dir, f.file()));
        boolean ok = false;
        try {
            for (TensorInfo t : f.src().tensors()) {
                w.declare(t.name(), t.dtype(), t.shape());
            }
            w.metadata(f.src().metadata());
            w.writeHeader();
            for (Piece p : f.pieces()) {
                long t = System.nanoTime();
                Filled c = p.await();
                counters[1] += System.nanoTime() - t;
                try {
                    ByteBuffer b = c.bytes();
                    counters[0] += b.remaining();
                    while (b.hasRemaining()) { // in slices: a local stream copies each write through a native buffer
                        int n = Math.min(b.remaining(), WRITE_SLICE);
                        w.write(p.tensor(), b.slice(b.position(), n));
                        b.position(b.position() + n);
                    }
                } finally {
                    buffers.give(c.pooled());
                    window.release(p.cost());
                }
            }
            ok = true;
            return w;
        } finally {
            if (!ok) {
                w.abort();
            }
        }
    }

    private static void awaitTermination(ThreadPoolExecutor pool) {
        boolean interrupted = false;
        try {
            while (!pool.awaitTermination(60, TimeUnit.SECONDS)) {
                LOG.warn("output assembly: still waiting for {} reader threads to stop", pool.getActiveCount());
            }
        } catch (InterruptedException e) {
            interrupted = true;
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private static ThreadFactory threads(String role) {
        String prefix = THREAD_PREFIX + POOLS.incrementAndGet() + "-" + role + "-";
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }

    /**
     * The positional path of {@link #write} (local output; see the class comment): one
     * {@link SafetensorsRangeWriter} per output file, all open at once, and a pool of
     * {@link Settings#readers()} threads each of which reads a piece and writes it at its own offset;
     * each file is finished (fsync) on a closer thread once its last task succeeded, and only when
     * all are finished are they published (renamed) one after the other.
     *
     * @param dir the (existing) local directory to write the files into
     * @return what was written ({@link Positional#finish})
     * @throws io.sparkprune.jobs.commit.CorruptCommitException when a staged shard's size or SHA-256
     *     differs from its record (nothing is published)
     * @throws IllegalStateException when a pruned tensor's shard records do not add up to its size
     * @throws IOException on read or write failure, or when interrupted
     */
    static Stats writePositional(ShardedCheckpoint in, CommitLog log, java.nio.file.Path dir, Settings settings)
            throws IOException {
        Map<String, List<ShardRecord>> pruned = log.committedShards();
        try (Positional p = Positional.start(in, log, dir, settings, pruned.keySet())) {
            p.commit(pruned);
            return p.finish();
        }
    }

    /**
     * The positional path as an assembly that runs while the pruned tensors are still being committed:
     * {@link #start} opens the output files and starts writing every tensor that is not pruned;
     * {@link #commit} starts writing the shards of the tensors just committed (a layer's, as the prune job
     * commits it); {@link #finish} waits for every piece, finishes (fsync) and publishes the files. The
     * pieces, threads, window, verification and failure handling are those of {@link #writePositional}
     * (which is {@code start}, one {@code commit} of everything, {@code finish}); the bytes written are
     * the same whatever the order of the commits. {@link #close} without a successful {@code finish}
     * stops the tasks, waits for the running ones and deletes every file written (a failed run publishes
     * nothing). Not thread-safe: one thread calls {@code commit}, {@code finish} and {@code close}.
     */
    static final class Positional implements AutoCloseable {
        private final CommitLog log;
        private final java.nio.file.Path dir;
        private final int chunk;
        private final Window window;
        private final Buffers buffers;
        private final Tasks run = new Tasks();
        private final List<OutFile> files = new ArrayList<>();
        /** Pruned tensors not yet committed, with their output file and size. */
        private final Map<String, Pending> pending = new java.util.LinkedHashMap<>();
        /** Every pruned tensor of the input (committed or not). */
        private final java.util.Set<String> expected = new java.util.HashSet<>();
        private final ThreadPoolExecutor pool;
        private final ThreadPoolExecutor closer;
        private final long t0 = System.nanoTime();
        private long pieces;
        private long bytes;
        private boolean finished;
        private boolean closed;

        private record Pending(OutFile out, String file, long bytes) {
        }

        private Positional(CommitLog log, java.nio.file.Path dir, Settings settings, int fileCount) {
            this.log = log;
            this.dir = dir;
            this.chunk = settings.chunk();
            this.window = new Window(settings.windowBytes());
            this.buffers = new Buffers(chunk);
            int threads = settings.readers();
            this.pool = new ThreadPoolExecutor(threads, threads, 0L, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(),
                    threads("write"));
            int closers = Math.max(1, Math.min(threads, fileCount));
            this.closer = new ThreadPoolExecutor(closers, closers, 0L, TimeUnit.MILLISECONDS, new LinkedBlockingQueue<>(),
                    threads("close"));
        }

        /**
         * Opens the output files (temporary names, each file's header written) and starts writing every
         * tensor that is not in {@code pruned}, in file order.
         *
         * @param in the input checkpoint
         * @param log the run's commit log (the staged shards are read through it)
         * @param dir the (existing) local directory to write the files into
         * @param settings the pipeline settings
         * @param pruned the names of the tensors whose bytes come from committed shards ({@link #commit})
         * @return the running assembly
         * @throws IOException when a file cannot be created (nothing is left behind)
         */
        static Positional start(ShardedCheckpoint in, CommitLog log, java.nio.file.Path dir, Settings settings,
                                java.util.Set<String> pruned) throws IOException {
            Positional p = new Positional(log, dir, settings, in.files().size());
            boolean ok = false;
            try {
                List<Runnable> tasks = new ArrayList<>();
                int placeholders = 0;
                for (String file : in.files()) {
                    SafetensorsFile src = in.shard(file);
                    OutFile out = new OutFile(SafetensorsRangeWriter.create(dir.resolve(file), src.metadata(),
                            src.tensors()), p.closer);
                    p.files.add(out);
                    int first = tasks.size();
                    int waiting = 0;
                    for (TensorInfo t : src.tensors()) {
                        p.bytes += t.byteLength();
                        if (pruned.contains(t.name())) {
                            p.pending.put(t.name(), new Pending(out, file, t.byteLength()));
                            p.expected.add(t.name());
                            waiting++; // one placeholder task until its shards are committed
                        } else {
                            for (long off = 0; off < t.byteLength(); off += p.chunk) {
                                int len = (int) Math.min(p.chunk, t.byteLength() - off);
                                tasks.add(new RangeWrite(src, out, t.name(), off, len, p.window, p.run));
                                p.pieces++;
                            }
                        }
                    }
                    out.expect(tasks.size() - first + waiting);
                    placeholders += waiting;
                }
                p.run.expect(tasks.size() + placeholders);
                tasks.forEach(p.pool::execute); // FIFO: the first file's tasks first
                ok = true;
                return p;
            } finally {
                if (!ok) {
                    p.close();
                }
            }
        }

        /**
         * Starts writing the committed shards of some pruned tensors (each tensor once, all its shards).
         * Names that are not tensors of the input given as pruned to {@link #start} (a quantized tensor's
         * staged codes) are skipped.
         *
         * @param shards committed shards by tensor, each list in shard order
         * @throws IllegalStateException when a pruned tensor is committed a second time, or its shards'
         *     sizes do not add up to its size
         * @throws IOException when an earlier piece failed (that failure, as it was thrown)
         */
        void commit(Map<String, List<ShardRecord>> shards) throws IOException {
            if (finished || closed) {
                throw new IllegalStateException("the output assembly into " + dir + " is over");
            }
            run.rethrowFailure(dir);
            for (Map.Entry<String, List<ShardRecord>> e : shards.entrySet()) {
                if (!expected.contains(e.getKey())) {
                    continue;
                }
                Pending t = pending.remove(e.getKey());
                if (t == null) {
                    throw new IllegalStateException("tensor " + e.getKey() + " was committed to the output assembly "
                            + "into " + dir + " twice");
                }
                List<ShardRecord> list = e.getValue();
                long total = list.stream().mapToLong(ShardRecord::bytes).sum();
                if (list.isEmpty() || total != t.bytes()) {
                    throw new IllegalStateException("tensor " + e.getKey() + " of " + t.file() + " has " + t.bytes()
                            + " bytes, but its " + list.size() + " committed shards list " + total + "; the commit "
                            + "log does not match the input checkpoint: rerun the job without --resume");
                }
                // the placeholder becomes the shards' tasks (the counts never reach 0 in between)
                run.expectMore(list.size() - 1);
                t.out().expect(list.size() - 1);
                long off = 0;
                for (ShardRecord r : list) {
                    pool.execute(new ShardWrite(log, r, t.out(), e.getKey(), off, chunk, window, buffers, run));
                    pieces += Math.max(1, (r.bytes() + chunk - 1) / chunk);
                    off += r.bytes();
                }
            }
        }

        /**
         * Waits for every piece, then for each file's fsync, and publishes (renames) the files.
         *
         * @return what was written; {@link Stats#waitSeconds()} is the time from {@link #start} until every
         *     piece was written, {@link Stats#closeSeconds()} the time then waited for the fsyncs and renames
         * @throws IllegalStateException when a pruned tensor was never committed
         * @throws io.sparkprune.jobs.commit.CorruptCommitException when a staged shard's size or SHA-256
         *     differs from its record (nothing is published)
         * @throws IOException on read or write failure, or when interrupted
         */
        Stats finish() throws IOException {
            if (!pending.isEmpty()) {
                throw new IllegalStateException("the output assembly into " + dir + " lacks the committed shards of "
                        + pending.size() + " pruned tensors, e.g. " + pending.keySet().iterator().next());
            }
            run.await(dir);
            long t1 = System.nanoTime();
            for (OutFile f : files) {
                await(f.finished, "finishing " + f.writer.target());
            }
            for (OutFile f : files) {
                f.writer.publish();
            }
            finished = true;
            return new Stats(files.size(), pieces, bytes, window.peak(), (t1 - t0) / 1e9, (System.nanoTime() - t1) / 1e9);
        }

        /** Ends the assembly: after a successful {@link #finish} it only stops the threads; otherwise also deletes every file. */
        @Override
        public void close() {
            if (closed) {
                return;
            }
            closed = true;
            run.stop(); // tasks not yet started return at once
            window.close(); // tasks blocked in or arriving at acquire() fail at once
            pool.shutdown(); // no interrupts: one would close the memory-mapped input's shared FileChannel
            awaitTermination(pool);
            closer.shutdown(); // a finish under way completes
            awaitTermination(closer);
            if (!finished) {
                for (OutFile f : files) {
                    f.writer.discard(true); // temporary files, and files already published by this call
                }
            }
        }
    }

    /**
     * One output file of the positional path: its writer, how many of its tasks have not yet
     * succeeded, and its finish (fsync), started on the closer pool as soon as the last one did.
     */
    private static final class OutFile {
        private final SafetensorsRangeWriter writer;
        private final ThreadPoolExecutor closer;
        private final java.util.concurrent.atomic.AtomicLong left = new java.util.concurrent.atomic.AtomicLong();
        private final CompletableFuture<Void> finished = new CompletableFuture<>();

        OutFile(SafetensorsRangeWriter writer, ThreadPoolExecutor closer) {
            this.writer = writer;
            this.closer = closer;
        }

        /** Sets the number of tasks; a file without any is finished at once. */
        void expect(long n) {
            if (left.addAndGet(n) == 0) {
                finish();
            }
        }

        /** Called once by each of its tasks that succeeded. */
        void taskDone() {
            if (left.decrementAndGet() == 0) {
                finish();
            }
        }

        private void finish() {
            closer.execute(() -> {
                try {
                    writer.finish();
                    finished.complete(null);
                } catch (Throwable e) {
                    finished.completeExceptionally(e);
                }
            });
        }
    }

    /** Writes a piece: a direct buffer in one positional write, a heap one in slices of {@value #WRITE_SLICE} bytes. */
    private static void put(SafetensorsRangeWriter w, String tensor, long offset, ByteBuffer b) {
        if (b.isDirect()) { // e.g. the memory-mapped input: straight from the mapping to the kernel
            w.write(tensor, offset, b);
            return;
        }
        // a heap buffer goes through the JDK's per-thread temporary direct buffer of the write's size
        long off = offset;
        while (b.hasRemaining()) {
            int n = Math.min(b.remaining(), WRITE_SLICE);
            w.write(tensor, off, b.slice(b.position(), n));
            b.position(b.position() + n);
            off += n;
        }
    }

    /**
     * The sequential assembly this pipeline replaced, kept as the reference of the tests and of
     * {@link AssembleBench}: one thread, each pruned tensor streamed through
     * {@link CommitLog#transferTensor}, every other tensor copied in chunks of {@code chunk} bytes.
     *
     * @param chunk copy chunk of the other tensors, bytes
     */
    static void writeSequential(ShardedCheckpoint in, CommitLog log, FileSystem fs, Path dir, int chunk)
            throws IOException {
        java.util.Set<String> pruned = log.committedShards().keySet();
        for (String file : in.files()) {
            SafetensorsFile src = in.shard(file);
            try (SafetensorsWriter w = SafetensorsWriter.create(fs, new Path(dir, file))) {
                for (TensorInfo t : src.tensors()) {
                    w.declare(t.name(), t.dtype(), t.shape());
                }
                w.metadata(src.metadata());
                w.writeHeader();
                for (TensorInfo t : src.tensors()) {
                    if (pruned.contains(t.name())) {
                        log.transferTensor(t.name(), new OutputStream() {
                            @Override
                            public void write(int b) {
                                w.write(t.name(), ByteBuffer.wrap(new byte[] {(byte) b}));
                            }

                            @Override
                            public void write(byte[] b, int off, int len) {
                                w.write(t.name(), ByteBuffer.wrap(b, off, len));
                            }
                        });
                    } else {
                        for (long off = 0; off < t.byteLength(); off += chunk) {
                            int len = (int) Math.min(chunk, t.byteLength() - off);
                            w.write(t.name(), src.readBytes(t.name(), off, len));
                        }
                    }
                }
            }
        }
    }

    /**
     * What {@link #write} did.
     *
     * @param files safetensors files written
     * @param pieces pieces read and written
     * @param bytes tensor bytes written (headers excluded)
     * @param peakWindowBytes the most bytes of tensor data held at once, &lt;= the window
     * @param waitSeconds stream path: time the writer waited for pieces to be read (and verified);
     *     positional path: time from {@link Positional#start} until every piece was read, verified and
     *     written (started before the layers: the whole layer loop and what followed it)
     * @param closeSeconds stream path: time the writer waited for files to be closed (fsync and
     *     rename; a file is closed on another thread while the next one is written, the last one is
     *     waited for); positional path: time waited, after the last piece was written, for the
     *     files' fsyncs (each started when its file was complete) and renames
     */
    record Stats(int files, long pieces, long bytes, long peakWindowBytes, double waitSeconds, double closeSeconds) {
    }

    /** One output file: its source and its pieces in output order. */
    private record FilePlan(String file, SafetensorsFile src, List<Piece> pieces) {
    }

    /** A piece's bytes, and the pooled array holding them (null when not pooled). */
    private record Filled(ByteBuffer bytes, byte[] pooled) {
    }

    /** One piece of output: its place in the order, its tensor and length, and its bytes once read. */
    private static final class Piece {
        private final long seq;
        private final String tensor;
        private final int len;
        private final long cost;
        /** Its bytes once read; dropped once the writer took them, so that written bytes are not kept. */
        private CompletableFuture<Filled> data = new CompletableFuture<>();

        /** @param cost the window bytes it holds: its length, or a whole pooled chunk when read into one */
        Piece(long seq, String tensor, int len, long cost) {
            this.seq = seq;
            this.tensor = tensor;
            this.len = len;
            this.cost = cost;
        }

        String tensor() {
            return tensor;
        }

        int len() {
            return len;
        }

        long cost() {
            return cost;
        }

        void complete(ByteBuffer bytes, byte[] pooled) {
            data.complete(new Filled(bytes, pooled));
        }

        void fail(Throwable e) {
            data.completeExceptionally(e);
        }

        /** Waits for the bytes (once: the piece lets go of them); rethrows the reader's failure as it was thrown. */
        Filled await() throws IOException {
            try {
                Filled f = data.get();
                data = null;
                return f;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("output assembly interrupted while waiting for tensor " + tensor);
            } catch (ExecutionException e) {
                throw rethrow(e.getCause(), "reading tensor " + tensor);
            }
        }
    }

    /**
     * Bytes reserved for pieces read but not yet written: reserved strictly in output order, at
     * most {@code capacity} at once (a piece always fits when nothing is held).
     */
    private static final class Window {
        private final long capacity;
        private long used;
        private long peak;
        private long next;
        private long tickets;
        private long served;
        private boolean closed;

        Window(long capacity) {
            this.capacity = capacity;
        }

        synchronized void reserve(long seq, long len) throws InterruptedException {
            while (!closed && (seq != next || (used > 0 && used + len > capacity))) {
                wait();
            }
            if (closed) {
                throw new InterruptedException("output assembly stopped");
            }
            used += len;
            peak = Math.max(peak, used);
            next++;
            notifyAll();
        }

        /**
         * Reserves {@code len} bytes in arrival order (the positional path: whoever holds bytes
         * writes and releases them without waiting for anything else, so no order is needed to avoid
         * a deadlock; arrival order keeps a large piece from waiting forever behind small ones).
         */
        synchronized void acquire(long len) throws InterruptedException {
            long ticket = tickets++;
            while (!closed && (ticket != served || (used > 0 && used + len > capacity))) {
                wait();
            }
            if (closed) {
                throw new InterruptedException("output assembly stopped");
            }
            used += len;
            peak = Math.max(peak, used);
            served++;
            notifyAll();
        }

        synchronized void release(long len) {
            used -= len;
            notifyAll();
        }

        synchronized long peak() {
            return peak;
        }

        synchronized void close() {
            closed = true;
            notifyAll();
        }
    }

    /**
     * Arrays for staged-shard pieces: a piece of at least a quarter chunk is read into a reused
     * array of one chunk (so that large arrays are not allocated and collected over and over), a
     * smaller one into an array of its own size. {@link #cost} is what the piece holds.
     */
    private static final class Buffers {
        private final int chunk;
        private final ConcurrentLinkedQueue<byte[]> free = new ConcurrentLinkedQueue<>();

        Buffers(int chunk) {
            this.chunk = chunk;
        }

        private boolean pooled(int len) {
            return len >= chunk / 4 && len > 0;
        }

        long cost(int len) {
            return pooled(len) ? chunk : len;
        }

        byte[] take(int len) {
            if (!pooled(len)) {
                return new byte[len];
            }
            byte[] b = free.poll();
            return b != null ? b : new byte[chunk];
        }

        void give(byte[] b) {
            if (b != null && b.length == chunk) {
                free.offer(b);
            }
        }
    }

    /** Reads one staged shard in order, hashing it; its last piece is handed over only once verified. */
    private static final class ShardTask implements Runnable {
        private final CommitLog log;
        private final ShardRecord shard;
        private final List<Piece> pieces;
        private final Window window;
        private final Buffers buffers;

        ShardTask(CommitLog log, ShardRecord shard, List<Piece> pieces, Window window, Buffers buffers) {
            this.log = log;
            this.shard = shard;
            this.pieces = pieces;
            this.window = window;
            this.buffers = buffers;
        }

        @Override
        public void run() {
            int i = 0;
            try (CommitLog.ShardReader r = log.readShard(shard)) {
                for (; i < pieces.size(); i++) {
                    Piece p = pieces.get(i);
                    window.reserve(p.seq, p.cost());
                    byte[] buf = buffers.take(p.len());
                    int n = r.read(buf, 0, p.len());
                    if (n < p.len() || i == pieces.size() - 1) {
                        r.verify(); // throws when the file is shorter than its record
                    }
                    if (n < p.len()) {
                        throw new IllegalStateException(shard + " ended after " + r.position() + " bytes");
                    }
                    p.complete(ByteBuffer.wrap(buf, 0, n), buf);
                }
            } catch (Throwable e) {
                for (int j = i; j < pieces.size(); j++) {
                    pieces.get(j).fail(e);
                }
            }
        }
    }

    /** Reads one byte range of a tensor that was not pruned. */
    private static final class RangeTask implements Runnable {
        private final SafetensorsFile src;
        private final String tensor;
        private final long offset;
        private final Piece piece;
        private final Window window;

        RangeTask(SafetensorsFile src, String tensor, long offset, Piece piece, Window window) {
            this.src = src;
            this.tensor = tensor;
            this.offset = offset;
            this.piece = piece;
            this.window = window;
        }

        @Override
        public void run() {
            try {
                window.reserve(piece.seq, piece.cost());
                ByteBuffer b = src.readBytes(tensor, offset, piece.len());
                if (b.isDirect()) { // a mapped view: take its page faults here, not in the writer
                    int sum = 0;
                    for (int k = b.position(); k < b.limit(); k += PAGE) {
                        sum += b.get(k);
                    }
                    touched = sum;
                }
                piece.complete(b, null);
            } catch (Throwable e) {
                piece.fail(e);
            }
        }
    }

    /**
     * The positional path's tasks: how many are left and the first failure. A failure stops the
     * tasks that have not started yet and wakes the caller at once.
     */
    private static final class Tasks {
        private int remaining;
        private Throwable failure;
        private boolean stopped;

        synchronized void expect(int n) {
            remaining = n;
        }

        /** Adds {@code n} (≥ 0) tasks to wait for. */
        synchronized void expectMore(int n) {
            remaining += n;
        }

        /** Rethrows the first failure so far, as it was thrown; nothing when none failed. */
        void rethrowFailure(java.nio.file.Path dir) throws IOException {
            Throwable f;
            synchronized (this) {
                f = failure;
            }
            if (f != null) {
                throw rethrow(f, "writing the files of " + dir);
            }
        }

        synchronized void done() {
            remaining--;
            notifyAll();
        }

        synchronized void fail(Throwable e) {
            if (failure == null) {
                failure = e;
            }
            stopped = true;
            notifyAll();
        }

        synchronized boolean stopped() {
            return stopped;
        }

        synchronized void stop() {
            stopped = true;
        }

        /** Waits until every task is done or one failed; rethrows the first failure as it was thrown. */
        void await(java.nio.file.Path dir) throws IOException {
            Throwable f;
            synchronized (this) {
                try {
                    while (remaining > 0 && failure == null) {
                        wait();
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException("output assembly into " + dir + " interrupted");
                }
                f = failure;
            }
            if (f != null) {
                throw rethrow(f, "writing the files of " + dir);
            }
        }

        /** Runs {@code body} unless stopped; records its failure; counts it done either way. */
        void run(Body body) {
            try {
                if (!stopped()) {
                    body.run();
                }
            } catch (Throwable e) {
                fail(e);
            } finally {
                done();
            }
        }
    }

    /** A task's work. */
    @FunctionalInterface
    private interface Body {
        void run() throws Exception;
    }

    /**
     * Reads one staged shard in order, hashing it, and writes each piece at its offset; the last piece
     * is written only once the shard's size and SHA-256 match its record.
     */
    private static final class ShardWrite implements Runnable {
        private final CommitLog log;
        private final ShardRecord shard;
        private final OutFile out;
        private final String tensor;
        private final long offset;
        private final int chunk;
        private final Window window;
        private final Buffers buffers;
        private final Tasks tasks;

        /** @param offset where the shard starts in its tensor, bytes */
        ShardWrite(CommitLog log, ShardRecord shard, OutFile out, String tensor, long offset, int chunk,
                   Window window, Buffers buffers, Tasks tasks) {
            this.log = log;
            this.shard = shard;
            this.out = out;
            this.tensor = tensor;
            this.offset = offset;
            this.chunk = chunk;
            this.window = window;
            this.buffers = buffers;
            this.tasks = tasks;
        }

        @Override
        public void run() {
            tasks.run(() -> {
                try (CommitLog.ShardReader r = log.readShard(shard)) {
                    long off = 0;
                    do { // at least once: an empty shard is verified too
                        if (tasks.stopped()) {
                            return;
                        }
                        int len = (int) Math.min(chunk, shard.bytes() - off);
                        long cost = buffers.cost(len);
                        window.acquire(cost);
                        byte[] buf = buffers.take(len);
                        try {
                            int n = r.read(buf, 0, len);
                            if (n < len || off + len >= shard.bytes()) {
                                r.verify(); // throws when the file differs from its record
                            }
                            if (n < len) {
                                throw new IllegalStateException(shard + " ended after " + r.position() + " bytes");
                            }
                            put(out.writer, tensor, offset + off, ByteBuffer.wrap(buf, 0, n));
                        } finally {
                            buffers.give(buf);
                            window.release(cost);
                        }
                        off += len;
                    } while (off < shard.bytes());
                }
                out.taskDone();
            });
        }
    }

    /** Reads one byte range of a tensor that was not pruned and writes it at its offset. */
    private static final class RangeWrite implements Runnable {
        private final SafetensorsFile src;
        private final OutFile out;
        private final String tensor;
        private final long offset;
        private final int len;
        private final Window window;
        private final Tasks tasks;

        RangeWrite(SafetensorsFile src, OutFile out, String tensor, long offset, int len, Window window,
                   Tasks tasks) {
            this.src = src;
            this.out = out;
            this.tensor = tensor;
            this.offset = offset;
            this.len = len;
            this.window = window;
            this.tasks = tasks;
        }

        @Override
        public void run() {
            tasks.run(() -> {
                window.acquire(len);
                try {
                    put(out.writer, tensor, offset, src.readBytes(tensor, offset, len));
                } finally {
                    window.release(len);
                }
                out.taskDone();
            });
        }
    }
}
