// ------------------------------------------------------------------------------------------------
// sparsegpt_block_l{L}[r{R}]: the function of sparsegpt_block, bit for bit (the same fp32/fp64
// operations, in the same order for every element: see sparsegpt_block's comment and
// io.sparkprune.kernels.SparseGptBlock), with L lanes per weight row (L = 4, 8 or 16) and R rows per
// group of L lanes (R = 1 or 2). Included by sparkprune.cu after its extern "C" block; the kernels have
// sparsegpt_block's parameter list, so CudaBackend.blockDevice picks one by shape.
//
// Layout: a row's block columns live in registers, STRIDED over the row's L lanes: column c in lane
// c % L, slot c / L (K = 128 / L slots, every register index a compile-time constant: the slot loop is
// fully unrolled, the loop over the L columns of one slot is not). Per column i = s*L + t the owner
// lane t broadcasts w[i] and its mask bits with a width-L __shfl_sync; every lane of the row then
// computes q, the code, e = (w - q) / U[i,i] and the fp64 loss sum redundantly (identical operations,
// identical bits) and updates its own columns j > i: slots > s unconditionally, slot s in lanes > t,
// so a row pays ~K - s updates per lane and column instead of warp-per-row's 4 predicated slots and
// 32-lane shuffles, and L lanes keep 32/L rows per warp in flight (thread-per-row: 1 warp per SM for
// 4096 rows). With R = 2 each lane updates the same columns of two rows, one U load feeding both.
//
// U: the upper triangle of the width x width block, packed row by row in shared memory (row i's
// columns i..127 from sl_base(i); entries at or beyond width are zero), plus its diagonal: 33,536 bytes
// instead of 64 KiB, so several thread blocks fit per multiprocessor; U[i, c] for consecutive lanes is
// consecutive words, the same address for the warp's other rows (a broadcast): conflict free. The owner
// lane stores e (and the code) of column i in shared memory (pitch SL_EP / SL_CP per row: the warp's
// rows hit different banks), which the warp writes out along its rows at the end (coalesced, and no
// registers held for them); W is written from the registers, the mask only where N:M marked a column.
//
// N:M selection (nmGroup > 0) needs L % nmGroup == 0 (a group's columns then share one slot and lie in
// an aligned segment of nmGroup lanes; ranks by width-nmGroup shuffles, ties to the lower column);
// another nmGroup traps (the caller, CudaBackend.blockDevice, uses sparsegpt_block for it).
// Quantization groups (qgroup > 0, a divisor of width) may have any size: min/max over the lane's
// columns in the group, then a width-L xor-shuffle tree, as sparsegpt_block's (fminf/fmaxf are exact).
// The mask is only written where the N:M selection marks a column (sparsegpt_block writes back the
// bytes it read everywhere else: the same memory afterwards).
// blockDim.x: a multiple of 32, at most SL_MAX_THREADS; rows per thread block RB = R * blockDim.x / L;
// grid ceil(rows / RB). Dynamic shared memory: SL_SMEM(RB) bytes (CudaBackend.laneSmem).
// ------------------------------------------------------------------------------------------------
#define SL_MAX_THREADS 512
#define SL_UPACK (SB_W * (SB_W + 1) / 2)
#define SL_EP (SB_W + 1)
#define SL_CP (SB_W + 4)
#define SL_SMEM(ROWS) (4 * (SL_UPACK + SB_W) + (ROWS) * (4 * SL_EP + SL_CP))

__device__ __forceinline__ int sl_base(int i)
{
    return i * SB_W - (i * (i - 1)) / 2;
}

