// SparkPrune Hopper kernels (issue 8): warpgroup tensor-core products, `wgmma.mma_async` (PTX ISA 8.0+,
// "Asynchronous Warpgroup Level Matrix Multiply-Accumulate", sm_90a only). Built by Maven into a
// fatbin of its own (sparkprune_sm90a.fatbin: sm_90a machine code, no PTX), which
// io.sparkprune.kernels.cuda.CudaBackend loads only on devices of compute capability 9.0; elsewhere the
// mma.sync kernels of gemm_tc.cuh run. Row-major matrices with a leading dimension (row stride, in
// elements), as in sparkprune.cu.
//
//  wg_gemm_bf16_nt / wg_gemm_bf16_nt128: C = alpha · A · Bᵀ + beta · C; A m × k bf16, B n × k bf16
//      (both "K-major": the inner dimension contiguous, as x · Wᵀ for a linear layer), C m × n fp32;
//      fp32 accumulation; beta == 0 does not read C. 128 × 256 (or 128 × 128) C tile per block.
//  wg_gemm_tf32_nt / wg_gemm_tf32_nt256: the same with fp32 operands that are already TF32 values
//      (rounded by round_tf32: the tensor cores ignore the low 13 mantissa bits, so a value that is
//      not yet rounded would be truncated instead of rounded to nearest).
//  wg_syrk_tf32: Cp += Xᵀ·X into the fp64 packed upper triangle (layout of sparkprune.cu), given
//      Xt = Xᵀ (n × k, TF32 values, from transpose_round_tf32); products in TF32 summed in fp32 over
//      chunks of 256 tokens (the contract of syrk_packed_tf32), each chunk's sums added into fp64
//      registers; upper 128 × 128 tiles only; grid.y splits the tokens (multiples of 256), the
//      splits meet through fp64 atomicAdd.
//  round_tf32, transpose_round_tf32: cvt.rna.tf32.f32 (round to nearest, ties away from zero),
//      the rounding of CpuBackend's Tf32.round twin.
//  dgemm_dmma_sm90: the fp64 product of the device inverse factor (dgemm_dmma's function) on the
//      sm_90 fp64 tensor-core shapes mma.sync.aligned.m16n8k{4,8,16} .f64 (m16n8k8 by default; not wgmma:
//      it has no fp64); see its comment at the end of this file (and, under -DDG9_VARIANTS for
//      tools/device/dgemm_probe.py only, its tuning variants, after it).
//
// Structure (the SparseGPT-independent part of a Hopper GEMM; cf. NVIDIA CUTLASS 3 "sm90 warpgroup
// MMA" mainloops): 256 threads = 2 warpgroups, each computing 64 rows of the 128-row tile with
// m64nNk16 (bf16) / m64nNk8 (tf32) instructions whose operands both come from shared memory through
// matrix descriptors. Operand tiles are staged by cp.async (16-byte copies, zero-filled past the
// edges) into the 128-byte swizzled K-major layout (row r, 16-byte chunk c at r·128 + ((c ⊕ (r mod 8))·16),
// 1024-byte aligned atoms of 8 rows), STAGES deep; each thread fences its copies into the async proxy
// (fence.proxy.async.shared::cta) before the barrier that hands a stage to the tensor cores; one
// warpgroup MMA group stays in flight while the next stage is handed over.

#include <cstdint>

#define WG_THREADS 256
#define WG_BM 128

__device__ __forceinline__ uint64_t wg_desc(uint32_t addr)
{
    // start address >> 4 (bits 0-13), leading byte offset 16 >> 4 (unused by swizzled K-major
    // tiles), stride byte offset 1024 >> 4 (8 rows of 128 bytes), base offset 0, 128-byte swizzle (1 << 62)
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32)
           | ((uint64_t)1 << 62);
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
__device__ __forceinline__ void wg_proxy_fence() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void wg_cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
template <int R>
__device__ __forceinline__ void wg_reg_fence(float (&d)[R])
{
#pragma unroll
    for (int i = 0; i < R; i++) asm volatile("" : "+f"(d[i])::"memory");
}

// ---- wgmma wrappers (generated once by a short script: the operand lists are N/2 accumulators long)
__device__ __forceinline__ void wg_mma_bf16_n256(float (&d)[128], uint64_t descA, uint64_t descB, int scaleD)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "l"(descA), "l"(descB), "r"(scaleD));
}

__device__ __forceinline__ void wg_mma_bf16_n128(float (&d)[64], uint64_t descA, uint64_t descB, int scaleD)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(descA), "l"(descB), "r"(scaleD));
}

__device__ __forceinline__ void wg_mma_tf32_n128(float (&d)[64], uint64_t descA, uint64_t descB, int scaleD)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(descA), "l"(descB), "r"(scaleD));
}

