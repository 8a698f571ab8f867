// SparkPrune CUDA kernels, loaded by io.sparkprune.kernels.cuda.CudaBackend (JCuda driver API,
// cuModuleLoadData on the fatbin Maven builds from this file). Every kernel computes the same
// function as its twin in io.sparkprune.kernels.cpu.CpuBackend; see io.sparkprune.kernels.Backend for
// the contracts. Matrices are row-major with a leading dimension (row stride, in elements).
//
// Rounding: where the Backend contract fixes the operation order (the SparseGPT in-block solve:
// "fp32 product, then fp32 subtraction"), the code uses the __f*_rn / __d*_rn intrinsics so that nvcc
// cannot contract a product and a sum into one fused multiply-add; the results are then bitwise equal
// to the CPU backend's.

#include <cstdint>
#include <cuda_fp16.h> // __half2float (f16_to_f32 in forward_ops.cuh); included outside the extern "C" block

#define FULL_MASK 0xffffffffu

extern "C" {

// ------------------------------------------------------------------------------------------------
// sgemm_f32: C = alpha * op(A) * op(B) + beta * C, fp32 with fp32 fused multiply-adds.
// op(A) is m x k (stored k x m when transA), op(B) is k x n (stored n x k when transB), C is m x n.
// beta == 0: C is not read. Tiles of 64 x 64 outputs per 256-thread block, 4 x 4 outputs per thread,
// the inner dimension staged through shared memory 16 at a time.
// ------------------------------------------------------------------------------------------------
#define G_TM 64
#define G_TN 64
#define G_TK 16

__global__ void __launch_bounds__(256)
sgemm_f32(int transA, int transB, int m, int n, int k, float alpha,
          const float* __restrict__ A, int lda, const float* __restrict__ B, int ldb,
          float beta, float* __restrict__ C, int ldc)
{
    __shared__ float As[G_TK][G_TM + 4];
    __shared__ float Bs[G_TK][G_TN + 4];
    const int tid = threadIdx.x;
    const int tx = tid & 15;
    const int ty = tid >> 4;
    const int i0 = blockIdx.y * G_TM;
    const int j0 = blockIdx.x * G_TN;
    float acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[r][c] = 0.f;

    for (int l0 = 0; l0 < k; l0 += G_TK) {
#pragma unroll
        for (int e = tid; e < G_TM * G_TK; e += 256) {
            int i, l;
            if (!transA) { i = e / G_TK; l = e % G_TK; } else { l = e / G_TM; i = e % G_TM; }
            const int gi = i0 + i, gl = l0 + l;
            float v = 0.f;
            if (gi < m && gl < k) v = transA ? A[(size_t)gl * lda + gi] : A[(size_t)gi * lda + gl];
            As[l][i] = v;
        }
#pragma unroll
        for (int e = tid; e < G_TN * G_TK; e += 256) {
            int j, l;
            if (!transB) { l = e / G_TN; j = e % G_TN; } else { j = e / G_TK; l = e % G_TK; }
            const int gj = j0 + j, gl = l0 + l;
            float v = 0.f;
            if (gj < n && gl < k) v = transB ? B[(size_t)gj * ldb + gl] : B[(size_t)gl * ldb + gj];
            Bs[l][j] = v;
        }
        __syncthreads();
#pragma unroll
        for (int l = 0; l < G_TK; l++) {
            float a[4], b[4];
#pragma unroll
            for (int r = 0; r < 4; r++) a[r] = As[l][ty + 16 * r];
#pragma unroll
            for (int c = 0; c < 4; c++) b[c] = Bs[l][tx + 16 * c];
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int gi = i0 + ty + 16 * r;
        if (gi >= m) continue;
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int gj = j0 + tx + 16 * c;
            if (gj >= n) continue;
            float* p = C + (size_t)gi * ldc + gj;
            float v = alpha * acc[r][c];
            if (beta != 0.f) v += beta * *p;
            *p = v;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Packed upper triangle (the Hessian sums of syrk_packed_dmma / syrk_packed_tf32 in gemm_tc.cuh, the
// input of unpack_upper_f64): element (i, j), j >= i, of an n x n symmetric matrix at
// i*n - i*(i-1)/2 + (j - i), fp64, n(n+1)/2 elements.
// ------------------------------------------------------------------------------------------------

// ================================================================================================
// Inverse Hessian factor on the device, fp64 (io.sparkprune.kernels.Backend#inverseCholeskyUpper):
// with P the order-reversing permutation, P·A·P = L·Lᵀ (blocked right-looking Cholesky, LAPACK
// dpotrf's algorithm, blocks of FB = 64), X = L⁻¹ (blocked, LAPACK dtrtri's lower variant, from the
// last block to the first), and U = P·X·P, the upper Cholesky factor of A⁻¹ (SparseGPT's
// Hinv = Cholesky(H⁻¹)ᵀ, arXiv 2301.00774 Algorithm 1; GPTQ arXiv 2210.17323 §4 step 3).
// ================================================================================================
#define FB 64
#define D_T 64
#define D_TK 16

// load_reversed_f64: R[i][j] = A[n-1-i][n-1-j] for j <= i (reads A's upper triangle), R[i][i] =
// diag[n-1-i] + lambda (the caller's dead-input and dampening rule); zero above the diagonal.
__global__ void load_reversed_f64(int n, const double* __restrict__ A, int lda, const double* __restrict__ diag,
                                  double lambda, double* __restrict__ R)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n * n) return;
    const int i = (int)(e / n), j = (int)(e % n);
    double v = 0.0;
    if (j < i) v = A[(size_t)(n - 1 - i) * lda + (n - 1 - j)];
    else if (j == i) v = diag[n - 1 - i] + lambda;
    R[e] = v;
}

// reversed_upper: U[i][j] = X[n-1-i][n-1-j] for j >= i, 0 below; fp64 and/or fp32 out (null = skip).
__global__ void reversed_upper(int n, const double* __restrict__ X, double* __restrict__ U64,
                               float* __restrict__ U32)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n * n) return;
    const int i = (int)(e / n), j = (int)(e % n);
    const double v = j >= i ? X[(size_t)(n - 1 - i) * n + (n - 1 - j)] : 0.0;
    if (U64) U64[e] = v;
    if (U32) U32[e] = (float)v;
}

// The solve in the Cholesky form (CudaBackend.solveOnDeviceCholesky): with P(H + lambda I)P = L L^T
// (P the order reversal), R = P L P is upper triangular with H + lambda I = R R^T and U = R^-1 is the
// upper factor of (H + lambda I)^-1 that SparseGPT's solve reads. The lazy updates there use R; only
// U's band of width UBAND right of its diagonal is needed, from the diagonal and first sub-diagonal
// UBAND-blocks of X = L^-1 (the triangular inverse's first levels).
#define UBAND 128

// band_upper_f32: B[i][t] = U[i][i + t] = X[n-1-i][n-1-i-t] for 0 <= t < UBAND and i + t < n, else 0
// (B is n x UBAND fp32, row-major; X fp64, row stride n).
__global__ void band_upper_f32(int n, const double* __restrict__ X, float* __restrict__ B)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n * UBAND) return;
    const int i = (int)(e / UBAND), t = (int)(e % UBAND);
    B[e] = i + t < n ? (float)X[(size_t)(n - 1 - i) * n + (n - 1 - i - t)] : 0.0f;
}

