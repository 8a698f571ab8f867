// SparkPrune tensor-core GEMMs (issue 8), included from sparkprune.cu inside its extern "C" block.
//
//  sgemm_tf32_{nn,nt,tn,tt}: C = alpha op(A) op(B) + beta C, fp32 in and out, the products on the
//      tensor cores in TF32 (operands rounded to nearest, ties away, by cvt.rna.tf32.f32; fp32
//      accumulate): mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 (PTX ISA, "Warp-level matrix
//      multiply-accumulate instructions", mma.sync with .tf32, sm_80+). Same contract as sgemm_f32:
//      beta == 0 does not read C. Suffix: n = operand as stored, t = transposed.
//  gemm_bf16_{nn,nt,tn,tt}: the same with bf16 operands (raw uint16 bits), fp32 accumulate and fp32
//      C, mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32.
//  syrk_packed_tf32: Cp += X^T X into the fp64 packed upper triangle (the layout of sparkprune.cu), products
//      in TF32 accumulated in fp32 over chunks of TC_CHUNK tokens, each chunk's partial sums added in
//      fp64 (shared memory), upper 128 x 128 tiles only; grid.y splits the tokens, the splits meet
//      through fp64 atomicAdd.
//
// Tiling: 128 x 128 C tile per 256-thread block (8 warps as 2 x 4, 64 x 32 per warp: 4 x 4 mma tiles
// of 16 x 8), the inner dimension staged through shared memory TC_BK elements at a time with
// cp.async (16-byte copies, zero-filled past the edges) TC_STAGES deep. Operands whose rows are not
// 16-byte aligned (row stride or base not a multiple of 16 bytes) take plain loads instead ("vec" 0).
// Shared-memory layouts are padded so that every fragment load is free of bank conflicts:
// "MK" tiles (128 rows of TC_BK, the inner dimension contiguous) and "KM" tiles (TC_BK rows of 128).