__device__ __forceinline__ void wg_mma_tf32_n256(float (&d)[128], uint64_t descA, uint64_t descB, int scaleD)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k8.f32.tf32.tf32 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, %128, %129, p, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "l"(descA), "l"(descB), "r"(scaleD));
}

template <typename T, int BN>
__device__ __forceinline__ void wg_mma(float (&d)[BN / 2], uint64_t a, uint64_t b, int scaleD)
{
    if constexpr (sizeof(T) == 2 && BN == 256) wg_mma_bf16_n256(d, a, b, scaleD);
    else if constexpr (sizeof(T) == 2 && BN == 128) wg_mma_bf16_n128(d, a, b, scaleD);
    else if constexpr (sizeof(T) == 4 && BN == 256) wg_mma_tf32_n256(d, a, b, scaleD);
    else wg_mma_tf32_n128(d, a, b, scaleD);
}

// Stages rows [r0, r0 + ROWS) × inner [k0, k0 + 128 bytes) of a K-major operand into the swizzled tile
// at shared address s; rows >= rLim and inner indices >= kLim read as zero (kLim a multiple of 16 bytes).
template <typename T, int ROWS>
__device__ __forceinline__ void wg_load(uint32_t s, const T* __restrict__ X, int ld, int r0, int rLim, int k0,
                                        int kLim)
{
    constexpr int VE = 16 / sizeof(T);
#pragma unroll
    for (int i = 0; i < ROWS * 8 / WG_THREADS; i++) {
        const int id = threadIdx.x + i * WG_THREADS;
        const int r = id >> 3, c = id & 7;
        const int gr = r0 + r, gk = k0 + c * VE;
        const bool ok = gr < rLim && gk < kLim;
        const T* src = ok ? X + (size_t)gr * ld + gk : X;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s + r * 128 + ((c ^ (r & 7)) << 4)),
                     "l"(src), "r"(ok ? 16 : 0)
                     : "memory");
    }
}

// The main loop: d (this warpgroup's 64 × BN accumulators) = A[m0.., kBeg:kEnd] · B[n0.., kBeg:kEnd]ᵀ,
// restarted (scale-d 0) every CHUNK k-tiles of 128 bytes, with fold() called after each chunk's last tile
// once its products are complete (and after the last tile).
template <typename T, int BN, int STAGES, int CHUNK, typename Fold>
__device__ __forceinline__ void wg_mainloop(float (&d)[BN / 2], uint32_t smem, const T* __restrict__ A, int lda,
                                            const T* __restrict__ B, int ldb, int m0, int mLim, int n0, int nLim,
                                            int kBeg, int kEnd, Fold fold)
{
    constexpr int KE = 128 / sizeof(T);
    constexpr int A_BYTES = WG_BM * 128, STAGE_BYTES = (WG_BM + BN) * 128;
    const int nt = (kEnd - kBeg + KE - 1) / KE;
    const uint32_t wgOff = (threadIdx.x >> 7) * 64 * 128;
#pragma unroll
    for (int s = 0; s < STAGES - 2; s++) {
        if (s < nt) {
            wg_load<T, WG_BM>(smem + s * STAGE_BYTES, A, lda, m0, mLim, kBeg + s * KE, kEnd);
            wg_load<T, BN>(smem + s * STAGE_BYTES + A_BYTES, B, ldb, n0, nLim, kBeg + s * KE, kEnd);
        }
        wg_cp_commit();
    }
#pragma unroll 1
    for (int kt = 0; kt < nt; kt++) {
        wg_cp_wait<STAGES - 3>();
        wg_proxy_fence();
        __syncthreads();  // stage kt is in shared memory; every warpgroup's MMAs of tile kt - 2 are complete
        {
            const int lt = kt + STAGES - 2;
            if (lt < nt) {
                const uint32_t st = smem + (lt % STAGES) * STAGE_BYTES;
                wg_load<T, WG_BM>(st, A, lda, m0, mLim, kBeg + lt * KE, kEnd);
                wg_load<T, BN>(st + A_BYTES, B, ldb, n0, nLim, kBeg + lt * KE, kEnd);
            }
            wg_cp_commit();
        }
        const uint32_t sa = smem + (kt % STAGES) * STAGE_BYTES + wgOff, sb = smem + (kt % STAGES) * STAGE_BYTES + A_BYTES;
        const int first = (kt % CHUNK) == 0;
        wg_fence();
#pragma unroll
        for (int j = 0; j < 4; j++) wg_mma<T, BN>(d, wg_desc(sa + j * 32), wg_desc(sb + j * 32), (first && j == 0) ? 0 : 1);
        wg_commit();
        if ((kt % CHUNK) == CHUNK - 1 || kt == nt - 1) {
            wg_wait<0>();
            wg_reg_fence(d);
            fold();
        } else {
            wg_wait<1>();
        }
    }
}