// band_tiles_f32: the diagonal tiles of U for column blocks of bs (<= UBAND) columns: tile b (at
// T + b * bs * bs, bs x bs row-major, row stride bs) holds U[b*bs + r][b*bs + c] for r <= c < width_b
// and zeros elsewhere (width_b = min(bs, n - b*bs)). One thread per tile element.
__global__ void band_tiles_f32(int n, int bs, const float* __restrict__ B, float* __restrict__ T)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    const int tiles = (n + bs - 1) / bs;
    if (e >= (long)tiles * bs * bs) return;
    const int b = (int)(e / ((long)bs * bs));
    const int r = (int)(e % ((long)bs * bs)) / bs, c = (int)(e % bs);
    const int i1 = b * bs, w = min(bs, n - i1);
    T[e] = (r <= c && c < w) ? B[(size_t)(i1 + r) * UBAND + (c - r)] : 0.0f;
}

// axpby_cols_f32: Y = alpha * X + beta * Y on a rows x width window (row strides ldx, ldy); beta = 0
// writes alpha * X without reading Y (a copy for alpha = 1).
__global__ void axpby_cols_f32(int rows, int width, float alpha, const float* __restrict__ X, int ldx, float beta,
                               float* __restrict__ Y, int ldy)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)rows * width) return;
    const int r = (int)(e / width), c = (int)(e % width);
    const float x = X[(size_t)r * ldx + c];
    float* y = Y + (size_t)r * ldy + c;
    *y = beta == 0.0f ? __fmul_rn(alpha, x) : __fadd_rn(__fmul_rn(alpha, x), __fmul_rn(beta, *y));
}

// potf2_inv_f64: one thread block of PO_THREADS = 256 threads factors the kb x kb (kb <= FB = 64)
// diagonal block at (k0, k0) of R in place (lower factor L, zeros written above the diagonal) and writes
// L^-1 (lower, zeros above) to the same block of X. A pivot that is not > 0 and finite sets *info = 1
// (the caller retries with more dampening); the outputs are then garbage and ignored.
//
// Algorithm: the factor and the inverse in ONE right-looking sweep of kb steps, in the LDL^T form
// (Golub & Van Loan, Matrix Computations, 4th ed., Alg. 4.1.2 for LDL^T; the inverse as the forward
// substitution L X = I run for all right-hand sides at once, ibid. §3.1), one __syncthreads per step.
// Step j, with d_j = a_jj (the pivot after steps < j) and a_rj the unscaled column j:
//   Schur update   a_rc -= a_rj * a_cj / d_j                      (r >= c > j)
//   inverse        b_ic -= a_ij * b_jc / d_j, b_jj = 1            (i > j >= c; B starts as I)
// and at the end L_rc = a_rc / s_c, L_cc = s_c, X_ic = b_ic / s_i, X_ii = 1 / s_i with s_c = sqrt(d_c)
// (since L_ij / L_jj = a_ij / d_j, the loop needs no square root; only the reciprocal 1 / d_j).
// Storage: one 64 x 64 matrix M, A's lower triangle on and below the diagonal and B transposed above it
// (M[r][c] = b_cr for c > r), kept in registers: thread (R, C) = (tid / 16, tid % 16) owns the 16
// elements at rows R + 16 rr and columns C + 16 cc (rr, cc < 4; interleaved so that a warp's loads of
// a column are conflict-free). With v_r = M[r][j] and w_c = M[c][j] (column j of M), both updates read
// M[r][c] -= v'_r * (w_c / d_j) where v'_r = v_r below the diagonal (r >= c) and, above it, v'_r = b_jr
// (r < j), 1 (r = j) or 0 (r > j: b_cr not started); w_c / d_j is taken as 0 for c <= j (done). Column
// j + 1 of M is final after step j (its A part was last updated at step j, its B part, b_{j+1, r} for
// r <= j, too), so its owners publish it to shared memory (cb, column-major, pitch PO_P) for step j + 1;
// after the loop cb holds the final M. Padding (kb < 64): M starts as the identity outside kb x kb,
// whose steps change nothing inside it; the loop runs to kb only.
#define PO_THREADS 256
#define PO_P (FB + 1)   // doubles; cb[c * PO_P + r] = M[r][c]
// The body of potf2_inv_f64 as a device function (also run by chol_panel_f64 below); sm: POTF2 shared
// memory, FB * PO_P + FB doubles. Called by all PO_THREADS threads of the block.
__device__ __forceinline__ void potf2_inv_block(int kb, double* __restrict__ R, int ldr, double* __restrict__ X,
                                                int ldx, int* __restrict__ info, double* sm)
{
    double* cb = sm;                  // FB x PO_P: the published columns of M
    double* sd = sm + FB * PO_P;      // FB: s_c = sqrt(d_c)
    const int tid = threadIdx.x, Ro = tid >> 4, Co = tid & 15;
    double m[4][4];
#pragma unroll
    for (int rr = 0; rr < 4; rr++)
#pragma unroll
        for (int cc = 0; cc < 4; cc++) {
            const int r = Ro + 16 * rr, c = Co + 16 * cc;
            double v = r == c ? 1.0 : 0.0;
            if (r < kb && c <= r) v = R[(size_t)r * ldr + c];
            m[rr][cc] = v;
        }
    if (Co == 0)
#pragma unroll
        for (int rr = 0; rr < 4; rr++) cb[Ro + 16 * rr] = m[rr][0];
    __syncthreads();
    for (int j = 0; j < kb; j++) {
        const double* col = cb + j * PO_P;
        const double rd = __drcp_rn(col[j]);
        double t[4], vl[4], vu[4];
#pragma unroll
        for (int cc = 0; cc < 4; cc++) {
            const int c = Co + 16 * cc;
            t[cc] = c > j ? col[c] * rd : 0.0;
        }
#pragma unroll
        for (int rr = 0; rr < 4; rr++) {
            const int r = Ro + 16 * rr;
            const double v = col[r];
            vl[rr] = v;
            vu[rr] = r < j ? v : (r == j ? 1.0 : 0.0);
        }
#pragma unroll
        for (int rr = 0; rr < 4; rr++)
#pragma unroll
            for (int cc = 0; cc < 4; cc++) {
                // below or on the diagonal: rr > cc always, rr == cc when Ro >= Co; rr < cc never
                const double v = rr > cc ? vl[rr] : (rr < cc ? vu[rr] : (Ro >= Co ? vl[rr] : vu[rr]));
                m[rr][cc] = fma(-v, t[cc], m[rr][cc]);
            }
        const int jn = j + 1;
        if (jn < kb && Co == (jn & 15)) {
            const int q = jn >> 4;  // selects, not m[rr][q]: a computed index would move m to local memory
#pragma unroll
            for (int rr = 0; rr < 4; rr++) {
                const double v = q == 0 ? m[rr][0] : q == 1 ? m[rr][1] : q == 2 ? m[rr][2] : m[rr][3];
                cb[jn * PO_P + Ro + 16 * rr] = v;
            }
        }
        __syncthreads();
    }
    if (tid < kb) {
        const double d = cb[tid * PO_P + tid];
        // a subnormal pivot fails too: its reciprocal (__drcp_rn above) overflowed to inf, which would
        // leave a NaN factor with info 0 (the old sqrt-then-divide form did not overflow); such an H
        // gets the next dampening instead
        if (!(d > 0.0) || isinf(d) || d < 2.2250738585072014e-308) atomicMax(info, 1);
        sd[tid] = sqrt(d);
    }
    __syncthreads();
    // row i of the block, 4 rows at a time; column j = tid % 64 (coalesced stores)
    const int j = tid & (FB - 1);
    if (j < kb)
        for (int i = tid >> 6; i < kb; i += PO_THREADS / FB) {
            double l = 0.0, x = 0.0;
            if (j < i) {
                l = cb[j * PO_P + i] / sd[j];   // a_ij / s_j
                x = cb[i * PO_P + j] / sd[i];   // b_ij / s_i
            } else if (j == i) {
                l = sd[i];
                x = 1.0 / sd[i];
            }
            R[(size_t)i * ldr + j] = l;
            X[(size_t)i * ldx + j] = x;
        }
}

