package io.sparkprune.kernels;

import java.util.Objects;

/**
 * The argument checks every {@link ForwardWorkspace} shares: ownership, liveness, shapes and
 * read-only weights are checked here, in the public methods, before an implementation's
 * {@code do*} method runs with arguments it may trust.
 *
 * @param <M> the implementation's matrix type
 */
public abstract class AbstractForwardWorkspace<M extends AbstractForwardWorkspace.Mat> implements ForwardWorkspace {
    private final Class<M> matrixType;
    private final Backend backend;
    private final ForwardPrecision precision;
    private boolean closed;

    /**
     * A matrix of an {@link AbstractForwardWorkspace}: its shape, the workspace that made it, whether
     * it is a weight and whether it was released.
     */
    public abstract static class Mat implements Matrix {
        final Object owner;
        private final int rows;
        private final int cols;
        final boolean weight;
        boolean released;

        /**
         * @param owner the workspace that made it
         * @param rows rows, ≥ 0
         * @param cols columns, ≥ 0
         * @param weight read-only weight
         */
        protected Mat(Object owner, int rows, int cols, boolean weight) {
            if (rows < 0 || cols < 0) {
                throw new IllegalArgumentException("matrix shape " + rows + " x " + cols + " is negative");
            }
            this.owner = owner;
            this.rows = rows;
            this.cols = cols;
            this.weight = weight;
        }

        @Override
        public int rows() {
            return rows;
        }

        @Override
        public int cols() {
            return cols;
        }

        @Override
        public boolean isWeight() {
            return weight;
        }

        /** @return {@code rows·cols} */
        public long size() {
            return (long) rows * cols;
        }

        /** @return whether {@link ForwardWorkspace#release} freed it */
        public boolean isReleased() {
            return released;
        }

        /** Marks it released (the implementation frees its memory). */
        protected void markReleased() {
            released = true;
        }

        @Override
        public String toString() {
            return (weight ? "weight " : "matrix ") + rows + " x " + cols;
        }
    }

