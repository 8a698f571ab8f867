#!/usr/bin/env python3
"""Checks and times the fp64 tensor-core products of the device inverse factor (issue 8) outside Java, on
the GPU machine: the old dgemm_dmma (sparkprune.cu, mma.sync m8n8k4) against the Hopper dgemm_dmma_sm90
(hopper.cu, mma.sync m16n8k{4,8,16} .f64), plus dgemm_f64 at the 64-column panel shapes.

Checks (each kernel, fresh random inputs, "check LABEL: DETAIL ok|FAIL" lines): C = alpha·A·op(B) +
beta·C against numpy fp64, error <= 1e-12 relative to max(|alpha|·|A|·|op(B)| + |beta|·|C|) (the
scale of the sums), for transB, lowerC (the upper triangle of C must stay untouched, bitwise), aLower,
bLower, alpha/beta, beta = 0 with NaN in C (C must not be read), sizes that are not multiples of 128,
row strides that are odd or bases that are not 16-byte aligned (the plain-load path), batched problems
in the triangular inverse's layout, and the panel's in-place product (C = A, n = 64); for the new
kernel (and its variants) also that bLower = 1 is bitwise equal to bLower = 0.

Times ("time ..." lines, median of 20 launches, CUDA events around each launch; inputs stay fixed,
outputs go to scratch buffers) at the factor's real shapes (CudaBackend.factorDevice, PANEL = 512,
FB = 64) for n = 11008 and 14336: the trailing updates m x m x 512 (lowerC, transB; row stride n) for
m = n - 512, n/2, n/4; every level s >= 512 of the triangular inverse (trtriLevel: `full` pairs of
size s batched plus the last shorter pair: c x a x a with bLower, then c x a x c with aLower, c = s
or the short half); and the 64-column panel products (m x 64 x 64 transB in place, m x w x 64 lowerC)
on dgemm_f64 vs the new kernel, which decide CudaBackend's DMMA_MIN_K. TFLOP/s count the useful
flops: 2·m·n·k, halved for lowerC and for a triangular operand. A "sum" line per n adds the trtri
levels (old vs new). Variants (a cubin built with -DDG9_VARIANTS; VARIANTS below lists each one's tile,
threads and shared memory) get every check too, but are timed (10 launches each) only at n = 14336 on the
13824 x 13824 x 512 trailing update and the trtri levels (their "sum" line); a deadline keeps the whole
run under ~55 s (later variant timings are skipped, said so).

Build the cubins first, in the repository root (.probe/ is ignored by git, so the run must carry it):

  mkdir -p .probe
  nvcc --cubin -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 \\
       -o .probe/sparkprune_sm90.cubin kernels/src/main/cuda/sparkprune.cu
  nvcc --cubin -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a \\
       -o .probe/hopper_sm90a.cubin kernels/src/main/cuda/hopper.cu
  nvcc --cubin -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -DDG9_VARIANTS \\
       -o .probe/hopper_variants_sm90a.cubin kernels/src/main/cuda/hopper.cu

Usage: python3 tools/device/dgemm_probe.py .probe/sparkprune_sm90.cubin .probe/hopper_sm90a.cubin \\
           [.probe/hopper_variants_sm90a.cubin] [--skip=NAME,NAME...]
Exit status 1 when a check fails. A kernel that fails to launch or raises is printed as FAIL and the run
goes on; but an illegal address (or another sticky CUDA error) kills the context, so every later call
fails too: rerun with --skip=the kernel named in the first FAIL line (e.g. --skip=dgemm_dmma_sm90_bk32_s3_k8)
to get the others' checks and times.
"""
import math, sys, time, traceback
import numpy as np
import cupy as cp

T_START = time.time()
ARGS = [a for a in sys.argv[1:] if not a.startswith("--skip=")]
SKIP = {n for a in sys.argv[1:] if a.startswith("--skip=") for n in a[len("--skip="):].split(",")}
DEADLINE_S = 55.0
i32, i64, f64 = np.int32, np.int64, np.float64
PANEL, FB = 512, 64
DMMA_SMEM = 3 * 2 * (128 * 20) * 8                      # CudaBackend.DGEMM_DMMA_SMEM (dgemm_dmma)