__global__ void __launch_bounds__(PO_THREADS) potf2_inv_f64(int kb, double* __restrict__ R, int ldr,
                                                            double* __restrict__ X, int ldx, int* __restrict__ info)
{
    extern __shared__ double sm[];
    potf2_inv_block(kb, R, ldr, X, ldx, info, sm);
}

// dgemm_f64: C = alpha * A * op(B) + beta * C, fp64 FMAs, 64 x 64 tiles per 256 threads, 4 x 4 per
// thread. A is m x k; B is k x n (transB = 0) or n x k (transB = 1). beta == 0: C is not read.
// Batched over blockIdx.z: problem z uses A + z*sA, B + z*sB, C + z*sC (elements).
// lowerC: only C's lower triangle (j <= i) is computed and written (tiles above it exit).
// aLower: A is lower triangular (A[i][l] = 0 for l > i), so a tile's inner loop stops at its last row.
// bLower: op(B) is lower triangular (op(B)[l][j] = 0 for l < j, stored as zeros), so C[i][j] =
// sum_{l >= j} A[i][l] op(B)[l][j] and a tile whose first column is j0 starts its inner loop at j0 (a
// multiple of D_TK, since j0 is a multiple of D_T). The result is bitwise that of bLower = 0 for
// finite A: the skipped products a * 0 are all +-0, the accumulator starts at +0 and +0 + (+-0) = +0
// in round-to-nearest, so without the flag the accumulator is still exactly +0 at k = j0, and from
// there both run the same fma sequence (an A with inf/NaN would give NaN products without the flag).
// In place (C overlapping A) is allowed only when n <= 64 (one tile column: each block reads its
// rows of A completely before writing them).
__global__ void __launch_bounds__(256)
dgemm_f64(int transB, int lowerC, int aLower, int bLower, int m, int n, int k, double alpha,
          const double* A, int lda, const double* __restrict__ B, int ldb,
          double beta, double* C, int ldc, long sA, long sB, long sC)
{
    A += blockIdx.z * sA;
    B += blockIdx.z * sB;
    C += blockIdx.z * sC;
    const int i0 = blockIdx.y * D_T, j0 = blockIdx.x * D_T;
    if (lowerC && j0 > i0 + D_T - 1) return;
    __shared__ double As[D_TK][D_T + 1];
    __shared__ double Bs[D_TK][D_T + 1];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    double acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[r][c] = 0.0;
    const int kEnd = aLower ? min(k, i0 + D_T) : k;
    const int kBeg = bLower ? j0 / D_TK * D_TK : 0;
    for (int l0 = kBeg; l0 < kEnd; l0 += D_TK) {
        for (int e = tid; e < D_T * D_TK; e += 256) {
            const int i = e / D_TK, l = e % D_TK;
            const int gi = i0 + i, gl = l0 + l;
            As[l][i] = (gi < m && gl < k) ? A[(size_t)gi * lda + gl] : 0.0;
        }
        for (int e = tid; e < D_T * D_TK; e += 256) {
            int j, l;
            if (!transB) { l = e / D_T; j = e % D_T; } else { j = e / D_TK; l = e % D_TK; }
            const int gj = j0 + j, gl = l0 + l;
            double v = 0.0;
            if (gj < n && gl < k) v = transB ? B[(size_t)gj * ldb + gl] : B[(size_t)gl * ldb + gj];
            Bs[l][j] = v;
        }
        __syncthreads();
#pragma unroll
        for (int l = 0; l < D_TK; l++) {
            double a[4], b[4];
#pragma unroll
            for (int r = 0; r < 4; r++) a[r] = As[l][ty + 16 * r];
#pragma unroll
            for (int c = 0; c < 4; c++) b[c] = Bs[l][tx + 16 * c];
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[r][c] = fma(a[r], b[c], acc[r][c]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int gi = i0 + ty + 16 * r;
        if (gi >= m) continue;
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int gj = j0 + tx + 16 * c;
            if (gj >= n || (lowerC && gj > gi)) continue;
            double* p = C + (size_t)gi * ldc + gj;
            double v = alpha * acc[r][c];
            if (beta != 0.0) v += beta * *p;
            *p = v;
        }
    }
}

// ================================================================================================
// chol_panel_f64: one panel of PANEL = CP_BLOCKS * FB columns of the blocked Cholesky above (the FB-column
// steps of CudaBackend.factorDevice) in ONE cooperative launch, instead of three launches per FB-column
// step (potf2_inv_f64, the panel product A21 = A21 * X^T, the in-panel update). Same factor, same info
// rule (potf2_inv_block is the body of potf2_inv_f64); only the summation order of the in-panel updates
// differs (left-looking inside the panel: all earlier steps' updates of a block summed in one product).
//
// The panel's rows p0 .. n-1 are split into row slabs of FB rows (slab b: rows p0 + FB b ..), its columns
// into nb <= CP_BLOCKS column blocks (block i: columns p0 + FB i ..); slab b < nb holds diagonal block b.
// Block (b, i), b > i, of L is
//   phase 1 (left-looking update): A_bi -= L_b,[0,i) * L_i,[0,i)^T       (k = FB i; A_bi stays in R)
//   phase 2 (panel product):        L_bi  = A_bi * X_i^T,  X_i = L_ii^-1 (k = FB)
// and diagonal block b (slab b's own rows only) is A_bb - L_b,[0,b) * L_b,[0,b)^T, right-looking: a rank-FB
// update right after each L_b,i (off the critical path for i < b-1), then potf2_inv_block after L_b,b-1.
// Phase 1 of step i needs the finished row L_i,[0,i) (flag row[i]); phase 2 needs X_i (flag x[i]); both
// are posted by the block that owns slab i, row[i] before its potf2 and x[i] after it, so every block's
// phase 1 work overlaps that potf2; the owner of slab i+1 runs its critical path (phase 1, phase 2, the
// rank-FB diagonal update, potf2) before its other slabs. Thread block c owns slabs c, c + G, c + 2G, ...
// (G = gridDim.x); it processes steps in order, and every flag a step waits for is posted in an earlier
// step, so no cycle exists; the waits need all G blocks resident, which cuLaunchCooperativeKernel
// guarantees (G <= the occupancy times the SM count). A failed pivot sets *info and the chain runs on
// (garbage values, no hang); the caller checks info (1: a failed pivot; 2: a flag wait timed out, see
// cp_wait).
//
// Flags: flags[2 g] (row) and flags[2 g + 1] (x) for the global block index g = p0 / FB + i, zero before
// the first panel of a factor; 2 * ceil(n / FB) ints. Release: every thread __threadfence, barrier, one
// atomicExch; acquire: thread 0 polls, __threadfence, barrier; blocks written by other thread blocks are
// read through L2 (__ldcg). Launch: CP_THREADS threads, the potf2 block's shared memory (CudaBackend.POTF2_SMEM bytes, dynamic).
// Reference: LAPACK dpotrf (right-looking over panels, the rank-PANEL trailing update by the caller) with
// a left-looking panel factorization (Golub & Van Loan, 4th ed., Alg. 4.2.1 gaxpy Cholesky, blocked).
// ================================================================================================
#define CP_BLOCKS 8
#define CP_THREADS 256
#define CP_CHUNK 16
#define CP_P (FB + 1)

// acc[rr][cc] (thread (Ro, Co) = (tid / 16, tid % 16): row Ro + 16 rr, column Co + 16 cc of a 64 x 64 tile)
// += sum_{l < K} A[r][l] * B[c][l]; A and B row-major with row strides lda, ldb; rows r >= ar of A, rows
// c >= bc of B and l >= kv read as 0. K: a multiple of CP_CHUNK, the same in every thread. Chunks of
// CP_CHUNK columns staged in As and Bs (CP_CHUNK x CP_P doubles each), the next chunk's loads in flight
// while the current one is multiplied. Ends with a barrier.
__device__ __forceinline__ void cp_mm_nt(double acc[4][4], const double* A, int lda, int ar, const double* B,
                                         int ldb, int bc, int K, int kv, double* As, double* Bs)
{
    const int tid = threadIdx.x, Ro = tid >> 4, Co = tid & 15;
    double ra[4], rb[4];
    // loads: row Ro + 16 q, column l0 + Co (16 threads read 128 contiguous bytes of a row)
    auto load = [&](int l0) {
        const int l = l0 + Co;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int r = Ro + 16 * q;
            ra[q] = (r < ar && l < kv) ? __ldcg(A + (size_t)r * lda + l) : 0.0;
            rb[q] = (r < bc && l < kv) ? __ldcg(B + (size_t)r * ldb + l) : 0.0;
        }
    };
    load(0);
    for (int l0 = 0; l0 < K; l0 += CP_CHUNK) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            As[Co * CP_P + Ro + 16 * q] = ra[q];
            Bs[Co * CP_P + Ro + 16 * q] = rb[q];
        }
        __syncthreads();
        if (l0 + CP_CHUNK < K) load(l0 + CP_CHUNK);