extern "C++" {

#define TC_BM 128
#define TC_BN 128
#define TC_THREADS 256
#define TC_CHUNK 256

__device__ __forceinline__ unsigned tc_smem_addr(const void* p)
{
    return (unsigned)__cvta_generic_to_shared(p);
}

// 16-byte asynchronous copy global -> shared; bytes < 16 are copied, the rest zero-filled.
__device__ __forceinline__ void tc_cp16(void* dst, const void* src, int bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(tc_smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void tc_cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void tc_cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ unsigned tc_tf32(float x)
{
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}

// ---------------------------------------------------------------- tile loader (shared by both types)
// Loads the tile of a row-major operand X (ld elements per row) whose rows [r0, r0 + R) and columns
// [c0, c0 + C) are wanted, rows >= rLim or columns >= cLim read as zero, into shared memory with row
// pitch P elements. T is float or unsigned short; VE = elements per 16 bytes.
template <typename T, int R, int C, int P>
__device__ __forceinline__ void tc_load_tile(T* sm, const T* __restrict__ X, int ld, int r0, int c0, int rLim,
                                             int cLim, int vec)
{
    constexpr int VE = 16 / sizeof(T);
    constexpr int CH = R * C / VE;  // 16-byte chunks
    if (vec) {
#pragma unroll
        for (int e = threadIdx.x; e < CH; e += TC_THREADS) {
            const int r = e / (C / VE), cc = (e % (C / VE)) * VE;
            const int gr = r0 + r, gc = c0 + cc;
            int bytes = 0;
            const T* src = X;
            if (gr < rLim && gc < cLim) {
                bytes = min(VE, cLim - gc) * (int)sizeof(T);
                src = X + (size_t)gr * ld + gc;
            }
            tc_cp16(sm + r * P + cc, src, bytes);
        }
    } else {
        for (int e = threadIdx.x; e < R * C; e += TC_THREADS) {
            const int r = e / C, cc = e % C;
            const int gr = r0 + r, gc = c0 + cc;
            sm[r * P + cc] = (gr < rLim && gc < cLim) ? X[(size_t)gr * ld + gc] : (T)0;
        }
    }
}

// ================================================================ TF32
#define TF_BK 32
#define TF_PMK (TF_BK + 4)        // MK pitch: fragment banks 4g + t
#define TF_PKM (TC_BM + 8)        // KM pitch: fragment banks 8t + g
#define TF_TILE (TC_BM * TF_PMK)  // floats per operand tile (>= TF_BK * TF_PKM)
#define TF_STAGES 3

// Loads stage buffers of A (op(A) rows [i0, i0+128), inner [l0, l0+32)) and B (inner x cols [j0, j0+128)).
template <int TA, int TB>
__device__ __forceinline__ void tf_load(float* As, float* Bs, const float* A, int lda, const float* B, int ldb,
                                        int m, int n, int k, int i0, int j0, int l0, int vecA, int vecB)
{
    if (!TA) tc_load_tile<float, TC_BM, TF_BK, TF_PMK>(As, A, lda, i0, l0, m, k, vecA);
    else     tc_load_tile<float, TF_BK, TC_BM, TF_PKM>(As, A, lda, l0, i0, k, m, vecA);
    if (!TB) tc_load_tile<float, TF_BK, TC_BN, TF_PKM>(Bs, B, ldb, l0, j0, k, n, vecB);
    else     tc_load_tile<float, TC_BN, TF_BK, TF_PMK>(Bs, B, ldb, j0, l0, n, k, vecB);
}

// acc[mt][nt][4] += A(i0.., l) B(l, j0..) over inner range [kBeg, kEnd), for this warp's 64 x 32.
template <int TA, int TB, int STAGES>
__device__ __forceinline__ void tf_mainloop(float (&acc)[4][4][4], float* smem, const float* A, int lda,
                                            const float* B, int ldb, int m, int n, int k, int i0, int j0,
                                            int kBeg, int kEnd, int vecA, int vecB)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int g = lane >> 2, t = lane & 3;
    const int nTiles = (kEnd - kBeg + TF_BK - 1) / TF_BK;
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < nTiles)
            tf_load<TA, TB>(smem + s * 2 * TF_TILE, smem + s * 2 * TF_TILE + TF_TILE, A, lda, B, ldb, m, n, kEnd,
                            i0, j0, kBeg + s * TF_BK, vecA, vecB);
        tc_cp_commit();
    }
    for (int kt = 0; kt < nTiles; kt++) {
        tc_cp_wait<STAGES - 2>();
        __syncthreads();
        {   // prefetch tile kt + STAGES - 1 into the stage read at kt - 1 (all threads are past it)
            const int nt = kt + STAGES - 1;
            if (nt < nTiles) {
                float* st = smem + (nt % STAGES) * 2 * TF_TILE;
                tf_load<TA, TB>(st, st + TF_TILE, A, lda, B, ldb, m, n, kEnd, i0, j0, kBeg + nt * TF_BK, vecA, vecB);
            }
            tc_cp_commit();
        }
        const float* As = smem + (kt % STAGES) * 2 * TF_TILE;
        const float* Bs = As + TF_TILE;
#pragma unroll
        for (int kk = 0; kk < TF_BK; kk += 8) {
            unsigned af[4][4], bf[4][2];
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
                const int r = wm + mt * 16 + g;
                if (!TA) {
                    af[mt][0] = tc_tf32(As[r * TF_PMK + kk + t]);
                    af[mt][1] = tc_tf32(As[(r + 8) * TF_PMK + kk + t]);
                    af[mt][2] = tc_tf32(As[r * TF_PMK + kk + t + 4]);
                    af[mt][3] = tc_tf32(As[(r + 8) * TF_PMK + kk + t + 4]);
                } else {
                    af[mt][0] = tc_tf32(As[(kk + t) * TF_PKM + r]);
                    af[mt][1] = tc_tf32(As[(kk + t) * TF_PKM + r + 8]);
                    af[mt][2] = tc_tf32(As[(kk + t + 4) * TF_PKM + r]);
                    af[mt][3] = tc_tf32(As[(kk + t + 4) * TF_PKM + r + 8]);
                }
            }
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int c = wn + nt * 8 + g;
                if (!TB) {
                    bf[nt][0] = tc_tf32(Bs[(kk + t) * TF_PKM + c]);
                    bf[nt][1] = tc_tf32(Bs[(kk + t + 4) * TF_PKM + c]);
                } else {
                    bf[nt][0] = tc_tf32(Bs[c * TF_PMK + kk + t]);
                    bf[nt][1] = tc_tf32(Bs[c * TF_PMK + kk + t + 4]);
                }
            }
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
                    asm volatile(
                        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                        : "+f"(acc[mt][nt][0]), "+f"(acc[mt][nt][1]), "+f"(acc[mt][nt][2]), "+f"(acc[mt][nt][3])
                        : "r"(af[mt][0]), "r"(af[mt][1]), "r"(af[mt][2]), "r"(af[mt][3]),
                          "r"(bf[nt][0]), "r"(bf[nt][1]));
        }
    }
    tc_cp_wait<0>();
    __syncthreads();
}

