#!/usr/bin/env python3
"""Times the pieces of the SparseGPT solve on the GPU machine, outside Java: the fused block kernel
(sparsegpt_block, 2:4) and the lazy update W[:, i2:] -= Err · U[i1:i2, i2:] as sgemm_f32 (fp32 FFMA) and as
wg_gemm_3xtf32_nt (3xTF32 on the wgmma tensor cores, with its split kernels), for the pruning-step shapes
of the kernel bench. Checks the 3xTF32 product against float64 references (and against sgemm_f32's own
error) on fresh random inputs.

Usage: python3 tools/device/solve_probe.py SPARKPRUNE_CUBIN HOPPER_CUBIN  (sm_90 / sm_90a cubins of
sparkprune.cu / hopper.cu). Exit status 1 when a check fails.
"""
import sys, time
import numpy as np
import cupy as cp

old = cp.RawModule(path=sys.argv[1]); new = cp.RawModule(path=sys.argv[2])
sgemm = old.get_function("sgemm_f32"); block = old.get_function("sparsegpt_block")
brows = old.get_function("sparsegpt_block_rows")
def sr_smem(T):
    return 4 * 128 * 128 + 2 * 4 * 128 * (T + 1) + 2 * 128 * (T + 1)
brows.max_dynamic_shared_size_bytes = sr_smem(128)
g3 = new.get_function("wg_gemm_3xtf32_nt"); split = new.get_function("split_tf32")
tsplit = new.get_function("transpose_split_tf32")
G3_SMEM = 3 * 4 * 128 * 128 + 1024
g3.max_dynamic_shared_size_bytes = G3_SMEM
BLOCK_SMEM = (128 * 128 + 16 * 128) * 4
block.max_dynamic_shared_size_bytes = BLOCK_SMEM
i32, f32 = np.int32, np.float32
rng = np.random.default_rng(int(time.time()))
failures = []

def check(label, ok, detail):
    print(f"check {label}: {detail} {'ok' if ok else 'FAIL'}", flush=True)
    if not ok:
        failures.append(label)

def ptr(a, off=0):
    return cp.uint64(a.data.ptr + 4 * off)

def run_sgemm(m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, aoff=0, boff=0, coff=0):
    sgemm(((n + 63) // 64, (m + 63) // 64), (256,), (i32(0), i32(0), i32(m), i32(n), i32(k), f32(alpha),
          ptr(A, aoff), i32(lda), ptr(B, boff), i32(ldb), f32(beta), ptr(C, coff), i32(ldc)))

def run_3x(m, n, k, alpha, Ahi, Alo, lda, Bhi, Blo, ldb, beta, C, ldc, coff=0):
    g3(((n + 127) // 128, (m + 127) // 128), (256,), (i32(m), i32(n), i32(k), f32(alpha), ptr(Ahi), ptr(Alo), i32(lda),
       ptr(Bhi), ptr(Blo), i32(ldb), f32(beta), ptr(C, coff), i32(ldc)), shared_mem=G3_SMEM)

def do_split(rows, cols, X, ldx, hi, lo, ld, xoff=0):
    split((1024,), (256,), (i32(rows), i32(cols), ptr(X, xoff), i32(ldx), ptr(hi), ptr(lo), i32(ld)))