#pragma unroll
        for (int l = 0; l < CP_CHUNK; l++) {
            double a[4], b[4];
#pragma unroll
            for (int r = 0; r < 4; r++) a[r] = As[l * CP_P + Ro + 16 * r];
#pragma unroll
            for (int c = 0; c < 4; c++) b[c] = Bs[l * CP_P + Co + 16 * c];
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[r][c] = fma(a[r], b[c], acc[r][c]);
        }
        __syncthreads();
    }
}

// C = alpha * A * B^T (+ C when accumulate) on the cr x cc tile at C (row stride ldc), inner dimension K
// (l >= kv read as 0), A rows and B rows as in cp_mm_nt (cr, cc valid). A may be C itself (every read
// precedes the barrier that ends cp_mm_nt). Ends with a barrier, so the block's writes are visible to it.
__device__ __forceinline__ void cp_tile(double* C, int ldc, int cr, int cc, int accumulate, double alpha,
                                        const double* A, int lda, const double* B, int ldb, int K, int kv,
                                        double* As, double* Bs)
{
    double acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; r++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[r][c] = 0.0;
    cp_mm_nt(acc, A, lda, cr, B, ldb, cc, K, kv, As, Bs);
    const int Ro = threadIdx.x >> 4, Co = threadIdx.x & 15;
#pragma unroll
    for (int rr = 0; rr < 4; rr++) {
        const int r = Ro + 16 * rr;
        if (r >= cr) continue;
#pragma unroll
        for (int c4 = 0; c4 < 4; c4++) {
            const int c = Co + 16 * c4;
            if (c >= cc) continue;
            double* p = C + (size_t)r * ldc + c;
            double v = alpha * acc[rr][c4];
            if (accumulate) v += __ldcg(p);
            *p = v;
        }
    }
    __syncthreads();
}

__device__ __forceinline__ void cp_post(int* flag)
{
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();   // cumulative: the block's stores, ordered before the barrier, precede the flag
        atomicExch(flag, 1);
    }
}

// A wait that outlasts CP_WAIT_CYCLES SM clocks (about 2 s, far beyond any panel) sets *info = 2 and goes on
// (the caller reports a broken launch instead of hanging; it cannot happen with all blocks resident).
#define CP_WAIT_CYCLES 4000000000LL
__device__ __forceinline__ void cp_wait(const int* flag, int* info)
{
    if (threadIdx.x == 0 && *(const volatile int*)flag == 0) {
        const long long t0 = clock64();
        while (*(const volatile int*)flag == 0) {
            __nanosleep(20);
            if (clock64() - t0 > CP_WAIT_CYCLES) {
                atomicMax(info, 2);
                break;
            }
        }
    }
    if (threadIdx.x == 0) __threadfence();
    __syncthreads();
}

