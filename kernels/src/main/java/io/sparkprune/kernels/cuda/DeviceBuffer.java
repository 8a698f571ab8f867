package io.sparkprune.kernels.cuda;

import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;

import java.lang.ref.Cleaner;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One allocation of device memory ({@code cuMemAlloc}) in a CUDA context, freed by {@link #close()}.
 * A buffer that becomes unreachable without being closed is freed by a {@link Cleaner}, which logs a
 * warning naming the buffer's id, label and size, so leaks show up in the logs. Copies have completed
 * when they return; offsets and counts are in elements of the array's type. A buffer allocated by a
 * {@link CudaBackend} stages copies of at least 1 MiB through the backend's pinned host buffers
 * ({@code PinnedStaging}: chunked {@code cuMemcpyHtoDAsync}/{@code DtoHAsync} on the backend's stream);
 * smaller copies, and every copy of a buffer without staging, go straight from the Java array
 * ({@code cuMemcpyHtoD}/{@code DtoH}). Not thread-safe: one owner at a time.
 */
public final class DeviceBuffer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(DeviceBuffer.class.getName());
    private static final Cleaner CLEANER = Cleaner.create();
    private static final AtomicLong IDS = new AtomicLong();

    private final State state;
    private final Cleaner.Cleanable cleanable;
    private final PinnedStaging staging; // null: direct copies only

    /** What the cleaner needs; must not refer to the buffer itself. */
    private static final class State implements Runnable {
        final long id;
        final long bytes;
        final String label;
        final CUcontext ctx;
        final CUdeviceptr ptr;
        volatile boolean closed;

        State(long id, long bytes, String label, CUcontext ctx, CUdeviceptr ptr) {
            this.id = id;
            this.bytes = bytes;
            this.label = label;
            this.ctx = ctx;
            this.ptr = ptr;
        }

        @Override
        public void run() {
            if (!closed) {
                LOG.log(System.Logger.Level.WARNING, "device buffer #" + id + " (" + label + ", " + bytes
                        + " bytes) was not closed; freeing it from the cleaner");
            }
            try {
                JCudaDriver.cuCtxSetCurrent(ctx);
                JCudaDriver.cuMemFree(ptr);
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "cuMemFree of device buffer #" + id + " (" + label + ", "
                        + bytes + " bytes) failed: " + e.getMessage());
            }
        }
    }

    private DeviceBuffer(State state, PinnedStaging staging) {
        this.state = state;
        this.staging = staging;
        this.cleanable = CLEANER.register(this, state);
    }

    /**
     * Allocates {@code bytes} of device memory in {@code ctx}, which must be current on this thread.
     *
     * @param ctx the owning context
     * @param bytes size in bytes, ≥ 1
     * @param label what the buffer holds, for messages (e.g. {@code "sgemm C 4096 x 4096 fp32"})
     * @return the buffer (contents undefined)
     * @throws CudaCallException when the allocation fails (out of memory)
     */
    static DeviceBuffer allocate(CUcontext ctx, long bytes, String label) {
        return allocate(ctx, null, bytes, label);
    }

    /**
     * {@link #allocate(CUcontext, long, String)} with large copies staged through {@code staging}.
     *
     * @param ctx the owning context, current on this thread
     * @param staging the owning backend's pinned staging, or null for direct copies
     * @param bytes size in bytes, ≥ 1
     * @param label what the buffer holds, for messages
     * @return the buffer (contents undefined)
     * @throws CudaCallException when the allocation fails (out of memory)
     */
    static DeviceBuffer allocate(CUcontext ctx, PinnedStaging staging, long bytes, String label) {
        if (bytes < 1) {
            throw new IllegalArgumentException("device buffer " + label + " needs >= 1 byte, got " + bytes);
        }
        CUdeviceptr p = new CUdeviceptr();
        Driver.check("cuMemAlloc " + label + " (" + bytes + " bytes)", () -> JCudaDriver.cuMemAlloc(p, bytes));
        return new DeviceBuffer(new State(IDS.incrementAndGet(), bytes, label, ctx, p), staging);
    }

    /** @return the process-unique id of this buffer (in leak warnings) */
    public long id() {
        return state.id;
    }

    /** @return size in bytes */
    public long bytes() {
        return state.bytes;
    }

    /** @return what the buffer holds */
    public String label() {
        return state.label;
    }

    /** @return true once closed */
    public boolean isClosed() {
        return state.closed;
    }

    /**
     * @return the device pointer of byte 0
     * @throws IllegalStateException when closed
     */
    public CUdeviceptr pointer() {
        if (state.closed) {
            throw new IllegalStateException("device buffer #" + state.id + " (" + state.label + ") is closed");
        }
        return state.ptr;
    }

    /**
     * @param byteOffset offset into the buffer, in bytes
     * @return a device pointer {@code byteOffset} bytes into the buffer
     */
    public CUdeviceptr at(long byteOffset) {
        if (byteOffset < 0 || byteOffset > state.bytes) {
            throw new IllegalArgumentException("offset " + byteOffset + " outside device buffer #" + state.id
                    + " (" + state.label + ", " + state.bytes + " bytes)");
        }
        return pointer().withByteOffset(byteOffset);
    }

    private void range(long byteOffset, long bytes, String what) {
        if (byteOffset < 0 || bytes < 0 || byteOffset + bytes > state.bytes) {
            throw new IllegalArgumentException(what + " of " + bytes + " bytes at " + byteOffset
                    + " does not fit device buffer #" + state.id + " (" + state.label + ", " + state.bytes + " bytes)");
        }
    }

    /** Copies {@code count} floats {@code src[srcOff ..]} to elements {@code [dstOff ..)} of this buffer. */
    void upload(float[] src, int srcOff, int count, long dstOff) {
        copyIn(Pointer.to(src), 4L * srcOff, 4L * count, 4L * dstOff,
                (b, from) -> b.asFloatBuffer().put(src, srcOff + (int) (from / 4), b.remaining() / 4));
    }

    /** Copies {@code count} doubles to elements {@code [dstOff ..)} of this buffer. */
    void upload(double[] src, int srcOff, int count, long dstOff) {
        copyIn(Pointer.to(src), 8L * srcOff, 8L * count, 8L * dstOff,
                (b, from) -> b.asDoubleBuffer().put(src, srcOff + (int) (from / 8), b.remaining() / 8));
    }

    /** Copies {@code count} bytes to bytes {@code [dstOff ..)} of this buffer. */
    void upload(byte[] src, int srcOff, int count, long dstOff) {
        copyIn(Pointer.to(src), srcOff, count, dstOff, (b, from) -> b.put(src, srcOff + (int) from, b.remaining()));
    }

    /**
     * Copies the bytes of a host buffer, from index 0 to its limit (a {@link io.sparkprune.kernels.HostTensor}'s
     * little-endian data: heap, direct or a memory-mapped view; not modified, its position ignored), to bytes
     * {@code [dstOff ..)} of this buffer. Staged copies fill the pinned chunks straight from the buffer (absolute
     * bulk reads, in parallel slices); smaller ones, or all without staging, go through a {@code byte[]} copy.
     *
     * @param src the bytes; {@code src.limit()} of them are copied
     * @param dstOff byte offset in this buffer
     * @throws IllegalArgumentException when they do not fit
     */
    void upload(java.nio.ByteBuffer src, long dstOff) {
        java.nio.ByteBuffer from = src.duplicate();
        int bytes = from.limit();
        range(dstOff, bytes, "cuMemcpyHtoD");
        if (bytes == 0) {
            return;
        }
        if (staging != null && staging.staged(bytes)) {
            staging.upload(at(dstOff), bytes, (b, at) -> b.put(0, from, (int) at, b.remaining()), state.label);
            return;
        }
        byte[] copy = new byte[bytes];
        from.get(0, copy);
        upload(copy, 0, bytes, dstOff);
    }

    /**
     * Copies the window {@code a[off + r·ld + c]}, {@code r < rows}, {@code c < cols}, to the start of
     * this buffer as a dense {@code rows × cols} row-major fp32 matrix (row stride cols). Staged copies
     * gather the rows straight into the pinned buffer (no packed copy on the Java heap).
     */
    void uploadWindow(float[] a, int off, int ld, int rows, int cols) {
        long count = (long) rows * cols;
        if (off == 0 && ld == cols && a.length == count) {
            upload(a, 0, (int) count, 0);
            return;
        }
        long bytes = 4L * count;
        range(0, bytes, "cuMemcpyHtoD");
        if (bytes == 0) {
            return;
        }
        if (staging != null && staging.staged(bytes)) {
            staging.upload(pointer(), bytes, (b, from) -> {
                FloatBuffer f = b.asFloatBuffer();
                long e = from / 4;
                int n = f.remaining();
                while (n > 0) {
                    int r = (int) (e / cols);
                    int c = (int) (e % cols);
                    int run = Math.min(n, cols - c);
                    f.put(a, off + r * ld + c, run);
                    e += run;
                    n -= run;
                }
            }, state.label);
            return;
        }
        float[] packed = new float[(int) count];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(a, off + r * ld, packed, r * cols, cols);
        }
        upload(packed, 0, (int) count, 0);
    }

    /**
     * Inverse of {@link #uploadWindow}: the dense {@code rows × cols} fp32 matrix at the start of this
     * buffer into the window {@code a[off + r·ld + c]}; elements of a outside the window are untouched.
     */
    void downloadWindow(float[] a, int off, int ld, int rows, int cols) {
        long count = (long) rows * cols;
        if (off == 0 && ld == cols && a.length == count) {
            download(0, a, 0, (int) count);
            return;
        }
        long bytes = 4L * count;
        range(0, bytes, "cuMemcpyDtoH");
        if (bytes == 0) {
            return;
        }
        if (staging != null && staging.staged(bytes)) {
            staging.download(pointer(), bytes, (b, from) -> {
                FloatBuffer f = b.asFloatBuffer();
                long e = from / 4;
                int n = f.remaining();
                while (n > 0) {
                    int r = (int) (e / cols);
                    int c = (int) (e % cols);
                    int run = Math.min(n, cols - c);
                    f.get(a, off + r * ld + c, run);
                    e += run;
                    n -= run;
                }
            }, state.label);
            return;
        }
        float[] packed = new float[(int) count];
        download(0, packed, 0, (int) count);
        for (int r = 0; r < rows; r++) {
            System.arraycopy(packed, r * cols, a, off + r * ld, cols);
        }
    }

    /** Copies elements {@code [srcOff, srcOff + count)} of this buffer to {@code dst[dstOff ..]}. */
    void download(long srcOff, float[] dst, int dstOff, int count) {
        copyOut(4L * srcOff, Pointer.to(dst), 4L * dstOff, 4L * count,
                (b, from) -> b.asFloatBuffer().get(dst, dstOff + (int) (from / 4), b.remaining() / 4));
    }

    /** Copies doubles of this buffer to {@code dst[dstOff ..]}. */
    void download(long srcOff, double[] dst, int dstOff, int count) {
        copyOut(8L * srcOff, Pointer.to(dst), 8L * dstOff, 8L * count,
                (b, from) -> b.asDoubleBuffer().get(dst, dstOff + (int) (from / 8), b.remaining() / 8));
    }

    /** Copies {@code count} 64-bit words of this buffer, from element {@code srcOff}, to {@code dst[dstOff ..]}. */
    void download(long srcOff, long[] dst, int dstOff, int count) {
        copyOut(8L * srcOff, Pointer.to(dst), 8L * dstOff, 8L * count,
                (b, from) -> b.asLongBuffer().get(dst, dstOff + (int) (from / 8), b.remaining() / 8));
    }

    /** Copies bytes of this buffer to {@code dst[dstOff ..]}. */
    void download(long srcOff, byte[] dst, int dstOff, int count) {
        copyOut(srcOff, Pointer.to(dst), dstOff, count, (b, from) -> b.get(dst, dstOff + (int) from, b.remaining()));
    }

    /**
     * Adds doubles of this buffer into a host array: {@code dst[dstOff + i] += this[srcOff + i]} for
     * {@code i < count} (staged in chunks, so no second host array of {@code count} doubles is needed
     * when the copy is staged).
     */
    void downloadAdd(long srcOff, double[] dst, int dstOff, int count) {
        long bytes = 8L * count;
        range(8L * srcOff, bytes, "cuMemcpyDtoH");
        if (count <= 0) {
            return;
        }
        if (dstOff < 0 || (long) dstOff + count > dst.length) {
            throw new IllegalArgumentException("download of " + count + " doubles of device buffer #" + state.id + " ("
                    + state.label + ") into an array of " + dst.length + " at " + dstOff);
        }
        if (staging != null && staging.staged(bytes)) {
            staging.download(at(8L * srcOff), bytes, (b, from) -> {
                DoubleBuffer d = b.asDoubleBuffer();
                int base = dstOff + (int) (from / 8);
                int n = d.remaining();
                for (int i = 0; i < n; i++) {
                    dst[base + i] += d.get(i);
                }
            }, state.label);
            return;
        }
        double[] tmp = new double[count];
        download(srcOff, tmp, 0, count);
        for (int i = 0; i < count; i++) {
            dst[dstOff + i] += tmp[i];
        }
    }

    /** Sets {@code bytes} bytes from {@code byteOffset} to zero. */
    void zero(long byteOffset, long bytes) {
        range(byteOffset, bytes, "cuMemsetD8");
        if (bytes > 0) {
            Driver.check("cuMemsetD8 " + state.label + " (" + bytes + " bytes)",
                    () -> JCudaDriver.cuMemsetD8(at(byteOffset), (byte) 0, bytes));
        }
    }

    private void copyIn(Pointer host, long hostByteOff, long bytes, long devByteOff, PinnedStaging.Fill fill) {
        range(devByteOff, bytes, "cuMemcpyHtoD");
        if (bytes <= 0) {
            return;
        }
        if (staging != null && staging.staged(bytes)) {
            staging.upload(at(devByteOff), bytes, fill, state.label);
            return;
        }
        Pointer src = hostByteOff == 0 ? host : host.withByteOffset(hostByteOff);
        Driver.check("cuMemcpyHtoD " + state.label + " (" + bytes + " bytes)",
                () -> JCudaDriver.cuMemcpyHtoD(at(devByteOff), src, bytes));
    }

    private void copyOut(long devByteOff, Pointer host, long hostByteOff, long bytes, PinnedStaging.Drain drain) {
        range(devByteOff, bytes, "cuMemcpyDtoH");
        if (bytes <= 0) {
            return;
        }
        if (staging != null && staging.staged(bytes)) {
            staging.download(at(devByteOff), bytes, drain, state.label);
            return;
        }
        Pointer dst = hostByteOff == 0 ? host : host.withByteOffset(hostByteOff);
        Driver.check("cuMemcpyDtoH " + state.label + " (" + bytes + " bytes)",
                () -> JCudaDriver.cuMemcpyDtoH(dst, at(devByteOff), bytes));
    }

    /** Frees the device memory (idempotent). The owning context must still exist. */
    @Override
    public void close() {
        if (!state.closed) {
            state.closed = true;
            cleanable.clean();
        }
    }
}
