package io.sparkprune.jobs.prune;

import io.sparkprune.jobs.commit.CommitLog;
import io.sparkprune.jobs.commit.ShardRecord;
import io.sparkprune.pipeline.safetensors.SafetensorsFile;
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
import org.apache.hadoop.fs.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes the safetensors files of the dense pruned checkpoint (the input's files one for one, same
 * tensor order, header and bytes; each pruned tensor is the concatenation of its committed staged
 * shards, every other tensor is the input's bytes) through a bounded pipeline:
 *
 * <ul>
 *   <li>The output is planned as a sequence of <em>pieces</em> in output order: each staged shard
 *       split into pieces of at most {@link Settings#chunkBytes()}, each other tensor split into byte
 *       ranges of that size.</li>
 *   <li>A pool of {@link Settings#readers()} threads reads them: one task per staged shard (read in
 *       order through {@link CommitLog#readShard}, which computes its SHA-256 on the way, so the
 *       parallelism comes from different shards and ranges being read and hashed at once) and one
 *       task per range of another tensor.</li>
 *   <li>The calling thread is the single writer: it takes the pieces strictly in output order and
 *       writes them with {@link SafetensorsWriter} (one file after the other). A written file is
 *       closed (fsync, rename into the directory) on one more thread while the next file is
 *       written; the writer waits for that close before handing over the next file's, and for the
 *       last one before returning.</li>
 *   <li>Memory: every piece reserves the bytes it will hold before it is read, in output order, from
 *       a window of {@link Settings#windowBytes()}; the writer gives them back once written. At most
 *       that many bytes of tensor data are held whatever the model's size (plus a 64 KiB scratch
 *       buffer per reader while it checks a shard's end). A staged-shard piece of at least a quarter
 *       chunk is read into a reused array of one chunk and reserves the whole chunk (so that large
 *       arrays are not allocated and collected again and again; a written piece's array goes back to
 *       that pool and no longer counts against the window, so the heap holds up to about twice the
 *       window: the window's pieces plus the pooled arrays); a smaller one, and a range of
 *       another tensor, reserves its length. Reserving in output order cannot deadlock: the piece
 *       the writer waits for was reserved before any later one, and tasks start in output order.</li>
 *   <li>The writer hands each piece to the {@link SafetensorsWriter} in slices of at most 1 MiB
 *       (a local Hadoop stream copies every write through a native buffer of its size).</li>
 *   <li>Verification: the last piece of a staged shard is handed to the writer only once the whole
 *       file was read and its size and SHA-256 match the shard's record; otherwise the reader's
 *       {@link io.sparkprune.jobs.commit.CorruptCommitException} takes that piece's place and the
 *       writer throws it on reaching it. So nothing after a corrupt shard is written, the file being
 *       written is aborted (its temporary file deleted) and never published.</li>
 * </ul>
 * The pool is shut down, and its threads waited for, on every path. Any failure (a reader's is
 * rethrown as it was thrown: {@code CorruptCommitException}, {@link IOException},
 * {@link RuntimeException}) aborts the file being written; files already finished stay in the
 * assembling directory, which nothing publishes and the next attempt deletes.
 *
 * <p>Works through any Hadoop {@link FileSystem}: staged shards are read with {@code fs.open}, the
 * input through its {@link ShardedCheckpoint}, the output written with
 * {@link SafetensorsWriter#create(FileSystem, Path)}. When the input is memory-mapped (a local
 * checkpoint), a reader touches each page of its range so that the page faults are taken on the
 * reader threads rather than by the writer; the bytes are the same.
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
     * Writes every safetensors file of {@code in} into {@code dir} (see the class comment).
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
     *     up to its size (from {@link SafetensorsWriter})
     * @throws IOException on read or write failure, or when interrupted
     */
    static Stats write(ShardedCheckpoint in, CommitLog log, FileSystem fs, Path dir, Settings settings)
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
     * @param waitSeconds time the writer waited for pieces to be read (and verified)
     * @param closeSeconds time the writer waited for files to be closed (fsync and rename; a file is
     *     closed on another thread while the next one is written, the last one is waited for)
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
}
