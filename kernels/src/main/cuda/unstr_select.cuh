// ------------------------------------------------------------------------------------------------
// unstr_select_r16 / unstr_select_g: the unstructured mask of one column block in ONE cooperative
// launch, bit for bit the mask of the unstr_scores .. unstr_ties chain in sparkprune.cu (11 launches:
// scores, init, four radix passes of 8 bits as unstr_hist + unstr_pick, marks, ties). Included by
// sparkprune.cu after its extern "C" block (C++ templates; the kernels are declared extern "C" here).
//
// The rule (SparseGPT's per-block rule over all rows, Frantar & Alistarh 2023, "SparseGPT: Massive
// Language Models Can Be Accurately Pruned in One-Shot", section 3, eq. (3): the entries of least
// w^2 / [H^-1]_ii^2, here with [H^-1]_ii^2 = U[i,i]^2 of the inverse factor): the k smallest scores
// w^2 / U[c,c]^2 of the rows x width block, ties to the lower row-major index e = r * width + c, as
// io.sparkprune.calibration.sparsity.SmallestK. Scores are non-negative fp32 (or NaN), so their bit
// patterns (the keys) order like the values: the k-th smallest key T is found by an exact radix select
// (most significant digit first, as in Alabi et al. 2012, "Fast k-selection algorithms for graphics
// processing units", bucketSelect/radixSelect), here in three passes of 12, 12 and 8 bits, each a
// histogram of the keys that match the digits chosen so far. Then every key < T is marked, and of the
// cnt keys == T the first kRem (k minus the keys < T) in index order.
//
// Work split: thread block b owns the contiguous index range [b * chunk, min(n, (b + 1) * chunk))
// (n = rows * width < 2^31, chunk * gridDim.x >= n, chunk chosen by the caller), and every pass walks the
// same elements in the same way. unstr_select_r16 keeps each thread's keys in registers (at most
// US_KPT = 16 per thread: chunk <= 16 * 512), unstr_select_g in keys[] (any chunk). Per pass: a shared
// histogram (4096 or 256 bins), its non-zero bins added to a global one with atomics, a grid barrier,
// then EVERY block scans the complete global histogram (512-thread scan, 8 bins per thread) and finds the
// same digit and the new kRem (no single-thread pick, no second launch). In the last pass each block
// also stores its own 256-bin histogram (blockHist), so that after the last barrier a block knows how
// many keys == T lie before its range (the sum of blockHist[b'][T & 255] over b' < b): only a block
// whose range holds the kRem-th key == T walks its range in order (block-wide scans over 512-element
// tiles); the others mark with one comparison. Three grid barriers in all.
//
// Grid barriers: a counter in ws[0] that every block's thread 0 increments (after __threadfence) and
// polls until it reaches pass * gridDim.x; all blocks must be resident: launch with
// cuLaunchCooperativeKernel and gridDim.x <= blocks per SM (cuOccupancyMaxActiveBlocksPerMultiprocessor,
// US_THREADS threads, no dynamic shared memory) times SMs. A wait that outlasts CP_WAIT_CYCLES SM clocks
// (about 2 s; impossible with a cooperative launch) prints the block and barrier and traps (the stream's
// next synchronization fails) instead of hanging.
//
// Workspace ws (unsigned words, zeroed once when allocated; the kernel leaves it zeroed again):
//   ws[0] barrier arrivals, ws[1] departures, ws[2..3] unused,
//   hist0[4096] at US_HDR, hist1[4096], hist2[256], blockHist[gridDim.x][256] (overwritten every launch).
// Self-cleaning: block 0 zeroes hist0 after barrier 2 and hist1 after barrier 3 (every block read them
// before it arrived there); the last block to depart (ws[1] reaches gridDim.x) zeroes hist2 and both
// counters. Total words: US_WS_WORDS(gridDim.x).
//
// Shapes: W rows x width fp32 (row stride ldw), U the block's width x width diagonal block of the fp32
// inverse factor (row stride ldu; only its diagonal is read), M rows x width bytes (row stride ldm; every
// entry written, 1 = pruned, 0 = kept), keys n uint32 (only unstr_select_g uses it). k: 1 <= k (k > n is
// taken as n; k <= 0 returns without writing). blockDim.x = US_THREADS.
// ------------------------------------------------------------------------------------------------
#define US_THREADS 512
#define US_KPT 16
#define US_BINS 4096
#define US_LAST 256
#define US_HDR 4
#define US_WS_WORDS(G) (US_HDR + 2 * US_BINS + US_LAST + (G) * US_LAST)