__global__ void __launch_bounds__(CP_THREADS, 2)
chol_panel_f64(int n, int p0, double* __restrict__ R, double* __restrict__ X, int* __restrict__ flags,
               int* __restrict__ info)
{
    extern __shared__ double sm[];                   // potf2_inv_block's FB * PO_P + FB doubles, or As | Bs
    double* As = sm;
    double* Bs = sm + CP_CHUNK * CP_P;
    const int G = gridDim.x, me = blockIdx.x;
    const int pw = min(CP_BLOCKS * FB, n - p0);      // panel width
    const int nb = (pw + FB - 1) / FB;               // column blocks = diagonal slabs
    const int ns = (n - p0 + FB - 1) / FB;           // row slabs
    int* fl = flags + 2 * (p0 / FB);                 // fl[2 i]: row i final, fl[2 i + 1]: X_i final
    auto colw = [&](int i) { return min(FB, pw - FB * i); };
    auto roww = [&](int b) { return min(FB, n - p0 - FB * b); };
    auto at = [&](double* M, int b, int i) { return M + (size_t)(p0 + FB * b) * n + p0 + FB * i; };

    if (me == 0) {                                   // diagonal block 0 has no update inside the panel
        potf2_inv_block(colw(0), at(R, 0, 0), n, at(X, 0, 0), n, info, sm);
        cp_post(fl);
        cp_post(fl + 1);
    }
    for (int i = 0; i + 1 < ns && i < nb; i++) {
        const int first = me > i ? me : me + G * ((i + 1 - me + G - 1) / G);   // first owned slab > i
        if (first >= ns) break;                      // and none at later steps either
        const int wi = colw(i);
        cp_wait(fl + 2 * i, info);
        for (int b = first; b < ns; b += G) {
            const bool diag = b == i + 1 && b < nb;  // the next diagonal block: the critical path
            if (i > 0)
                cp_tile(at(R, b, i), n, roww(b), wi, 1, -1.0, at(R, b, 0), n, at(R, i, 0), n, FB * i, FB * i, As, Bs);
            if (diag) {
                cp_wait(fl + 2 * i + 1, info);
                cp_tile(at(R, b, i), n, roww(b), wi, 0, 1.0, at(R, b, i), n, at(X, i, i), n, FB, wi, As, Bs);
                cp_post(fl + 2 * b);
                cp_tile(at(R, b, b), n, roww(b), roww(b), 1, -1.0, at(R, b, i), n, at(R, b, i), n, FB, wi, As, Bs);
                potf2_inv_block(roww(b), at(R, b, b), n, at(X, b, b), n, info, sm);
                cp_post(fl + 2 * b + 1);
            }
        }
        cp_wait(fl + 2 * i + 1, info);
        for (int b = first; b < ns; b += G) {
            if (b == i + 1 && b < nb) continue;
            cp_tile(at(R, b, i), n, roww(b), wi, 0, 1.0, at(R, b, i), n, at(X, i, i), n, FB, wi, As, Bs);
            if (b < nb)                              // a later diagonal block: its rank-FB share, off the critical path
                cp_tile(at(R, b, b), n, roww(b), roww(b), 1, -1.0, at(R, b, i), n, at(R, b, i), n, FB, wi, As, Bs);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Unstructured mask selection of one column block on the device (SparseGPT's per-block rule over all
// rows: the k smallest scores w^2 / U[i,i]^2 of the rows x width block, ties to the lower row-major
// index, as io.sparkprune.calibration.sparsity.SmallestK). Scores are non-negative fp32, so their bit
// patterns order like the values: an exact 4-pass radix select (8 bits per pass) finds the k-th
// smallest key T; then every key < T is marked, and the first kRem keys == T in index order.
// state[0] = prefix (T so far), state[1] = prefix mask, state[2] = kRem, state[3] = count of keys
// equal to the prefix digit chosen last. Eleven launches per block, several of one thread block: kept as
// -Dsparkprune.cuda.unstructuredSelect=radix4; the default is unstr_select_r16 / unstr_select_g
// (unstr_select.cuh), the same mask in one cooperative launch.
// ------------------------------------------------------------------------------------------------
__global__ void unstr_scores(int rows, int width, const float* __restrict__ W, int ldw,
                             const float* __restrict__ U, int ldu, unsigned* __restrict__ keys)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)rows * width) return;
    const int r = (int)(e / width), c = (int)(e % width);
    const float d = U[(size_t)c * ldu + c];
    const float v = W[(size_t)r * ldw + c];
    const float sc = __fdiv_rn(__fmul_rn(v, v), __fmul_rn(d, d));
    keys[e] = __float_as_uint(__fadd_rn(sc, 0.0f));
}

__global__ void unstr_init(unsigned* __restrict__ state, unsigned* __restrict__ hist, int k)
{
    const int t = threadIdx.x;
    if (t < 256) hist[t] = 0u;
    if (t == 0) { state[0] = 0u; state[1] = 0u; state[2] = (unsigned)k; state[3] = 0u; }
}

__global__ void unstr_hist(long n, const unsigned* __restrict__ keys, const unsigned* __restrict__ state, int shift,
                           unsigned* __restrict__ hist)
{
    __shared__ unsigned h[256];
    for (int t = threadIdx.x; t < 256; t += blockDim.x) h[t] = 0u;
    __syncthreads();
    const unsigned prefix = state[0], mask = state[1];
    for (long e = (long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long)gridDim.x * blockDim.x) {
        const unsigned k = keys[e];
        if ((k & mask) == prefix) atomicAdd(&h[(k >> shift) & 255u], 1u);
    }
    __syncthreads();
    for (int t = threadIdx.x; t < 256; t += blockDim.x)
        if (h[t]) atomicAdd(&hist[t], h[t]);
}

__global__ void unstr_pick(unsigned* __restrict__ state, unsigned* __restrict__ hist, int shift)
{
    if (threadIdx.x != 0) return;
    unsigned kRem = state[2], cum = 0u;
    for (int d = 0; d < 256; d++) {
        const unsigned h = hist[d];
        if (cum + h >= kRem) {
            state[0] |= (unsigned)d << shift;
            state[1] |= 255u << shift;
            state[2] = kRem - cum;
            state[3] = h;
            break;
        }
        cum += h;
    }
    for (int d = 0; d < 256; d++) hist[d] = 0u;
}

__global__ void unstr_mark(int rows, int width, const unsigned* __restrict__ keys, const unsigned* __restrict__ state,
                           unsigned char* __restrict__ M, int ldm)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)rows * width) return;
    const unsigned k = keys[e], T = state[0];
    const bool all = state[2] == state[3];
    M[(size_t)(e / width) * ldm + (e % width)] = (k < T || (k == T && all)) ? 1 : 0;
}

