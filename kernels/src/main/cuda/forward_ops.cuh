// SparkPrune forward-pass kernels (issue 8), included from sparkprune.cu inside its extern "C" block.
// Each kernel computes the function of its twin in io.sparkprune.kernels.cpu.CpuForward under the
// contracts of io.sparkprune.kernels.Backend ("Forward-pass kernels"): fp32 data, row-major windows
// with a row stride, reductions (norm statistics, softmax sums, log-sum-exp) in fp64. Where the
// contract fixes "an fp32 product, then an fp32 addition", the __f*_rn intrinsics keep nvcc from
// contracting them into one fused multiply-add, so those results are bitwise equal to the CPU's.
//
// Launch shapes (CudaBackend): row-wise kernels one 256-thread block per row (gridDim.x = rows);
// elementwise kernels a 1-D grid over rows*cols elements (64-bit index); attention one 256-thread
// block per (query tile of 64 rows, query head), dynamic shared memory (see fa_smem_floats).

#define FW_THREADS 256

// Block-wide sum of one double per thread (FW_THREADS threads); every thread gets the total.
__device__ __forceinline__ double fw_block_sum(double v, double* red)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double t = 0.0;
#pragma unroll
    for (int w = 0; w < FW_THREADS / 32; w++) t += red[w];
    return t;
}

// Java's Math.max for floats: NaN if either is NaN.
__device__ __forceinline__ float fw_jmax(float a, float b)
{
    return (a != a || b != b) ? __int_as_float(0x7fc00000) : fmaxf(a, b);
}

__device__ __forceinline__ float fw_block_max(float v, float* red)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fw_jmax(v, __shfl_xor_sync(FULL_MASK, v, o));
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = red[0];
#pragma unroll
    for (int w = 1; w < FW_THREADS / 32; w++) t = fw_jmax(t, red[w]);
    return t;
}

// RMSNorm: y = w * (x * r), r = fp32(1 / sqrt(sum(x^2)/cols + eps)), sum in fp64. y may be x.
__global__ void __launch_bounds__(FW_THREADS)
rmsnorm_f32(int rows, int cols, float eps, const float* x, int ldx, const float* __restrict__ w,
            float* y, int ldy)
{
    __shared__ double red[FW_THREADS / 32];
    const int r = blockIdx.x;
    if (r >= rows) return;
    const float* xr = x + (size_t)r * ldx;
    float* yr = y + (size_t)r * ldy;
    double ss = 0.0;
    for (int c = threadIdx.x; c < cols; c += FW_THREADS) { const double v = xr[c]; ss += v * v; }
    ss = fw_block_sum(ss, red);
    const float inv = (float)(1.0 / sqrt(ss / cols + (double)eps));
    for (int c = threadIdx.x; c < cols; c += FW_THREADS) yr[c] = __fmul_rn(w[c], __fmul_rn(xr[c], inv));
}

// LayerNorm: y = (x - mean) * r * gamma + beta, mean and biased variance in fp64 (two passes),
// r = fp32(1 / sqrt(var + eps)), then fp32 operations in that order. y may be x.
__global__ void __launch_bounds__(FW_THREADS)
layernorm_f32(int rows, int cols, float eps, const float* x, int ldx, const float* __restrict__ gamma,
              const float* __restrict__ beta, float* y, int ldy)
{
    __shared__ double red[FW_THREADS / 32];
    const int r = blockIdx.x;
    if (r >= rows) return;
    const float* xr = x + (size_t)r * ldx;
    float* yr = y + (size_t)r * ldy;
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += FW_THREADS) s += (double)xr[c];
    const double mean = fw_block_sum(s, red) / cols;
    double ss = 0.0;
    for (int c = threadIdx.x; c < cols; c += FW_THREADS) { const double d = (double)xr[c] - mean; ss += d * d; }
    ss = fw_block_sum(ss, red);
    const float inv = (float)(1.0 / sqrt(ss / cols + (double)eps));
    const float m = (float)mean;
    for (int c = threadIdx.x; c < cols; c += FW_THREADS)
        yr[c] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(xr[c], m), inv), gamma[c]), beta[c]);
}