def sm90_smem(bk, stages):
    """CudaBackend.DGEMM_DMMA_SM90_SMEM for DG9_BK = bk, DG9_STAGES = stages (hopper.cu, Dg9Tile)."""
    return stages * 2 * max(128 * (bk + 4), bk * 132) * 8


seed = int(time.time())
rng = np.random.default_rng(seed)
print(f"seed {seed}, device: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}", flush=True)
failures = []


def check(label, ok, detail):
    print(f"check {label}: {detail} {'ok' if ok else 'FAIL'}", flush=True)
    if not ok:
        failures.append(label)


# The -DDG9_VARIANTS kernels (dg9_body, 128 x 128 tiles, 256 threads): (name, C tile rows, C tile columns,
# threads, dynamic shared memory); bk16_s5_k16 was the default before bk32_s3_k8. Round-2 variants of another
# body were measured and removed (hopper.cu's note after the variants).
VARIANTS = [
    ("dgemm_dmma_sm90_bk16_s5_k16", 128, 128, 256, sm90_smem(16, 5)),
    ("dgemm_dmma_sm90_bk16_s5_k8", 128, 128, 256, sm90_smem(16, 5)),
    ("dgemm_dmma_sm90_bk16_s5_k4", 128, 128, 256, sm90_smem(16, 5)),
    ("dgemm_dmma_sm90_bk16_s3_k16", 128, 128, 256, sm90_smem(16, 3)),
    ("dgemm_dmma_sm90_bk16_s4_k16", 128, 128, 256, sm90_smem(16, 4)),
    ("dgemm_dmma_sm90_bk32_s3_k16", 128, 128, 256, sm90_smem(32, 3)),
]


