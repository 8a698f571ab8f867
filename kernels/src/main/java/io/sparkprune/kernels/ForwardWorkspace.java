package io.sparkprune.kernels;

/**
 * A forward pass's working memory: the matrices of one transformer block (activations, intermediate
 * products, weights) held where the backend computes, and the forward ops on them. A block written
 * against this interface runs with its activations in device memory on a backend that is a
 * {@link ResidentForward} (the CUDA backend: one upload of the block input, one download of the output,
 * weights uploaded once and kept across batches), and on host arrays through {@link HostWorkspace}
 * everywhere else, with the same results as the {@link Backend} host-array ops (each op here is
 * the op of the same name there).
 *
 * <p>All matrices are fp32, row-major and contiguous ({@code rows × cols}, row stride {@code cols});
 * a vector is a {@code 1 × n} matrix. A matrix belongs to the workspace that made it (weights too,
 * even when the backend keeps their memory) and is valid until {@link #release} or {@link #close()}; passing another workspace's
 * matrix throws {@link IllegalArgumentException}, as do shapes that do not match. Weights are
 * read-only: an op that would write one throws {@link IllegalArgumentException}.
 *
 * <p>Not thread-safe: one thread uses a workspace at a time (several workspaces may share a backend;
 * the backend serializes their calls). Closing releases every matrix it made except weights (which
 * the backend may keep for later workspaces).
 */
public interface ForwardWorkspace extends AutoCloseable {

    /**
     * Opens a workspace on a backend: the backend's own when it is a {@link ResidentForward}, else a
     * {@link HostWorkspace} over its host-array ops.
     *
     * @param backend the kernels
     * @param precision products of {@link #linear}
     * @param label what the workspace is for, in messages (e.g. {@code "layer 3 Hessians"})
     * @return a new workspace; close it (in {@code finally}) to release its memory
     */
    static ForwardWorkspace open(Backend backend, ForwardPrecision precision, String label) {
        return open(backend, precision, label, Handoff.NONE);
    }

    /**
     * {@link #open(Backend, ForwardPrecision, String)} with a choice of what the workspace does with the
     * backend's activation cache ({@link ResidentForward}); a {@link HostWorkspace} has none and ignores it.
     *
     * @param backend the kernels
     * @param precision products of {@link #linear}
     * @param label what the workspace is for, in messages
     * @param handoff {@link Handoff#PIPELINE} only for a pass that never modifies the arrays it gets from
     *     {@link #downloadAndRelease} and is the last reader of the arrays it uploads
     * @return a new workspace; close it (in {@code finally}) to release its memory
     */
    static ForwardWorkspace open(Backend backend, ForwardPrecision precision, String label, Handoff handoff) {
        if (backend instanceof ResidentForward r) {
            return r.openWorkspace(precision, label, handoff);
        }
        return new HostWorkspace(backend, precision);
    }

    /**
     * What a resident workspace does with its backend's activation cache ({@link ResidentForward}):
     * device copies of block outputs keyed by the identity of the host arrays they were downloaded into.
     * Every resident workspace looks its {@link #upload}s up there (a hit is a device-to-device copy
     * instead of a host-to-device one, the same values); the handoff decides what else it does.
     */
    enum Handoff {
        /** Outputs are downloaded and their device memory recycled; cached inputs stay cached. */
        NONE,
        /**
         * A pass of a pipeline whose outputs feed the next passes (the prune job's forward pass from one
         * block to the next): {@link #downloadAndRelease} hands the matrix's device memory to the cache,
         * keyed by the returned array, instead of recycling it; an {@link #upload} whose array is
         * cached takes the cached device memory over (no copy at all) and removes it from the cache,
         * this pass being the array's last reader. The caller must never modify the arrays that
         * {@link #downloadAndRelease} returns (the cached copy would then differ from them).
         */
        PIPELINE
    }

    /**
     * A {@code rows × cols} fp32 row-major matrix of a workspace (or a weight of its backend; a weight
     * made from a 16-bit tensor is fp32 too, widened).
     */
    interface Matrix {
        /** @return rows, ≥ 0 */
        int rows();

        /** @return columns, ≥ 0 */
        int cols();

        /** @return whether this is a read-only weight ({@link ForwardWorkspace#weight}) */
        boolean isWeight();
    }

    /** @return the backend whose kernels run the ops */
    Backend backend();

    /** @return the precision of {@link #linear}'s products */
    ForwardPrecision precision();