    /**
     * @param matrixType the implementation's matrix class
     * @param backend the kernels
     * @param precision products of {@link #linear}
     */
    protected AbstractForwardWorkspace(Class<M> matrixType, Backend backend, ForwardPrecision precision) {
        this.matrixType = matrixType;
        this.backend = Objects.requireNonNull(backend, "backend");
        this.precision = Objects.requireNonNull(precision, "precision");
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public ForwardPrecision precision() {
        return precision;
    }

    /** @return whether {@link #close()} ran */
    protected boolean isClosed() {
        return closed;
    }

    /**
     * @param m any matrix
     * @param what its role, for messages
     * @return m as this implementation's matrix, live and made by this workspace
     * @throws IllegalArgumentException when it belongs elsewhere or was released
     * @throws IllegalStateException when this workspace is closed
     */
    protected final M own(Matrix m, String what) {
        if (closed) {
            throw new IllegalStateException("forward workspace is closed (" + what + ")");
        }
        Objects.requireNonNull(m, what);
        if (!matrixType.isInstance(m)) {
            throw new IllegalArgumentException(what + " (" + m + ") belongs to another kind of workspace");
        }
        M mm = matrixType.cast(m);
        if (mm.owner != this) {
            throw new IllegalArgumentException(what + " (" + m + ") belongs to another workspace");
        }
        if (mm.released) {
            throw new IllegalArgumentException(what + " (" + m + ") was released");
        }
        return mm;
    }

    private M writable(Matrix m, String what) {
        M mm = own(m, what);
        if (mm.weight) {
            throw new IllegalArgumentException(what + " is a read-only weight (" + m + ")");
        }
        return mm;
    }

    private static void shape(Matrix m, int rows, int cols, String what) {
        if (m.rows() != rows || m.cols() != cols) {
            throw new IllegalArgumentException(what + " is " + m.rows() + " x " + m.cols() + ", expected " + rows + " x "
                    + cols);
        }
    }

    @Override
    public final Matrix upload(float[] host, int rows, int cols) {
        if (rows < 0 || cols < 0 || host.length < (long) rows * cols) {
            throw new IllegalArgumentException("upload of " + rows + " x " + cols + " from an array of " + host.length);
        }
        own0();
        return doUpload(host, rows, cols);
    }

    @Override
    public final Matrix weight(float[] host, int rows, int cols) {
        Objects.requireNonNull(host, "host");
        if (rows < 1 || cols < 1 || host.length != (long) rows * cols) {
            throw new IllegalArgumentException("weight " + rows + " x " + cols + " from an array of " + host.length);
        }
        own0();
        return doWeight(host, rows, cols);
    }

    @Override
    public final Matrix weight(HostTensor tensor, int rows, int cols) {
        Objects.requireNonNull(tensor, "tensor");
        if (tensor.dtype() != DType.F32 && tensor.dtype() != DType.F16 && tensor.dtype() != DType.BF16) {
            throw new IllegalArgumentException("weight " + rows + " x " + cols + " from " + tensor
                    + ": a workspace weight must be F32, F16 or BF16");
        }
        if (rows < 1 || cols < 1 || tensor.numel() != (long) rows * cols) {
            throw new IllegalArgumentException("weight " + rows + " x " + cols + " from " + tensor + " of "
                    + tensor.numel() + " elements");
        }
        own0();
        return doWeight(tensor, rows, cols);
    }

    @Override
    public final Matrix allocate(int rows, int cols) {
        if (rows < 0 || cols < 0 || (long) rows * cols > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("matrix " + rows + " x " + cols + " is negative or over 2^31 elements");
        }
        own0();
        return doAllocate(rows, cols);
    }

    private void own0() {
        if (closed) {
            throw new IllegalStateException("forward workspace is closed");
        }
    }

    @Override
    public final float[] download(Matrix m) {
        return doDownload(own(m, "download"));
    }

    @Override
    public final float[] downloadAndRelease(Matrix m) {
        M mm = own(m, "downloadAndRelease");
        if (mm.weight) {
            throw new IllegalArgumentException("downloadAndRelease of a read-only weight (" + m + ")");
        }
        mm.markReleased();
        return doDownloadAndRelease(mm);
    }

    @Override
    public final void release(Matrix m) {
        if (m == null || closed) {
            return;
        }
        M mm = matrixType.isInstance(m) ? matrixType.cast(m) : null;
        if (mm == null || mm.released || mm.weight) {
            return;
        }
        own(m, "release");
        mm.markReleased();
        doRelease(mm);
    }

    @Override
    public final long firstNonFinite(Matrix m) {
        M mm = own(m, "firstNonFinite");
        return mm.size() == 0 ? -1 : doFirstNonFinite(mm);
    }

    @Override
    public final void linear(Matrix x, Matrix w, Matrix bias, Matrix y) {
        M mx = own(x, "linear x");
        M mw = own(w, "linear w");
        M mb = bias == null ? null : own(bias, "linear bias");
        M my = writable(y, "linear y");
        int rows = x.rows();
        int in = x.cols();
        int out = w.rows();
        shape(w, out, in, "linear w");
        if (mb != null) {
            shape(bias, 1, out, "linear bias");
        }
        shape(y, rows, out, "linear y");
        if (my == mx || my == mw) {
            throw new IllegalArgumentException("linear y must not be x or w");
        }
        doLinear(mx, mw, mb, my);
    }

    @Override
    public final void rmsNorm(Matrix x, Matrix w, float eps, Matrix y) {
        M mx = own(x, "rmsNorm x");
        M mw = own(w, "rmsNorm w");
        M my = writable(y, "rmsNorm y");
        shape(w, 1, x.cols(), "rmsNorm w");
        shape(y, x.rows(), x.cols(), "rmsNorm y");
        doRmsNorm(mx, mw, eps, my);
    }

    @Override
    public final void layerNorm(Matrix x, Matrix gamma, Matrix beta, float eps, Matrix y) {
        M mx = own(x, "layerNorm x");
        M mg = own(gamma, "layerNorm gamma");
        M mb = own(beta, "layerNorm beta");
        M my = writable(y, "layerNorm y");
        shape(gamma, 1, x.cols(), "layerNorm gamma");
        shape(beta, 1, x.cols(), "layerNorm beta");
        shape(y, x.rows(), x.cols(), "layerNorm y");
        doLayerNorm(mx, mg, mb, eps, my);
    }

    @Override
    public final void rope(Matrix x, int heads, int headDim, int[] positions, float[] cos, float[] sin, int tableRows) {
        M mx = writable(x, "rope x");
        if (heads < 1 || headDim < 2 || headDim % 2 != 0 || x.cols() != heads * headDim) {
            throw new IllegalArgumentException("rope: x is " + x.rows() + " x " + x.cols() + " but heads " + heads
                    + " x headDim " + headDim + " (even, ≥ 2) were given");
        }
        if (positions.length < x.rows()) {
            throw new IllegalArgumentException("rope: " + positions.length + " positions for " + x.rows() + " rows");
        }
        doRope(mx, heads, headDim, positions, cos, sin, tableRows);
    }

    @Override
    public final void attention(int heads, int kvHeads, int headDim, float scale, boolean causal, int window,
                                int sequences, int[] seqStarts, int[] keyLengths, Matrix q, Matrix k, Matrix v,
                                Matrix out) {
        M mq = own(q, "attention q");
        M mk = own(k, "attention k");
        M mv = own(v, "attention v");
        M mo = writable(out, "attention out");
        int rows = q.rows();
        shape(q, rows, heads * headDim, "attention q");
        shape(k, rows, kvHeads * headDim, "attention k");
        shape(v, rows, kvHeads * headDim, "attention v");
        shape(out, rows, heads * headDim, "attention out");
        if (mo == mq || mo == mk || mo == mv) {
            throw new IllegalArgumentException("attention out must not be q, k or v");
        }
        doAttention(heads, kvHeads, headDim, scale, causal, window, sequences, seqStarts, keyLengths, mq, mk, mv, mo);
    }

    @Override
    public final void add(Matrix x, Matrix y) {
        M mx = own(x, "add x");
        M my = writable(y, "add y");
        shape(y, x.rows(), x.cols(), "add y");
        doAdd(mx, my);
    }

    @Override
    public final void siluMul(Matrix g, Matrix u, Matrix y) {
        M mg = own(g, "siluMul g");
        M mu = own(u, "siluMul u");
        M my = writable(y, "siluMul y");
        shape(u, g.rows(), g.cols(), "siluMul u");
        shape(y, g.rows(), g.cols(), "siluMul y");
        doSiluMul(mg, mu, my);
    }

    @Override
    public final void gelu(Matrix x) {
        doGelu(writable(x, "gelu x"));
    }

    @Override
    public final void close() {
        if (!closed) {
            closed = true;
            doClose();
        }
    }

    /** @see #upload */
    protected abstract M doUpload(float[] host, int rows, int cols);

    /** @see #weight */
    protected abstract M doWeight(float[] host, int rows, int cols);

    /**
     * @see #weight(HostTensor, int, int)
     * @param tensor F32, F16 or BF16 with exactly {@code rows·cols} elements (checked)
     * @param rows rows, ≥ 1
     * @param cols columns, ≥ 1
     * @return a weight matrix holding the tensor's values widened exactly to fp32
     */
    protected abstract M doWeight(HostTensor tensor, int rows, int cols);

    /** @see #allocate */
    protected abstract M doAllocate(int rows, int cols);

    /** @see #download */
    protected abstract float[] doDownload(M m);

    /** Frees m's memory (already marked released). */
    protected abstract void doRelease(M m);

    /**
     * @see #downloadAndRelease
     * @param m a live non-weight matrix of this workspace, already marked released
     * @return its values; this default is {@link #doDownload} then {@link #doRelease}
     */
    protected float[] doDownloadAndRelease(M m) {
        float[] out = doDownload(m);
        doRelease(m);
        return out;
    }

    /** @see #firstNonFinite (m has at least one element) */
    protected abstract long doFirstNonFinite(M m);

    /** @see #linear */
    protected abstract void doLinear(M x, M w, M bias, M y);

    /** @see #rmsNorm */
    protected abstract void doRmsNorm(M x, M w, float eps, M y);

    /** @see #layerNorm */
    protected abstract void doLayerNorm(M x, M gamma, M beta, float eps, M y);

    /** @see #rope */
    protected abstract void doRope(M x, int heads, int headDim, int[] positions, float[] cos, float[] sin, int tableRows);

    /** @see #attention */
    protected abstract void doAttention(int heads, int kvHeads, int headDim, float scale, boolean causal, int window,
                                        int sequences, int[] seqStarts, int[] keyLengths, M q, M k, M v, M out);

    /** @see #add */
    protected abstract void doAdd(M x, M y);

    /** @see #siluMul */
    protected abstract void doSiluMul(M g, M u, M y);

    /** @see #gelu */
    protected abstract void doGelu(M x);

    /** Frees every non-weight matrix (runs once). */
    protected abstract void doClose();
}
