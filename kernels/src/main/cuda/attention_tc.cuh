// SparkPrune attention on the TF32 tensor cores, included from sparkprune.cu inside its extern "C"
// block after gemm_tc.cuh (it uses tc_load_tile, tc_tf32 and the cp.async helpers defined there).
//
// attention_tf32: the function of attention_f32 (forward_ops.cuh; io.sparkprune.kernels.AttentionJob:
// packed sequences, grouped KV heads, causal, sliding window, padding key lengths, row strides) with
// both products on the tensor cores in TF32, after FlashAttention-2 (Dao 2023, arXiv 2307.08691,
// Algorithm 1: the query tile stays resident, the key/value tiles stream through shared memory, online
// softmax with a running row max, the output rescaled by e^(m_old - m_new) and divided by the
// denominator once at the end). TF32 as the workspace's linears (ForwardPrecision.TF32, sgemm_tf32_*):
//   S = Q' K'^T,  Q' = tf32(fp32(scale * q)), K' = tf32(k)          (cvt.rna.tf32.f32, fp32 products/sums)
//   P' = tf32(fp32(e^(s - m)))  with m the running row max (0 for masked keys)
//   O  = (sum_j P'_j V'_j) * fp32(1 / l),  V' = tf32(v),  l = sum_j P'_j (the same rounded weights)
// The tensor-core instruction is mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 (PTX ISA,
// "Warp-level matrix multiply-accumulate instructions", sm_80+) with the fragment layouts of
// gemm_tc.cuh: A (16 x 8, row) a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); B (8 x 8, col)
// b0 (k t, n g), b1 (k t+4, n g); C c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1);
// g = lane / 4, t = lane % 4.
//
// Softmax arithmetic: scores, max and e^x in fp32 (expf, at most 2 ulp: the result is rounded to TF32,
// 2^-11, right after, so fp64 exponentials as in attention_f32 would change nothing that survives
// the rounding), the rescale factor e^(m_old - m_new) in fp32 (applied to the fp32 output and to the
// denominator alike), the denominator in fp64 (each thread's 16 weights of a row and key tile are
// added in fp32 first, at most 15 roundings of 2^-24, then added to the fp64 sum); a query with no
// allowed key gets zeros. CPU twin: io.sparkprune.kernels.cpu.CpuForward with AttentionJob.tf32()
// (the same roundings; it subtracts the row's final max, not a running one, so single weights may
// differ by one TF32 rounding where the running max changed).
//
// Tiling: one 256-thread block (8 warps) per (query tile of FT_BQ = 128 rows, query head):
// grid.x = tiles of CudaBackend.attentionTiles(.., 128) (processed last tile first: under a causal
// mask the later tiles have the most keys), grid.y = query heads. Warp w owns query rows
// [16 w, 16 w + 16) of the tile; its Q' fragments (16 x headDim) live in registers for the whole
// kernel. Keys stream in tiles of FT_BK = 64 rows of K and V through two shared-memory stages
// (cp.async, zero-filled past the key range; plain loads when a row stride or base is not 16-byte
// aligned), the next tile loading while the current one is used. Per key tile each warp computes its
// 16 x 64 score tile (8 n-tiles, headDim/8 k-steps), masks it (skipped for tiles that every row of the
// warp sees whole; a warp whose rows see no key of the tile skips it), updates the online softmax and
// multiplies P' (16 x 64) by V' (64 x headDim): the score accumulators are reused as the A operand
// without any shuffle by ordering the 8 keys of each k-step as (0, 2, 4, 6, 1, 3, 5, 7): A column t is
// key 2t (c0 / c2) and column t + 4 key 2t + 1 (c1 / c3), and V's B fragment reads rows 2t and 2t + 1.
// Likewise the 8 dims of each k-step of S are ordered (0, 2, 4, 6, 1, 3, 5, 7) in Q's A fragment and
// K's B fragment, so that a lane's two K values (key g, dims 2t and 2t + 1) are one 8-byte load.
// Shared memory: 2 stages of K and V, 64 x FT_P floats each, FT_P = 132 (= 4 mod 32): the K fragment
// loads (row g, columns 2t, 2t + 1) hit words 4g + 2t, 4g + 2t + 1, distinct within each half-warp
// (one 8-byte access per lane), the V fragment loads (row 2t, column g) banks 8t + g, so both are
// conflict-free; 135,168 bytes, within A100's opt-in 163 KiB. The Q tile (128 x FT_P) is
// staged once through the second stage before the key loop. headDim must be a multiple of 8 and at
// most FT_DMAX (the host falls back to attention_f32 otherwise).