// RoPE, rotate_half convention, in place: one block per row, threads over heads * headDim/2 pairs.
// Positions must lie in [0, tableRows) (checked by the host; a row with a position outside is left
// unchanged).
__global__ void __launch_bounds__(FW_THREADS)
rope_f32(int rows, int heads, int headDim, float* x, int ldx, const int* __restrict__ positions,
         const float* __restrict__ cosT, const float* __restrict__ sinT, int tableRows)
{
    const int r = blockIdx.x;
    if (r >= rows) return;
    const int p = positions[r];
    if (p < 0 || p >= tableRows) return;
    const int half = headDim >> 1;
    const float* ct = cosT + (size_t)p * half;
    const float* st = sinT + (size_t)p * half;
    float* xr = x + (size_t)r * ldx;
    for (int e = threadIdx.x; e < heads * half; e += FW_THREADS) {
        const int h = e / half, i = e - h * half;
        float* b = xr + (size_t)h * headDim;
        const float c = ct[i], s = st[i];
        const float x1 = b[i], x2 = b[half + i];
        b[i] = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
        b[half + i] = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
    }
}

// y = fp32(g / (1 + e^-g)) (fp64) * u; y may alias g or u element by element.
__global__ void __launch_bounds__(FW_THREADS)
silu_mul_f32(int rows, int cols, const float* g, int ldg, const float* u, int ldu, float* y, int ldy)
{
    const long long total = (long long)rows * cols;
    for (long long e = (long long)blockIdx.x * FW_THREADS + threadIdx.x; e < total;
         e += (long long)gridDim.x * FW_THREADS) {
        const int r = (int)(e / cols), c = (int)(e - (long long)r * cols);
        const double a = g[(size_t)r * ldg + c];
        const float silu = (float)(a / (1.0 + exp(-a)));
        y[(size_t)r * ldy + c] = __fmul_rn(silu, u[(size_t)r * ldu + c]);
    }
}

// GELU, exact form, in place: x = fp32(0.5 x erfc(-x / sqrt 2)) evaluated in fp64 (as Erf.gelu).
__global__ void __launch_bounds__(FW_THREADS)
gelu_f32(int rows, int cols, float* x, int ldx)
{
    const long long total = (long long)rows * cols;
    for (long long e = (long long)blockIdx.x * FW_THREADS + threadIdx.x; e < total;
         e += (long long)gridDim.x * FW_THREADS) {
        const int r = (int)(e / cols), c = (int)(e - (long long)r * cols);
        float* p = x + (size_t)r * ldx + c;
        const double v = *p;
        *p = (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
    }
}

// y[r] = table[ids[r]] (or += when accumulate). Ids must lie in [0, tableRows) (checked by the host;
// a row with an id outside is left unchanged).
__global__ void __launch_bounds__(FW_THREADS)
embedding_f32(int rows, int cols, const int* __restrict__ ids, const float* __restrict__ table, int tableRows,
              float* __restrict__ y, int ldy, int accumulate)
{
    const long long total = (long long)rows * cols;
    for (long long e = (long long)blockIdx.x * FW_THREADS + threadIdx.x; e < total;
         e += (long long)gridDim.x * FW_THREADS) {
        const int r = (int)(e / cols), c = (int)(e - (long long)r * cols);
        const int id = ids[r];
        if (id < 0 || id >= tableRows) continue;
        const float v = table[(size_t)id * cols + c];
        float* p = y + (size_t)r * ldy + c;
        *p = accumulate ? __fadd_rn(*p, v) : v;
    }
}

// y[r, c] += v[c]
__global__ void __launch_bounds__(FW_THREADS)
add_row_vector_f32(int rows, int cols, const float* __restrict__ v, float* y, int ldy)
{
    const long long total = (long long)rows * cols;
    for (long long e = (long long)blockIdx.x * FW_THREADS + threadIdx.x; e < total;
         e += (long long)gridDim.x * FW_THREADS) {
        const int r = (int)(e / cols), c = (int)(e - (long long)r * cols);
        float* p = y + (size_t)r * ldy + c;
        *p = __fadd_rn(*p, v[c]);
    }
}

// y += x
__global__ void __launch_bounds__(FW_THREADS)
add_f32(int rows, int cols, const float* x, int ldx, float* y, int ldy)
{
    const long long total = (long long)rows * cols;
    for (long long e = (long long)blockIdx.x * FW_THREADS + threadIdx.x; e < total;
         e += (long long)gridDim.x * FW_THREADS) {
        const int r = (int)(e / cols), c = (int)(e - (long long)r * cols);
        float* p = y + (size_t)r * ldy + c;
        *p = __fadd_rn(*p, x[(size_t)r * ldx + c]);
    }
}

// m + log(sum e^(x - m)) of one row, fp64, as CpuForward.logSumExp (m = -inf or NaN: returns m).
__device__ double fw_row_lse(const float* xr, int cols, float* redf, double* redd)
{
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += FW_THREADS) m = fw_jmax(m, xr[c]);
    m = fw_block_max(m, redf);
    if (m == -INFINITY || m != m) return (double)m;
    double s = 0.0;
    for (int c = threadIdx.x; c < cols; c += FW_THREADS) s += exp((double)xr[c] - (double)m);
    s = fw_block_sum(s, redd);
    return (double)m + log(s);
}

