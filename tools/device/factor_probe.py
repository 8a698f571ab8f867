#!/usr/bin/env python3
"""Checks and times the pieces of the device inverse factor (issue 8) outside Java, on the GPU machine:

- potf2_inv_f64 (64 x 64 diagonal block: lower Cholesky factor in place and its inverse) on random SPD
  blocks, kb = 64, 37 and 1, inside a larger strided matrix with garbage above the block's diagonal,
  against numpy (fp64) to 1e-12 relative; that it writes zeros above the diagonal and nothing outside
  its block; that a non-SPD block, a zero pivot and an infinite pivot set info = 1; its time (median of
  200 launches, CUDA events around each launch). With a second cubin, the same for the OLD kernel.
- dgemm_f64 and dgemm_dmma with bLower (op(B) lower triangular, zeros stored) against numpy (1e-12
  relative) and against bLower = 0 (bitwise equal expected), batched and transposed cases included;
  their times at the triangular inverse's largest shapes.

Build the cubins first, in the repository root (the pom's nvcc flags, kernels/pom.xml, for sm_90 only;
.probe/ is ignored by git, so the run must carry it):

  mkdir -p .probe/main
  nvcc --cubin -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 \\
       -o .probe/sparkprune_sm90.cubin kernels/src/main/cuda/sparkprune.cu
  for f in sparkprune.cu gemm_tc.cuh forward_ops.cuh; do
    git show main:kernels/src/main/cuda/$f > .probe/main/$f; done
  nvcc --cubin -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 \\
       -o .probe/sparkprune_main_sm90.cubin .probe/main/sparkprune.cu

Usage: python3 tools/device/factor_probe.py .probe/sparkprune_sm90.cubin [.probe/sparkprune_main_sm90.cubin]
(the second cubin, main's kernels, only for the old potf2_inv_f64's check and time). Prints
"check LABEL: DETAIL ok|FAIL" lines and "time ..." lines; exit status 1 when a check fails.
"""
import sys, time
import numpy as np
import cupy as cp

i32, i64, f64 = np.int32, np.int64, np.float64
FB = 64
POTF2_SMEM_NEW = (FB * (FB + 1) + FB) * 8   # CudaBackend.POTF2_SMEM
POTF2_SMEM_OLD = 2 * FB * (FB + 1) * 8      # main's
DMMA_SMEM = 3 * 2 * (128 * 20) * 8          # CudaBackend.DGEMM_DMMA_SMEM

new = cp.RawModule(path=sys.argv[1])
old = cp.RawModule(path=sys.argv[2]) if len(sys.argv) > 2 else None
potf2_new = new.get_function("potf2_inv_f64")
potf2_new.max_dynamic_shared_size_bytes = POTF2_SMEM_NEW
potf2_old = None
if old is not None:
    potf2_old = old.get_function("potf2_inv_f64")
    potf2_old.max_dynamic_shared_size_bytes = POTF2_SMEM_OLD
dgemm_f64 = new.get_function("dgemm_f64")
dgemm_dmma = new.get_function("dgemm_dmma")
dgemm_dmma.max_dynamic_shared_size_bytes = DMMA_SMEM

seed = int(time.time())
rng = np.random.default_rng(seed)
print(f"seed {seed}, device: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}", flush=True)
failures = []


def check(label, ok, detail):
    print(f"check {label}: {detail} {'ok' if ok else 'FAIL'}", flush=True)
    if not ok:
        failures.append(label)


def ptr(a, off=0):
    return cp.uint64(a.data.ptr + 8 * off)


def median_us(launch, reps, before=None):
    """Median time of one launch in microseconds (CUDA events around each launch; before() runs
    outside the timed window, e.g. to restore an in-place input)."""
    for _ in range(3):
        if before: before()
        launch()
    evs = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(reps)]
    for s, e in evs:
        if before: before()
        s.record(); launch(); e.record()
    evs[-1][1].synchronize()
    return float(np.median([cp.cuda.get_elapsed_time(s, e) for s, e in evs]) * 1000.0)


def rel(got, ref):
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-300))


# ------------------------------------------------------------------ potf2_inv_f64
def run_potf2(kern, smem, kb, R, X, info, off, ld):
    kern((1,), (256,), (i32(kb), ptr(R, off), i32(ld), ptr(X, off), i32(ld), info), shared_mem=smem)


def spd(kb):
    g = rng.standard_normal((kb, kb))
    return g @ g.T / kb + 0.25 * np.eye(kb) + np.diag(rng.uniform(0, 4, kb))