// C = alpha * acc + beta * C (beta == 0: C not read), bounds-checked. Fragment of mma m16n8:
// c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1).
__device__ __forceinline__ void tc_epilogue(float (&acc)[4][4][4], int m, int n, float alpha, float beta, float* C,
                                            int ldc, int i0, int j0)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const int i = i0 + wm + mt * 16 + g + (q >> 1) * 8;
                const int j = j0 + wn + nt * 8 + 2 * t + (q & 1);
                if (i < m && j < n) {
                    float* p = C + (size_t)i * ldc + j;
                    float v = alpha * acc[mt][nt][q];
                    if (beta != 0.f) v = fmaf(beta, *p, v);
                    *p = v;
                }
            }
}

template <int TA, int TB>
__device__ __forceinline__ void sgemm_tf32_body(int m, int n, int k, float alpha, const float* A, int lda,
                                                const float* B, int ldb, float beta, float* C, int ldc, int vecA,
                                                int vecB)
{
    extern __shared__ __align__(16) float tsm[];
    vecA = vecA && ((reinterpret_cast<uintptr_t>(A) & 15) == 0);
    vecB = vecB && ((reinterpret_cast<uintptr_t>(B) & 15) == 0);
    const int i0 = blockIdx.y * TC_BM, j0 = blockIdx.x * TC_BN;
    float acc[4][4][4];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 4; b++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[a][b][q] = 0.f;
    tf_mainloop<TA, TB, TF_STAGES>(acc, tsm, A, lda, B, ldb, m, n, k, i0, j0, 0, k, vecA, vecB);
    tc_epilogue(acc, m, n, alpha, beta, C, ldc, i0, j0);
}

} // extern "C++"

#define TC_SGEMM_TF32(NAME, TA, TB)                                                                          \
    __global__ void __launch_bounds__(TC_THREADS) NAME(int m, int n, int k, float alpha, const float* A,      \
                                                       int lda, const float* B, int ldb, float beta, float* C, \
                                                       int ldc, int vecA, int vecB)                            \
    {                                                                                                          \
        sgemm_tf32_body<TA, TB>(m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, vecA, vecB);                     \
    }
TC_SGEMM_TF32(sgemm_tf32_nn, 0, 0)
TC_SGEMM_TF32(sgemm_tf32_nt, 0, 1)
TC_SGEMM_TF32(sgemm_tf32_tn, 1, 0)
TC_SGEMM_TF32(sgemm_tf32_tt, 1, 1)