    /** @return whether the matrices live in device memory (false: host arrays) */
    boolean isResident();

    /**
     * Copies a host array into a new matrix.
     *
     * @param host at least {@code rows·cols} floats, row-major; only the first {@code rows·cols} are read
     * @param rows rows, ≥ 0
     * @param cols columns, ≥ 0
     * @return the matrix (the array is not referenced afterwards); on a resident backend its values come
     *     from the activation cache when the array is there (see {@link Handoff}), the same values
     * @throws IllegalArgumentException when the array is too short or a size is negative
     */
    Matrix upload(float[] host, int rows, int cols);

    /**
     * A read-only weight over a host array. The backend may keep its copy across workspaces keyed by the
     * array's identity (the CUDA backend does): the array must not be modified afterwards, which
     * {@code io.sparkprune.pipeline.forward.Weights} guarantees for its arrays.
     *
     * @param host exactly {@code rows·cols} floats, row-major
     * @param rows rows, ≥ 1
     * @param cols columns, ≥ 1
     * @return the weight
     * @throws IllegalArgumentException when the array's length is not {@code rows·cols}
     */
    Matrix weight(float[] host, int rows, int cols);

    /**
     * A read-only weight over a host tensor in its checkpoint dtype: the fp32 matrix of the tensor's values
     * widened exactly ({@link HostTensor#toFloatArray()}: F32 as is, BF16 and F16 widened without rounding),
     * so every op on it computes bit for bit what it computes on {@link #weight(float[], int, int)} of
     * {@code tensor.toFloatArray()}. Where the widening happens is the workspace's choice: the CUDA
     * backend's workspace uploads the tensor's bytes (2 per value for BF16/F16, half of fp32) and widens
     * them on the device ({@code bf16_to_f32}, {@code f16_to_f32}), keeping the device fp32 copy in its
     * weight cache keyed by the tensor object's identity (as arrays are keyed by theirs); a
     * {@link HostWorkspace} widens on the host, once per tensor for the workspace's lifetime. The tensor's
     * bytes must not change afterwards, which {@code io.sparkprune.pipeline.forward.Weights} guarantees for
     * its tensors.
     *
     * @param tensor F32, F16 or BF16, {@code rows·cols} elements in row-major order (any shape with that
     *     many elements: the rows × cols view is taken over its flat values)
     * @param rows rows, ≥ 1
     * @param cols columns, ≥ 1
     * @return the weight, fp32 {@code rows × cols}
     * @throws IllegalArgumentException when the dtype is not F32, F16 or BF16 or the element count is not
     *     {@code rows·cols}
     */
    Matrix weight(HostTensor tensor, int rows, int cols);

    /**
     * A new matrix whose contents are unspecified until an op writes it.
     *
     * @param rows rows, ≥ 0
     * @param cols columns, ≥ 0
     * @return the matrix
     * @throws IllegalArgumentException when a size is negative
     */
    Matrix allocate(int rows, int cols);

    /**
     * The values of a matrix on the host. For a {@link HostWorkspace} this is the matrix's own array
     * (no copy: do not modify it while the matrix is in use); for a resident workspace a new array.
     *
     * @param m the matrix
     * @return {@code rows·cols} floats, row-major
     */
    float[] download(Matrix m);

    /**
     * A block's output: {@link #download} into a new host array, then {@link #release}. A
     * {@link Handoff#PIPELINE} workspace on a resident backend keeps the matrix's device memory in the
     * backend's activation cache, keyed by the returned array (when the cache's budget allows), so that
     * a later upload of the array needs no host-to-device copy. For a {@link HostWorkspace} the array is
     * the matrix's own (no copy).
     *
     * @param m the matrix, not a weight; released afterwards
     * @return {@code rows·cols} floats, row-major
     * @throws IllegalArgumentException when m is a weight, belongs elsewhere or was released
     */
    float[] downloadAndRelease(Matrix m);

    /**
     * Frees a matrix's memory before the workspace closes (a resident workspace recycles it for
     * later {@link #allocate}s of at most its size). Weights are not freed. Idempotent.
     *
     * @param m the matrix
     */
    void release(Matrix m);

    /**
     * The index of the first element that is NaN or infinite, or −1 when every element is finite (the
     * Hessian observer's check of calibration activations, done where the matrix lives).
     *
     * @param m the matrix
     * @return row-major element index, or −1
     */
    long firstNonFinite(Matrix m);