class Kernel:
    """One dgemm kernel of the common signature (transB, lowerC, aLower, bLower, m, n, k, alpha, A, lda,
    B, ldb, beta, C, ldc, sA, sB, sC) and its launch geometry (C tile rows x columns, threads, dynamic
    shared memory)."""

    def __init__(self, name, fn, tile, smem, tile_n=None, threads=256):
        self.name, self.fn, self.tile, self.smem = name, fn, tile, smem
        self.tile_n, self.threads = tile_n or tile, threads
        if smem:
            fn.max_dynamic_shared_size_bytes = smem

    def __call__(self, batch, transB, lowerC, aLower, bLower, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,
                 sA=0, sB=0, sC=0):
        t, tn = self.tile, self.tile_n
        self.fn(((n + tn - 1) // tn, (m + t - 1) // t, batch), (self.threads,),
                (i32(transB), i32(lowerC), i32(aLower), i32(bLower), i32(m), i32(n), i32(k), f64(alpha), A, i32(lda),
                 B, i32(ldb), f64(beta), C, i32(ldc), i64(sA), i64(sB), i64(sC)), shared_mem=self.smem)


MODULES = {}


def load(path, name, tile, smem, tile_n=None, threads=256):
    """The kernel `name` of the cubin at `path`, or None (skipped, or a FAIL line when it cannot be loaded)."""
    if name in SKIP:
        print(f"skipped {name} (--skip)", flush=True)
        return None
    try:
        if path not in MODULES:
            MODULES[path] = cp.RawModule(path=path)
        return Kernel(name, MODULES[path].get_function(name), tile, smem, tile_n, threads)
    except Exception as e:  # noqa: BLE001 - report and go on with the others
        check(f"load {name} from {path}", False, f"{type(e).__name__}: {e}")
        return None


old = load(ARGS[0], "dgemm_dmma", 128, DMMA_SMEM)
f64k = load(ARGS[0], "dgemm_f64", 64, 0)
new = load(ARGS[1], "dgemm_dmma_sm90", 128, sm90_smem(32, 3))   # hopper.cu's DG9_BK, DG9_STAGES
variants = []
if len(ARGS) > 2:
    for (nm, tm, tn, nth, smem) in VARIANTS:
        kv = load(ARGS[2], nm, tm, smem, tn, nth)
        if kv is not None:
            variants.append(kv)


def ptr(a, off=0):
    return cp.uint64(a.data.ptr + 8 * off)


def guarded(label, fn):
    """Runs fn(); an exception (a failed launch, an illegal address) is a FAIL line, not the end."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        check(label, False, f"raised {type(e).__name__}: {e}")
        traceback.print_exc(limit=2)
        return None


# ------------------------------------------------------------------ checks
def tri_lower(rows, cols):
    return np.tril(rng.standard_normal((rows, cols)))


def case(kern, label, m, n, k, transB=0, lowerC=0, aLower=0, bLower=0, alpha=1.0, beta=0.0, lda_pad=0, ldb_pad=0,
         ldc_pad=0, off=0, bitwise=False):
    """One product in a padded buffer (row strides k + lda_pad etc., base offset `off` elements), checked
    against numpy; bitwise: also against the same launch with bLower = 0."""
    a = tri_lower(m, k) if aLower else rng.standard_normal((m, k))
    ob = tri_lower(k, n) if bLower else rng.standard_normal((k, n))
    bst = np.ascontiguousarray(ob.T) if transB else ob
    c0 = rng.standard_normal((m, n))
    if beta == 0.0:
        c0[::3, ::2] = np.nan                  # beta = 0 must not read C
    lda, ldb, ldc = k + lda_pad, bst.shape[1] + ldb_pad, n + ldc_pad

    def up(x, ld):
        buf = np.full(off + x.shape[0] * ld + 8, 7.0)
        view = buf[off:off + x.shape[0] * ld].reshape(x.shape[0], ld)
        view[:, :x.shape[1]] = x
        return buf
    A, B = cp.asarray(up(a, lda)), cp.asarray(up(bst, ldb))
    cbuf = up(c0, ldc)
    C = cp.asarray(cbuf)
    kern(1, transB, lowerC, aLower, bLower, m, n, k, alpha, ptr(A, off), lda, ptr(B, off), ldb, beta, ptr(C, off), ldc)
    got_buf = cp.asnumpy(C)
    got = got_buf[off:off + m * ldc].reshape(m, ldc)[:, :n]
    c0z = np.where(np.isnan(c0), 0.0, c0)
    ref = alpha * (a @ ob) + beta * c0z
    scale = max(abs(alpha) * (np.abs(a) @ np.abs(ob)).max() + abs(beta) * np.abs(c0z).max(), 1e-300)
    mask = np.tril(np.ones((m, n), bool)) if lowerC else np.ones((m, n), bool)
    err = float(np.abs(got - ref)[mask].max() / scale) if mask.any() else 0.0
    keep = ~mask
    untouched_c = np.array_equal(got[keep].view(np.int64), c0[keep].view(np.int64))
    outside = np.ones(got_buf.shape, bool)
    outside[off:off + m * ldc] = np.tile(np.arange(ldc) >= n, m)
    untouched_pad = np.array_equal(got_buf[outside], cbuf[outside])
    ok = err <= 1e-12 and untouched_c and untouched_pad
    detail = (f"rel err {err:.2e}, upper/pad untouched {untouched_c and untouched_pad}")
    if bitwise:
        C0 = cp.asarray(cbuf)
        kern(1, transB, lowerC, aLower, 0, m, n, k, alpha, ptr(A, off), lda, ptr(B, off), ldb, beta, ptr(C0, off), ldc)
        g0 = cp.asnumpy(C0)
        same = np.array_equal(g0.view(np.int64), got_buf.view(np.int64))
        ok = ok and same
        detail += f", bitwise equal to bLower=0 {same}"
    check(f"{kern.name} {label} {m}x{n}x{k} tB={transB} lC={lowerC} aL={aLower} bL={bLower} a={alpha} b={beta}",
          ok, detail)


CASES = [  # (label, m, n, k, kwargs)
    ("plain", 300, 200, 300, {}),
    ("plain", 512, 512, 512, {"transB": 1}),
    ("edges", 130, 257, 300, {"beta": 0.5, "alpha": -1.0}),
    ("edges", 77, 190, 190, {"transB": 1}),
    ("k<16", 200, 130, 13, {"transB": 1, "beta": 1.0}),
    ("lowerC", 333, 333, 512, {"transB": 1, "lowerC": 1, "alpha": -1.0, "beta": 1.0}),
    ("lowerC", 700, 400, 64, {"transB": 1, "lowerC": 1, "alpha": -1.0, "beta": 1.0}),
    ("aLower", 300, 260, 300, {"aLower": 1, "alpha": -1.0}),
    ("aLower", 513, 200, 513, {"aLower": 1}),
    ("bLower", 300, 200, 200, {"bLower": 1}),
    ("bLower", 130, 257, 300, {"bLower": 1, "beta": 0.5}),
    ("bLower", 77, 190, 190, {"bLower": 1, "transB": 1, "alpha": -1.0}),
    ("bLower", 512, 512, 512, {"bLower": 1}),
    ("odd ld", 150, 140, 90, {"lda_pad": 1, "ldb_pad": 3, "ldc_pad": 1, "beta": 2.0}),
    ("odd ld", 150, 140, 90, {"lda_pad": 1, "ldb_pad": 1, "transB": 1, "lowerC": 1, "bLower": 1}),
    ("unaligned", 260, 270, 280, {"off": 1, "transB": 1, "bLower": 1}),
    ("unaligned", 260, 270, 280, {"off": 1, "aLower": 1, "beta": -0.5}),
]


def batched_trtri(kern, s, count, tail, bitwise):
    """Both products of one trtri level in CudaBackend's layout: pairs on the diagonal of an nn x nn L
    and X (step 2s(nn+1)), T packed (c x a per pair)."""
    nn = 2 * s * count + tail                  # a short tail, as for n not a multiple of 2s; odd: plain loads
    L = np.tril(rng.standard_normal((nn, nn)))
    Xm = np.zeros((nn, nn))
    for q in range(count):
        i0 = 2 * s * q
        Xm[i0:i0 + s, i0:i0 + s] = np.tril(rng.standard_normal((s, s)))
        Xm[i0 + s:i0 + 2 * s, i0 + s:i0 + 2 * s] = np.tril(rng.standard_normal((s, s)))
    Ld, Xd = cp.asarray(L), cp.asarray(Xm)
    step = 2 * s * (nn + 1)
    T1 = cp.zeros(count * s * s)
    kern(count, 0, 0, 0, 1, s, s, s, 1.0, ptr(Ld, s * nn), nn, ptr(Xd, 0), nn, 0.0, ptr(T1), s, step, step, s * s)
    t1 = cp.asnumpy(T1)
    refT = [L[2 * s * q + s:2 * s * q + 2 * s, 2 * s * q:2 * s * q + s] @ Xm[2 * s * q:2 * s * q + s, 2 * s * q:2 * s * q + s]
            for q in range(count)]
    scale = max(np.abs(np.concatenate([r.ravel() for r in refT])).max(), 1e-300)
    e1 = float(np.abs(t1 - np.concatenate([r.ravel() for r in refT])).max() / scale)
    detail = f"T rel err {e1:.2e}"
    ok = e1 <= 1e-12
    if bitwise:
        T0 = cp.zeros(count * s * s)
        kern(count, 0, 0, 0, 0, s, s, s, 1.0, ptr(Ld, s * nn), nn, ptr(Xd, 0), nn, 0.0, ptr(T0), s, step, step, s * s)
        same = np.array_equal(cp.asnumpy(T0).view(np.int64), t1.view(np.int64))
        ok = ok and same
        detail += f", bitwise equal to bLower=0 {same}"
    # X21 = -C^-1 · T (aLower), written into X
    kern(count, 0, 0, 1, 0, s, s, s, -1.0, ptr(Xd, s * nn + s), nn, ptr(T1), s, 0.0, ptr(Xd, s * nn), nn, step, s * s,
         step)
    xg = cp.asnumpy(Xd)
    e2 = 0.0
    for q in range(count):
        i0 = 2 * s * q
        ref = -(Xm[i0 + s:i0 + 2 * s, i0 + s:i0 + 2 * s] @ t1[q * s * s:(q + 1) * s * s].reshape(s, s))
        e2 = max(e2, float(np.abs(xg[i0 + s:i0 + 2 * s, i0:i0 + s] - ref).max() / max(np.abs(ref).max(), 1e-300)))
    others = xg.copy()
    for q in range(count):
        i0 = 2 * s * q
        others[i0 + s:i0 + 2 * s, i0:i0 + s] = Xm[i0 + s:i0 + 2 * s, i0:i0 + s]
    untouched = np.array_equal(others, Xm)
    ok = ok and e2 <= 1e-12 and untouched
    check(f"{kern.name} batched trtri level s={s} x{count}", ok,
          f"{detail}, X21 rel err {e2:.2e}, rest of X untouched {untouched}")


def in_place_panel(kern, m):
    """The panel product: A21 <- A21 · Xdᵀ in place (C = A, n = k = 64, row stride ld > 64)."""
    ld = 64 + 200
    full = rng.standard_normal((m + 64, ld))
    xd = np.tril(rng.standard_normal((64, 64))) / 8.0
    full[:64, :64] = xd
    R = cp.asarray(full)
    a21 = 64 * ld                               # rows 64.., columns 0..63
    kern(1, 1, 0, 0, 0, m, 64, 64, 1.0, ptr(R, a21), ld, ptr(R, 0), ld, 0.0, ptr(R, a21), ld)
    got = cp.asnumpy(R)
    ref = full[64:, :64] @ xd.T
    err = float(np.abs(got[64:, :64] - ref).max() / max((np.abs(full[64:, :64]) @ np.abs(xd.T)).max(), 1e-300))
    rest = got.copy(); rest[64:, :64] = full[64:, :64]
    untouched = np.array_equal(rest, full)
    check(f"{kern.name} in-place panel {m}x64x64 transB", err <= 1e-12 and untouched,
          f"rel err {err:.2e}, rest untouched {untouched}")


for kern in [k for k in [old, new] + variants if k is not None]:
    bit = kern is not old
    for (label, m, n, k, kw) in CASES:
        guarded(f"{kern.name} {label} {m}x{n}x{k}", lambda: case(kern, label, m, n, k, bitwise=bit and kw.get("bLower", 0),
                                                                  **kw))
    guarded(f"{kern.name} batched trtri 128", lambda: batched_trtri(kern, 128, 3, 38, bit))
    guarded(f"{kern.name} batched trtri 200", lambda: batched_trtri(kern, 200, 2, 37, bit))
    guarded(f"{kern.name} in-place panel", lambda: in_place_panel(kern, 1000))
if f64k is not None:
    guarded("dgemm_f64 in-place panel", lambda: in_place_panel(f64k, 1000))
print(f"checks done in {time.time() - T_START:.1f} s", flush=True)


# ------------------------------------------------------------------ times
def median_ms(launch, reps):
    for _ in range(2):
        launch()
    evs = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(reps)]
    for s, e in evs:
        s.record(); launch(); e.record()
    evs[-1][1].synchronize()
    return float(np.median([cp.cuda.get_elapsed_time(s, e) for s, e in evs]))


def shapes(n):
    """(label, useful flops, launch(kern, bufs)) of the factor's products for Hessian size n; the useful
    flops are 2·m·n·k halved for lowerC or a triangular operand (m·m·k, c·a·a, c·a·c, m·64·64)."""
    out = []
    for m in sorted({n - PANEL, n // 2, n // 4}, reverse=True):
        p0 = n - PANEL - m                     # the panel whose trailing update has m rows
        out.append((f"trailing {m}x{m}x{PANEL} lowerC tB", 1.0 * m * m * PANEL,
                    lambda kern, b, m=m, p0=p0: kern(1, 1, 1, 0, 0, m, m, PANEL, -1.0, ptr(b["R"], (p0 + PANEL) * n + p0), n,
                                                     ptr(b["R"], (p0 + PANEL) * n + p0), n, 1.0,
                                                     ptr(b["O"], (p0 + PANEL) * n + p0 + PANEL), n)))
    s = PANEL
    while s < n:
        full = n // (2 * s)
        rest = n - full * 2 * s
        for (a, c, i0, count, step) in ([(s, s, 0, full, 2 * s * (n + 1))] if full > 0 else []) + \
                                       ([(s, rest - s, full * 2 * s, 1, 0)] if rest > s else []):
            l21, ainv, cinv = (i0 + a) * n + i0, i0 * n + i0, (i0 + a) * n + i0 + a
            ts = c * a
            out.append((f"trtri s={s} {count}x {c}x{a}x{a} bLower", float(count) * c * a * a,
                        lambda kern, b, a=a, c=c, count=count, step=step, l21=l21, ainv=ainv, ts=ts:
                        kern(count, 0, 0, 0, 1, c, a, a, 1.0, ptr(b["R"], l21), n, ptr(b["X"], ainv), n, 0.0,
                             ptr(b["T"]), a, step, step, ts)))
            out.append((f"trtri s={s} {count}x {c}x{a}x{c} aLower", float(count) * c * a * c,
                        lambda kern, b, a=a, c=c, count=count, step=step, l21=l21, cinv=cinv, ts=ts:
                        kern(count, 0, 0, 1, 0, c, a, c, -1.0, ptr(b["X"], cinv), n, ptr(b["T"]), a, 0.0,
                             ptr(b["O"], l21), n, step, ts, step)))
        s *= 2
    for m in (n - FB, n // 2):
        out.append((f"panel {m}x64x64 tB in place", float(m) * 64 * 64,
                    lambda kern, b, m=m: kern(1, 1, 0, 0, 0, m, 64, 64, 1.0, ptr(b["O"], FB * n), n, ptr(b["X"], 0), n,
                                              0.0, ptr(b["O"], FB * n), n)))
    for w in (448, 192):
        m = n - (PANEL - w)
        out.append((f"panel update {m}x{w}x64 lowerC tB", 2.0 * m * w * 64 - 64.0 * w * w,
                    lambda kern, b, m=m, w=w: kern(1, 1, 1, 0, 0, m, w, 64, -1.0, ptr(b["R"], (PANEL - w) * n), n,
                                                   ptr(b["R"], (PANEL - w) * n), n, 1.0,
                                                   ptr(b["O"], (PANEL - w) * n + PANEL - w), n)))
    return out


def timing(n):
    bufs = {"R": cp.asarray(rng.uniform(-1, 1, (n, n))), "X": cp.asarray(rng.uniform(-1, 1, (n, n)) / 64.0),
            "O": cp.zeros((n, n)), "T": cp.zeros(n * n // 2)}
    sums = {}
    for (label, flops, launch) in shapes(n):
        panel = label.startswith("panel")
        kerns = ([f64k] if panel else [old]) + [new] + variants
        res = {}
        for kern in kerns:
            if kern is None:
                continue
            is_var = kern in variants
            if is_var and not (n == 14336 and (label.startswith("trtri") or label.startswith(f"trailing {n - PANEL}x"))):
                continue
            if is_var and time.time() - T_START > DEADLINE_S:
                print(f"time n={n} {label} {kern.name}: skipped (past the {DEADLINE_S:.0f} s deadline)", flush=True)
                continue
            ms = guarded(f"time n={n} {label} {kern.name}",
                         lambda: median_ms(lambda: launch(kern, bufs), 10 if is_var else 20))
            if ms is None:
                continue
            res[kern.name] = ms
            if label.startswith("trtri"):
                sums[kern.name] = sums.get(kern.name, 0.0) + ms
            print(f"time n={n} {label} {kern.name}: {ms:.3f} ms, {flops / ms / 1e9:.1f} TFLOP/s useful"
                  f" (median of {10 if is_var else 20})", flush=True)
        base = (f64k if panel else old)
        if base is not None and new is not None and base.name in res and new.name in res:
            print(f"time n={n} {label} {base.name} / {new.name}: {res[base.name] / res[new.name]:.2f}x", flush=True)
    for name, ms in sums.items():
        print(f"time n={n} sum of trtri levels >= {PANEL} {name}: {ms:.2f} ms", flush=True)
    del bufs
    cp.get_default_memory_pool().free_all_blocks()


for n in (11008, 14336):
    guarded(f"timing n={n}", lambda: timing(n))
print(f"total {time.time() - T_START:.1f} s", flush=True)
if failures:
    print(f"FAILED: {', '.join(failures)}", flush=True)
    sys.exit(1)
print("all checks ok", flush=True)