// A grid barrier: returns when `target` arrivals have been counted (every block calls it once per pass).
__device__ __forceinline__ void us_barrier(unsigned* arrive, unsigned target, int which)
{
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();   // cumulative: the block's stores and atomics, ordered before the barrier, precede the arrival
        if (atomicAdd(arrive, 1u) + 1u < target) {
            const long long t0 = clock64();
            while (*(volatile unsigned*)arrive < target) {
                if (clock64() - t0 > CP_WAIT_CYCLES) {
                    printf("unstr_select: thread block %d of %d waited over 2 s at grid barrier %d (not all blocks"
                           " resident?); run with -Dsparkprune.cuda.unstructuredSelect=radix4 and report this\n",
                           (int)blockIdx.x, (int)gridDim.x, which);
                    __trap();
                }
            }
        }
        __threadfence();
    }
    __syncthreads();
}

// Exclusive prefix sum of v over the block's US_THREADS threads; *total gets the sum. sums: 33 shared words.
__device__ __forceinline__ unsigned us_scan(unsigned v, unsigned* sums, unsigned* total)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned incl = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned x = __shfl_up_sync(FULL_MASK, incl, o);
        if (lane >= o) incl += x;
    }
    if (lane == 31) sums[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        const unsigned w = lane < US_THREADS / 32 ? sums[lane] : 0u;
        unsigned wi = w;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned x = __shfl_up_sync(FULL_MASK, wi, o);
            if (lane >= o) wi += x;
        }
        sums[lane] = wi - w;
        if (lane == 31) sums[32] = wi;
    }
    __syncthreads();
    const unsigned excl = sums[warp] + incl - v;
    *total = sums[32];
    __syncthreads();
    return excl;
}

// The bin d of the complete global histogram hist (bins = 4096 or 256) with cum(d) < kRem <= cum(d) + hist[d]
// (cum: the sum of the bins below d): out[0] = d, out[1] = kRem - cum(d), out[2] = hist[d]. Every thread
// of the block takes part; one writes out (kRem >= 1 and at most the histogram's total).
__device__ __forceinline__ void us_pick(const unsigned* hist, int bins, unsigned kRem, unsigned* sums, unsigned* out)
{
    const int per = bins >= US_THREADS ? bins / US_THREADS : 1;
    const int b0 = threadIdx.x * per;
    unsigned v[US_BINS / US_THREADS];
    unsigned s = 0u;
#pragma unroll
    for (int j = 0; j < US_BINS / US_THREADS; j++) {
        v[j] = j < per && b0 + j < bins ? __ldcg(hist + b0 + j) : 0u;   // L2: other blocks' atomics
        s += v[j];
    }
    unsigned total;
    unsigned cum = us_scan(s, sums, &total);
#pragma unroll
    for (int j = 0; j < US_BINS / US_THREADS; j++) {
        if (v[j] != 0u && cum < kRem && kRem <= cum + v[j]) {
            out[0] = (unsigned)(b0 + j);
            out[1] = kRem - cum;
            out[2] = v[j];
        }
        cum += v[j];
    }
    __syncthreads();
}