    /**
     * A linear layer {@code Y = X·Wᵀ (+ b)} ({@code torch.nn.functional.linear}) with this workspace's
     * {@link #precision()}: {@link Backend#sgemm} for {@link ForwardPrecision#FP32}; for
     * {@link ForwardPrecision#TF32} both operands rounded to TF32 ({@link Tf32#round}), fp32 products and
     * sums. The bias is added in fp32 after the product ({@link Backend#addRowVector}).
     *
     * @param x {@code rows × in}
     * @param w {@code out × in}
     * @param bias {@code 1 × out}, or null
     * @param y {@code rows × out}, written; must not be x or w
     */
    void linear(Matrix x, Matrix w, Matrix bias, Matrix y);

    /**
     * {@link Backend#rmsNorm}: {@code y = x / sqrt(mean(x²) + eps) ⊙ w} per row.
     *
     * @param x {@code rows × cols}
     * @param w {@code 1 × cols}
     * @param eps added to the mean square
     * @param y {@code rows × cols}, written; may be x
     */
    void rmsNorm(Matrix x, Matrix w, float eps, Matrix y);

    /**
     * {@link Backend#layerNorm} per row.
     *
     * @param x {@code rows × cols}
     * @param gamma {@code 1 × cols}
     * @param beta {@code 1 × cols}
     * @param eps added to the variance
     * @param y {@code rows × cols}, written; may be x
     */
    void layerNorm(Matrix x, Matrix gamma, Matrix beta, float eps, Matrix y);

    /**
     * {@link Backend#rope} in place on {@code x} ({@code rows × heads·headDim}).
     *
     * @param x the queries or keys, updated
     * @param heads heads in a row
     * @param headDim width of a head, even
     * @param positions {@code rows} positions, each in {@code [0, tableRows)}
     * @param cos {@code tableRows × headDim/2} table
     * @param sin {@code tableRows × headDim/2} table
     * @param tableRows rows of the tables
     */
    void rope(Matrix x, int heads, int headDim, int[] positions, float[] cos, float[] sin, int tableRows);

    /**
     * {@link Backend#attention} on packed sequences (the arguments of {@link AttentionJob}). In a
     * {@link ForwardPrecision#TF32} workspace with a head width that {@link AttentionJob#supportsTf32}
     * allows, the TF32 attention ({@link AttentionJob#tf32()}; on the GPU the tensor-core kernel
     * {@code attention_tf32}); else the fp32 one.
     *
     * @param heads query heads
     * @param kvHeads key/value heads (divides heads)
     * @param headDim head width
     * @param scale factor of the dot products
     * @param causal mask keys after the query
     * @param window sliding window in tokens, 0 for none
     * @param sequences number of sequences
     * @param seqStarts {@code sequences + 1} row offsets
     * @param keyLengths real keys per sequence, or null
     * @param q {@code rows × heads·headDim}
     * @param k {@code rows × kvHeads·headDim}
     * @param v {@code rows × kvHeads·headDim}
     * @param out {@code rows × heads·headDim}, written; not q, k or v
     */
    void attention(int heads, int kvHeads, int headDim, float scale, boolean causal, int window, int sequences,
                   int[] seqStarts, int[] keyLengths, Matrix q, Matrix k, Matrix v, Matrix out);

    /**
     * {@link Backend#add}: {@code y += x} elementwise.
     *
     * @param x {@code rows × cols}
     * @param y {@code rows × cols}, updated
     */
    void add(Matrix x, Matrix y);

    /**
     * {@link Backend#siluMul}: {@code y = silu(g) ⊙ u}.
     *
     * @param g {@code rows × cols}
     * @param u {@code rows × cols}
     * @param y {@code rows × cols}, written; may be g or u
     */
    void siluMul(Matrix g, Matrix u, Matrix y);

    /**
     * {@link Backend#gelu} in place (exact erf form).
     *
     * @param x {@code rows × cols}, updated
     */
    void gelu(Matrix x);

    /**
     * What this workspace's uploads and outputs did with its backend's activation cache so far, for a
     * log line: counts and bytes of uploads taken over from the cache, copied from it on the device and
     * uploaded from host arrays, and of outputs kept. Empty for a workspace without one ({@link HostWorkspace}).
     *
     * @return one line of text, or {@code ""}
     */
    default String activationCacheSummary() {
        return "";
    }

    /** Releases every matrix this workspace made (idempotent); weights stay with the backend. */
    @Override
    void close();
}