// Cp += X^T X (X: k x n fp32, row stride ldx), fp64 packed upper triangle (row-major packing:
// (i, j), j >= i, at i*n - i*(i-1)/2 + (j - i)). blockIdx.x: upper tile index (row by row),
// blockIdx.y: token split of kPerSplit tokens (a multiple of TC_CHUNK). Shared memory:
// 2 stages of operands, then 128 x 128 fp64 partial sums (thread-private slots).
__global__ void __launch_bounds__(TC_THREADS)
syrk_packed_tf32(int n, int k, const float* X, int ldx, double* Cp, int kPerSplit, int vec)
{
    extern __shared__ __align__(16) float ssm[];
    double* hs = (double*)(ssm + 2 * 2 * TF_TILE);
    vec = vec && ((reinterpret_cast<uintptr_t>(X) & 15) == 0);
    const int nt = (n + TC_BM - 1) / TC_BM;
    int tt = blockIdx.x, ti = 0;
    while (tt >= nt - ti) { tt -= nt - ti; ti++; }
    const int tj = ti + tt;
    const int i0 = ti * TC_BM, j0 = tj * TC_BN;
    const int kBeg = blockIdx.y * kPerSplit, kEnd = min(k, kBeg + kPerSplit);
#pragma unroll 1
    for (int q = 0; q < 64; q++) hs[q * TC_THREADS + threadIdx.x] = 0.0;
    float acc[4][4][4];
    for (int c0 = kBeg; c0 < kEnd; c0 += TC_CHUNK) {
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int b = 0; b < 4; b++)
#pragma unroll
                for (int q = 0; q < 4; q++) acc[a][b][q] = 0.f;
        // A = X^T (stored k x n: transposed), B = X (stored k x n); inner range = tokens of this chunk
        tf_mainloop<1, 0, 2>(acc, ssm, X, ldx, X, ldx, n, n, min(kEnd, c0 + TC_CHUNK), i0, j0, c0,
                             min(kEnd, c0 + TC_CHUNK), vec, vec);
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int b = 0; b < 4; b++)
#pragma unroll
                for (int q = 0; q < 4; q++) hs[((a * 4 + b) * 4 + q) * TC_THREADS + threadIdx.x] += (double)acc[a][b][q];
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 4; b++)
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const int i = i0 + wm + a * 16 + g + (q >> 1) * 8;
                const int j = j0 + wn + b * 8 + 2 * t + (q & 1);
                if (i < n && j < n && j >= i) {
                    const size_t idx = (size_t)i * n - (size_t)i * (i - 1) / 2 + (size_t)(j - i);
                    atomicAdd(Cp + idx, hs[((a * 4 + b) * 4 + q) * TC_THREADS + threadIdx.x]);
                }
            }
}