// x = fp32(x - lse) per row, in place.
__global__ void __launch_bounds__(FW_THREADS)
log_softmax_f32(int rows, int cols, float* x, int ldx)
{
    __shared__ float redf[FW_THREADS / 32];
    __shared__ double redd[FW_THREADS / 32];
    const int r = blockIdx.x;
    if (r >= rows) return;
    float* xr = x + (size_t)r * ldx;
    const double lse = fw_row_lse(xr, cols, redf, redd);
    __syncthreads();
    for (int c = threadIdx.x; c < cols; c += FW_THREADS) xr[c] = (float)((double)xr[c] - lse);
}

// nll[r] = lse(x[r]) - x[r, target[r]] in fp64. Targets must lie in [0, cols) (checked by the host;
// a row with a target outside gets NaN).
__global__ void __launch_bounds__(FW_THREADS)
cross_entropy_f32(int rows, int cols, const float* __restrict__ x, int ldx, const int* __restrict__ targets,
                  double* __restrict__ nll)
{
    __shared__ float redf[FW_THREADS / 32];
    __shared__ double redd[FW_THREADS / 32];
    const int r = blockIdx.x;
    if (r >= rows) return;
    const float* xr = x + (size_t)r * ldx;
    const double lse = fw_row_lse(xr, cols, redf, redd);
    if (threadIdx.x == 0) {
        const int t = targets[r];
        nll[r] = (t >= 0 && t < cols) ? lse - (double)xr[t] : __longlong_as_double(0x7ff8000000000000LL);
    }
}

// *first = min over i < n with x[i] NaN or infinite of i (left unchanged when every element is
// finite; the host sets it to ~0 first). Grid-stride over a 1-D grid, 64-bit index: the check of
// calibration activations that stay on the device (ForwardWorkspace.firstNonFinite).
__global__ void __launch_bounds__(FW_THREADS)
first_nonfinite_f32(long long n, const float* __restrict__ x, unsigned long long* __restrict__ first)
{
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (!isfinite(x[i])) {
            atomicMin(first, (unsigned long long)i);
            return; // later elements of this thread have larger indices
        }
    }
}

// bf16_to_f32: out[i] = the bfloat16 in[i] widened to fp32, for i < n: its 16 bits shifted to the top of
// the fp32 word (bfloat16 is fp32 with the low 16 mantissa bits cut off), so exact for every pattern,
// NaN payloads included (HalfFloats.bf16ToFloat). The weights a forward workspace gets as BF16 tensors
// (ForwardWorkspace.weight(HostTensor, ...)) are uploaded as their 2-byte values and widened here into
// the weight cache's fp32 buffer. Grid-stride over a 1-D grid, 64-bit index; any n (odd too).
__global__ void __launch_bounds__(FW_THREADS)
bf16_to_f32(long long n, const unsigned short* __restrict__ in, float* __restrict__ out)
{
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] = __uint_as_float((unsigned)in[i] << 16);
    }
}