template <int L, int R>
__device__ __forceinline__ void sl_solve(int rows, int width,
                                         float* __restrict__ W, int ldw,
                                         const float* __restrict__ U, int ldu,
                                         float* __restrict__ Err, int lde,
                                         unsigned char* __restrict__ M, int ldm,
                                         int nmKeep, int nmGroup,
                                         int qbits, int qsym, int qgroup,
                                         float* __restrict__ qscale, float* __restrict__ qzero, int ldq,
                                         signed char* __restrict__ codes, int ldc,
                                         double* __restrict__ loss)
{
    constexpr int K = SB_W / L;          // slots per lane
    static_assert(L == 4 || L == 8 || L == 16 || L == 32, "lanes per row: a power of two, 4..32");
    static_assert(K <= 32, "mask bits per lane fit one word");
    extern __shared__ float sl_smem[];
    float* Up = sl_smem;                    // packed upper triangle: U[i, c] at sl_base(i) + c - i
    float* dg = sl_smem + SL_UPACK;         // U[i, i]
    const int rowsPerBlock = R * (blockDim.x / L);
    float* es = dg + SB_W;                                   // Err of local row k at k * SL_EP + i
    signed char* cs = (signed char*)(es + rowsPerBlock * SL_EP);   // codes of local row k at k * SL_CP + i
    if (nmGroup > 0 && L % nmGroup != 0) __trap();   // precondition (see the comment block)

    // ---- stage U: warp k copies rows k, k + nw, ...; 8 loads in flight per lane
    {
        const int nw = blockDim.x >> 5, wp = threadIdx.x >> 5, ln = threadIdx.x & 31;
        for (int r0 = wp; r0 < SB_W; r0 += 2 * nw) {
            float v[2][4];
#pragma unroll
            for (int a = 0; a < 2; a++) {
                const int r = r0 + a * nw;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const int c = r + ln + 32 * k;
                    v[a][k] = (r < width && c < width) ? U[(size_t)r * ldu + c] : 0.f;
                }
            }
#pragma unroll
            for (int a = 0; a < 2; a++) {
                const int r = r0 + a * nw;
                if (r >= SB_W) continue;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const int c = r + ln + 32 * k;
                    if (c < SB_W) Up[sl_base(r) + c - r] = v[a][k];
                }
                if (ln == 0) dg[r] = v[a][0];
            }
        }
    }
    __syncthreads();

    const int l = threadIdx.x & (L - 1);
    const int lane = threadIdx.x & 31;
    const int local0 = R * (threadIdx.x / L);
    const int row0 = blockIdx.x * rowsPerBlock + local0;
    // a warp whose rows all lie beyond the last row leaves; partly valid warps run on (zeros for the
    // missing rows) because every shuffle below involves all 32 lanes
    if (blockIdx.x * rowsPerBlock + R * ((threadIdx.x & ~31) / L) >= rows) return;

    float w[R][K];
    unsigned mb[R], nb[R];               // bit s: column s*L + l masked / newly marked by N:M
    float scale[R], zero[R];
    double lossAcc[R];
    const int maxq = qbits > 0 ? (1 << qbits) - 1 : 0;
    const int half = qbits > 0 ? 1 << (qbits - 1) : 0;
    const int nmPrune = nmGroup - nmKeep;
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int row = row0 + r;
        const bool valid = row < rows;
        mb[r] = 0u;
        nb[r] = 0u;
#pragma unroll
        for (int s = 0; s < K; s++) {
            const int c = s * L + l;
            const bool in = valid && c < width;
            w[r][s] = in ? W[(size_t)row * ldw + c] : 0.f;
            if (in && M[(size_t)row * ldm + c]) mb[r] |= 1u << s;
        }
        scale[r] = 0.f;
        zero[r] = 0.f;
        if (valid && qbits > 0 && qgroup == 0) {
            scale[r] = qscale[(size_t)row * ldq];
            zero[r] = qzero[(size_t)row * ldq];
        }
        lossAcc[r] = 0.0;
    }

#pragma unroll
    for (int s = 0; s < K; s++) {
        for (int t = 0; t < L; t++) {
            const int i = s * L + t;
            if (i >= width) break;
            if (nmGroup > 0 && i % nmGroup == 0) {
                // the group's columns i .. i+nmGroup-1: slot s of lanes t .. t+nmGroup-1 (one segment)
                const float d = dg[s * L + l];
                const float dd = __fmul_rn(d, d);
                const int gi = lane & (nmGroup - 1);
                const bool mine = (l & ~(nmGroup - 1)) == t;
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const bool mk = (mb[r] >> s) & 1u;
                    const float sc = mk ? -1.f : __fdiv_rn(__fmul_rn(w[r][s], w[r][s]), dd);
                    int rank = 0;
                    for (int j = 0; j < nmGroup; j++) {
                        const float o = __shfl_sync(FULL_MASK, sc, j, nmGroup);
                        if (o >= 0.f && (o < sc || (o == sc && j < gi))) rank++;
                    }
                    if (mine && !mk && rank < nmPrune) {
                        mb[r] |= 1u << s;
                        nb[r] |= 1u << s;
                    }
                }
            }
            if (qbits > 0 && qgroup > 0 && i % qgroup == 0) {
                const int g1 = i + qgroup;
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float mn = 0.f, mx = 0.f;
#pragma unroll
                    for (int s2 = s; s2 < K; s2++) {
                        const int c = s2 * L + l;
                        if (c >= i && c < g1) { mn = fminf(mn, w[r][s2]); mx = fmaxf(mx, w[r][s2]); }
                    }
#pragma unroll
                    for (int o = L / 2; o > 0; o >>= 1) {
                        mn = fminf(mn, __shfl_xor_sync(FULL_MASK, mn, o, L));
                        mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, o, L));
                    }
                    if (qsym) {
                        float a = fmaxf(-mn, mx);
                        if (a == 0.f) a = 1.f;
                        scale[r] = __fdiv_rn(__fadd_rn(a, a), (float)maxq);
                        zero[r] = (float)((maxq + 1) / 2);
                    } else {
                        if (mn == 0.f && mx == 0.f) { mn = -1.f; mx = 1.f; }
                        scale[r] = __fdiv_rn(__fsub_rn(mx, mn), (float)maxq);
                        zero[r] = rintf(__fdiv_rn(-mn, scale[r]));
                    }
                    if (l == 0 && row0 + r < rows) {
                        qscale[(size_t)(row0 + r) * ldq + i / qgroup] = scale[r];
                        qzero[(size_t)(row0 + r) * ldq + i / qgroup] = zero[r];
                    }
                }
            }
            const float* urow = Up + sl_base(i) - i;   // urow[c] = U[i, c] for c >= i
            const float di = dg[i];
            float e[R], q[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float wi = __shfl_sync(FULL_MASK, w[r][s], t, L);
                const unsigned mi = (__shfl_sync(FULL_MASK, mb[r], t, L) >> s) & 1u;
                float qq = mi ? 0.f : wi;
                if (qbits > 0) {
                    float level = __fadd_rn(rintf(__fdiv_rn(qq, scale[r])), zero[r]);
                    level = fminf(fmaxf(level, 0.f), (float)maxq);
                    if (l == t) cs[(local0 + r) * SL_CP + i] = (signed char)((int)level - half);
                    qq = __fmul_rn(scale[r], __fsub_rn(level, zero[r]));
                }
                q[r] = qq;
                e[r] = __fdiv_rn(__fsub_rn(wi, qq), di);
                lossAcc[r] = __dadd_rn(lossAcc[r], __dmul_rn((double)e[r], (double)e[r]));
            }
            {
                const float u = urow[s * L + l];   // in bounds for every lane (sl_base(i) >= i)
                if (l > t) {
#pragma unroll
                    for (int r = 0; r < R; r++) w[r][s] = __fsub_rn(w[r][s], __fmul_rn(e[r], u));
                }
            }