__device__ __forceinline__ uint32_t wg_smem_base(unsigned char* p)
{
    return ((uint32_t)__cvta_generic_to_shared(p) + 1023u) & ~1023u;
}

// The GEMM epilogue: C = alpha · d + beta · C for this thread's accumulators (m64nN f32 fragment layout:
// register 4j + 2h + c holds row 16·warp + lane/4 + 8h, column 8j + 2·(lane mod 4) + c of its warpgroup's 64 rows).
template <int BN>
__device__ __forceinline__ void wg_store(const float (&d)[BN / 2], int m, int n, float alpha, float beta, float* C,
                                         int ldc, int m0, int n0)
{
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3;
    const int rowBase = m0 + (threadIdx.x >> 7) * 64 + warp * 16 + (lane >> 2);
    const bool pairs = (ldc & 1) == 0 && (reinterpret_cast<uintptr_t>(C) & 7) == 0;
#pragma unroll
    for (int j = 0; j < BN / 8; j++) {
        const int col = n0 + 8 * j + 2 * (lane & 3);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = rowBase + 8 * h;
            if (row >= m || col >= n) continue;
            float* c = C + (size_t)row * ldc + col;
            float v0 = alpha * d[4 * j + 2 * h], v1 = alpha * d[4 * j + 2 * h + 1];
            if (pairs && col + 1 < n) {
                if (beta != 0.f) {
                    const float2 o = *reinterpret_cast<const float2*>(c);
                    v0 += beta * o.x;
                    v1 += beta * o.y;
                }
                *reinterpret_cast<float2*>(c) = make_float2(v0, v1);
            } else {
                c[0] = beta != 0.f ? v0 + beta * c[0] : v0;
                if (col + 1 < n) c[1] = beta != 0.f ? v1 + beta * c[1] : v1;
            }
        }
    }
}

struct WgNoFold {
    __device__ __forceinline__ void operator()() const {}
};

#define WG_GEMM(NAME, T, BN, STAGES)                                                                           \
    extern "C" __global__ void __launch_bounds__(WG_THREADS, 1) NAME(int m, int n, int k, float alpha, const T* A, int lda,   \
                                                          const T* B, int ldb, float beta, float* C, int ldc)      \
    {                                                                                                          \
        extern __shared__ __align__(16) unsigned char wg_smem[];                                               \
        const uint32_t smem = wg_smem_base(wg_smem);                                                           \
        const int m0 = blockIdx.y * WG_BM, n0 = blockIdx.x * BN;                                               \
        float d[BN / 2];                                                                                       \
        _Pragma("unroll") for (int i = 0; i < BN / 2; i++) d[i] = 0.f;                                         \
        wg_mainloop<T, BN, STAGES, 1 << 30>(d, smem, A, lda, B, ldb, m0, m, n0, n, 0, k, WgNoFold());            \
        wg_store<BN>(d, m, n, alpha, beta, C, ldc, m0, n0);                                                    \
    }

WG_GEMM(wg_gemm_bf16_nt, unsigned short, 256, 4)
WG_GEMM(wg_gemm_bf16_nt128, unsigned short, 128, 6)
WG_GEMM(wg_gemm_tf32_nt, float, 128, 6)
WG_GEMM(wg_gemm_tf32_nt256, float, 256, 4)