def potf2_checks(name, kern, smem):
    ld, o = 100, 21                       # the block at (21, 21) of a 100 x 100 matrix, row stride 100
    for kb in (64, 37, 1):
        for trial in range(3):
            a = spd(kb)
            full = rng.standard_normal((ld, ld))
            blk = np.tril(a) + np.triu(rng.standard_normal((kb, kb)) * 1e3, 1)  # garbage above: not read
            full[o:o + kb, o:o + kb] = blk
            xfull = rng.standard_normal((ld, ld))
            R, X = cp.asarray(full), cp.asarray(xfull)
            info = cp.zeros(1, cp.int32)
            run_potf2(kern, smem, kb, R, X, info, o * ld + o, ld)
            cp.cuda.runtime.deviceSynchronize()
            r, x = cp.asnumpy(R), cp.asnumpy(X)
            lref = np.linalg.cholesky(a)
            xref = np.linalg.inv(lref)
            el, ex = rel(r[o:o + kb, o:o + kb], lref), rel(x[o:o + kb, o:o + kb], xref)
            outside = np.ones((ld, ld), bool); outside[o:o + kb, o:o + kb] = False
            untouched = np.array_equal(r[outside], full[outside]) and np.array_equal(x[outside], xfull[outside])
            # the reference's upper triangles are exact zeros, so el / ex above cover "zeros above"
            check(f"{name} potf2 kb={kb} #{trial}", el < 1e-12 and ex < 1e-12 and untouched and int(info.get()[0]) == 0,
                  f"factor rel err {el:.2e}, inverse rel err {ex:.2e}, outside block untouched {untouched}, "
                  f"info {int(info.get()[0])}")
    for label, mod in [("not SPD", lambda a: a - 2.0 * np.abs(np.linalg.eigvalsh(a)).max() * np.eye(len(a))),
                       ("zero pivot", lambda a: _zero_first(a)),
                       ("infinite pivot", lambda a: _inf_diag(a))]:
        a = mod(spd(64))
        R, X = cp.asarray(a.copy()), cp.zeros((64, 64))
        info = cp.zeros(1, cp.int32)
        run_potf2(kern, smem, 64, R, X, info, 0, 64)
        check(f"{name} potf2 {label} sets info", int(info.get()[0]) == 1, f"info {int(info.get()[0])}")


def _zero_first(a):
    a = a.copy(); a[0, :] = 0; a[:, 0] = 0
    return a


def _inf_diag(a):
    a = a.copy(); a[40, 40] = np.inf
    return a


def potf2_time(name, kern, smem):
    n = 4096                                 # the factor's row stride for n = 4096
    a = spd(64)
    full = np.zeros((64, n)); full[:, :64] = a
    src = cp.asarray(full); R = cp.empty_like(src); X = cp.zeros((64, n)); info = cp.zeros(1, cp.int32)
    us = median_us(lambda: run_potf2(kern, smem, 64, R, X, info, 0, n), 200, before=lambda: cp.copyto(R, src))
    print(f"time {name} potf2_inv_f64 kb=64 ld={n}: {us:.1f} us (median of 200)", flush=True)
    return us


potf2_checks("new", potf2_new, POTF2_SMEM_NEW)
t_new = potf2_time("new", potf2_new, POTF2_SMEM_NEW)
check("new potf2 time <= 40 us", t_new <= 40.0, f"{t_new:.1f} us")
if potf2_old is not None:
    potf2_checks("old", potf2_old, POTF2_SMEM_OLD)
    t_old = potf2_time("old", potf2_old, POTF2_SMEM_OLD)
    print(f"time potf2_inv_f64 old / new: {t_old / t_new:.2f}x", flush=True)