// unstr_ties: one block of 1024 threads marks the first kRem keys equal to T in index order (only when
// fewer than all of them are to be marked).
__global__ void __launch_bounds__(1024) unstr_ties(int rows, int width, const unsigned* __restrict__ keys,
                                                   const unsigned* __restrict__ state, unsigned char* __restrict__ M,
                                                   int ldm)
{
    const unsigned T = state[0], kRem = state[2];
    if (kRem == state[3]) return;
    __shared__ unsigned warpSums[32];
    __shared__ unsigned running;
    if (threadIdx.x == 0) running = 0u;
    __syncthreads();
    const long n = (long)rows * width;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (long base = 0; base < n; base += 1024) {
        const long e = base + threadIdx.x;
        const unsigned f = (e < n && keys[e] == T) ? 1u : 0u;
        unsigned incl = f;
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned v = __shfl_up_sync(FULL_MASK, incl, o);
            if (lane >= o) incl += v;
        }
        if (lane == 31) warpSums[warp] = incl;
        __syncthreads();
        if (warp == 0) {
            unsigned w = warpSums[lane], wi = w;
            for (int o = 1; o < 32; o <<= 1) {
                const unsigned v = __shfl_up_sync(FULL_MASK, wi, o);
                if (lane >= o) wi += v;
            }
            warpSums[lane] = wi - w; // exclusive prefix of the warps
        }
        __syncthreads();
        const unsigned before = running + warpSums[warp] + incl - f;
        if (f && before < kRem) M[(size_t)(e / width) * ldm + (e % width)] = 1;
        __syncthreads();
        if (threadIdx.x == 1023) running = before + f;
        __syncthreads();
        if (running >= kRem) break;
    }
}

// gather_cols_f32: copies a rows x width window of W (row stride ldw) into a dense rows x width
// buffer (the current weights of one column block, for the caller's mask selection).
__global__ void gather_cols_f32(int rows, int width, const float* __restrict__ W, int ldw, float* __restrict__ out)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)rows * width) return;
    const int r = (int)(e / width), c = (int)(e % width);
    out[e] = W[(size_t)r * ldw + c];
}

// pack_mask_bits: the solve's byte mask M (rows x cols, row stride ldm, non-zero = pruned) as 64-bit
// words out (rows x wpr, wpr = ceil(cols / 64); column c of row r is bit c % 64 of word r * wpr + c / 64,
// the layout of io.sparkprune.calibration.sparsity.BitMask); bits beyond cols in a row's last word are 0.
// One warp per word: lane l reads columns c0 + l and c0 + 32 + l (coalesced byte loads), two ballots
// give the word's low and high halves. Launch with blockDim.x a multiple of 32 and at least rows * wpr
// warps; the early return is warp-uniform, so every ballot sees its full warp.
__global__ void pack_mask_bits(int rows, int cols, const unsigned char* __restrict__ M, int ldm,
                               unsigned long long* __restrict__ out, int wpr)
{
    const long word = ((long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (word >= (long)rows * wpr) return;
    const int lane = threadIdx.x & 31;
    const int r = (int)(word / wpr);
    const int c0 = (int)(word % wpr) * 64;
    const unsigned char* m = M + (size_t)r * ldm;
    const bool lo = c0 + lane < cols && m[c0 + lane] != 0;
    const bool hi = c0 + 32 + lane < cols && m[c0 + 32 + lane] != 0;
    const unsigned blo = __ballot_sync(FULL_MASK, lo);
    const unsigned bhi = __ballot_sync(FULL_MASK, hi);
    if (lane == 0) out[word] = ((unsigned long long)bhi << 32) | blo;
}

// unpack_upper_f64: the packed upper triangle (the layout above) scaled by `scale` into the
// upper triangle of a full n x n matrix (row stride n; the lower triangle is left as it is) and its
// diagonal into diag — the input of the inverse factor.
__global__ void unpack_upper_f64(int n, const double* __restrict__ Cp, double scale, double* __restrict__ full,
                                 double* __restrict__ diag)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n * n) return;
    const long i = e / n, j = e % n;
    if (j < i) return;
    const double v = Cp[i * n - i * (i - 1) / 2 + (j - i)] * scale;
    full[e] = v;
    if (i == j) diag[i] = v;
}

// packed_to_symmetric_f32: the full symmetric n x n fp32 matrix of the packed upper triangle (the
// layout above) times `scale`: out[i][j] = (float)(Cp[min(i,j), max(i,j)] * scale), the fp64 product
// rounded once to nearest (the host's (float) of HessianAccumulator.copyHessianTo(float[]); explicit
// __dmul_rn / __double2float_rn so no contraction or flush-to-zero can change the bits).
__global__ void packed_to_symmetric_f32(int n, const double* __restrict__ Cp, double scale, float* __restrict__ out)
{
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n * n) return;
    long i = e / n, j = e % n;
    if (j < i) { const long t = i; i = j; j = t; }
    out[e] = __double2float_rn(__dmul_rn(Cp[i * n - i * (i - 1) / 2 + (j - i)], scale));
}

// row_dot_f64: out[r] = sum_c (double)A[r][c] * (double)T[r][c], one 256-thread block per row, fp64
// partial sums per thread (strided columns), then a tree in shared memory (the quadratic forms of the
// reconstruction-error metric, ResidentFactorizer.Factor.rowQuadratics).
__global__ void __launch_bounds__(256) row_dot_f64(int rows, int n, const float* __restrict__ A,
                                                   const float* __restrict__ T, double* __restrict__ out)
{
    __shared__ double part[256];
    const int r = blockIdx.x;
    if (r >= rows) return;
    const float* a = A + (size_t)r * n;
    const float* t = T + (size_t)r * n;
    double s = 0.0;
    for (int c = threadIdx.x; c < n; c += 256) s += (double)a[c] * (double)t[c];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[r] = part[0];
}

// ------------------------------------------------------------------------------------------------
// sparsegpt_block: the fused SparseGPT in-block solve (io.sparkprune.kernels.SparseGptBlock; SparseGPT,
// Frantar & Alistarh 2023, arXiv 2301.00774, Algorithm 1, inner loop; joint quantization as GPTQ).
// One warp per weight row; the row's (up to) 128 block columns live in registers, column c in lane
// c % 32, slot c / 32. The width x width diagonal block of U is staged once per thread block in shared
// memory (stride SB_W, only the upper triangle is read). Per column i, left to right:
//   N:M selection at the group's first column (ranks of w^2 / U[j,j]^2 among the group's unmasked
//   columns, ties to the lower column), the group grid fit (qgroup > 0), q = 0 if masked else w,
//   quantization of q, e = (w - q) / U[i,i], loss += e^2 (fp64), w[j] -= e * U[i,j] for j > i.
// Per-row losses are added to loss[row] (fp64).
// Dynamic shared memory: SB_W*SB_W floats for U plus SB_W floats per warp.
// Faster twins with the same parameters and bits: sparsegpt_block_rows (below) and the lane kernels of
// sparsegpt_lanes.cuh (L lanes per row), which CudaBackend.blockDevice prefers; this kernel remains the
// fall-back for N:M groups wider than the lanes and the reference of tools/device/block_probe.py.
// ------------------------------------------------------------------------------------------------
#define SB_W 128
#define SB_SLOTS (SB_W / 32)