// ---------------------------------------------------------------- 3xTF32 (fp32-accurate) products
// wg_gemm_3xtf32_nt: C = alpha · A · Bᵀ + beta · C in fp32 accuracy on the TF32 tensor cores (the "3xTF32"
// split of NVIDIA CUTLASS: each fp32 operand x = hi + lo with hi = tf32(x), lo = tf32(x − hi), both rounded
// to nearest; A·Bᵀ ≈ Ahi·Bhiᵀ + Ahi·Bloᵀ + Alo·Bhiᵀ, the dropped Alo·Bloᵀ is below 2⁻²² of |A|·|B|; the
// three products accumulate in one fp32 accumulator, small terms first). Operands come pre-split
// (split_tf32, transpose_split_tf32); A m × k and B n × k K-major, C m × n. The SparseGPT lazy update
// W[:, i2:] −= Err · U[i1:i2, i2:] (B = Uᵀ of the block rows) runs on it. 128 × 128 C tile, 3 stages of
// the four operand tiles.
#define WG3_STAGES 3
extern "C" __global__ void __launch_bounds__(WG_THREADS, 1)
wg_gemm_3xtf32_nt(int m, int n, int k, float alpha, const float* Ahi, const float* Alo, int lda, const float* Bhi,
                  const float* Blo, int ldb, float beta, float* C, int ldc)
{
    extern __shared__ __align__(16) unsigned char wg_smem[];
    const uint32_t smem = wg_smem_base(wg_smem);
    constexpr int BN = 128, KE = 32;
    constexpr int T_BYTES = 128 * 128, STAGE_BYTES = 4 * T_BYTES;  // Ahi, Alo, Bhi, Blo
    const int m0 = blockIdx.y * WG_BM, n0 = blockIdx.x * BN;
    float d[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; i++) d[i] = 0.f;
    const int nt = (k + KE - 1) / KE;
    const uint32_t wgOff = (threadIdx.x >> 7) * 64 * 128;
    auto load = [&](int t) {
        const uint32_t st = smem + (t % WG3_STAGES) * STAGE_BYTES;
        wg_load<float, WG_BM>(st, Ahi, lda, m0, m, t * KE, k);
        wg_load<float, WG_BM>(st + T_BYTES, Alo, lda, m0, m, t * KE, k);
        wg_load<float, BN>(st + 2 * T_BYTES, Bhi, ldb, n0, n, t * KE, k);
        wg_load<float, BN>(st + 3 * T_BYTES, Blo, ldb, n0, n, t * KE, k);
    };
#pragma unroll
    for (int s = 0; s < WG3_STAGES - 2; s++) {
        if (s < nt) load(s);
        wg_cp_commit();
    }
#pragma unroll 1
    for (int kt = 0; kt < nt; kt++) {
        wg_cp_wait<WG3_STAGES - 3>();
        wg_proxy_fence();
        __syncthreads();
        if (kt + WG3_STAGES - 2 < nt) load(kt + WG3_STAGES - 2);
        wg_cp_commit();
        const uint32_t st = smem + (kt % WG3_STAGES) * STAGE_BYTES;
        const uint32_t ahi = st + wgOff, alo = st + T_BYTES + wgOff, bhi = st + 2 * T_BYTES, blo = st + 3 * T_BYTES;
        wg_fence();
#pragma unroll
        for (int j = 0; j < 4; j++) {
            wg_mma_tf32_n128(d, wg_desc(alo + j * 32), wg_desc(bhi + j * 32), (kt == 0 && j == 0) ? 0 : 1);
            wg_mma_tf32_n128(d, wg_desc(ahi + j * 32), wg_desc(blo + j * 32), 1);
            wg_mma_tf32_n128(d, wg_desc(ahi + j * 32), wg_desc(bhi + j * 32), 1);
        }
        wg_commit();
        if (kt == nt - 1) wg_wait<0>();
        else wg_wait<1>();
    }
    wg_reg_fence(d);
    wg_store<BN>(d, m, n, alpha, beta, C, ldc, m0, n0);
}

__device__ __forceinline__ float wg_rna(float x)
{
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return __uint_as_float(r);
}

// split_tf32: hi = tf32(x), lo = tf32(x − hi) for the rows × cols window X (row stride ldx) into hi and lo
// (row stride ld).
extern "C" __global__ void split_tf32(int rows, int cols, const float* X, int ldx, float* hi, float* lo, int ld)
{
    const long total = (long)rows * cols;
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < total; e += (long)gridDim.x * blockDim.x) {
        const long r = e / cols, c = e % cols;
        const float x = X[r * ldx + c], h = wg_rna(x);
        hi[r * ld + c] = h;
        lo[r * ld + c] = wg_rna(x - h);
    }
}

// transpose_split_tf32: the split of Xᵀ: for X k × n (row stride ldx), hiT/loT n × k (row stride ldt).
// 32 × 32 tiles through shared memory, blocks of 32 × 8 threads.
extern "C" __global__ void transpose_split_tf32(int k, int n, const float* X, int ldx, float* hiT, float* loT, int ldt)
{
    __shared__ float t[32][33];
    const int bx = blockIdx.x * 32, by = blockIdx.y * 32;
    for (int r = threadIdx.y; r < 32; r += 8) {
        const int i = by + r, j = bx + threadIdx.x;
        t[r][threadIdx.x] = (i < k && j < n) ? X[(size_t)i * ldx + j] : 0.f;
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += 8) {
        const int j = bx + r, i = by + threadIdx.x;
        if (j < n && i < k) {
            const float x = t[threadIdx.x][r], h = wg_rna(x);
            hiT[(size_t)j * ldt + i] = h;
            loT[(size_t)j * ldt + i] = wg_rna(x - h);
        }
    }
}

#define WG_SYRK_STAGES 6
#define WG_CHUNK_TILES (256 / 32)  // 256-token chunks of 32-float k-tiles