extern "C++" {

// ================================================================ BF16
#define BF_BK 32
#define BF_PMK (BF_BK + 8)        // halfs; 32-bit fragment words at 20 g + t: conflict-free
#define BF_PKM (TC_BM + 8)
#define BF_TILE (TC_BM * BF_PMK)  // halfs per operand tile (>= BF_BK * BF_PKM)
#define BF_STAGES 3

__device__ __forceinline__ unsigned bf_pair(unsigned short lo, unsigned short hi)
{
    return (unsigned)lo | ((unsigned)hi << 16);
}

template <int TA, int TB>
__device__ __forceinline__ void gemm_bf16_body(int m, int n, int k, float alpha, const unsigned short* A, int lda,
                                               const unsigned short* B, int ldb, float beta, float* C, int ldc,
                                               int vecA, int vecB)
{
    extern __shared__ __align__(16) unsigned short bsm[];
    vecA = vecA && ((reinterpret_cast<uintptr_t>(A) & 15) == 0);
    vecB = vecB && ((reinterpret_cast<uintptr_t>(B) & 15) == 0);
    const int i0 = blockIdx.y * TC_BM, j0 = blockIdx.x * TC_BN;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int g = lane >> 2, t = lane & 3;
    float acc[4][4][4];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 4; b++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[a][b][q] = 0.f;
    const int nTiles = (k + BF_BK - 1) / BF_BK;
    auto load = [&](int stage, int l0) {
        unsigned short* As = bsm + stage * 2 * BF_TILE;
        unsigned short* Bs = As + BF_TILE;
        if (!TA) tc_load_tile<unsigned short, TC_BM, BF_BK, BF_PMK>(As, A, lda, i0, l0, m, k, vecA);
        else     tc_load_tile<unsigned short, BF_BK, TC_BM, BF_PKM>(As, A, lda, l0, i0, k, m, vecA);
        if (!TB) tc_load_tile<unsigned short, BF_BK, TC_BN, BF_PKM>(Bs, B, ldb, l0, j0, k, n, vecB);
        else     tc_load_tile<unsigned short, TC_BN, BF_BK, BF_PMK>(Bs, B, ldb, j0, l0, n, k, vecB);
    };
#pragma unroll
    for (int s = 0; s < BF_STAGES - 1; s++) {
        if (s < nTiles) load(s, s * BF_BK);
        tc_cp_commit();
    }
    for (int kt = 0; kt < nTiles; kt++) {
        tc_cp_wait<BF_STAGES - 2>();
        __syncthreads();
        if (kt + BF_STAGES - 1 < nTiles) load((kt + BF_STAGES - 1) % BF_STAGES, (kt + BF_STAGES - 1) * BF_BK);
        tc_cp_commit();
        const unsigned short* As = bsm + (kt % BF_STAGES) * 2 * BF_TILE;
        const unsigned short* Bs = As + BF_TILE;
#pragma unroll
        for (int kk = 0; kk < BF_BK; kk += 16) {
            unsigned af[4][4], bf[4][2];
            // A fragment (16 x 16, row): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
                const int r = wm + mt * 16 + g;
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    const int rr = r + (q & 1) * 8, kc = kk + 2 * t + (q >> 1) * 8;
                    if (!TA) af[mt][q] = *(const unsigned*)(As + rr * BF_PMK + kc);
                    else     af[mt][q] = bf_pair(As[kc * BF_PKM + rr], As[(kc + 1) * BF_PKM + rr]);
                }
            }
            // B fragment (16 x 8, col): b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g)
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int c = wn + nt * 8 + g;
#pragma unroll
                for (int q = 0; q < 2; q++) {
                    const int kc = kk + 2 * t + q * 8;
                    if (TB) bf[nt][q] = *(const unsigned*)(Bs + c * BF_PMK + kc);
                    else    bf[nt][q] = bf_pair(Bs[kc * BF_PKM + c], Bs[(kc + 1) * BF_PKM + c]);
                }
            }
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++)
                    asm volatile(
                        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                        : "+f"(acc[mt][nt][0]), "+f"(acc[mt][nt][1]), "+f"(acc[mt][nt][2]), "+f"(acc[mt][nt][3])
                        : "r"(af[mt][0]), "r"(af[mt][1]), "r"(af[mt][2]), "r"(af[mt][3]),
                          "r"(bf[nt][0]), "r"(bf[nt][1]));
        }
    }
    tc_cp_wait<0>();
    tc_epilogue(acc, m, n, alpha, beta, C, ldc, i0, j0);
}

} // extern "C++"

#define TC_GEMM_BF16(NAME, TA, TB)                                                                            \
    __global__ void __launch_bounds__(TC_THREADS) NAME(int m, int n, int k, float alpha,                       \
                                                       const unsigned short* A, int lda,                        \
                                                       const unsigned short* B, int ldb, float beta, float* C,  \
                                                       int ldc, int vecA, int vecB)                             \
    {                                                                                                           \
        gemm_bf16_body<TA, TB>(m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, vecA, vecB);                       \
    }
TC_GEMM_BF16(gemm_bf16_nn, 0, 0)
TC_GEMM_BF16(gemm_bf16_nt, 0, 1)
TC_GEMM_BF16(gemm_bf16_tn, 1, 0)
TC_GEMM_BF16(gemm_bf16_tt, 1, 1)