__global__ void __launch_bounds__(1024)
sparsegpt_block(int rows, int width,
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
    extern __shared__ float smem[];
    float* Us = smem;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* scr = smem + SB_W * SB_W + warp * SB_W;
    for (int e = threadIdx.x; e < width * width; e += blockDim.x) {
        const int r = e / width, c = e % width;
        Us[r * SB_W + c] = c >= r ? U[(size_t)r * ldu + c] : 0.f;
    }
    __syncthreads();
    const int row = blockIdx.x * (blockDim.x >> 5) + warp;
    if (row >= rows) return;

    float w[SB_SLOTS], ev[SB_SLOTS];
    unsigned char mk[SB_SLOTS];
#pragma unroll
    for (int s = 0; s < SB_SLOTS; s++) {
        const int c = s * 32 + lane;
        w[s] = c < width ? W[(size_t)row * ldw + c] : 0.f;
        mk[s] = c < width ? M[(size_t)row * ldm + c] : 0;
        ev[s] = 0.f;
    }
    const int maxq = qbits > 0 ? (1 << qbits) - 1 : 0;
    const int half = qbits > 0 ? 1 << (qbits - 1) : 0;
    float scale = 0.f, zero = 0.f;
    if (qbits > 0 && qgroup == 0) {
        scale = qscale[(size_t)row * ldq];
        zero = qzero[(size_t)row * ldq];
    }
    const int nmPrune = nmGroup - nmKeep;
    double lossAcc = 0.0;

#pragma unroll
    for (int s = 0; s < SB_SLOTS; s++) {
        for (int t = 0; t < 32; t++) {
            const int i = s * 32 + t;
            if (i >= width) break;
            if (nmGroup > 0 && i % nmGroup == 0) {
                const int g1 = i + nmGroup;
#pragma unroll
                for (int s2 = 0; s2 < SB_SLOTS; s2++) {
                    const int c = s2 * 32 + lane;
                    if (c >= i && c < g1) {
                        const float d = Us[c * SB_W + c];
                        scr[c] = mk[s2] ? -1.f : __fdiv_rn(__fmul_rn(w[s2], w[s2]), __fmul_rn(d, d));
                    }
                }
                __syncwarp();
#pragma unroll
                for (int s2 = 0; s2 < SB_SLOTS; s2++) {
                    const int c = s2 * 32 + lane;
                    if (c >= i && c < g1 && !mk[s2]) {
                        const float mine = scr[c];
                        int rank = 0;
                        for (int j = i; j < g1; j++) {
                            const float o = scr[j];
                            if (o >= 0.f && (o < mine || (o == mine && j < c))) rank++;
                        }
                        if (rank < nmPrune) mk[s2] = 1;
                    }
                }
                __syncwarp();
            }
            if (qbits > 0 && qgroup > 0 && i % qgroup == 0) {
                const int g1 = i + qgroup;
                float mn = 0.f, mx = 0.f;
#pragma unroll
                for (int s2 = 0; s2 < SB_SLOTS; s2++) {
                    const int c = s2 * 32 + lane;
                    if (c >= i && c < g1) { mn = fminf(mn, w[s2]); mx = fmaxf(mx, w[s2]); }
                }
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) {
                    mn = fminf(mn, __shfl_xor_sync(FULL_MASK, mn, o));
                    mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, o));
                }
                if (qsym) {
                    float a = fmaxf(-mn, mx);
                    if (a == 0.f) a = 1.f;
                    scale = __fdiv_rn(__fadd_rn(a, a), (float)maxq);
                    zero = (float)((maxq + 1) / 2);
                } else {
                    if (mn == 0.f && mx == 0.f) { mn = -1.f; mx = 1.f; }
                    scale = __fdiv_rn(__fsub_rn(mx, mn), (float)maxq);
                    zero = rintf(__fdiv_rn(-mn, scale));
                }
                if (lane == 0) {
                    qscale[(size_t)row * ldq + i / qgroup] = scale;
                    qzero[(size_t)row * ldq + i / qgroup] = zero;
                }
            }
            const float wi = __shfl_sync(FULL_MASK, w[s], t);
            const int mi = __shfl_sync(FULL_MASK, (int)mk[s], t);
            float q = mi ? 0.f : wi;
            if (qbits > 0) {
                float level = __fadd_rn(rintf(__fdiv_rn(q, scale)), zero);
                level = fminf(fmaxf(level, 0.f), (float)maxq);
                if (lane == t) codes[(size_t)row * ldc + i] = (signed char)((int)level - half);
                q = __fmul_rn(scale, __fsub_rn(level, zero));
            }
            const float e = __fdiv_rn(__fsub_rn(wi, q), Us[i * SB_W + i]);
            lossAcc = __dadd_rn(lossAcc, __dmul_rn((double)e, (double)e));
            const float* urow = Us + i * SB_W;
#pragma unroll
            for (int s2 = 0; s2 < SB_SLOTS; s2++) {
                const int c = s2 * 32 + lane;
                if (c > i && c < width) w[s2] = __fsub_rn(w[s2], __fmul_rn(e, urow[c]));
            }
            if (lane == t) { w[s] = q; ev[s] = e; }
        }
    }
#pragma unroll
    for (int s = 0; s < SB_SLOTS; s++) {
        const int c = s * 32 + lane;
        if (c < width) {
            W[(size_t)row * ldw + c] = w[s];
            Err[(size_t)row * lde + c] = ev[s];
            M[(size_t)row * ldm + c] = mk[s];
        }
    }
    if (lane == 0) loss[row] += lossAcc;
}

// ------------------------------------------------------------------------------------------------
// sparsegpt_block_rows: the function of sparsegpt_block, bit for bit (the same fp32/fp64 operations, in
// the same order for every element), with one THREAD per weight row instead of one warp: a row's
// block columns live in shared memory, column-major with pitch P = blockDim.x + 1 (thread t's column c
// at c·P + t: consecutive threads hit consecutive banks), so each column step costs the row only its
// remaining columns' updates (w[j] -= e·U[i,j], U read as a broadcast) instead of a warp-wide pass with
// shuffles. Rows are staged in and written back by whole warps along the row (coalesced).
// blockDim.x: a multiple of 32, at most SR_MAX_THREADS. Dynamic shared memory: SR_SMEM(blockDim.x) bytes.
// ------------------------------------------------------------------------------------------------
#define SR_MAX_THREADS 128
#define SR_UNROLL 8
#define SR_SMEM(T) (4 * SB_W * SB_W + 2 * 4 * SB_W * ((T) + 1) + 2 * SB_W * ((T) + 1))

__device__ __forceinline__ float sr_score(float w, float d)
{
    return __fdiv_rn(__fmul_rn(w, w), __fmul_rn(d, d));
}