extern "C" __global__ void __launch_bounds__(WG_THREADS, 1)
wg_syrk_tf32(int n, int k, const float* Xt, int ldt, double* Cp, int kPerSplit)
{
    extern __shared__ __align__(16) unsigned char wg_smem[];
    const uint32_t smem = wg_smem_base(wg_smem);
    const int nt = (n + WG_BM - 1) / WG_BM;
    int tt = blockIdx.x, ti = 0;
    while (tt >= nt - ti) { tt -= nt - ti; ti++; }
    const int tj = ti + tt;
    const int i0 = ti * WG_BM, j0 = tj * WG_BM;
    const int kBeg = blockIdx.y * kPerSplit, kEnd = min(k, kBeg + kPerSplit);
    if (kBeg >= kEnd) return;
    float d[64];
    double s[64];
#pragma unroll
    for (int i = 0; i < 64; i++) { d[i] = 0.f; s[i] = 0.0; }
    wg_mainloop<float, 128, WG_SYRK_STAGES, WG_CHUNK_TILES>(d, smem, Xt, ldt, Xt, ldt, i0, n, j0, n, kBeg, kEnd, [&]() {
#pragma unroll
        for (int i = 0; i < 64; i++) s[i] += (double)d[i];
    });
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3;
    const int rowBase = i0 + (threadIdx.x >> 7) * 64 + warp * 16 + (lane >> 2);
    const bool split = gridDim.y > 1;
#pragma unroll
    for (int j = 0; j < 16; j++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const long r = rowBase + 8 * h;
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const long col = j0 + 8 * j + 2 * (lane & 3) + c;
                if (r >= n || col >= n || col < r) continue;
                double* p = Cp + (r * n - r * (r - 1) / 2 + (col - r));
                if (split) atomicAdd(p, s[4 * j + 2 * h + c]);
                else *p += s[4 * j + 2 * h + c];
            }
        }
    }
}

// round_tf32: out[i] = cvt.rna.tf32.f32(in[i]) for i < count (in == out allowed).
extern "C" __global__ void round_tf32(long count, const float* in, float* out)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < count; i += (long)gridDim.x * blockDim.x) {
        unsigned r;
        asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(in[i]));
        out[i] = __uint_as_float(r);
    }
}

// transpose_round_tf32: Xt[j][i] = cvt.rna.tf32.f32(X[i][j]) for X k × n (row stride ldx), Xt n × k (row
// stride ldt); 32 × 32 tiles through shared memory, blocks of 32 × 8 threads.
extern "C" __global__ void transpose_round_tf32(int k, int n, const float* X, int ldx, float* Xt, int ldt)
{
    __shared__ float t[32][33];
    const int bx = blockIdx.x * 32, by = blockIdx.y * 32;  // bx: feature (column of X), by: token (row of X)
    for (int r = threadIdx.y; r < 32; r += 8) {
        const int i = by + r, j = bx + threadIdx.x;
        t[r][threadIdx.x] = (i < k && j < n) ? X[(size_t)i * ldx + j] : 0.f;
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += 8) {
        const int j = bx + r, i = by + threadIdx.x;
        if (j < n && i < k) {
            unsigned v;
            asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(v) : "f"(t[threadIdx.x][r]));
            Xt[(size_t)j * ldt + i] = __uint_as_float(v);
        }
    }
}