// f16_to_f32: out[i] = the IEEE binary16 in[i] widened to fp32, for i < n, exactly (HalfFloats.f16ToFloat):
// finite values (normals, subnormals, signed zeros) by __half2float (cvt.f32.f16, exact: every binary16
// is a binary32); infinities and NaNs by their bits (sign, all-ones exponent, the 10 mantissa bits moved
// to the top of the 23), so a NaN keeps its payload and quiet bit as on the CPU rather than whatever NaN
// the conversion instruction returns. Grid-stride over a 1-D grid, 64-bit index; any n.
__global__ void __launch_bounds__(FW_THREADS)
f16_to_f32(long long n, const unsigned short* __restrict__ in, float* __restrict__ out)
{
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const unsigned h = in[i];
        out[i] = (h & 0x7c00u) == 0x7c00u
                ? __uint_as_float(((h & 0x8000u) << 16) | 0x7f800000u | ((h & 0x3ffu) << 13))
                : __half2float(__ushort_as_half((unsigned short)h));
    }
}

// ------------------------------------------------------------------------------------------------
// attention_f32: tiled ("flash") scaled dot-product attention, fp32, after FlashAttention (Dao et
// al. 2022, arXiv 2205.14135, Algorithm 1): for a tile of FA_BQ query rows of one head, loop over
// tiles of FA_BK keys, S = scale * Q K^T in registers, online softmax (running row max m, running
// fp64 denominator l, output rescaled by e^(m_old - m_new)), O += P V, finally O / l. Nothing of
// size seq x seq is stored. Masks and layout as io.sparkprune.kernels.AttentionJob (causal, sliding
// window, padding key lengths, grouped KV heads, packed sequences).
//
// Block: 256 threads as 16 x 16 (ty, tx); thread owns query rows ty + 16 r (r < 4), score columns
// tx + 16 c (c < FA_SC) and output columns tx + 16 c (c < FA_DC). The 16 threads of a row group are one
// half-warp, so row max and row sums are shuffles. Scores are sum_d fma(scale * q_d, k_d, .) over
// d = 0, 1, ... like the CPU (bitwise equal scores); each e^(s - m) in fp64, rounded to fp32.
// grid.x = query tiles (tiles[2 t] = sequence, tiles[2 t + 1] = first query row within it),
// grid.y = query heads. headDim <= FA_DMAX.
// ------------------------------------------------------------------------------------------------
#define FA_BQ 64
#define FA_BK 32
#define FA_SC (FA_BK / 16)
#define FA_DMAX 128
#define FA_DC (FA_DMAX / 16)