#define FT_BQ 128
#define FT_BK 64
#define FT_DMAX 128
#define FT_P (FT_DMAX + 4)
#define FT_STAGE (2 * FT_BK * FT_P)   // floats per stage: K then V
#define FT_THREADS 256

extern "C++" {

__device__ __forceinline__ void ft_mma(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
                                       unsigned b1)
{
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

} // extern "C++"

__global__ void __launch_bounds__(FT_THREADS, 1)
attention_tf32(int heads, int kvHeads, int headDim, float scale, int causal, int window,
               const int* __restrict__ seqStarts, const int* __restrict__ keyLengths, const int* __restrict__ tiles,
               const float* __restrict__ Q, int ldq, const float* __restrict__ K, int ldk,
               const float* __restrict__ V, int ldv, float* __restrict__ O, int ldo)
{
    extern __shared__ __align__(16) float ftsm[];
    const int D = headDim;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
    const int tIdx = gridDim.x - 1 - blockIdx.x;
    const int s = tiles[2 * tIdx], i0 = tiles[2 * tIdx + 1];
    const int h = blockIdx.y, kvh = h / (heads / kvHeads);
    const int base = seqStarts[s];
    const int n = seqStarts[s + 1] - base;
    const int kl = keyLengths == nullptr ? n : min(n, keyLengths[s]);
    const int i1 = min(n, i0 + FT_BQ);
    const int jHi = causal ? min(kl, i1) : kl;
    const int jLo = window > 0 ? max(0, i0 - window + 1) : 0;
    const int nTiles = jHi > jLo ? (jHi - jLo + FT_BK - 1) / FT_BK : 0;

    const float* Qh = Q + (size_t)base * ldq + (size_t)h * D;
    const float* Kh = K + (size_t)base * ldk + (size_t)kvh * D;
    const float* Vh = V + (size_t)base * ldv + (size_t)kvh * D;
    const int vecQ = (ldq & 3) == 0 && (reinterpret_cast<uintptr_t>(Qh) & 15) == 0;
    const int vecK = (ldk & 3) == 0 && (reinterpret_cast<uintptr_t>(Kh) & 15) == 0;
    const int vecV = (ldv & 3) == 0 && (reinterpret_cast<uintptr_t>(Vh) & 15) == 0;

    // Q tile into stage 1, key tile 0 into stage 0
    tc_load_tile<float, FT_BQ, FT_DMAX, FT_P>(ftsm + FT_STAGE, Qh, ldq, i0, 0, i1, D, vecQ);
    if (nTiles > 0) {
        tc_load_tile<float, FT_BK, FT_DMAX, FT_P>(ftsm, Kh, ldk, jLo, 0, jHi, D, vecK);
        tc_load_tile<float, FT_BK, FT_DMAX, FT_P>(ftsm + FT_BK * FT_P, Vh, ldv, jLo, 0, jHi, D, vecV);
    }
    tc_cp_commit();
    tc_cp_wait<0>();
    __syncthreads();

    // this warp's Q' fragments: rows wr + g (+8); k-step ks covers dims 8 ks + (0, 2, 4, 6 | 1, 3, 5, 7),
    // A column t = dim 2t, column t + 4 = dim 2t + 1, so that K's B fragment is one 8-byte load
    const int wr = warp * 16;
    unsigned qf[FT_DMAX / 8][4];
    {
        const float* Qs = ftsm + FT_STAGE + (wr + gq) * FT_P + 2 * tq;
#pragma unroll
        for (int ks = 0; ks < FT_DMAX / 8; ks++) {
            if (ks * 8 < D) {
                qf[ks][0] = tc_tf32(__fmul_rn(scale, Qs[ks * 8]));
                qf[ks][1] = tc_tf32(__fmul_rn(scale, Qs[8 * FT_P + ks * 8]));
                qf[ks][2] = tc_tf32(__fmul_rn(scale, Qs[ks * 8 + 1]));
                qf[ks][3] = tc_tf32(__fmul_rn(scale, Qs[8 * FT_P + ks * 8 + 1]));
            } else {
                qf[ks][0] = qf[ks][1] = qf[ks][2] = qf[ks][3] = 0u;
            }
        }
    }

    // the thread's two query rows (A: wr + g, B: wr + g + 8) and their allowed key ranges [lo, hi)
    const int rowA = i0 + wr + gq, rowB = rowA + 8;
    const int loA = window > 0 ? max(0, rowA - window + 1) : 0, hiA = causal ? min(kl, rowA + 1) : kl;
    const int loB = window > 0 ? max(0, rowB - window + 1) : 0, hiB = causal ? min(kl, rowB + 1) : kl;
    // the warp's 16 rows: union and intersection of their key ranges
    const int wFirst = i0 + wr, wLast = wFirst + 15;
    const int wLoMin = window > 0 ? max(0, wFirst - window + 1) : 0;
    const int wLoMax = window > 0 ? max(0, wLast - window + 1) : 0;
    const int wHiMin = causal ? min(kl, wFirst + 1) : kl;
    const int wHiMax = causal ? min(kl, wLast + 1) : kl;

    float o[FT_DMAX / 8][4];
#pragma unroll
    for (int dn = 0; dn < FT_DMAX / 8; dn++) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY};
    double l[2] = {0.0, 0.0};

    for (int kt = 0; kt < nTiles; kt++) {
        if (kt > 0) {
            tc_cp_wait<0>();
            __syncthreads();  // tile kt landed; every warp is done with tile kt - 1 (and, at kt = 1, with Q)
        }
        if (kt + 1 < nTiles) {
            const int jn = jLo + (kt + 1) * FT_BK;
            float* st = ftsm + ((kt + 1) & 1) * FT_STAGE;
            if (kt == 0) __syncthreads();  // stage 1 still holds Q until every warp has its fragments
            tc_load_tile<float, FT_BK, FT_DMAX, FT_P>(st, Kh, ldk, jn, 0, jHi, D, vecK);
            tc_load_tile<float, FT_BK, FT_DMAX, FT_P>(st + FT_BK * FT_P, Vh, ldv, jn, 0, jHi, D, vecV);
        }
        tc_cp_commit();
        const int j0 = jLo + kt * FT_BK;
        if (wFirst >= i1 || j0 >= wHiMax || j0 + FT_BK <= wLoMin) continue;  // no row of this warp sees a key here
        const bool whole = j0 >= wLoMax && j0 + FT_BK <= wHiMin;
        const float* Ks = ftsm + (kt & 1) * FT_STAGE;
        const float* Vs = Ks + FT_BK * FT_P;

        // S = Q' K'^T for 16 rows x 64 keys
        float sc[FT_BK / 8][4];
#pragma unroll
        for (int nt = 0; nt < FT_BK / 8; nt++) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < FT_DMAX / 8; ks++) {
            if (ks * 8 < D) {
#pragma unroll
                for (int nt = 0; nt < FT_BK / 8; nt++) {
                    // B(k = t, n = g) = K[key g][dim 2t], B(k = t + 4, n = g) = K[key g][dim 2t + 1]
                    const float2 kv = *reinterpret_cast<const float2*>(Ks + (nt * 8 + gq) * FT_P + ks * 8 + 2 * tq);
                    ft_mma(sc[nt], qf[ks][0], qf[ks][1], qf[ks][2], qf[ks][3], tc_tf32(kv.x), tc_tf32(kv.y));
                }
            }
        }
        if (!whole) {
#pragma unroll
            for (int nt = 0; nt < FT_BK / 8; nt++)
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    const int j = j0 + nt * 8 + 2 * tq + (q & 1);
                    const int lo = q < 2 ? loA : loB, hi = q < 2 ? hiA : hiB;
                    if (j < lo || j >= hi) sc[nt][q] = -INFINITY;
                }
        }
        // online softmax, rows A (q = 0, 1) and B (q = 2, 3); a row's 64 scores lie in the 4 lanes of a quad
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            float tmax = -INFINITY;
#pragma unroll
            for (int nt = 0; nt < FT_BK / 8; nt++) tmax = fmaxf(tmax, fmaxf(sc[nt][2 * rr], sc[nt][2 * rr + 1]));
            tmax = fmaxf(tmax, __shfl_xor_sync(FULL_MASK, tmax, 1));
            tmax = fmaxf(tmax, __shfl_xor_sync(FULL_MASK, tmax, 2));
            const float mNew = fmaxf(m[rr], tmax);
            float alpha = 1.f, ps = 0.f;
            if (mNew != -INFINITY) {
                alpha = m[rr] == -INFINITY ? 0.f : expf(__fsub_rn(m[rr], mNew));
#pragma unroll
                for (int nt = 0; nt < FT_BK / 8; nt++)
#pragma unroll
                    for (int c = 0; c < 2; c++) {
                        const float x = sc[nt][2 * rr + c];
                        // the TF32 value as an fp32 number (low 13 bits cleared: only the mma ignores them)
                        const float p = x == -INFINITY ? 0.f
                                        : __uint_as_float(tc_tf32(expf(__fsub_rn(x, mNew))) & 0xffffe000u);
                        sc[nt][2 * rr + c] = p;
                        ps = __fadd_rn(ps, p);
                    }
            } else {
#pragma unroll
                for (int nt = 0; nt < FT_BK / 8; nt++) sc[nt][2 * rr] = sc[nt][2 * rr + 1] = 0.f;
            }
            m[rr] = mNew;
            l[rr] = l[rr] * (double)alpha + (double)ps;
            if (alpha != 1.f) {
#pragma unroll
                for (int dn = 0; dn < FT_DMAX / 8; dn++) {
                    o[dn][2 * rr] *= alpha;
                    o[dn][2 * rr + 1] *= alpha;
                }
            }
        }
        // O += P' V': k-step nt covers keys j0 + 8 nt + (0, 2, 4, 6 | 1, 3, 5, 7)