// ================================================================ fp64 tensor cores, sm_90 shapes
// dgemm_dmma_sm90: the fp64 product of the device inverse factor (CudaBackend.dgemmBatched), the same
// function as dgemm_dmma and dgemm_f64 of sparkprune.cu: C = alpha · A · op(B) + beta · C with A m × k,
// op(B) k × n (B stored k × n, or n × k when transB), C m × n, all fp64 and row-major with row strides
// lda/ldb/ldc (elements); problem z = blockIdx.z at A + z·sA, B + z·sB, C + z·sC (elements);
// beta == 0 does not read C. lowerC: only C's lower triangle (j <= i) is written (tiles above it exit).
// aLower: A lower triangular with its zeros stored (A[i][l] = 0 for l > i), so a tile's inner loop
// stops after its last row. bLower: op(B) lower triangular with its zeros stored (op(B)[l][j] = 0 for
// l < j), so a tile whose first column is j0 starts its inner loop at k = j0. The result is bitwise
// that of bLower = 0 for finite A: j0 is a multiple of 128, so of DG9_BK and of every mma's k-step,
// and both runs split the inner dimension into the same groups (k-tiles at multiples of DG9_BK from
// 0 or from j0, mma k-steps at multiples of their k inside them); without the flag every group
// below j0 multiplies by op(B)[l][j] with l < j0 <= j, i.e. exact zeros, so all its products are +-0,
// and an accumulator that starts at +0 stays +0 under them (+0 + (+-0) = +0 in round-to-nearest, in
// whatever order the tensor core adds them); from k = j0 on both run the same mma sequence on the
// same accumulators. (An A with inf/NaN gives NaN products without the flag.) In place (C overlapping
// A) is allowed only when n <= 128 (one tile column: each block reads all its rows of A before it
// writes any C).
//
// Every product and every sum is an fp64 operation on the tensor cores: mma.sync.aligned.m16n8k16 /
// m16n8k8 / m16n8k4 .row.col.f64.f64.f64.f64 (PTX ISA 7.8+, sm_90; "Warp-level matrix multiply-accumulate
// instructions", matrix fragments for mma.m16n8k{4,8,16} with .f64; the same layouts as NVIDIA
// CUTLASS cute/atom/mma_traits_sm90.hpp, SM90_16x8x{4,8,16}_F64F64F64F64_TN), only the summation order
// differs from dgemm_f64. Fragment layout, g = lane / 4, t = lane % 4, KS the instruction's k:
//   A (16 × KS, row-major): KS / 2 doubles per lane, a[i] at (row g + 8·(i mod 2), col t + 4·(i / 2));
//   B (KS × 8):             KS / 4 doubles per lane, b[i] at (row t + 4·i, col g);
//   C/D (16 × 8):           4 doubles per lane, c[i] at (row g + 8·(i / 2), col 2t + (i mod 2)).
// dgemm_dmma's m8n8k4 reached only ~20-25 of the ~67 fp64 tensor-core TFLOP/s of an H200 on the
// factor's products (launch profile); these shapes issue 4 to 16 times its work per instruction.
// DG9_KS picks the shape; tools/device/dgemm_probe.py times the variants. On an H200 (2026-11-21) the
// k4/k8/k16 shapes ran within 5 % of each other and k-tiles of 32 in 3 stages were 8-10 % faster than
// tiles of 16 in 5 (e.g. the 13824² × 512 trailing update 3.00 vs 3.31 ms, 32.6 vs 29.5 TFLOP/s): the
// default is DG9_BK = 32, DG9_STAGES = 3, DG9_KS = 8.
//
// Tiling: one 128 × 128 tile of C per 256-thread block (8 warps as 2 × 4, 64 × 32 per warp: 4 × 4 mma
// tiles of 16 × 8, 64 fp64 accumulators per lane, so one block per SM by registers), tiles visited in
// groups of DG9_GROUP tile-rows (a group's blocks share the rows of A and the columns of op(B) in L2).
// The inner dimension is staged through shared memory DG9_BK at a time with cp.async (16-byte copies,
// zero-filled past the edges; plain loads when an operand's rows are not 16-byte aligned), DG9_STAGES
// deep. Fragments are read straight from shared memory (no ldmatrix: it moves 16-bit elements) with
// pitches of 4 mod 16 doubles, so that the 8-byte loads of each half-warp touch 16 distinct bank pairs:
// A as "MK" (128 rows of DG9_BK, pitch DG9_BK + 4: address 4g + t mod 16), B as "KM" (DG9_BK rows of
// 128, pitch 132: address 4t + g mod 16) or, when transB, "MK".
#ifndef DG9_BK
#define DG9_BK 32
#endif
#ifndef DG9_STAGES
#define DG9_STAGES 3
#endif
#ifndef DG9_KS
#define DG9_KS 8
#endif
#define DG9_T 128
#define DG9_THREADS 256
#define DG9_GROUP 8
#define DG9_PKM (DG9_T + 4)

// doubles of one operand stage: max(128 × (BK + 4), BK × 132)
template <int BK>
struct Dg9Tile {
    static constexpr int PMK = BK + 4;
    static constexpr int ELEMS = DG9_T * PMK > BK * DG9_PKM ? DG9_T * PMK : BK * DG9_PKM;
};

// Loads rows [r0, r0 + R) × columns [c0, c0 + C) of a row-major fp64 operand X (ld per row) into shared
// memory with row pitch P; rows >= rLim or columns >= cLim read as zero.
template <int R, int C, int P>
__device__ __forceinline__ void dg9_load(double* sm, const double* __restrict__ X, int ld, int r0, int c0, int rLim,
                                         int cLim, int vec)
{
    if (vec) {
#pragma unroll
        for (int e = threadIdx.x; e < R * C / 2; e += DG9_THREADS) {
            const int r = e / (C / 2), cc = (e % (C / 2)) * 2;
            const int gr = r0 + r, gc = c0 + cc;
            int bytes = 0;
            const double* src = X;
            if (gr < rLim && gc < cLim) {
                bytes = min(2, cLim - gc) * 8;
                src = X + (size_t)gr * ld + gc;
            }
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                             (unsigned)__cvta_generic_to_shared(sm + r * P + cc)),
                         "l"(src), "r"(bytes)
                         : "memory");
        }
    } else {
        for (int e = threadIdx.x; e < R * C; e += DG9_THREADS) {
            const int r = e / C, cc = e % C;
            const int gr = r0 + r, gc = c0 + cc;
            sm[r * P + cc] = (gr < rLim && gc < cLim) ? X[(size_t)gr * ld + gc] : 0.0;
        }
    }
}