// ================================================================ FP64 tensor cores (DMMA)
// syrk_packed_dmma: Cp += X^T X into the fp64 packed upper triangle (the packed layout of sparkprune.cu),
// the exact mode of the Hessian update on the fp64 tensor cores: every fp32 activation is widened to
// fp64 (exact), products of two widened fp32 values are exact in fp64 (24 + 24 significant bits < 53),
// and the sums are fp64 — the same function as the CPU twin (CpuBackend.syrkPackedUpper), only the
// order of the fp64 additions differs. (It replaced an FFMA kernel, syrk_packed_f64, 1.7x slower.) PTX ISA, "Warp-level matrix multiply-accumulate instructions",
// mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 (sm_80+); fragment layout for .f64 m8n8k4:
//   A (8 x 4, row-major): one double per lane at (row g, col t); B (4 x 8): (row t, col g);
//   C/D (8 x 8): two doubles per lane at (row g, cols 2t and 2t + 1); g = lane / 4, t = lane % 4.
// Tiling: one 128 x 128 upper tile of C per 256-thread block (blockIdx.x enumerates the upper tiles
// row by row), 8 warps as 2 x 4 with 64 x 32 per warp (8 x 4 mma tiles of 8 x 8, 64 fp64 accumulators
// per lane); the tokens are staged as fp32 through shared memory DM_BK at a time with cp.async,
// DM_STAGES deep, in the "KM" layout (tokens as rows, 128 features contiguous, pitch DM_P = 136 floats:
// the fragment loads (row kk + t, column g) hit banks 8t + g, conflict-free). blockIdx.y splits the
// tokens (kPerSplit each, a multiple of DM_BK); with more than one split the tiles meet through fp64
// atomicAdd.
#define DM_BK 32
#define DM_P (TC_BM + 8)
#define DM_TILE (DM_BK * DM_P)   // floats per operand stage
#define DM_STAGES 3

__global__ void __launch_bounds__(TC_THREADS, 1)
syrk_packed_dmma(int n, int k, const float* X, int ldx, double* Cp, int kPerSplit, int vec)
{
    extern __shared__ __align__(16) float dsm[];
    vec = vec && ((reinterpret_cast<uintptr_t>(X) & 15) == 0);
    const int nt = (n + TC_BM - 1) / TC_BM;
    int tt = blockIdx.x, ti = 0;
    while (tt >= nt - ti) { tt -= nt - ti; ti++; }
    const int tj = ti + tt;
    const int i0 = ti * TC_BM, j0 = tj * TC_BN;
    const int kBeg = blockIdx.y * kPerSplit, kEnd = min(k, kBeg + kPerSplit);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int g = lane >> 2, t = lane & 3;
    double acc[8][4][2];
#pragma unroll
    for (int a = 0; a < 8; a++)
#pragma unroll
        for (int b = 0; b < 4; b++) { acc[a][b][0] = 0.0; acc[a][b][1] = 0.0; }
    const int nTiles = kEnd > kBeg ? (kEnd - kBeg + DM_BK - 1) / DM_BK : 0;
#pragma unroll
    for (int s = 0; s < DM_STAGES - 1; s++) {
        if (s < nTiles) {
            float* st = dsm + s * 2 * DM_TILE;
            tc_load_tile<float, DM_BK, TC_BM, DM_P>(st, X, ldx, kBeg + s * DM_BK, i0, kEnd, n, vec);
            tc_load_tile<float, DM_BK, TC_BN, DM_P>(st + DM_TILE, X, ldx, kBeg + s * DM_BK, j0, kEnd, n, vec);
        }
        tc_cp_commit();
    }
    for (int kt = 0; kt < nTiles; kt++) {
        tc_cp_wait<DM_STAGES - 2>();
        __syncthreads();
        {
            const int nx = kt + DM_STAGES - 1;
            if (nx < nTiles) {
                float* st = dsm + (nx % DM_STAGES) * 2 * DM_TILE;
                tc_load_tile<float, DM_BK, TC_BM, DM_P>(st, X, ldx, kBeg + nx * DM_BK, i0, kEnd, n, vec);
                tc_load_tile<float, DM_BK, TC_BN, DM_P>(st + DM_TILE, X, ldx, kBeg + nx * DM_BK, j0, kEnd, n, vec);
            }
            tc_cp_commit();
        }
        const float* Xi = dsm + (kt % DM_STAGES) * 2 * DM_TILE;
        const float* Xj = Xi + DM_TILE;
#pragma unroll
        for (int kk = 0; kk < DM_BK; kk += 4) {
            double af[8], bf[4];
#pragma unroll
            for (int a = 0; a < 8; a++) af[a] = (double)Xi[(kk + t) * DM_P + wm + a * 8 + g];
#pragma unroll
            for (int b = 0; b < 4; b++) bf[b] = (double)Xj[(kk + t) * DM_P + wn + b * 8 + g];
#pragma unroll
            for (int a = 0; a < 8; a++)
#pragma unroll
                for (int b = 0; b < 4; b++)
                    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%0,%1};\n"
                                 : "+d"(acc[a][b][0]), "+d"(acc[a][b][1])
                                 : "d"(af[a]), "d"(bf[b]));
        }
    }
    tc_cp_wait<0>();
    const bool split = gridDim.y > 1;
