package io.sparkprune.kernels;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * A {@link ForwardWorkspace} on Java arrays: every op is the {@link Backend} host-array op of the same
 * name on the matrices' arrays, so a block written against the workspace computes exactly what the
 * same block written against the {@link Backend} does. Weights wrap their arrays (no copy; a weight
 * given as a 16-bit {@link HostTensor} is widened into a new fp32 array once per workspace); uploads
 * copy; {@link #download} returns the matrix's own array.
 *
 * <p>{@link ForwardPrecision#TF32} products: both operands are rounded to TF32 ({@link Tf32#round}),
 * then multiplied with {@link Backend#sgemm} (fp32 products and sums): the CPU twin of the GPU's
 * {@code sgemm_tf32} kernels up to the order of the fp32 sums. A weight's rounded copy is kept for the
 * workspace's lifetime. Attention too rounds its operands to TF32 ({@link AttentionJob#tf32()}) when
 * {@link AttentionJob#supportsTf32} allows the head width, the CPU twin of {@code attention_tf32}.
 */
public final class HostWorkspace extends AbstractForwardWorkspace<HostWorkspace.HostMatrix> {

    /** A matrix on a Java array of exactly {@code rows·cols} floats. */
    public static final class HostMatrix extends AbstractForwardWorkspace.Mat {
        private float[] data;

        HostMatrix(Object owner, int rows, int cols, boolean weight, float[] data) {
            super(owner, rows, cols, weight);
            this.data = data;
        }

        /** @return the values (row-major), the matrix's own array */
        public float[] data() {
            return data;
        }
    }

    private final Map<float[], float[]> roundedWeights = new IdentityHashMap<>();
    /** fp32 values of the tensors given to {@link #weight(HostTensor, int, int)}, by tensor identity. */
    private final Map<HostTensor, float[]> widened = new IdentityHashMap<>();

    /**
     * @param backend the kernels (any backend; a {@link ResidentForward} one is better used through
     *     {@link ForwardWorkspace#open})
     * @param precision products of {@link #linear}
     */
    public HostWorkspace(Backend backend, ForwardPrecision precision) {
        super(HostMatrix.class, backend, precision);
    }

    /**
     * Wraps a host array as a matrix of this workspace without copying (the block's own buffers).
     *
     * @param data exactly {@code rows·cols} floats
     * @param rows rows
     * @param cols columns
     * @return the matrix, writable, backed by {@code data}
     * @throws IllegalArgumentException when the length does not match
     */
    public HostMatrix wrap(float[] data, int rows, int cols) {
        if (rows < 0 || cols < 0 || data.length != (long) rows * cols) {
            throw new IllegalArgumentException("wrap " + rows + " x " + cols + " around an array of " + data.length);
        }
        return new HostMatrix(this, rows, cols, false, data);
    }

    @Override
    public boolean isResident() {
        return false;
    }

    @Override
    protected HostMatrix doUpload(float[] host, int rows, int cols) {
        float[] d = new float[rows * cols];
        System.arraycopy(host, 0, d, 0, d.length);
        return new HostMatrix(this, rows, cols, false, d);
    }

    @Override
    protected HostMatrix doWeight(float[] host, int rows, int cols) {
        return new HostMatrix(this, rows, cols, true, host);
    }

    /**
     * {@inheritDoc}
     *
     * <p>Here: the tensor widened on the host ({@link HostTensor#toFloatArray()}) once per tensor object
     * for this workspace's lifetime (a later {@code weight} of the same tensor wraps the same array).
     */
    @Override
    protected HostMatrix doWeight(HostTensor tensor, int rows, int cols) {
        return new HostMatrix(this, rows, cols, true, widened.computeIfAbsent(tensor, HostTensor::toFloatArray));
    }

    @Override
    protected HostMatrix doAllocate(int rows, int cols) {
        return new HostMatrix(this, rows, cols, false, new float[rows * cols]);
    }

    @Override
    protected float[] doDownload(HostMatrix m) {
        return m.data;
    }

    @Override
    protected void doRelease(HostMatrix m) {
        m.data = null;
    }

    @Override
    protected long doFirstNonFinite(HostMatrix m) {
        float[] d = m.data;
        for (int i = 0; i < d.length; i++) {
            if (!Float.isFinite(d[i])) {
                return i;
            }
        }
        return -1;
    }

    private static float[] roundTf32(float[] a) {
        float[] r = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = Tf32.round(a[i]);
        }
        return r;
    }

    @Override
    protected void doLinear(HostMatrix x, HostMatrix w, HostMatrix bias, HostMatrix y) {
        int rows = x.rows();
        int in = x.cols();
        int out = w.rows();
        float[] a = x.data;
        float[] b = w.data;
        if (precision() == ForwardPrecision.TF32) {
            a = roundTf32(a);
            b = w.isWeight() ? roundedWeights.computeIfAbsent(w.data, HostWorkspace::roundTf32) : roundTf32(b);
        }
        backend().sgemm(false, true, rows, out, in, 1f, a, 0, in, b, 0, in, 0f, y.data, 0, out);
        if (bias != null) {
            backend().addRowVector(rows, out, bias.data, 0, y.data, 0, out);
        }
    }

    @Override
    protected void doRmsNorm(HostMatrix x, HostMatrix w, float eps, HostMatrix y) {
        int c = x.cols();
        backend().rmsNorm(x.rows(), c, eps, x.data, 0, c, w.data, 0, y.data, 0, c);
    }

    @Override
    protected void doLayerNorm(HostMatrix x, HostMatrix gamma, HostMatrix beta, float eps, HostMatrix y) {
        int c = x.cols();
        backend().layerNorm(x.rows(), c, eps, x.data, 0, c, gamma.data, 0, beta.data, 0, y.data, 0, c);
    }

    @Override
    protected void doRope(HostMatrix x, int heads, int headDim, int[] positions, float[] cos, float[] sin, int tableRows) {
        backend().rope(x.rows(), heads, headDim, x.data, 0, x.cols(), positions, 0, cos, sin, tableRows);
    }

    @Override
    protected void doAttention(int heads, int kvHeads, int headDim, float scale, boolean causal, int window,
                               int sequences, int[] seqStarts, int[] keyLengths, HostMatrix q, HostMatrix k,
                               HostMatrix v, HostMatrix out) {
        backend().attention(new AttentionJob(heads, kvHeads, headDim, scale, causal, window, sequences, seqStarts,
                keyLengths, new FloatView(q.data, 0, q.cols()), new FloatView(k.data, 0, k.cols()),
                new FloatView(v.data, 0, v.cols()), new FloatView(out.data, 0, out.cols()),
                precision() == ForwardPrecision.TF32 && AttentionJob.supportsTf32(headDim)));
    }

    @Override
    protected void doAdd(HostMatrix x, HostMatrix y) {
        int c = x.cols();
        backend().add(x.rows(), c, x.data, 0, c, y.data, 0, c);
    }

    @Override
    protected void doSiluMul(HostMatrix g, HostMatrix u, HostMatrix y) {
        int c = g.cols();
        backend().siluMul(g.rows(), c, g.data, 0, c, u.data, 0, c, y.data, 0, c);
    }

    @Override
    protected void doGelu(HostMatrix x) {
        backend().gelu(x.rows(), x.cols(), x.data, 0, x.cols());
    }

    @Override
    protected void doClose() {
        roundedWeights.clear();
        widened.clear();
    }
}