// d += a · b for one 16 × 8 tile, k = KS (16, 8 or 4).
template <int KS>
__device__ __forceinline__ void dg9_mma(double (&d)[4], const double (&a)[KS / 2], const double (&b)[KS / 4])
{
    if constexpr (KS == 16) {
        asm("mma.sync.aligned.m16n8k16.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5,%6,%7,%8,%9,%10,%11}, "
                     "{%12,%13,%14,%15}, {%0,%1,%2,%3};\n"
                     : "+d"(d[0]), "+d"(d[1]), "+d"(d[2]), "+d"(d[3])
                     : "d"(a[0]), "d"(a[1]), "d"(a[2]), "d"(a[3]), "d"(a[4]), "d"(a[5]), "d"(a[6]), "d"(a[7]),
                       "d"(b[0]), "d"(b[1]), "d"(b[2]), "d"(b[3]));
    } else if constexpr (KS == 8) {
        asm("mma.sync.aligned.m16n8k8.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+d"(d[0]), "+d"(d[1]), "+d"(d[2]), "+d"(d[3])
                     : "d"(a[0]), "d"(a[1]), "d"(a[2]), "d"(a[3]), "d"(b[0]), "d"(b[1]));
    } else {
        static_assert(KS == 4, "the sm_90 fp64 mma shapes have k = 4, 8 or 16");
        asm("mma.sync.aligned.m16n8k4.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
                     "{%0,%1,%2,%3};\n"
                     : "+d"(d[0]), "+d"(d[1]), "+d"(d[2]), "+d"(d[3])
                     : "d"(a[0]), "d"(a[1]), "d"(b[0]));
    }
}

template <int BK, int STAGES, int KS, int TB>
__device__ __forceinline__ void dg9_body(int lowerC, int aLower, int bLower, int m, int n, int k,
                                         double alpha, const double* A, int lda, const double* B, int ldb,
                                         double beta, double* C, int ldc, long sA, long sB, long sC, double* smem)
{
    static_assert(BK % KS == 0 && DG9_T % BK == 0, "k-tiles hold whole mma steps and start at multiples of 128 / BK");
    constexpr int PMK = Dg9Tile<BK>::PMK, TILE = Dg9Tile<BK>::ELEMS;
    A += blockIdx.z * sA;
    B += blockIdx.z * sB;
    C += blockIdx.z * sC;
    // grouped raster: DG9_GROUP tile-rows at a time, column by column inside a group
    const int tilesX = gridDim.x, tilesY = gridDim.y;
    const int pid = blockIdx.y * tilesX + blockIdx.x;
    const int perGroup = DG9_GROUP * tilesX;
    const int firstY = pid / perGroup * DG9_GROUP;
    const int rowsHere = min(tilesY - firstY, DG9_GROUP);
    const int ty = firstY + (pid % perGroup) % rowsHere, tx = (pid % perGroup) / rowsHere;
    const int i0 = ty * DG9_T, j0 = tx * DG9_T;
    if (lowerC && j0 > i0 + DG9_T - 1) return;
    const int vecA = ((lda & 1) == 0) && ((reinterpret_cast<uintptr_t>(A) & 15) == 0);
    const int vecB = ((ldb & 1) == 0) && ((reinterpret_cast<uintptr_t>(B) & 15) == 0);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int g = lane >> 2, t = lane & 3;
    double acc[4][4][4];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 4; b++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[a][b][q] = 0.0;
    const int kEnd = aLower ? min(k, i0 + DG9_T) : k;
    const int kBeg = bLower ? j0 : 0;
    const int nTiles = kEnd > kBeg ? (kEnd - kBeg + BK - 1) / BK : 0;
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < nTiles) {
            double* st = smem + s * 2 * TILE;
            const int l0 = kBeg + s * BK;
            dg9_load<DG9_T, BK, PMK>(st, A, lda, i0, l0, m, kEnd, vecA);
            if constexpr (!TB) dg9_load<BK, DG9_T, DG9_PKM>(st + TILE, B, ldb, l0, j0, kEnd, n, vecB);
            else               dg9_load<DG9_T, BK, PMK>(st + TILE, B, ldb, j0, l0, n, kEnd, vecB);
        }
        asm volatile("cp.async.commit_group;\n" ::: "memory");
    }
#pragma unroll 1
    for (int kt = 0; kt < nTiles; kt++) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(STAGES - 2) : "memory");
        __syncthreads();  // tile kt is in shared memory; every warp is past tile kt - 1, whose stage is refilled
        {
            const int nx = kt + STAGES - 1;
            if (nx < nTiles) {
                double* st = smem + (nx % STAGES) * 2 * TILE;
                const int l0 = kBeg + nx * BK;
                dg9_load<DG9_T, BK, PMK>(st, A, lda, i0, l0, m, kEnd, vecA);
                if constexpr (!TB) dg9_load<BK, DG9_T, DG9_PKM>(st + TILE, B, ldb, l0, j0, kEnd, n, vecB);
                else               dg9_load<DG9_T, BK, PMK>(st + TILE, B, ldb, j0, l0, n, kEnd, vecB);
            }
            asm volatile("cp.async.commit_group;\n" ::: "memory");
        }
        const double* As = smem + (kt % STAGES) * 2 * TILE;
        const double* Bs = As + TILE;