#pragma unroll
    for (int a = 0; a < 8; a++) {
        const int i = i0 + wm + a * 8 + g;
        if (i >= n) continue;
#pragma unroll
        for (int b = 0; b < 4; b++)
#pragma unroll
            for (int q = 0; q < 2; q++) {
                const int j = j0 + wn + b * 8 + 2 * t + q;
                if (j < n && j >= i) {
                    double* p = Cp + (size_t)i * n - (size_t)i * (i - 1) / 2 + (size_t)(j - i);
                    if (split) atomicAdd(p, acc[a][b][q]);
                    else *p += acc[a][b][q];
                }
            }
    }
}

// dgemm_dmma: the fp64 product of the inverse factor on the fp64 tensor cores, the same function as
// dgemm_f64 (C = alpha * A * op(B) + beta * C; transB, lowerC, aLower, bLower, batching over blockIdx.z
// and the in-place rule as there, with 128-wide tiles: C may overlap A only when n <= 128). bLower (op(B)
// lower triangular, zeros stored): a tile starting at column j0 (a multiple of DG_BK) starts its inner
// loop at k = j0; bitwise the result of bLower = 0 for finite A, since the skipped k-groups of the mma
// are whole groups of 4 exact zeros (the k-tiles start at multiples of DG_BK either way, so the groups
// of 4 are the same) and an accumulator that starts at +0 stays +0 under them (+0 + (+-0) = +0 in
// round-to-nearest; all partial sums exact zeros), so both run the same mma sequence from k = j0. Every product
// and sum is an fp64 operation (mma.sync.aligned.m8n8k4.row.col.f64, PTX ISA; fragment layout as for
// syrk_packed_dmma); only the summation order differs from dgemm_f64. One 128 x 128 tile of C per
// 256-thread block, 8 warps as 2 x 4 of 64 x 32 each; the inner dimension staged through shared memory
// DG_BK at a time with cp.async (DG_STAGES deep). Pitches are 4 mod 16 doubles so that the fragment
// loads of each half-warp touch 16 distinct 8-byte bank pairs: A as "MK" (128 rows of DG_BK, pitch
// DG_PMK), B as "KM" (DG_BK rows of 128, pitch DG_PKM) or, transposed, "MK". On compute capability 9.0
// CudaBackend runs its Hopper twin instead, dgemm_dmma_sm90 (hopper.cu: the same function on
// the sm_90 f64 mma.sync shapes, m16n8k8 by default).
#define DG_BK 16
#define DG_PMK (DG_BK + 4)
#define DG_PKM (TC_BN + 4)
#define DG_TILE (TC_BM * DG_PMK > DG_BK * DG_PKM ? TC_BM * DG_PMK : DG_BK * DG_PKM)
#define DG_STAGES 3