__global__ void __launch_bounds__(256)
attention_f32(int heads, int kvHeads, int headDim, float scale, int causal, int window,
              const int* __restrict__ seqStarts, const int* __restrict__ keyLengths, const int* __restrict__ tiles,
              const float* __restrict__ Q, int ldq, const float* __restrict__ K, int ldk,
              const float* __restrict__ V, int ldv, float* __restrict__ O, int ldo)
{
    extern __shared__ float fsm[];
    const int D = headDim, Dp = headDim + 1;
    float* Qs = fsm;                       // FA_BQ x Dp
    float* Ks = Qs + FA_BQ * Dp;           // FA_BK x Dp
    float* Vs = Ks + FA_BK * Dp;           // FA_BK x Dp
    float* Ps = Vs + FA_BK * Dp;           // FA_BQ x (FA_BK + 1)
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int s = tiles[2 * blockIdx.x], i0 = tiles[2 * blockIdx.x + 1];
    const int h = blockIdx.y, g = h / (heads / kvHeads);
    const int base = seqStarts[s];
    const int n = seqStarts[s + 1] - base;
    const int kl = keyLengths == nullptr ? n : min(n, keyLengths[s]);
    const int i1 = min(n, i0 + FA_BQ);
    const int jHi = causal ? min(kl, i1) : kl;
    const int jLo = window > 0 ? max(0, i0 - window + 1) : 0;

    // Q tile, pre-multiplied by scale as the CPU does (scale * q_d, fp32)
    for (int e = tid; e < FA_BQ * D; e += 256) {
        const int r = e / D, d = e - r * D;
        const int i = i0 + r;
        Qs[r * Dp + d] = i < i1 ? __fmul_rn(scale, Q[(size_t)(base + i) * ldq + (size_t)h * D + d]) : 0.f;
    }
    float m[4], o[4][FA_DC];
    double l[4];
#pragma unroll
    for (int r = 0; r < 4; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0;
#pragma unroll
        for (int c = 0; c < FA_DC; c++) o[r][c] = 0.f;
    }
    for (int j0 = jLo; j0 < jHi; j0 += FA_BK) {
        __syncthreads();
        for (int e = tid; e < FA_BK * D; e += 256) {
            const int jj = e / D, d = e - jj * D;
            const int j = j0 + jj;
            float kv = 0.f, vv = 0.f;
            if (j < jHi) {
                const size_t row = (size_t)(base + j);
                kv = K[row * ldk + (size_t)g * D + d];
                vv = V[row * ldv + (size_t)g * D + d];
            }
            Ks[jj * Dp + d] = kv;
            Vs[jj * Dp + d] = vv;
        }
        __syncthreads();
        float sc[4][FA_SC];
#pragma unroll
        for (int r = 0; r < 4; r++)
#pragma unroll
            for (int c = 0; c < FA_SC; c++) sc[r][c] = 0.f;
        for (int d = 0; d < D; d++) {
            float a[4], b[FA_SC];
#pragma unroll
            for (int r = 0; r < 4; r++) a[r] = Qs[(ty + 16 * r) * Dp + d];
#pragma unroll
            for (int c = 0; c < FA_SC; c++) b[c] = Ks[(tx + 16 * c) * Dp + d];
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int c = 0; c < FA_SC; c++) sc[r][c] = fmaf(a[r], b[c], sc[r][c]);
        }
#pragma unroll
        for (int r = 0; r < 4; r++) {
            const int i = i0 + ty + 16 * r;
            const int lo = window > 0 ? max(0, i - window + 1) : 0;
            const int hi = causal ? min(kl, i + 1) : kl;
            float tmax = -INFINITY;
#pragma unroll
            for (int c = 0; c < FA_SC; c++) {
                const int j = j0 + tx + 16 * c;
                if (j < lo || j >= hi) sc[r][c] = -INFINITY;
                tmax = fmaxf(tmax, sc[r][c]);
            }
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(FULL_MASK, tmax, off));
            const float mNew = fmaxf(m[r], tmax);
            double alpha = 1.0, psum = 0.0;
            if (mNew != -INFINITY) {
                alpha = m[r] == -INFINITY ? 0.0 : exp((double)__fsub_rn(m[r], mNew));
#pragma unroll
                for (int c = 0; c < FA_SC; c++) {
                    const float p = sc[r][c] == -INFINITY ? 0.f : (float)exp((double)__fsub_rn(sc[r][c], mNew));
                    sc[r][c] = p;
                    psum += p;
                }
            } else {
#pragma unroll
                for (int c = 0; c < FA_SC; c++) sc[r][c] = 0.f;
            }
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) psum += __shfl_xor_sync(FULL_MASK, psum, off);
            m[r] = mNew;
            l[r] = l[r] * alpha + psum;
            const float af = (float)alpha;
#pragma unroll
            for (int c = 0; c < FA_DC; c++) o[r][c] *= af;
#pragma unroll
            for (int c = 0; c < FA_SC; c++) Ps[(ty + 16 * r) * (FA_BK + 1) + tx + 16 * c] = sc[r][c];
        }
        __syncthreads();
        const int jn = min(FA_BK, jHi - j0);
        for (int jj = 0; jj < jn; jj++) {
            float p[4];
#pragma unroll
            for (int r = 0; r < 4; r++) p[r] = Ps[(ty + 16 * r) * (FA_BK + 1) + jj];
#pragma unroll
            for (int c = 0; c < FA_DC; c++) {
                const int d = tx + 16 * c;
                if (d < D) {
                    const float vv = Vs[jj * Dp + d];
#pragma unroll
                    for (int r = 0; r < 4; r++) o[r][c] = fmaf(p[r], vv, o[r][c]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int i = i0 + ty + 16 * r;
        if (i >= i1) continue;
        const float inv = l[r] > 0.0 ? (float)(1.0 / l[r]) : 0.f;
        float* orow = O + (size_t)(base + i) * ldo + (size_t)h * D;
#pragma unroll
        for (int c = 0; c < FA_DC; c++) {
            const int d = tx + 16 * c;
            if (d < D) orow[d] = o[r][c] * inv;
        }
    }
}