template <int KPT>
__device__ __forceinline__ void us_select(int rows, int width, const float* __restrict__ W, int ldw,
                                          const float* __restrict__ U, int ldu, int k, unsigned chunk,
                                          unsigned* __restrict__ keys, unsigned char* __restrict__ M, int ldm,
                                          unsigned* __restrict__ ws)
{
    __shared__ unsigned h[US_BINS];
    __shared__ unsigned sums[33];
    __shared__ unsigned pk[3];
    const unsigned n = (unsigned)rows * (unsigned)width;
    if (k <= 0 || n == 0u) return;                               // grid-uniform: before any barrier
    const unsigned G = gridDim.x, b = blockIdx.x, t = threadIdx.x;
    if ((unsigned long long)chunk * G < n || (KPT > 0 && chunk > (unsigned)(KPT * US_THREADS))) {
        if (b == 0 && t == 0)
            printf("unstr_select: chunk %u x %u blocks does not cover %u keys (or exceeds %d per block)\n", chunk, G, n,
                   KPT * US_THREADS);
        __trap();
    }
    const unsigned kk = min((unsigned)k, n);
    const unsigned lo = min(n, b * chunk), hi = min(n, lo + chunk);
    unsigned* arrive = ws;
    unsigned* depart = ws + 1;
    unsigned* hist0 = ws + US_HDR;
    unsigned* hist1 = hist0 + US_BINS;
    unsigned* hist2 = hist1 + US_BINS;
    unsigned* blockHist = hist2 + US_LAST;
    unsigned kv[KPT > 0 ? KPT : 1];
    (void)kv;
    (void)keys;

    // every element of the block's range, in the same thread and order in every pass: f(e, key)
    auto each = [&](auto&& f) {
        if constexpr (KPT > 0) {
#pragma unroll
            for (int j = 0; j < KPT; j++) {
                const unsigned e = lo + t + (unsigned)j * US_THREADS;
                if (e < hi) f(e, kv[j]);
            }
        } else {
#pragma unroll 4
            for (unsigned e = lo + t; e < hi; e += US_THREADS) f(e, keys[e]);
        }
    };
    // unstr_scores' key of element e (the same intrinsics: the same bits)
    auto score = [&](unsigned e) -> unsigned {
        const unsigned r = e / (unsigned)width, c = e - r * (unsigned)width;
        const float d = U[(size_t)c * ldu + c];
        const float v = W[(size_t)r * ldw + c];
        const float sc = __fdiv_rn(__fmul_rn(v, v), __fmul_rn(d, d));
        return __float_as_uint(__fadd_rn(sc, 0.0f));
    };

    // ---- pass 1: the keys, and the histogram of their top 12 bits
    for (int i = t; i < US_BINS; i += US_THREADS) h[i] = 0u;
    __syncthreads();
    if constexpr (KPT > 0) {
#pragma unroll
        for (int j = 0; j < KPT; j++) {                             // all loads first
            const unsigned e = lo + t + (unsigned)j * US_THREADS;
            kv[j] = e < hi ? score(e) : 0u;
        }
#pragma unroll
        for (int j = 0; j < KPT; j++)
            if (lo + t + (unsigned)j * US_THREADS < hi) atomicAdd(&h[kv[j] >> 20], 1u);
    } else {
#pragma unroll 4
        for (unsigned e = lo + t; e < hi; e += US_THREADS) {
            const unsigned key = score(e);
            keys[e] = key;
            atomicAdd(&h[key >> 20], 1u);
        }
    }
    __syncthreads();
    for (int i = t; i < US_BINS; i += US_THREADS)
        if (h[i]) atomicAdd(&hist0[i], h[i]);
    us_barrier(arrive, G, 1);
    us_pick(hist0, US_BINS, kk, sums, pk);
    const unsigned d1 = pk[0], k1 = pk[1];

    // ---- pass 2: bits 8..19 of the keys whose top 12 bits are d1
    for (int i = t; i < US_BINS; i += US_THREADS) h[i] = 0u;
    __syncthreads();
    each([&](unsigned, unsigned key) {
        if ((key >> 20) == d1) atomicAdd(&h[(key >> 8) & (US_BINS - 1)], 1u);
    });
    __syncthreads();
    for (int i = t; i < US_BINS; i += US_THREADS)
        if (h[i]) atomicAdd(&hist1[i], h[i]);
    us_barrier(arrive, 2u * G, 2);
    if (b == 0)
        for (int i = t; i < US_BINS; i += US_THREADS) hist0[i] = 0u;  // every block read hist0 before barrier 2
    us_pick(hist1, US_BINS, k1, sums, pk);
    const unsigned p24 = (d1 << 12) | pk[0], k2 = pk[1];

    // ---- pass 3: the low 8 bits of the keys whose top 24 bits are p24; this block's histogram kept
    if (t < US_LAST) h[t] = 0u;
    __syncthreads();
    each([&](unsigned, unsigned key) {
        if ((key >> 8) == p24) atomicAdd(&h[key & (US_LAST - 1)], 1u);
    });
    __syncthreads();
    if (t < US_LAST) {
        blockHist[(size_t)b * US_LAST + t] = h[t];
        if (h[t]) atomicAdd(&hist2[t], h[t]);
    }
    us_barrier(arrive, 3u * G, 3);
    if (b == 0)
        for (int i = t; i < US_BINS; i += US_THREADS) hist1[i] = 0u;  // every block read hist1 before barrier 3
    us_pick(hist2, US_LAST, k2, sums, pk);
    const unsigned T = (p24 << 8) | pk[0], kRem = pk[1], cnt = pk[2];
    if (t == 0) {                                                   // us_pick's last __syncthreads: hist2 read
        __threadfence();
        if (atomicAdd(depart, 1u) == G - 1u) {                      // the last block out cleans up
            __threadfence();
            for (int i = 0; i < US_LAST; i++) hist2[i] = 0u;
            *arrive = 0u;
            *depart = 0u;
        }
    }

    // ---- marks: keys < T, and of the keys == T the first kRem in index order
    const bool all = kRem == cnt;
    const unsigned mine = h[pk[0]];                                 // this block's keys == T
    unsigned before = 0u;                                           // keys == T in blocks < b
    if (!all && mine > 0u) {                                        // block-uniform
        unsigned s = 0u;
        for (unsigned i = t; i < b; i += US_THREADS) s += __ldcg(blockHist + (size_t)i * US_LAST + pk[0]);
        us_scan(s, sums, &before);
    }
    const bool tieAll = all || before + mine <= kRem;
    if (tieAll || before >= kRem) {
        each([&](unsigned e, unsigned key) {
            const unsigned r = e / (unsigned)width;
            M[(size_t)r * ldm + (e - r * (unsigned)width)] = (key < T || (key == T && tieAll)) ? 1 : 0;
        });
    } else {                                                        // the block that holds the kRem-th tie
        auto tile = [&](unsigned e, unsigned key) {                 // every thread: e may be past hi
            const bool f = e < hi && key == T;
            unsigned tot;
            const unsigned ex = us_scan(f ? 1u : 0u, sums, &tot);
            if (e < hi) {
                const unsigned r = e / (unsigned)width;
                M[(size_t)r * ldm + (e - r * (unsigned)width)] = (key < T || (f && before + ex < kRem)) ? 1 : 0;
            }
            before += tot;
        };
        if constexpr (KPT > 0) {
#pragma unroll
            for (int j = 0; j < KPT; j++)
                if (lo + (unsigned)j * US_THREADS < hi) tile(lo + t + (unsigned)j * US_THREADS, kv[j]);
        } else {
            for (unsigned base = lo; base < hi; base += US_THREADS) {
                const unsigned e = base + t;
                tile(e, e < hi ? keys[e] : 0u);
            }
        }
    }
}

#define US_KERNEL(NAME, KPT)                                                                                  \
    extern "C" __global__ void __launch_bounds__(US_THREADS, 2)                                              \
    NAME(int rows, int width, const float* __restrict__ W, int ldw, const float* __restrict__ U, int ldu, int k, \
         unsigned chunk, unsigned* __restrict__ keys, unsigned char* __restrict__ M, int ldm,                 \
         unsigned* __restrict__ ws)                                                                          \
    {                                                                                                        \
        us_select<KPT>(rows, width, W, ldw, U, ldu, k, chunk, keys, M, ldm, ws);                             \
    }

US_KERNEL(unstr_select_r16, US_KPT)
US_KERNEL(unstr_select_g, 0)
