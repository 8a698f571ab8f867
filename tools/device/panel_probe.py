#!/usr/bin/env python3
"""Checks and times the Cholesky panel steps of the device inverse factor (issue 8) outside Java, on the
GPU machine: the whole Cholesky loop of CudaBackend.factorDevice (load_reversed_f64 -> panels of
PANEL = 512 columns -> FB = 64-column steps -> the rank-PANEL trailing update per panel on dgemm_dmma,
or dgemm_f64 below k = 256 as in dgemmBatched) with

- "old": three launches per step, potf2_inv_f64, the panel product dgemm_f64 (A21 = A21 * X^T, in place)
  and the in-panel update dgemm_f64 (lowerC), as factorDevice runs them by default;
- "new": one cooperative launch of chol_panel_f64 per panel (sparkprune.cu; left-looking inside the panel,
  flags between its thread blocks).

For n = 130, 1000 (partial blocks and panels), 4096, 11008 and 14336, on M = L0 * L0^T with a known
well-conditioned lower triangular L0 (so L0 is the exact factor; M handed in reversed, as factorDevice's
caller does): L = tril(R) against L0 and, for n <= 4096, against numpy.linalg.cholesky(M), both to 1e-12
relative (max abs error over max abs value); R's upper triangle zero; X's FB x FB diagonal blocks the
inverses of L's (X_bb * L_bb = I to 1e-12) and X zero elsewhere; info 0; new against old. Then info 1 (and
no hang) on a matrix with a negative pivot in the last panel and on one with a NaN. Times (CUDA events,
median of 3 runs after a warm-up): the whole factor (load_reversed to the last trailing update) and the
sum of the step launches only (per panel, an event before its first step launch and one after its last).
Each case runs in its own try block: one failing kernel or size does not stop the others.

Build the cubin first, in the repository root (the pom's nvcc flags, kernels/pom.xml, for sm_90 only;
.probe/ is ignored by git, so the run must carry it):

  mkdir -p .probe
  nvcc --cubin -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 \\
       -o .probe/sparkprune_sm90.cubin kernels/src/main/cuda/sparkprune.cu

Usage: python3 tools/device/panel_probe.py .probe/sparkprune_sm90.cubin [n ...]
Prints "check LABEL: DETAIL ok|FAIL" and "time ..." lines; exit status 1 when a check fails.
"""
import sys, time, traceback
import numpy as np
import cupy as cp

i32, i64, f64 = np.int32, np.int64, np.float64
FB, PANEL, DMMA_MIN_K = 64, 512, 256
POTF2_SMEM = (FB * (FB + 1) + FB) * 8       # CudaBackend.POTF2_SMEM, also chol_panel_f64's
CP_THREADS = 256
DMMA_SMEM = 3 * 2 * (128 * 20) * 8          # CudaBackend.DGEMM_DMMA_SMEM

mod = cp.RawModule(path=sys.argv[1])
sizes = [int(a) for a in sys.argv[2:]] or [130, 1000, 4096, 11008, 14336]
k_load = mod.get_function("load_reversed_f64")
k_potf2 = mod.get_function("potf2_inv_f64")
k_potf2.max_dynamic_shared_size_bytes = POTF2_SMEM
k_f64 = mod.get_function("dgemm_f64")
k_dmma = mod.get_function("dgemm_dmma")
k_dmma.max_dynamic_shared_size_bytes = DMMA_SMEM
k_panel = mod.get_function("chol_panel_f64")
k_panel.max_dynamic_shared_size_bytes = POTF2_SMEM

props = cp.cuda.runtime.getDeviceProperties(0)
sms = props["multiProcessorCount"]
try:
    per_sm = cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(k_panel.ptr, CP_THREADS, POTF2_SMEM)
except Exception as e:  # an older CuPy: the kernel's __launch_bounds__(256, 2)
    print(f"note: occupancy query failed ({e}); assuming 2 blocks per SM", flush=True)
    per_sm = 2
MAX_GRID = per_sm * sms
seed = int(time.time())
rng = np.random.default_rng(seed)
print(f"seed {seed}, device: {props['name'].decode()}, chol_panel_f64: {per_sm} blocks per SM, grid <= {MAX_GRID}",
      flush=True)
failures = []


def check(label, ok, detail):
    print(f"check {label}: {detail} {'ok' if ok else 'FAIL'}", flush=True)
    if not ok:
        failures.append(label)


def ptr(a, off=0):
    return cp.uint64(a.data.ptr + a.itemsize * off)


cooperative = True