def do_tsplit(k, n, X, ldx, hiT, loT, ldt, xoff=0):
    tsplit(((n + 31) // 32, (k + 31) // 32), (32, 8), (i32(k), i32(n), ptr(X, xoff), i32(ldx), ptr(hiT), ptr(loT), i32(ldt)))

# ---- correctness of the 3xTF32 lazy-update product (C = C - E · Ublk, Ublk k x n stored row-major)
for (m, n, k) in [(1000, 770, 128), (4096, 3968, 128), (333, 130, 72)]:
    e = rng.standard_normal((m, k), dtype=np.float32); u = rng.standard_normal((k, n), dtype=np.float32)
    c0 = rng.standard_normal((m, n), dtype=np.float32) * 10
    ref = c0.astype(np.float64) - e.astype(np.float64) @ u.astype(np.float64)
    E, U = cp.asarray(e), cp.asarray(u)
    kp = (k + 3) // 4 * 4
    Ehi, Elo = cp.empty((m, kp), cp.float32), cp.empty((m, kp), cp.float32)
    Bhi, Blo = cp.empty((n, kp), cp.float32), cp.empty((n, kp), cp.float32)
    do_split(m, k, E, k, Ehi, Elo, kp); do_tsplit(k, n, U, n, Bhi, Blo, kp)
    C3 = cp.asarray(c0); run_3x(m, n, k, -1.0, Ehi, Elo, kp, Bhi, Blo, kp, 1.0, C3, n)
    C1 = cp.asarray(c0); run_sgemm(m, n, k, -1.0, E, k, U, n, 1.0, C1, n)
    def err(C):
        g = cp.asnumpy(C).astype(np.float64)
        return float(np.linalg.norm(g - ref) / np.linalg.norm(ref - c0))
    e3, e1 = err(C3), err(C1)
    check(f"3xtf32 lazy update {m}x{n}x{k}", e3 < 2e-6 and e3 < 4 * e1 + 1e-7,
          f"rel err of the product {e3:.2e} (sgemm_f32 fp32 FFMA: {e1:.2e})")

# ---- the thread-per-row block kernel against the warp-per-row one, bit for bit
def launch_block(kern, T, rows, width, W, ldw, U, ldu, E, M, ldm, nmKeep, nmGroup, qbits, qsym, qgroup, S, Z, ldq, C, ldc, L,
                 woff=0, uoff=0, moff=0, coff=0):
    args = (i32(rows), i32(width), ptr(W, woff), i32(ldw), ptr(U, uoff), i32(ldu), ptr(E), i32(width),
            cp.uint64(M.data.ptr + moff), i32(ldm), i32(nmKeep), i32(nmGroup), i32(qbits), i32(qsym), i32(qgroup),
            ptr(S), ptr(Z), i32(ldq), cp.uint64(C.data.ptr + coff), i32(ldc), cp.uint64(L.data.ptr))
    if kern is block:
        block(((rows + 15) // 16,), (512,), args, shared_mem=BLOCK_SMEM)
    else:
        brows(((rows + T - 1) // T,), (T,), args, shared_mem=sr_smem(T))

def block_case(label, rows, width, nmKeep, nmGroup, qbits, qsym, qgroup, premask, T):
    w = rng.standard_normal((rows, width), dtype=np.float32)
    u = np.triu(rng.standard_normal((width, width), dtype=np.float32) * 0.05)
    u[np.arange(width), np.arange(width)] = 0.5 + rng.random(width, dtype=np.float32)
    m0 = (rng.random((rows, width)) < 0.5).astype(np.uint8) if premask else np.zeros((rows, width), np.uint8)
    groups = 1 if qgroup == 0 else width // qgroup
    s0 = (rng.random((rows, groups), dtype=np.float32) * 0.1 + 0.01); z0 = np.full((rows, groups), 7.0, np.float32)
    outs = []
    for kern in (block, brows):
        W, U, M = cp.asarray(w), cp.asarray(u), cp.asarray(m0)
        E = cp.full((rows, width), cp.nan, cp.float32); S, Z = cp.asarray(s0), cp.asarray(z0)
        C = cp.zeros((rows, width), cp.int8); L = cp.asarray(np.full(rows, 0.5))
        launch_block(kern, T, rows, width, W, width, U, width, E, M, width, nmKeep, nmGroup, qbits, qsym, qgroup, S, Z,
                     groups, C, width, L)
        cp.cuda.runtime.deviceSynchronize()
        outs.append([cp.asnumpy(a) for a in (W, E, M, S, Z, C, L)])
    same = all(np.array_equal(a.view(np.uint8), b.view(np.uint8)) for a, b in zip(outs[0], outs[1]))
    check(f"sparsegpt_block_rows == sparsegpt_block, {label}", same,
          "bitwise W/Err/mask/scales/zeros/codes/loss" + ("" if same else " differ: " + ",".join(
              n for n, a, b in zip("W E M S Z C L".split(), outs[0], outs[1]) if not np.array_equal(a.view(np.uint8), b.view(np.uint8)))))

block_case("2:4, 1000 rows, T=128", 1000, 128, 2, 4, 0, 0, 0, False, 128)
block_case("2:4, 77 rows, T=32", 77, 128, 2, 4, 0, 0, 0, False, 32)
block_case("unstructured pre-selected mask, width 72, T=64", 515, 72, 0, 0, 0, 0, 0, True, 64)
block_case("2:4 + int4 per-row grid, T=96", 700, 128, 2, 4, 4, 0, 0, False, 96)
block_case("4:8 + int4 groups of 32, T=128", 300, 128, 4, 8, 4, 0, 32, False, 128)
block_case("int8 symmetric groups of 64, pre-selected mask, T=32", 129, 128, 0, 0, 8, 1, 64, True, 32)

# ---- timing
def bench(fn, reps=5):
    fn(); cp.cuda.runtime.deviceSynchronize()
    s, t = cp.cuda.Event(), cp.cuda.Event()
    ts = []
    for _ in range(reps):
        s.record(); fn(); t.record(); t.synchronize(); ts.append(cp.cuda.get_elapsed_time(s, t))
    return float(np.median(ts))

print("\nshape rows x cols | lazy sgemm_f32 ms | lazy 3xTF32 ms (incl. splits) | max |W_old - W_new| / max|W| | block kernel 2:4 ms (all blocks)")
for rows, cols in [(4096, 4096), (11008, 4096), (14336, 4096), (4096, 11008), (4096, 14336)]:
    bs = 128
    W0 = cp.random.standard_normal((rows, cols), dtype=cp.float32)
    U = cp.triu(cp.random.standard_normal((cols, cols), dtype=cp.float32) * 0.01)
    U[cp.arange(cols), cp.arange(cols)] = 1.0 + cp.random.random(cols, dtype=cp.float32)
    E = cp.random.standard_normal((rows, bs), dtype=cp.float32) * 0.1
    Ehi, Elo = cp.empty((rows, bs), cp.float32), cp.empty((rows, bs), cp.float32)
    Bhi, Blo = cp.empty((cols, bs), cp.float32), cp.empty((cols, bs), cp.float32)
    Wa = W0.copy(); Wb = W0.copy()
    def lazy_old(W):
        for i1 in range(0, cols - bs, bs):
            i2 = i1 + bs
            run_sgemm(rows, cols - i2, bs, -1.0, E, bs, U, cols, 1.0, W, cols, boff=i1 * cols + i2, coff=i2)
    def lazy_new(W):
        for i1 in range(0, cols - bs, bs):
            i2 = i1 + bs
            do_split(rows, bs, E, bs, Ehi, Elo, bs)
            do_tsplit(bs, cols - i2, U, cols, Bhi, Blo, bs, xoff=i1 * cols + i2)
            run_3x(rows, cols - i2, bs, -1.0, Ehi, Elo, bs, Bhi, Blo, bs, 1.0, W, cols, coff=i2)
    lazy_old(Wa); lazy_new(Wb); cp.cuda.runtime.deviceSynchronize()
    diff = float(cp.max(cp.abs(Wa - Wb)) / cp.max(cp.abs(Wa)))
    check(f"3xtf32 lazy sequence {rows}x{cols} vs sgemm_f32", diff < 1e-5, f"max rel diff {diff:.2e}")
    t_old = bench(lambda: lazy_old(Wa)); t_new = bench(lambda: lazy_new(Wb))
    M = cp.zeros((rows, cols), dtype=cp.uint8); Err = cp.empty((rows, bs), cp.float32); loss = cp.zeros(rows, cp.float64)
    Wc = W0.copy()
    nul = cp.zeros(8, cp.float32); nulc = cp.zeros(8, cp.int8)
    def blocks():
        for i1 in range(0, cols, bs):
            block(((rows + 15) // 16,), (512,), (i32(rows), i32(bs), ptr(Wc, i1), i32(cols), ptr(U, i1 * cols + i1), i32(cols),
                  ptr(Err), i32(bs), cp.uint64(M.data.ptr + i1), i32(cols), i32(2), i32(4), i32(0), i32(0), i32(0),
                  ptr(nul), ptr(nul), i32(1), cp.uint64(nulc.data.ptr), i32(cols), cp.uint64(loss.data.ptr)),
                  shared_mem=BLOCK_SMEM)
    t_blk = bench(blocks)
    T = 32 * min(4, max(1, -(-rows // (32 * 132))))
    def blocks_rows():
        for i1 in range(0, cols, bs):
            launch_block(brows, T, rows, bs, Wc, cols, U, cols, Err, M, cols, 2, 4, 0, 0, 0, nul, nul, 1, nulc, cols, loss,
                         woff=i1, uoff=i1 * cols + i1, moff=i1)
    t_rows = bench(blocks_rows)
    print(f"time {rows}x{cols} | {t_old:.2f} | {t_new:.2f} | {diff:.1e} | {t_blk:.2f} | rows kernel T={T}: {t_rows:.2f}", flush=True)
    del W0, U, E, Ehi, Elo, Bhi, Blo, Wa, Wb, Wc, M
print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