__global__ void __launch_bounds__(SR_MAX_THREADS)
sparsegpt_block_rows(int rows, int width,
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
    extern __shared__ float smem[];
    const int T = blockDim.x, P = T + 1;
    float* Us = smem;                                         // SB_W x SB_W, upper triangle
    float* ws = Us + SB_W * SB_W;                             // weights: column c of thread t at c*P + t
    float* es = ws + SB_W * P;                                // scaled errors
    unsigned char* ms = (unsigned char*)(es + SB_W * P);      // mask
    signed char* cs = (signed char*)(ms + SB_W * P);          // codes
    const int t = threadIdx.x, warp = t >> 5, lane = t & 31;
    const int r0 = blockIdx.x * T;
    {
        const int n = width * width;
        for (int e0 = t; e0 < n; e0 += SR_UNROLL * T) {  // SR_UNROLL loads in flight per thread
            float v[SR_UNROLL];
#pragma unroll
            for (int k = 0; k < SR_UNROLL; k++) {
                const int e = e0 + k * T, r = e / width, c = e % width;
                v[k] = (e < n && c >= r) ? U[(size_t)r * ldu + c] : 0.f;
            }
#pragma unroll
            for (int k = 0; k < SR_UNROLL; k++) {
                const int e = e0 + k * T;
                if (e < n) Us[(e / width) * SB_W + e % width] = v[k];
            }
        }
    }
#pragma unroll 4
    for (int k = 0; k < 32; k++) {
        const int rl = warp * 32 + k, row = r0 + rl;
        if (row >= rows) break;
        for (int c = lane; c < width; c += 32) {
            ws[c * P + rl] = W[(size_t)row * ldw + c];
            ms[c * P + rl] = M[(size_t)row * ldm + c];
        }
    }
    __syncthreads();
    const int row = r0 + t;
    double lossAcc = 0.0;
    if (row < rows) {
        const int maxq = qbits > 0 ? (1 << qbits) - 1 : 0;
        const int half = qbits > 0 ? 1 << (qbits - 1) : 0;
        float scale = 0.f, zero = 0.f;
        if (qbits > 0 && qgroup == 0) {
            scale = qscale[(size_t)row * ldq];
            zero = qzero[(size_t)row * ldq];
        }
        const int nmPrune = nmGroup - nmKeep;
        for (int i = 0; i < width; i++) {
            if (nmGroup > 0 && i % nmGroup == 0) {
                const int g1 = min(i + nmGroup, width);
                unsigned long long picked = 0ull;  // nmGroup <= 64 columns
                for (int c = i; c < g1; c++) {
                    if (ms[c * P + t]) continue;
                    const float mine = sr_score(ws[c * P + t], Us[c * SB_W + c]);
                    int rank = 0;
                    for (int j = i; j < g1; j++) {
                        if (ms[j * P + t]) continue;
                        const float o = sr_score(ws[j * P + t], Us[j * SB_W + j]);
                        if (o < mine || (o == mine && j < c)) rank++;
                    }
                    if (rank < nmPrune) picked |= 1ull << (c - i);
                }
                for (int c = i; c < g1; c++)
                    if ((picked >> (c - i)) & 1ull) ms[c * P + t] = 1;
            }
            if (qbits > 0 && qgroup > 0 && i % qgroup == 0) {
                const int g1 = min(i + qgroup, width);
                float mn = 0.f, mx = 0.f;
                for (int c = i; c < g1; c++) {
                    const float v = ws[c * P + t];
                    mn = fminf(mn, v);
                    mx = fmaxf(mx, v);
                }
                if (qsym) {
                    float a = fmaxf(-mn, mx);
                    if (a == 0.f) a = 1.f;
                    scale = __fdiv_rn(__fadd_rn(a, a), (float)maxq);
                    zero = (float)((maxq + 1) / 2);
                } else {
                    if (mn == 0.f && mx == 0.f) { mn = -1.f; mx = 1.f; }
                    scale = __fdiv_rn(__fsub_rn(mx, mn), (float)maxq);
                    zero = rintf(__fdiv_rn(-mn, scale));
                }
                qscale[(size_t)row * ldq + i / qgroup] = scale;
                qzero[(size_t)row * ldq + i / qgroup] = zero;
            }
            const float wi = ws[i * P + t];
            float q = ms[i * P + t] ? 0.f : wi;
            if (qbits > 0) {
                float level = __fadd_rn(rintf(__fdiv_rn(q, scale)), zero);
                level = fminf(fmaxf(level, 0.f), (float)maxq);
                cs[i * P + t] = (signed char)((int)level - half);
                q = __fmul_rn(scale, __fsub_rn(level, zero));
            }
            const float e = __fdiv_rn(__fsub_rn(wi, q), Us[i * SB_W + i]);
            lossAcc = __dadd_rn(lossAcc, __dmul_rn((double)e, (double)e));
            const float* urow = Us + i * SB_W;
            int j = i + 1;
            // batches of SR_UNROLL columns: every load of a batch is issued before its stores (the compiler
            // cannot reorder a load of urow past a store to ws, both being shared memory)
            for (; j + SR_UNROLL <= width; j += SR_UNROLL) {
                float a[SR_UNROLL], u[SR_UNROLL];
#pragma unroll
                for (int k = 0; k < SR_UNROLL; k++) {
                    a[k] = ws[(j + k) * P + t];
                    u[k] = urow[j + k];
                }
#pragma unroll
                for (int k = 0; k < SR_UNROLL; k++) ws[(j + k) * P + t] = __fsub_rn(a[k], __fmul_rn(e, u[k]));
            }
            for (; j < width; j++) ws[j * P + t] = __fsub_rn(ws[j * P + t], __fmul_rn(e, urow[j]));
            ws[i * P + t] = q;
            es[i * P + t] = e;
        }
    }
    __syncthreads();
    for (int k = 0; k < 32; k++) {
        const int rl = warp * 32 + k, rw = r0 + rl;
        if (rw >= rows) break;
        for (int c = lane; c < width; c += 32) {
            W[(size_t)rw * ldw + c] = ws[c * P + rl];
            Err[(size_t)rw * lde + c] = es[c * P + rl];
            M[(size_t)rw * ldm + c] = ms[c * P + rl];
            if (qbits > 0) codes[(size_t)rw * ldc + c] = cs[c * P + rl];
        }
    }
    if (row < rows) loss[row] += lossAcc;
}

#include "forward_ops.cuh"
#include "gemm_tc.cuh"
#include "attention_tc.cuh"

} // extern "C"

// Lane-per-row-segment variants of sparsegpt_block (C++ templates, their kernels declared extern "C" there).
#include "sparsegpt_lanes.cuh"

// The unstructured selection of one column block in one cooperative launch (the unstr_* chain's mask).
#include "unstr_select.cuh"