#pragma unroll
            for (int s2 = s + 1; s2 < K; s2++) {
                const float u = urow[s2 * L + l];
#pragma unroll
                for (int r = 0; r < R; r++) w[r][s2] = __fsub_rn(w[r][s2], __fmul_rn(e[r], u));
            }
            if (l == t) {
#pragma unroll
                for (int r = 0; r < R; r++) { w[r][s] = q[r]; es[(local0 + r) * SL_EP + i] = e[r]; }
            }
        }
    }

#pragma unroll
    for (int r = 0; r < R; r++) {
        const int row = row0 + r;
        if (row >= rows) continue;
#pragma unroll
        for (int s = 0; s < K; s++) {
            const int c = s * L + l;
            if (c < width) {
                W[(size_t)row * ldw + c] = w[r][s];
                if ((nb[r] >> s) & 1u) M[(size_t)row * ldm + c] = 1;
            }
        }
        if (l == 0) loss[row] += lossAcc[r];
    }
    // Err and codes of the warp's rows, staged in shared memory by their owner lanes: written along the rows
    __syncwarp();
    {
        constexpr int WR = R * 32 / L;   // rows per warp
        const int wl0 = R * ((threadIdx.x & ~31) / L);
        for (int k = 0; k < WR; k++) {
            const int row = blockIdx.x * rowsPerBlock + wl0 + k;
            if (row >= rows) break;
            for (int c = lane; c < width; c += 32) {
                Err[(size_t)row * lde + c] = es[(wl0 + k) * SL_EP + c];
                if (qbits > 0) codes[(size_t)row * ldc + c] = cs[(wl0 + k) * SL_CP + c];
            }
        }
    }
}

#define SL_KERNEL(NAME, L, R, MINB)                                                                          \
    extern "C" __global__ void __launch_bounds__(SL_MAX_THREADS, MINB)                                     \
    NAME(int rows, int width, float* __restrict__ W, int ldw, const float* __restrict__ U, int ldu,          \
         float* __restrict__ Err, int lde, unsigned char* __restrict__ M, int ldm, int nmKeep, int nmGroup,   \
         int qbits, int qsym, int qgroup, float* __restrict__ qscale, float* __restrict__ qzero, int ldq,     \
         signed char* __restrict__ codes, int ldc, double* __restrict__ loss)                              \
    {                                                                                                        \
        sl_solve<L, R>(rows, width, W, ldw, U, ldu, Err, lde, M, ldm, nmKeep, nmGroup, qbits, qsym, qgroup,   \
                       qscale, qzero, ldq, codes, ldc, loss);                                                \
    }

SL_KERNEL(sparsegpt_block_l4, 4, 1, 1)
SL_KERNEL(sparsegpt_block_l8, 8, 1, 1)
SL_KERNEL(sparsegpt_block_l16, 16, 1, 1)
SL_KERNEL(sparsegpt_block_l8r2, 8, 2, 1)
SL_KERNEL(sparsegpt_block_l16r2, 16, 2, 1)
