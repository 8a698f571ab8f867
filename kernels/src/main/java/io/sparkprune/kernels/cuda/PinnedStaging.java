package io.sparkprune.kernels.cuda;

import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Page-locked host staging for large host↔device copies of one {@link CudaBackend}: two pinned
 * buffers ({@code cuMemHostAlloc}, at most {@link #chunkBytes()} bytes each, allocated on first use and
 * grown on demand, freed by {@link #close()}), used in turn so that filling one from a Java array
 * overlaps the DMA of the other ({@code cuMemcpyHtoDAsync}/{@code cuMemcpyDtoHAsync} on the backend's
 * stream, one {@code CUevent} per buffer guarding its reuse). A copy larger than a buffer goes in
 * chunks. Every {@link #upload} and {@link #download} has completed when it returns (the Java array
 * may be reused at once). Copies from pageable Java arrays are staged by the driver through its own
 * small pinned buffers and run synchronously; staging through our own pinned memory lets the copy
 * run at the link's rate.
 *
 * <p>Thread-safe (methods are {@code synchronized}); the backend's context must be current on the
 * calling thread.
 */
final class PinnedStaging implements AutoCloseable {
    /** Default bytes per pinned buffer (two are used): 32 MiB. */
    static final long DEFAULT_CHUNK_BYTES = 32L << 20;
    /** Copies below this many bytes go straight from the Java array ({@code cuMemcpyHtoD}). */
    static final long DEFAULT_MIN_STAGED_BYTES = 1L << 20;
    /** Smallest pinned buffer allocated, so small staged copies do not reallocate each time. */
    private static final long MIN_ALLOC = 4L << 20;

    /**
     * Writes bytes {@code [from, from + chunk.remaining())} of a copy into {@code chunk} (native byte
     * order, position 0); {@code from} is a multiple of 8. Called for disjoint slices of each pinned
     * chunk, concurrently and in any order: an implementation must depend only on its arguments and
     * write only its own range.
     */
    @FunctionalInterface
    interface Fill {
        void fill(ByteBuffer chunk, long from);
    }

    /**
     * Reads bytes {@code [from, from + chunk.remaining())} of a copy from {@code chunk} (native order,
     * position 0). Like {@link Fill}, called for disjoint slices concurrently and in any order.
     */
    @FunctionalInterface
    interface Drain {
        void drain(ByteBuffer chunk, long from);
    }

    private final CUstream stream;
    private final long chunkBytes;
    private final long minStagedBytes;
    private final Pointer[] host = new Pointer[2];
    private final ByteBuffer[] view = new ByteBuffer[2];
    private final long[] hostBytes = new long[2];
    private final CUevent[] done = new CUevent[2];
    private final boolean[] pending = new boolean[2];
    private boolean closed;

    /**
     * @param stream the backend's stream (copies are queued on it, after its kernels)
     * @param chunkBytes bytes per pinned buffer, ≥ 8 (rounded down to a multiple of 8)
     * @param minStagedBytes copies of fewer bytes are not staged ({@link #staged})
     */
    PinnedStaging(CUstream stream, long chunkBytes, long minStagedBytes) {
        if (chunkBytes < 8 || chunkBytes > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("pinned staging chunk must be 8 bytes .. 2 GiB, got " + chunkBytes);
        }
        this.stream = stream;
        this.chunkBytes = chunkBytes & ~7L;
        this.minStagedBytes = minStagedBytes;
    }

    /** @return bytes per pinned buffer; longer copies go in chunks of this size */
    long chunkBytes() {
        return chunkBytes;
    }

    /** @return pinned host bytes held now (both buffers) */
    synchronized long pinnedBytes() {
        return hostBytes[0] + hostBytes[1];
    }

    /** @return whether a copy of {@code bytes} bytes goes through the pinned buffers */
    boolean staged(long bytes) {
        return bytes >= minStagedBytes;
    }

    /**
     * Copies {@code bytes} bytes, produced by {@code fill} chunk by chunk, to {@code dst} and waits.
     *
     * @param dst device address of the first byte
     * @param bytes length, a multiple of the element size
     * @param fill writes each chunk from the Java side
     * @param what the operand, for messages
     * @throws CudaCallException when a driver call fails
     */
    synchronized void upload(CUdeviceptr dst, long bytes, Fill fill, String what) {
        open();
        if (bytes <= 0) {
            return;
        }
        long chunk = Math.min(chunkBytes, bytes);
        int slot = 0;
        for (long from = 0; from < bytes; from += chunk, slot ^= 1) {
            int len = (int) Math.min(chunk, bytes - from);
            ByteBuffer b = buffer(slot, chunk, len, what);
            long base = from;
            inSlices(b, (piece, off) -> fill.fill(piece, base + off));
            Pointer src = host[slot];
            CUdeviceptr d = dst.withByteOffset(from);
            long at = from;
            Driver.check("cuMemcpyHtoDAsync " + what + " (bytes " + at + ".." + (at + len) + " of " + bytes + ", pinned)",
                    () -> JCudaDriver.cuMemcpyHtoDAsync(d, src, len, stream));
            record(slot, what);
        }
        await(0, what);
        await(1, what);
    }

    /**
     * Copies {@code bytes} bytes from {@code src} and hands them to {@code drain} slice by slice (in
     * parallel within a chunk, see {@link Drain}); returns when all were drained.
     *
     * @param src device address of the first byte
     * @param bytes length, a multiple of the element size
     * @param drain reads each chunk into the Java side
     * @param what the operand, for messages
     * @throws CudaCallException when a driver call fails
     */
    synchronized void download(CUdeviceptr src, long bytes, Drain drain, String what) {
        open();
        if (bytes <= 0) {
            return;
        }
        long chunk = Math.min(chunkBytes, bytes);
        long chunks = (bytes + chunk - 1) / chunk;
        ByteBuffer[] queued = new ByteBuffer[2];
        for (long c = 0; c <= chunks; c++) {
            int slot = (int) (c & 1);
            if (c < chunks) {
                long from = c * chunk;
                int len = (int) Math.min(chunk, bytes - from);
                queued[slot] = buffer(slot, chunk, len, what);
                Pointer dst = host[slot];
                CUdeviceptr s = src.withByteOffset(from);
                Driver.check("cuMemcpyDtoHAsync " + what + " (bytes " + from + ".." + (from + len) + " of " + bytes
                        + ", pinned)", () -> JCudaDriver.cuMemcpyDtoHAsync(dst, s, len, stream));
                record(slot, what);
            }
            if (c >= 1) {
                int prev = slot ^ 1;
                await(prev, what);
                long base = (c - 1) * chunk;
                inSlices(queued[prev], (piece, off) -> drain.drain(piece, base + off));
            }
        }
    }

    /** Bytes of a chunk that one thread copies between the Java array and the pinned buffer, at least. */
    static final int SLICE_BYTES = 4 << 20;

    /**
     * Hands {@code chunk} to {@code body} in slices of at least {@value #SLICE_BYTES} bytes (multiples of
     * 8, each a view with position 0 in the chunk's byte order, and its byte offset in the chunk), on
     * the copy pool ({@link #COPIERS}) when there are several: the copy between a Java array and pinned
     * memory is one memcpy per slice, which one thread does at a fraction of the memory bandwidth. The
     * fills and drains of {@link DeviceBuffer} write disjoint parts of their array per slice.
     */
    static void inSlices(ByteBuffer chunk, java.util.function.ObjLongConsumer<ByteBuffer> body) {
        int len = chunk.remaining();
        int slices = Math.max(1, Math.min(COPIERS.getParallelism(), len / SLICE_BYTES));
        if (slices == 1) {
            body.accept(chunk, 0L);
            return;
        }
        int step = ((len / slices) + 7) & ~7;
        int pieces = (len + step - 1) / step;
        java.util.concurrent.Future<?> all = COPIERS.submit(() -> java.util.stream.IntStream.range(0, pieces).parallel()
                .forEach(k -> {
                    int at = k * step;
                    int n = Math.min(step, len - at);
                    ByteBuffer piece = chunk.duplicate().position(at).limit(at + n).slice().order(chunk.order());
                    body.accept(piece, at);
                }));
        try {
            all.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while copying through the pinned staging", e);
        } catch (java.util.concurrent.ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException r) {
                throw r;
            }
            if (c instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(c);
        }
    }

    /**
     * The copy threads: a pool of its own (at most 8 threads, daemon), so that the copies do not
     * queue behind other parallel streams of the executor on the common pool while the backend's lock
     * is held.
     */
    private static final java.util.concurrent.ForkJoinPool COPIERS = new java.util.concurrent.ForkJoinPool(
            Math.max(1, Math.min(8, Runtime.getRuntime().availableProcessors())), pool -> {
                java.util.concurrent.ForkJoinWorkerThread t =
                        java.util.concurrent.ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(pool);
                t.setDaemon(true);
                t.setName("sparkprune-staging-copy-" + t.getPoolIndex());
                return t;
            }, null, false);

    /** Buffer {@code slot} with room for {@code chunk} bytes, its previous copy finished, limited to len. */
    private ByteBuffer buffer(int slot, long chunk, int len, String what) {
        await(slot, what);
        if (hostBytes[slot] < chunk) {
            free(slot);
            long size = Math.min(chunkBytes, Math.max(chunk, MIN_ALLOC));
            Pointer p = new Pointer();
            Driver.check("cuMemHostAlloc pinned staging buffer " + slot + " (" + size + " bytes) for " + what,
                    () -> JCudaDriver.cuMemHostAlloc(p, size, 0));
            host[slot] = p;
            hostBytes[slot] = size;
            view[slot] = p.getByteBuffer(0, size);
            if (view[slot] == null) {
                free(slot);
                throw new IllegalStateException("JCuda gave no ByteBuffer view of the pinned staging buffer (" + size
                        + " bytes) for " + what + "; this JCuda build does not map cuMemHostAlloc memory");
            }
            if (done[slot] == null) {
                CUevent e = new CUevent();
                Driver.check("cuEventCreate pinned staging " + slot,
                        () -> JCudaDriver.cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING));
                done[slot] = e;
            }
        }
        ByteBuffer b = view[slot].duplicate().order(ByteOrder.nativeOrder());
        b.clear().limit(len);
        return b.slice().order(ByteOrder.nativeOrder());
    }

    private void record(int slot, String what) {
        Driver.check("cuEventRecord pinned staging " + slot + " (" + what + ")",
                () -> JCudaDriver.cuEventRecord(done[slot], stream));
        pending[slot] = true;
    }

    private void await(int slot, String what) {
        if (pending[slot]) {
            pending[slot] = false;
            Driver.check("copy of " + what + " through pinned staging buffer " + slot,
                    () -> JCudaDriver.cuEventSynchronize(done[slot]));
        }
    }

    private void free(int slot) {
        if (host[slot] != null) {
            Pointer p = host[slot];
            host[slot] = null;
            view[slot] = null;
            hostBytes[slot] = 0;
            Driver.check("cuMemFreeHost pinned staging buffer " + slot, () -> JCudaDriver.cuMemFreeHost(p));
        }
    }

    private void open() {
        if (closed) {
            throw new IllegalStateException("pinned staging of a closed CUDA backend");
        }
    }

    /**
     * Waits for copies in flight, frees both pinned buffers and their events (idempotent). The
     * backend's context must be current.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException first = null;
        for (int slot = 0; slot < 2; slot++) {
            try {
                await(slot, "close");
            } catch (RuntimeException e) {
                first = first == null ? e : first;
            }
            try {
                free(slot);
            } catch (RuntimeException e) {
                first = first == null ? e : first;
            }
            if (done[slot] != null) {
                CUevent e = done[slot];
                done[slot] = null;
                try {
                    Driver.check("cuEventDestroy pinned staging " + slot, () -> JCudaDriver.cuEventDestroy(e));
                } catch (RuntimeException ex) {
                    first = first == null ? ex : first;
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