# ------------------------------------------------------------------ dgemm with bLower
def run_dgemm(kern, batch, transB, lowerC, aLower, bLower, m, n, k, alpha, A, aoff, lda, B, boff, ldb, beta, C, coff,
              ldc, sA=0, sB=0, sC=0):
    args = (i32(transB), i32(lowerC), i32(aLower), i32(bLower), i32(m), i32(n), i32(k), f64(alpha), ptr(A, aoff),
            i32(lda), ptr(B, boff), i32(ldb), f64(beta), ptr(C, coff), i32(ldc), i64(sA), i64(sB), i64(sC))
    if kern is dgemm_dmma:
        kern(((n + 127) // 128, (m + 127) // 128, batch), (256,), args, shared_mem=DMMA_SMEM)
    else:
        kern(((n + 63) // 64, (m + 63) // 64, batch), (256,), args)


def lower_op_b(k, n, transB):
    """A stored B whose op(B) (k x n) is lower triangular, zeros stored; returns (stored, op(B))."""
    ob = np.tril(rng.standard_normal((k, n)))
    return (np.ascontiguousarray(ob.T) if transB else ob), ob


for kern, kname in [(dgemm_f64, "dgemm_f64"), (dgemm_dmma, "dgemm_dmma")]:
    for (m, n, k, transB, beta) in [(300, 200, 200, 0, 0.0), (130, 257, 300, 0, 0.5), (77, 190, 190, 1, 0.0),
                                    (512, 512, 512, 0, 0.0)]:
        a = rng.standard_normal((m, k))
        bs, ob = lower_op_b(k, n, transB)
        c0 = rng.standard_normal((m, n))
        ref = -1.0 * (a @ ob) + beta * c0
        A, B = cp.asarray(a), cp.asarray(bs)
        ldb = bs.shape[1]
        C1, C0 = cp.asarray(c0), cp.asarray(c0)
        run_dgemm(kern, 1, transB, 0, 0, 1, m, n, k, -1.0, A, 0, k, B, 0, ldb, beta, C1, 0, n)
        run_dgemm(kern, 1, transB, 0, 0, 0, m, n, k, -1.0, A, 0, k, B, 0, ldb, beta, C0, 0, n)
        g1, g0 = cp.asnumpy(C1), cp.asnumpy(C0)
        same = np.array_equal(g1.view(np.int64), g0.view(np.int64))
        ndiff = int((g1.view(np.int64) != g0.view(np.int64)).sum())
        e = rel(g1, ref)
        check(f"{kname} bLower {m}x{n}x{k} transB={transB} beta={beta}", same and e < 1e-12,
              f"rel err {e:.2e}, bitwise equal to bLower=0 {same} ({ndiff} elements differ)")
    # batched, the trtri's first product's layout: pairs on the diagonal of an n x n matrix, T packed
    s, count = 128, 3
    nn = 2 * s * count
    L = np.tril(rng.standard_normal((nn, nn)))
    Xm = np.zeros((nn, nn))
    for q in range(count):
        i0 = 2 * s * q
        Xm[i0:i0 + s, i0:i0 + s] = np.tril(rng.standard_normal((s, s)))
    Ld, Xd = cp.asarray(L), cp.asarray(Xm)
    T1, T0 = cp.zeros(count * s * s), cp.zeros(count * s * s)
    step = 2 * s * (nn + 1)
    for T, bl in [(T1, 1), (T0, 0)]:
        run_dgemm(kern, count, 0, 0, 0, bl, s, s, s, 1.0, Ld, s * nn, nn, Xd, 0, nn, 0.0, T, 0, s, step, step, s * s)
    t1, t0 = cp.asnumpy(T1), cp.asnumpy(T0)
    ref = np.concatenate([(L[2 * s * q + s:2 * s * q + 2 * s, 2 * s * q:2 * s * q + s]
                           @ Xm[2 * s * q:2 * s * q + s, 2 * s * q:2 * s * q + s]).ravel() for q in range(count)])
    same = np.array_equal(t1.view(np.int64), t0.view(np.int64))
    e = rel(t1, ref)
    check(f"{kname} bLower batched {count} x {s}^3 (trtri layout)", same and e < 1e-12,
          f"rel err {e:.2e}, bitwise equal to bLower=0 {same}")

# times at the triangular inverse's large shapes: T = L21 · A^-1 (m = c, n = k = a). The top levels of
# n = 11008 and 14336 are (c, a) = (2816, 8192) and (6144, 8192); the squares 5504 and 7168 are the
# half-size pairs.
for (m, a_) in [(5504, 5504), (7168, 7168), (2816, 8192), (6144, 8192)]:
    A = cp.asarray(rng.standard_normal((m, a_)))
    B = cp.tril(cp.asarray(rng.standard_normal((a_, a_))))
    C = cp.empty((m, a_))
    res = {}
    for bl in (0, 1):
        res[bl] = median_us(lambda: run_dgemm(dgemm_dmma, 1, 0, 0, 0, bl, m, a_, a_, 1.0, A, 0, a_, B, 0, a_, 0.0, C, 0,
                                              a_), 10)
    tf = 2.0 * m * a_ * a_ / 1e12
    print(f"time dgemm_dmma {m}x{a_}x{a_} B lower: bLower=0 {res[0] / 1000:.2f} ms ({tf / (res[0] / 1e6):.1f} TFLOP/s "
          f"full-count), bLower=1 {res[1] / 1000:.2f} ms ({res[0] / res[1]:.2f}x)", flush=True)
    check(f"dgemm_dmma bLower faster {m}x{a_}", res[1] < 0.75 * res[0], f"{res[1] / res[0]:.2f} of bLower=0's time")
    del A, B, C
    cp.get_default_memory_pool().free_all_blocks()

# the lowest level on dgemm_f64: 64-wide pairs, batched (n = 11008: 86 pairs)
s, count = 64, 86
nn = 2 * s * count
Ld = cp.tril(cp.asarray(rng.standard_normal((nn, nn))))
T = cp.empty(count * s * s)
step = 2 * s * (nn + 1)
res = {}
for bl in (0, 1):
    res[bl] = median_us(lambda: run_dgemm(dgemm_f64, count, 0, 0, 0, bl, s, s, s, 1.0, Ld, s * nn, nn, Ld, 0, nn, 0.0,
                                          T, 0, s, step, step, s * s), 50)
print(f"time dgemm_f64 trtri level 64 batched {count}: bLower=0 {res[0]:.1f} us, bLower=1 {res[1]:.1f} us", flush=True)

if failures:
    print(f"FAILED: {', '.join(failures)}", flush=True)
    sys.exit(1)
print("all checks ok", flush=True)