#pragma unroll
        for (int nt = 0; nt < FT_BK / 8; nt++) {
            const unsigned a0 = __float_as_uint(sc[nt][0]), a1 = __float_as_uint(sc[nt][2]);
            const unsigned a2 = __float_as_uint(sc[nt][1]), a3 = __float_as_uint(sc[nt][3]);
            const float* vr = Vs + (nt * 8 + 2 * tq) * FT_P + gq;
#pragma unroll
            for (int dn = 0; dn < FT_DMAX / 8; dn++) {
                if (dn * 8 < D) ft_mma(o[dn], a0, a1, a2, a3, tc_tf32(vr[dn * 8]), tc_tf32(vr[FT_P + dn * 8]));
            }
        }
    }
    tc_cp_wait<0>();

    // O = o / l, rows below the sequence end only
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        double lt = l[rr];
        lt += __shfl_xor_sync(FULL_MASK, lt, 1);
        lt += __shfl_xor_sync(FULL_MASK, lt, 2);
        const int i = rr == 0 ? rowA : rowB;
        if (i >= i1) continue;
        const float inv = lt > 0.0 ? (float)(1.0 / lt) : 0.f;
        float* orow = O + (size_t)(base + i) * ldo + (size_t)h * D;
#pragma unroll
        for (int dn = 0; dn < FT_DMAX / 8; dn++) {
            const int d = dn * 8 + 2 * tq;
            if (d < D) {
                orow[d] = o[dn][2 * rr] * inv;
                orow[d + 1] = o[dn][2 * rr + 1] * inv;
            }
        }
    }
}
