package io.sparkprune.kernels.cuda;

import io.sparkprune.kernels.AbstractForwardWorkspace;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.kernels.ForwardWorkspace;
import io.sparkprune.kernels.HostTensor;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@link ForwardWorkspace} of a {@link CudaBackend}: every matrix is a device buffer, every op one
 * kernel launch on the backend's stream (the {@code *Device} twins of the backend's host-array ops,
 * the same kernels, so the same results). Host copies happen only in {@link #upload} and
 * {@link #download}; small per-call tables (RoPE positions and tables, attention tile lists) are
 * uploaded with their op. In a {@link ForwardPrecision#TF32} workspace the linears run on
 * {@code sgemm_tf32} and attention on the TF32 tensor-core kernel {@code attention_tf32}
 * ({@link CudaBackend#attentionTf32Device}) when {@link CudaBackend#tf32AttentionRuns} holds for the
 * head width (a multiple of 8 up to 128), else on {@code attention_f32} as in an fp32 workspace.
 *
 * <p>Weights come from the backend's weight cache ({@link CudaBackend#acquireWeight}): uploaded once per
 * array (or per host tensor: a BF16/F16 tensor's 2-byte values are uploaded and widened to fp32 on the
 * device) and kept while the array or tensor lives, pinned while this workspace is open. Uploads look the array up in
 * the backend's activation cache first: a hit copies the cached values on the device (~3 TB/s instead of
 * the host link), or, in a {@link ForwardWorkspace.Handoff#PIPELINE} workspace, takes the cached buffer
 * over; such a workspace also hands its outputs' buffers to that cache ({@link #downloadAndRelease}).
 * The workspace counts its hits and misses ({@link #activationCacheSummary()}, which the prune job's
 * tasks log at {@code DEBUG}). Released matrices go to a free list and
 * are reused by later {@link #allocate}s of at most their size (a partition's batches have the same
 * shapes, so a Hessian pass allocates device memory for its first batch only); on an allocation
 * failure the free list is emptied and the allocation retried once.
 */
final class CudaWorkspace extends AbstractForwardWorkspace<CudaWorkspace.DeviceMatrix> {

    /** A matrix in a device buffer (a weight's buffer belongs to the backend's cache). */
    static final class DeviceMatrix extends AbstractForwardWorkspace.Mat {
        private final DeviceBuffer buffer;

        DeviceMatrix(Object owner, int rows, int cols, boolean weight, DeviceBuffer buffer) {
            super(owner, rows, cols, weight);
            this.buffer = buffer;
        }

        /** @return the device buffer, at least {@code 4·rows·cols} bytes */
        DeviceBuffer buffer() {
            return buffer;
        }
    }

    /** Activation cache traffic of one workspace (uploads by where their values came from, outputs kept). */
    static final class CacheStats {
        /** Uploads whose buffer was taken over from the cache (PIPELINE), and their bytes. */
        long taken;
        long takenBytes;
        /** Uploads copied from the cache on the device, and their bytes. */
        long copied;
        long copiedBytes;
        /** Uploads from the host array (misses), and their bytes. */
        long missed;
        long missedBytes;
        /** Outputs handed to the cache (PIPELINE), and their buffers' bytes. */
        long kept;
        long keptBytes;
        /** Outputs the cache had no room for (PIPELINE). */
        long notKept;

        @Override
        public String toString() {
            return "uploads: " + (taken + copied) + " from the activation cache (" + (takenBytes + copiedBytes)
                    + " bytes; " + taken + " buffers taken over, " + copied + " copied on the device), " + missed
                    + " from host arrays (" + missedBytes + " bytes); outputs: " + kept + " kept on the device ("
                    + keptBytes + " bytes), " + notKept + " not kept (over the cache's budget)";
        }
    }

    private final CudaBackend backend;
    private final String label;
    private final ForwardWorkspace.Handoff handoff;
    private final List<DeviceBuffer> live = new ArrayList<>();
    private final List<DeviceBuffer> free = new ArrayList<>();
    private final Map<DeviceArrayCache.Entry<DeviceBuffer>, Boolean> pinned = new IdentityHashMap<>();
    private final CacheStats stats = new CacheStats();
    private DeviceBuffer scratch;

    CudaWorkspace(CudaBackend backend, ForwardPrecision precision, String label, ForwardWorkspace.Handoff handoff) {
        super(DeviceMatrix.class, backend, precision);
        this.backend = backend;
        this.label = label;
        this.handoff = java.util.Objects.requireNonNull(handoff, "handoff");
    }

    /** @return this workspace's activation cache traffic so far (tests) */
    CacheStats cacheStats() {
        return stats;
    }

    @Override
    public String activationCacheSummary() {
        return stats.toString();
    }

    @Override
    public boolean isResident() {
        return true;
    }

    /**
     * @param m a matrix of this workspace
     * @return its device buffer (for {@link CudaBackend}'s resident Hessian)
     * @throws IllegalArgumentException when m belongs elsewhere or was released
     */
    DeviceBuffer bufferOf(ForwardWorkspace.Matrix m) {
        return own(m, "matrix").buffer;
    }

    /**
     * @param m any matrix
     * @return whether m is a live matrix of this open workspace
     */
    boolean owns(ForwardWorkspace.Matrix m) {
        try {
            own(m, "matrix");
            return true;
        } catch (IllegalArgumentException | IllegalStateException e) {
            return false;
        }
    }

    /** @return the backend whose device holds the matrices */
    CudaBackend cudaBackend() {
        return backend;
    }

    private DeviceBuffer obtain(long bytes, String what) {
        long need = Math.max(4, bytes);
        DeviceBuffer best = null;
        for (DeviceBuffer b : free) {
            if (b.bytes() >= need && b.bytes() <= 2 * need && (best == null || b.bytes() < best.bytes())) {
                best = b;
            }
        }
        if (best != null) {
            free.remove(best);
            live.add(best);
            return best;
        }
        DeviceBuffer b;
        try {
            b = backend.allocate(need, label + ": " + what);
        } catch (CudaCallException ex) {
            if (free.isEmpty()) {
                throw ex;
            }
            synchronized (backend) {
                backend.makeCurrent();
                free.forEach(DeviceBuffer::close);
            }
            free.clear();
            b = backend.allocate(need, label + ": " + what);
        }
        live.add(b);
        return b;
    }

    @Override
    protected DeviceMatrix doUpload(float[] host, int rows, int cols) {
        long floats = (long) rows * cols;
        long bytes = 4L * floats;
        if (handoff == ForwardWorkspace.Handoff.PIPELINE) {
            DeviceBuffer t = backend.takeCachedActivation(host, floats);
            if (t != null) { // this pass is the array's last reader: its cached buffer becomes ours
                live.add(t);
                stats.taken++;
                stats.takenBytes += bytes;
                return new DeviceMatrix(this, rows, cols, false, t);
            }
        }
        DeviceBuffer b = obtain(bytes, "upload " + rows + " x " + cols);
        boolean hit;
        synchronized (backend) {
            backend.makeCurrent();
            hit = backend.copyCachedActivation(host, floats, b);
            if (!hit) {
                b.upload(host, 0, rows * cols, 0);
            }
        }
        if (hit) {
            stats.copied++;
            stats.copiedBytes += bytes;
        } else {
            stats.missed++;
            stats.missedBytes += bytes;
        }
        return new DeviceMatrix(this, rows, cols, false, b);
    }

    /**
     * {@inheritDoc}
     *
     * <p>Here: the download, then, in a {@link ForwardWorkspace.Handoff#PIPELINE} workspace, the buffer
     * goes to the backend's activation cache keyed by the returned array (when the budget allows; else
     * to the free list like any released matrix).
     */
    @Override
    protected float[] doDownloadAndRelease(DeviceMatrix m) {
        float[] out = doDownload(m);
        if (handoff == ForwardWorkspace.Handoff.PIPELINE && live.contains(m.buffer)) {
            if (backend.keepActivation(out, m.buffer)) {
                live.remove(m.buffer);
                stats.kept++;
                stats.keptBytes += m.buffer.bytes();
                return out;
            }
            stats.notKept++;
        }
        doRelease(m);
        return out;
    }

    @Override
    protected DeviceMatrix doWeight(float[] host, int rows, int cols) {
        return pinnedWeight(backend.acquireWeight(host, rows + " x " + cols), rows, cols);
    }

    /**
     * {@inheritDoc}
     *
     * <p>Here: from the backend's weight cache keyed by the tensor's identity
     * ({@link CudaBackend#acquireWeight(HostTensor, String)}: on a miss the tensor's bytes are uploaded and a
     * 16-bit tensor is widened on the device), pinned while this workspace is open.
     */
    @Override
    protected DeviceMatrix doWeight(HostTensor tensor, int rows, int cols) {
        return pinnedWeight(backend.acquireWeight(tensor, rows + " x " + cols), rows, cols);
    }

    private DeviceMatrix pinnedWeight(DeviceArrayCache.Entry<DeviceBuffer> e, int rows, int cols) {
        if (pinned.putIfAbsent(e, Boolean.TRUE) != null) {
            backend.unpinWeight(e); // pinned once per workspace
        }
        return new DeviceMatrix(this, rows, cols, true, e.buffer());
    }

    @Override
    protected DeviceMatrix doAllocate(int rows, int cols) {
        return new DeviceMatrix(this, rows, cols, false, obtain(4L * rows * cols, rows + " x " + cols));
    }

    @Override
    protected float[] doDownload(DeviceMatrix m) {
        float[] out = new float[(int) m.size()];
        // the bytes move without the backend's lock: another task's kernels on this GPU run meanwhile (m is this
        // workspace's live matrix, which only this workspace's thread frees or writes)
        backend.downloadOutsideLock(m.buffer, out);
        return out;
    }

    @Override
    protected void doRelease(DeviceMatrix m) {
        if (live.remove(m.buffer)) {
            free.add(m.buffer);
        }
    }

    @Override
    protected long doFirstNonFinite(DeviceMatrix m) {
        synchronized (backend) {
            backend.makeCurrent();
            if (scratch == null) {
                scratch = backend.allocate(8, label + ": non-finite index");
            }
            return backend.firstNonFiniteDevice(m.buffer.pointer(), m.size(), scratch);
        }
    }

    @Override
    protected void doLinear(DeviceMatrix x, DeviceMatrix w, DeviceMatrix bias, DeviceMatrix y) {
        int rows = x.rows();
        int in = x.cols();
        int out = w.rows();
        if (rows == 0 || out == 0) {
            return;
        }
        synchronized (backend) {
            backend.makeCurrent();
            if (in == 0) {
                y.buffer.zero(0, 4L * rows * out);
            } else if (precision() == ForwardPrecision.TF32) {
                backend.sgemmTf32Device(false, true, rows, out, in, 1f, x.buffer.pointer(), in, w.buffer.pointer(), in,
                        0f, y.buffer.pointer(), out);
            } else {
                backend.sgemmDevice(false, true, rows, out, in, 1f, x.buffer.pointer(), in, w.buffer.pointer(), in, 0f,
                        y.buffer.pointer(), out, label + " linear " + rows + "x" + out + "x" + in);
            }
            if (bias != null) {
                backend.addRowVectorDevice(rows, out, bias.buffer.pointer(), y.buffer.pointer(), out);
            }
        }
    }

    @Override
    protected void doRmsNorm(DeviceMatrix x, DeviceMatrix w, float eps, DeviceMatrix y) {
        if (x.size() == 0) {
            return;
        }
        synchronized (backend) {
            backend.makeCurrent();
            backend.rmsNormDevice(x.rows(), x.cols(), eps, x.buffer.pointer(), x.cols(), w.buffer.pointer(),
                    y.buffer.pointer(), y.cols());
        }
    }

    @Override
    protected void doLayerNorm(DeviceMatrix x, DeviceMatrix gamma, DeviceMatrix beta, float eps, DeviceMatrix y) {
        if (x.size() == 0) {
            return;
        }
        synchronized (backend) {
            backend.makeCurrent();
            backend.layerNormDevice(x.rows(), x.cols(), eps, x.buffer.pointer(), x.cols(), gamma.buffer.pointer(),
                    beta.buffer.pointer(), y.buffer.pointer(), y.cols());
        }
    }

    @Override
    protected void doRope(DeviceMatrix x, int heads, int headDim, int[] positions, float[] cos, float[] sin,
                          int tableRows) {
        int rows = x.rows();
        int half = headDim / 2;
        if (cos.length < (long) tableRows * half || sin.length < (long) tableRows * half) {
            throw new IllegalArgumentException("rope tables hold " + cos.length + " / " + sin.length + " values, need "
                    + (long) tableRows * half);
        }
        for (int r = 0; r < rows; r++) {
            if (positions[r] < 0 || positions[r] >= tableRows) {
                throw new IllegalArgumentException("rope: position " + positions[r] + " of row " + r
                        + " outside the table of " + tableRows + " positions");
            }
        }
        if (rows == 0) {
            return;
        }
        DeviceBuffer meta = obtain(4L * rows + 8L * tableRows * half, "rope positions and tables");
        try {
            synchronized (backend) {
                backend.makeCurrent();
                CudaBackend.uploadInts(meta, positions, 0, rows, "rope positions");
                long tab = 4L * rows;
                meta.upload(cos, 0, tableRows * half, rows);
                meta.upload(sin, 0, tableRows * half, rows + (long) tableRows * half);
                backend.ropeDevice(rows, heads, headDim, x.buffer.pointer(), x.cols(), meta.pointer(), meta.at(tab),
                        meta.at(tab + 4L * tableRows * half), tableRows);
            }
        } finally {
            recycle(meta);
        }
    }

    private void recycle(DeviceBuffer b) {
        if (live.remove(b)) {
            free.add(b);
        }
    }

    @Override
    protected void doAttention(int heads, int kvHeads, int headDim, float scale, boolean causal, int window,
                               int sequences, int[] seqStarts, int[] keyLengths, DeviceMatrix q, DeviceMatrix k,
                               DeviceMatrix v, DeviceMatrix out) {
        if (headDim > CudaBackend.MAX_ATTENTION_HEAD_DIM) {
            throw new IllegalArgumentException("attention in a CUDA workspace needs headDim <= "
                    + CudaBackend.MAX_ATTENTION_HEAD_DIM + ", got " + headDim);
        }
        if (seqStarts.length < sequences + 1 || (keyLengths != null && keyLengths.length < sequences)) {
            throw new IllegalArgumentException("attention: " + sequences + " sequences need " + (sequences + 1)
                    + " starts" + (keyLengths != null ? " and as many key lengths" : ""));
        }
        if (sequences > 0 && (seqStarts[0] < 0 || seqStarts[sequences] > q.rows())) {
            throw new IllegalArgumentException("attention: sequence rows [" + seqStarts[0] + ", " + seqStarts[sequences]
                    + ") outside the " + q.rows() + " rows of q");
        }
        boolean tf32 = precision() == ForwardPrecision.TF32 && backend.tf32AttentionRuns(headDim);
        int[] tiles = CudaBackend.attentionTiles(sequences, seqStarts,
                tf32 ? CudaBackend.ATTENTION_TF32_QUERY_TILE : CudaBackend.ATTENTION_QUERY_TILE);
        if (tiles.length == 0) {
            return;
        }
        int metaInts = tiles.length + sequences + 1 + (keyLengths != null ? sequences : 0);
        DeviceBuffer meta = obtain(4L * metaInts, "attention tiles");
        try {
            synchronized (backend) {
                backend.makeCurrent();
                CudaBackend.uploadInts(meta, tiles, 0, tiles.length, "attention tiles");
                int[] rest = new int[metaInts - tiles.length];
                System.arraycopy(seqStarts, 0, rest, 0, sequences + 1);
                if (keyLengths != null) {
                    System.arraycopy(keyLengths, 0, rest, sequences + 1, sequences);
                }
                DeviceBuffer restBuf = meta;
                uploadIntsAt(restBuf, 4L * tiles.length, rest);
                jcuda.driver.CUdeviceptr kl = keyLengths != null ? meta.at(4L * (tiles.length + sequences + 1))
                        : new jcuda.driver.CUdeviceptr();
                if (tf32) {
                    backend.attentionTf32Device(heads, kvHeads, headDim, scale, causal, window, tiles.length / 2,
                            meta.at(4L * tiles.length), kl, meta.pointer(), q.buffer.pointer(), q.cols(),
                            k.buffer.pointer(), k.cols(), v.buffer.pointer(), v.cols(), out.buffer.pointer(), out.cols());
                } else {
                    backend.attentionDevice(heads, kvHeads, headDim, scale, causal, window, tiles.length / 2,
                            meta.at(4L * tiles.length), kl, meta.pointer(), q.buffer.pointer(), q.cols(),
                            k.buffer.pointer(), k.cols(), v.buffer.pointer(), v.cols(), out.buffer.pointer(), out.cols());
                }
            }
        } finally {
            recycle(meta);
        }
    }

    private static void uploadIntsAt(DeviceBuffer b, long byteOffset, int[] values) {
        if (values.length > 0) {
            Driver.check("cuMemcpyHtoD " + b.label() + " (" + values.length + " ints)",
                    () -> jcuda.driver.JCudaDriver.cuMemcpyHtoD(b.at(byteOffset), jcuda.Pointer.to(values),
                            4L * values.length));
        }
    }

    @Override
    protected void doAdd(DeviceMatrix x, DeviceMatrix y) {
        if (x.size() == 0) {
            return;
        }
        synchronized (backend) {
            backend.makeCurrent();
            backend.addDevice(x.rows(), x.cols(), x.buffer.pointer(), x.cols(), y.buffer.pointer(), y.cols());
        }
    }

    @Override
    protected void doSiluMul(DeviceMatrix g, DeviceMatrix u, DeviceMatrix y) {
        if (g.size() == 0) {
            return;
        }
        synchronized (backend) {
            backend.makeCurrent();
            backend.siluMulDevice(g.rows(), g.cols(), g.buffer.pointer(), g.cols(), u.buffer.pointer(), u.cols(),
                    y.buffer.pointer(), y.cols());
        }
    }

    @Override
    protected void doGelu(DeviceMatrix x) {
        if (x.size() == 0) {
            return;
        }
        synchronized (backend) {
            backend.makeCurrent();
            backend.geluDevice(x.rows(), x.cols(), x.buffer.pointer(), x.cols());
        }
    }

    @Override
    protected void doClose() {
        synchronized (backend) {
            if (backend.isClosed()) {
                live.clear();
                free.clear();
                pinned.clear();
                scratch = null;
                return; // the backend's close freed the context; the buffers' cleaners have nothing left to do
            }
            backend.makeCurrent();
            for (DeviceBuffer b : live) {
                b.close();
            }
            for (DeviceBuffer b : free) {
                b.close();
            }
            if (scratch != null) {
                scratch.close();
            }
            live.clear();
            free.clear();
            scratch = null;
            for (DeviceArrayCache.Entry<DeviceBuffer> e : pinned.keySet()) {
                backend.unpinWeight(e);
            }
            pinned.clear();
            backend.workspaceClosed(this);
        }
    }
}
