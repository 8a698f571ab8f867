package io.sparkprune.kernels.cuda;

import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One allocation of device memory ({@code cuMemAlloc}) in a CUDA context, freed by {@link #close()}.
 * A buffer that becomes unreachable without being closed is freed by a {@link Cleaner}, which logs a
 * warning naming the buffer's id, label and size, so leaks show up in the logs. Copies are
 * synchronous ({@code cuMemcpyHtoD}/{@code DtoH} from Java arrays); offsets and counts are in elements
 * of the array's type. Not thread-safe: one owner at a time.
 */
public final class DeviceBuffer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(DeviceBuffer.class.getName());
    private static final Cleaner CLEANER = Cleaner.create();
    private static final AtomicLong IDS = new AtomicLong();

    private final State state;
    private final Cleaner.Cleanable cleanable;

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

    private DeviceBuffer(State state) {
        this.state = state;
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
        if (bytes < 1) {
            throw new IllegalArgumentException("device buffer " + label + " needs >= 1 byte, got " + bytes);
        }
        CUdeviceptr p = new CUdeviceptr();
        Driver.check("cuMemAlloc " + label + " (" + bytes + " bytes)", () -> JCudaDriver.cuMemAlloc(p, bytes));
        return new DeviceBuffer(new State(IDS.incrementAndGet(), bytes, label, ctx, p));
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
        copyIn(Pointer.to(src), 4L * srcOff, 4L * count, 4L * dstOff);
    }

    /** Copies {@code count} doubles to elements {@code [dstOff ..)} of this buffer. */
    void upload(double[] src, int srcOff, int count, long dstOff) {
        copyIn(Pointer.to(src), 8L * srcOff, 8L * count, 8L * dstOff);
    }

    /** Copies {@code count} bytes to bytes {@code [dstOff ..)} of this buffer. */
    void upload(byte[] src, int srcOff, int count, long dstOff) {
        copyIn(Pointer.to(src), srcOff, count, dstOff);
    }

    /** Copies elements {@code [srcOff, srcOff + count)} of this buffer to {@code dst[dstOff ..]}. */
    void download(long srcOff, float[] dst, int dstOff, int count) {
        copyOut(4L * srcOff, Pointer.to(dst), 4L * dstOff, 4L * count);
    }

    /** Copies doubles of this buffer to {@code dst[dstOff ..]}. */
    void download(long srcOff, double[] dst, int dstOff, int count) {
        copyOut(8L * srcOff, Pointer.to(dst), 8L * dstOff, 8L * count);
    }

    /** Copies bytes of this buffer to {@code dst[dstOff ..]}. */
    void download(long srcOff, byte[] dst, int dstOff, int count) {
        copyOut(srcOff, Pointer.to(dst), dstOff, count);
    }

    /** Sets {@code bytes} bytes from {@code byteOffset} to zero. */
    void zero(long byteOffset, long bytes) {
        range(byteOffset, bytes, "cuMemsetD8");
        if (bytes > 0) {
            Driver.check("cuMemsetD8 " + state.label + " (" + bytes + " bytes)",
                    () -> JCudaDriver.cuMemsetD8(at(byteOffset), (byte) 0, bytes));
        }
    }

    private void copyIn(Pointer host, long hostByteOff, long bytes, long devByteOff) {
        range(devByteOff, bytes, "cuMemcpyHtoD");
        if (bytes > 0) {
            Pointer src = hostByteOff == 0 ? host : host.withByteOffset(hostByteOff);
            Driver.check("cuMemcpyHtoD " + state.label + " (" + bytes + " bytes)",
                    () -> JCudaDriver.cuMemcpyHtoD(at(devByteOff), src, bytes));
        }
    }

    private void copyOut(long devByteOff, Pointer host, long hostByteOff, long bytes) {
        range(devByteOff, bytes, "cuMemcpyDtoH");
        if (bytes > 0) {
            Pointer dst = hostByteOff == 0 ? host : host.withByteOffset(hostByteOff);
            Driver.check("cuMemcpyDtoH " + state.label + " (" + bytes + " bytes)",
                    () -> JCudaDriver.cuMemcpyDtoH(dst, at(devByteOff), bytes));
        }
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