#pragma unroll
        for (int kk = 0; kk < BK; kk += KS) {
            double bf[4][KS / 4];
#pragma unroll
            for (int b = 0; b < 4; b++)
#pragma unroll
                for (int q = 0; q < KS / 4; q++)
                    bf[b][q] = TB ? Bs[(wn + b * 8 + g) * PMK + kk + t + 4 * q]
                                      : Bs[(kk + t + 4 * q) * DG9_PKM + wn + b * 8 + g];
#pragma unroll
            for (int a = 0; a < 4; a++) {
                double af[KS / 2];
#pragma unroll
                for (int q = 0; q < KS / 2; q++) af[q] = As[(wm + a * 16 + g + 8 * (q & 1)) * PMK + kk + t + 4 * (q >> 1)];
#pragma unroll
                for (int b = 0; b < 4; b++) dg9_mma<KS>(acc[a][b], af, bf[b]);
            }
        }
    }
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
    __syncthreads();  // in place (n <= 128): every warp has read its operands before any C is written
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int i = i0 + wm + a * 16 + g + 8 * h;
            if (i >= m) continue;
#pragma unroll
            for (int b = 0; b < 4; b++)
#pragma unroll
                for (int q = 0; q < 2; q++) {
                    const int j = j0 + wn + b * 8 + 2 * t + q;
                    if (j >= n || (lowerC && j > i)) continue;
                    double* p = C + (size_t)i * ldc + j;
                    double v = alpha * acc[a][b][2 * h + q];
                    if (beta != 0.0) v = fma(beta, *p, v);
                    *p = v;
                }
        }
}

#define DG9_KERNEL(NAME, BK, STAGES, KS)                                                                        \
    extern "C" __global__ void __launch_bounds__(DG9_THREADS, 1)                                               \
    NAME(int transB, int lowerC, int aLower, int bLower, int m, int n, int k, double alpha, const double* A,   \
         int lda, const double* B, int ldb, double beta, double* C, int ldc, long sA, long sB, long sC)        \
    {                                                                                                          \
        extern __shared__ __align__(16) double dg9_smem[];                                                     \
        if (transB) dg9_body<BK, STAGES, KS, 1>(lowerC, aLower, bLower, m, n, k, alpha, A, lda, B, ldb, beta, C, \
                                                ldc, sA, sB, sC, dg9_smem);                                    \
        else        dg9_body<BK, STAGES, KS, 0>(lowerC, aLower, bLower, m, n, k, alpha, A, lda, B, ldb, beta, C, \
                                                ldc, sA, sB, sC, dg9_smem);                                    \
    }

// The kernel CudaBackend runs: dynamic shared memory DG9_STAGES · 2 · Dg9Tile<DG9_BK>::ELEMS · 8 bytes
// (221,184 with BK 32, 3 stages; CudaBackend.DGEMM_DMMA_SM90_SMEM).
DG9_KERNEL(dgemm_dmma_sm90, DG9_BK, DG9_STAGES, DG9_KS)

#ifdef DG9_VARIANTS
// Tuning variants for tools/device/dgemm_probe.py only (a cubin built with -DDG9_VARIANTS; never in the
// fatbin): dgemm_dmma_sm90_bk{BK}_s{STAGES}_k{KS}, shared memory STAGES · 2 · max(128 (BK + 4), 132 BK) · 8.
DG9_KERNEL(dgemm_dmma_sm90_bk16_s5_k8, 16, 5, 8)
DG9_KERNEL(dgemm_dmma_sm90_bk16_s5_k4, 16, 5, 4)
DG9_KERNEL(dgemm_dmma_sm90_bk16_s3_k16, 16, 3, 16)
DG9_KERNEL(dgemm_dmma_sm90_bk16_s4_k16, 16, 4, 16)
DG9_KERNEL(dgemm_dmma_sm90_bk32_s3_k16, 32, 3, 16)
DG9_KERNEL(dgemm_dmma_sm90_bk16_s5_k16, 16, 5, 16)
#endif

// Round-2 variants (a generalized body: 16-byte fragment loads from XOR-swizzled tiles, rolled k-steps, 16
// warps of 32 × 32, 128 × 64 tiles at 2 blocks per SM, an L2 prefetch of C, cp.async addresses recomputed
// per k-tile) were measured on an H200 and none beat this kernel (29.1-32.8 against 32.6 TFLOP/s on the
// 13824² × 512 trailing update; docs/benchmarks.md, sixth kernel round); they were removed again, their code
// is in git history (commit 8a77963, hopper.cu's dg9v_body).