__global__ void __launch_bounds__(TC_THREADS, 1)
dgemm_dmma(int transB, int lowerC, int aLower, int bLower, int m, int n, int k, double alpha, const double* A, int lda,
           const double* B, int ldb, double beta, double* C, int ldc, long sA, long sB, long sC)
{
    extern __shared__ __align__(16) double gsm[];
    A += blockIdx.z * sA;
    B += blockIdx.z * sB;
    C += blockIdx.z * sC;
    const int i0 = blockIdx.y * TC_BM, j0 = blockIdx.x * TC_BN;
    if (lowerC && j0 > i0 + TC_BM - 1) return;
    const int vecA = ((lda & 1) == 0) && ((reinterpret_cast<uintptr_t>(A) & 15) == 0);
    const int vecB = ((ldb & 1) == 0) && ((reinterpret_cast<uintptr_t>(B) & 15) == 0);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int g = lane >> 2, t = lane & 3;
    double acc[8][4][2];
#pragma unroll
    for (int a = 0; a < 8; a++)
#pragma unroll
        for (int b = 0; b < 4; b++) { acc[a][b][0] = 0.0; acc[a][b][1] = 0.0; }
    const int kEnd = aLower ? min(k, i0 + TC_BM) : k;
    const int kBeg = bLower ? j0 / DG_BK * DG_BK : 0;
    const int nTiles = kEnd > kBeg ? (kEnd - kBeg + DG_BK - 1) / DG_BK : 0;
#pragma unroll
    for (int s = 0; s < DG_STAGES - 1; s++) {
        if (s < nTiles) {
            double* st = gsm + s * 2 * DG_TILE;
            const int l0 = kBeg + s * DG_BK;
            tc_load_tile<double, TC_BM, DG_BK, DG_PMK>(st, A, lda, i0, l0, m, kEnd, vecA);
            if (!transB) tc_load_tile<double, DG_BK, TC_BN, DG_PKM>(st + DG_TILE, B, ldb, l0, j0, kEnd, n, vecB);
            else         tc_load_tile<double, TC_BN, DG_BK, DG_PMK>(st + DG_TILE, B, ldb, j0, l0, n, kEnd, vecB);
        }
        tc_cp_commit();
    }
    for (int kt = 0; kt < nTiles; kt++) {
        tc_cp_wait<DG_STAGES - 2>();
        __syncthreads();
        {
            const int nx = kt + DG_STAGES - 1;
            if (nx < nTiles) {
                double* st = gsm + (nx % DG_STAGES) * 2 * DG_TILE;
                const int l0 = kBeg + nx * DG_BK;
                tc_load_tile<double, TC_BM, DG_BK, DG_PMK>(st, A, lda, i0, l0, m, kEnd, vecA);
                if (!transB) tc_load_tile<double, DG_BK, TC_BN, DG_PKM>(st + DG_TILE, B, ldb, l0, j0, kEnd, n, vecB);
                else         tc_load_tile<double, TC_BN, DG_BK, DG_PMK>(st + DG_TILE, B, ldb, j0, l0, n, kEnd, vecB);
            }
            tc_cp_commit();
        }
        const double* As = gsm + (kt % DG_STAGES) * 2 * DG_TILE;
        const double* Bs = As + DG_TILE;
#pragma unroll
        for (int kk = 0; kk < DG_BK; kk += 4) {
            double af[8], bf[4];
#pragma unroll
            for (int a = 0; a < 8; a++) af[a] = As[(wm + a * 8 + g) * DG_PMK + kk + t];
#pragma unroll
            for (int b = 0; b < 4; b++)
                bf[b] = transB ? Bs[(wn + b * 8 + g) * DG_PMK + kk + t] : Bs[(kk + t) * DG_PKM + wn + b * 8 + g];
#pragma unroll
            for (int a = 0; a < 8; a++)
#pragma unroll
                for (int b = 0; b < 4; b++)
                    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%0,%1};\n"
                                 : "+d"(acc[a][b][0]), "+d"(acc[a][b][1])
                                 : "d"(af[a]), "d"(bf[b]));
        }
    }
    tc_cp_wait<0>();
    __syncthreads();  // in place (n <= 128): every warp has read its operands before any C is written
#pragma unroll
    for (int a = 0; a < 8; a++) {
        const int i = i0 + wm + a * 8 + g;
        if (i >= m) continue;
#pragma unroll
        for (int b = 0; b < 4; b++)
#pragma unroll
            for (int q = 0; q < 2; q++) {
                const int j = j0 + wn + b * 8 + 2 * t + q;
                if (j >= n || (lowerC && j > i)) continue;
                double* p = C + (size_t)i * ldc + j;
                double v = alpha * acc[a][b][q];
                if (beta != 0.0) v = fma(beta, *p, v);
                *p = v;
            }
    }
}