def launch_panel(n, p0, R, X, flags, info):
    global cooperative
    grid = min(MAX_GRID, (n - p0 + FB - 1) // FB)
    args = (i32(n), i32(p0), ptr(R), ptr(X), ptr(flags), ptr(info))
    if cooperative:
        try:
            k_panel((grid,), (CP_THREADS,), args, shared_mem=POTF2_SMEM, enable_cooperative_groups=True)
            return
        except TypeError:
            cooperative = False
            print("note: this CuPy has no cooperative launch; plain launches (all blocks fit: grid <= occupancy)",
                  flush=True)
    k_panel((grid,), (CP_THREADS,), args, shared_mem=POTF2_SMEM)


def dgemm(transB, lowerC, m, nn, k, alpha, A, aoff, lda, B, boff, ldb, beta, C, coff, ldc):
    args = (i32(transB), i32(lowerC), i32(0), i32(0), i32(m), i32(nn), i32(k), f64(alpha), ptr(A, aoff), i32(lda),
            ptr(B, boff), i32(ldb), f64(beta), ptr(C, coff), i32(ldc), i64(0), i64(0), i64(0))
    if k >= DMMA_MIN_K:
        k_dmma(((nn + 127) // 128, (m + 127) // 128, 1), (256,), args, shared_mem=DMMA_SMEM)
    else:
        k_f64(((nn + 63) // 64, (m + 63) // 64, 1), (256,), args)


def factor(path, n, A, diag, R, X, flags, info, step_events=None):
    """factorDevice's Cholesky part (lambda = 0): R = L (lower, zeros above), X's diagonal blocks = their
    inverses; step_events collects (start, end) event pairs around each panel's step launches."""
    k_load(((n * n + 255) // 256,), (256,), (i32(n), ptr(A), i32(n), ptr(diag), f64(0.0), ptr(R)))
    X.fill(0)
    info.fill(0)
    flags.fill(0)
    for p0 in range(0, n, PANEL):
        p_end = min(n, p0 + PANEL)
        ev = None
        if step_events is not None:
            ev = (cp.cuda.Event(), cp.cuda.Event())
            ev[0].record()
        if path == "new":
            launch_panel(n, p0, R, X, flags, info)
        else:
            for k0 in range(p0, p_end, FB):
                kb = min(FB, p_end - k0)
                d = k0 * n + k0
                k_potf2((1,), (256,), (i32(kb), ptr(R, d), i32(n), ptr(X, d), i32(n), ptr(info)),
                        shared_mem=POTF2_SMEM)
                m = n - k0 - kb
                if m == 0:
                    break
                a21 = (k0 + kb) * n + k0
                dgemm(1, 0, m, kb, kb, 1.0, R, a21, n, X, d, n, 0.0, R, a21, n)
                w = p_end - k0 - kb
                if w > 0:
                    dgemm(1, 1, m, w, kb, -1.0, R, a21, n, R, a21, n, 1.0, R, (k0 + kb) * n + k0 + kb, n)
        if ev is not None:
            ev[1].record()
            step_events.append(ev)
        m = n - p_end
        if m > 0:
            l21 = p_end * n + p0
            dgemm(1, 1, m, m, p_end - p0, -1.0, R, l21, n, R, l21, n, 1.0, R, p_end * n + p_end, n)


def known_factor(n):
    """L0: lower triangular, diagonal in [1, 2), below it N(0, (0.3 / sqrt(n))^2): ||L0 - D|| < 1, well
    conditioned; M = L0 L0^T (fp64 on the device)."""
    L0 = cp.tril(cp.asarray(rng.standard_normal((n, n)) * (0.3 / np.sqrt(n))), -1)
    L0 += cp.diag(cp.asarray(rng.uniform(1.0, 2.0, n)))
    return L0, L0 @ L0.T


def rel(got, ref):
    return float(cp.abs(got - ref).max() / cp.abs(ref).max())


def run_case(n):
    L0, M = known_factor(n)
    A = cp.ascontiguousarray(M[::-1, ::-1])   # factorDevice's input: P M P, read through its upper triangle
    A_in = A.copy()
    diag = cp.ascontiguousarray(cp.diagonal(A))
    A += cp.tril(cp.full((n, n), 1e300), -1)  # garbage below the diagonal: must not be read
    R, X = cp.empty((n, n)), cp.empty((n, n))
    flags = cp.zeros(2 * ((n + FB - 1) // FB), cp.int32)
    info = cp.zeros(1, cp.int32)
    nref = None
    if n <= 4096:
        nref = cp.asarray(np.linalg.cholesky(cp.asnumpy(M)))
    results = {}
    for path in ("old", "new"):
        label = f"{path} n={n}"
        try:
            factor(path, n, A, diag, R, X, flags, info)
            cp.cuda.runtime.deviceSynchronize()
            inf = int(info.get()[0])
            L = cp.tril(R)
            upper0 = bool((cp.triu(R, 1) == 0).all())
            e0 = rel(L, L0)
            detail = f"info {inf}, rel err vs L0 {e0:.2e}"
            ok = inf == 0 and e0 < 1e-12 and upper0
            if nref is not None:
                en = rel(L, nref)
                detail += f", vs numpy {en:.2e}"
                ok = ok and en < 1e-12
            nb = (n + FB - 1) // FB
            worst, outside_zero = 0.0, True
            mask = cp.ones((n, n), bool)
            for b in range(nb):
                s = slice(b * FB, min(n, b * FB + FB))
                blk = X[s, s] @ L[s, s]
                worst = max(worst, float(cp.abs(blk - cp.eye(blk.shape[0])).max()))
                mask[s, s] = False
            outside_zero = bool((X[mask] == 0).all())
            detail += f", upper zero {upper0}, X_bb L_bb - I max {worst:.2e}, X zero off the blocks {outside_zero}"
            ok = ok and worst < 1e-12 and outside_zero
            check(label, ok, detail)
            results[path] = (L.copy(), X.copy())
        except Exception:
            traceback.print_exc()
            check(label, False, "raised")
    if len(results) == 2:
        check(f"new vs old n={n}", rel(results["new"][0], results["old"][0]) < 1e-12,
              f"L rel diff {rel(results['new'][0], results['old'][0]):.2e}, "
              f"X rel diff {rel(results['new'][1], results['old'][1]):.2e}")
    del results
    # timings: median of 3 after a warm-up
    times = {}
    for path in ("old", "new"):
        try:
            tot, steps = [], []
            for rep in range(4):
                ev = []
                t0, t1 = cp.cuda.Event(), cp.cuda.Event()
                t0.record()
                factor(path, n, A, diag, R, X, flags, info, ev)
                t1.record()
                t1.synchronize()
                if rep == 0:
                    continue
                tot.append(cp.cuda.get_elapsed_time(t0, t1))
                steps.append(sum(cp.cuda.get_elapsed_time(s, e) for s, e in ev))
            times[path] = (float(np.median(tot)), float(np.median(steps)))
            nsteps = sum((min(n, p0 + PANEL) - p0 + FB - 1) // FB for p0 in range(0, n, PANEL))
            print(f"time {path} n={n}: factor {times[path][0]:.2f} ms, steps {times[path][1]:.2f} ms "
                  f"({nsteps} steps, {1000 * times[path][1] / nsteps:.1f} us per step; median of 3)", flush=True)
        except Exception:
            traceback.print_exc()
            check(f"time {path} n={n}", False, "raised")
    if len(times) == 2:
        print(f"time n={n} old / new: factor {times['old'][0] / times['new'][0]:.2f}x, "
              f"steps {times['old'][1] / times['new'][1]:.2f}x", flush=True)
    # failures: a negative pivot in the last panel, and a NaN; info 1 on both paths, no hang
    for what in ("negative pivot", "NaN"):
        bad = A_in.copy()
        if what == "negative pivot":
            j = max(0, n - 1 - (n - 1) // PANEL * PANEL - 3)  # reversed index n-1-j lies in the last panel
            bad[j, j] = -1.0
        else:
            bad[0, n // 3] = cp.nan                          # reversed (n-1, n-1-n//3): row n-1 of L
        bdiag = cp.ascontiguousarray(cp.diagonal(bad))
        for path in ("old", "new"):
            try:
                factor(path, n, bad, bdiag, R, X, flags, info)
                cp.cuda.runtime.deviceSynchronize()
                inf = int(info.get()[0])
                check(f"{path} n={n} {what} sets info", inf == 1, f"info {inf}")
            except Exception:
                traceback.print_exc()
                check(f"{path} n={n} {what} sets info", False, "raised")
        del bad
    del L0, M, A, A_in, R, X, nref
    cp.get_default_memory_pool().free_all_blocks()


for n in sizes:
    try:
        run_case(n)
    except Exception:
        traceback.print_exc()
        check(f"n={n}", False, "raised")
        cp.get_default_memory_pool().free_all_blocks()

if failures:
    print(f"FAILED: {', '.join(failures)}", flush=True)
    sys.exit(1)
print("all checks ok", flush=True)
