#!/usr/bin/env python3
"""Checks and times the Hopper kernels of kernels/src/main/cuda/hopper.cu on the GPU machine, outside Java.

Usage (on the GPU machine, from the repository root): python3 tools/device/wgmma_probe.py CUBIN
where CUBIN is hopper.cu compiled for sm_90a (nvcc --cubin -gencode arch=compute_90a,code=sm_90a).
Loads the kernels with CuPy, checks them against float64 references of the same (rounded) operands on
fresh random inputs, including shapes that are not multiples of the tiles, then times them next to
PyTorch's matrix products on the same GPU in the same process. Prints a table; exit status 1 when a
check fails.
"""
import sys, time
import numpy as np
import cupy as cp
import torch

mod = cp.RawModule(path=sys.argv[1])
K = {name: mod.get_function(name) for name in
     ["wg_gemm_bf16_nt", "wg_gemm_bf16_nt128", "wg_gemm_tf32_nt", "wg_gemm_tf32_nt256", "wg_syrk_tf32",
      "round_tf32", "transpose_round_tf32"]}
CFG = {"wg_gemm_bf16_nt": (256, 4), "wg_gemm_bf16_nt128": (128, 6), "wg_gemm_tf32_nt": (128, 6),
       "wg_gemm_tf32_nt256": (256, 4), "wg_syrk_tf32": (128, 6)}
def smem(name):
    bn, st = CFG[name]
    return st * (128 + bn) * 128 + 1024
for n, f in K.items():
    if n in CFG:
        f.max_dynamic_shared_size_bytes = smem(n)
failures = []
i32, i64, f32 = np.int32, np.int64, np.float32
rng = np.random.default_rng(int(time.time()))

def check(label, err, tol):
    ok = np.isfinite(err) and err <= tol
    print(f"check {label}: rel err {err:.3e} (tol {tol:g}) {'ok' if ok else 'FAIL'}", flush=True)
    if not ok:
        failures.append(label)

def rel(got, ref):
    got = cp.asnumpy(got).astype(np.float64); ref = np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))

def tf32_host(x):
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((b + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)

def gemm(name, m, n, k, A, lda, B, ldb, C, ldc, alpha=1.0, beta=0.0):
    bn = CFG[name][0]
    K[name](((n + bn - 1) // bn, (m + 127) // 128, 1), (256, 1, 1),
            (i32(m), i32(n), i32(k), f32(alpha), A, i32(lda), B, i32(ldb), f32(beta), C, i32(ldc)), shared_mem=smem(name))

def round_dev(x):
    out = cp.empty_like(x)
    K["round_tf32"]((1024,), (256,), (i64(x.size), x, out))
    return out

# ---- correctness
for (m, n, k) in [(1000, 770, 264), (256, 512, 4096), (333, 1030, 136)]:
    a = rng.standard_normal((m, k), dtype=np.float32); b = rng.standard_normal((n, k), dtype=np.float32)
    ab = torch.from_numpy(a).bfloat16(); bb = torch.from_numpy(b).bfloat16()
    ref = ab.double() @ bb.double().T
    for name in ["wg_gemm_bf16_nt", "wg_gemm_bf16_nt128"]:
        Ad = cp.asarray(ab.view(torch.int16).numpy()).view(cp.uint16); Bd = cp.asarray(bb.view(torch.int16).numpy()).view(cp.uint16)
        c0 = rng.standard_normal((m, n), dtype=np.float32)
        C = cp.asarray(c0)
        gemm(name, m, n, k, Ad, k, Bd, k, C, n, 0.5, 0.25)
        cp.cuda.runtime.deviceSynchronize()
        check(f"{name} {m}x{n}x{k} alpha/beta", rel(C, 0.5 * ref.numpy() + 0.25 * c0), 1e-5)
        C = cp.full((m, n), cp.nan, dtype=cp.float32)
        gemm(name, m, n, k, Ad, k, Bd, k, C, n)
        check(f"{name} {m}x{n}x{k} beta=0 over NaN", rel(C, ref.numpy()), 1e-5)
    ar, br = tf32_host(a), tf32_host(b)
    refd = ar.astype(np.float64) @ br.astype(np.float64).T
    Ad, Bd = round_dev(cp.asarray(a)), round_dev(cp.asarray(b))
    check(f"round_tf32 {m}x{k} bit-exact", float(np.count_nonzero(cp.asnumpy(Ad).view(np.uint32) != ar.view(np.uint32))), 0)
    for name in ["wg_gemm_tf32_nt", "wg_gemm_tf32_nt256"]:
        C = cp.full((m, n), cp.nan, dtype=cp.float32)
        gemm(name, m, n, k, Ad, k, Bd, k, C, n)
        check(f"{name} {m}x{n}x{k}", rel(C, refd), 1e-5)

def syrk(n, k, X, Cp, splits):
    Xt = cp.empty((n, (k + 3) // 4 * 4), dtype=cp.float32)
    K["transpose_round_tf32"](((n + 31) // 32, (k + 31) // 32), (32, 8), (i32(k), i32(n), X, i32(n), Xt, i32(Xt.shape[1])))
    nt = (n + 127) // 128
    per = ((k + splits - 1) // splits + 255) // 256 * 256
    K["wg_syrk_tf32"]((nt * (nt + 1) // 2, (k + per - 1) // per), (256,),
                      (i32(n), i32(k), Xt, i32(Xt.shape[1]), Cp, i32(per)), shared_mem=smem("wg_syrk_tf32"))
    return Xt

for (n, k, splits) in [(1000, 2348, 1), (1000, 2348, 3), (256, 512, 2), (130, 40, 1)]:
    x = rng.standard_normal((k, n), dtype=np.float32)
    xr = tf32_host(x).astype(np.float64)
    full = xr.T @ xr
    iu = np.triu_indices(n)
    c0 = rng.standard_normal(n * (n + 1) // 2)
    Cp = cp.asarray(c0)
    Xt = syrk(n, k, cp.asarray(x), Cp, splits)
    check(f"transpose_round_tf32 {k}x{n} bit-exact", float(np.count_nonzero(cp.asnumpy(Xt)[:, :k].view(np.uint32) != tf32_host(x).T.view(np.uint32))), 0)
    check(f"wg_syrk_tf32 n={n} k={k} splits={splits} (+= onto random)", rel(Cp, c0 + full[iu]), 1e-5)

# ---- timing
def bench(fn, reps=20):
    for _ in range(3):
        fn()
    s, e = cp.cuda.Event(), cp.cuda.Event()
    ts = []
    for _ in range(reps):
        s.record(); fn(); e.record(); e.synchronize()
        ts.append(cp.cuda.get_elapsed_time(s, e))
    return float(np.median(ts))

rows = []
def row(label, ms, flops):
    rows.append((label, ms, flops / ms / 1e9))
    print(f"time {label}: {ms:.3f} ms {flops / ms / 1e9:.1f} TFLOP/s", flush=True)

tb = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
row("torch bf16 8192^3", bench(lambda: tb @ tb), 2 * 8192**3)
torch.backends.cuda.matmul.allow_tf32 = True
tf = torch.randn(8192, 8192, device="cuda")
row("torch tf32 8192^3", bench(lambda: tf @ tf), 2 * 8192**3)
for (m, n, k) in [(8192, 4096, 4096), (4096, 4096, 4096), (32768, 11008, 4096), (32768, 4096, 11008)]:
    A = torch.randn(m, k, device="cuda", dtype=torch.bfloat16); B = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    row(f"torch bf16 NT {m}x{n}x{k}", bench(lambda: A @ B.T), 2 * m * n * k)
    Ad, Bd = cp.asarray(A.view(torch.int16)).view(cp.uint16), cp.asarray(B.view(torch.int16)).view(cp.uint16)
    C = cp.empty((m, n), dtype=cp.float32)
    for name in ["wg_gemm_bf16_nt", "wg_gemm_bf16_nt128"]:
        row(f"{name} {m}x{n}x{k}", bench(lambda: gemm(name, m, n, k, Ad, k, Bd, k, C, n)), 2 * m * n * k)
    A32, B32 = A.float(), B.float()
    row(f"torch tf32 NT {m}x{n}x{k}", bench(lambda: A32 @ B32.T), 2 * m * n * k)
    Ar, Br = round_dev(cp.asarray(A32)), round_dev(cp.asarray(B32))
    for name in ["wg_gemm_tf32_nt", "wg_gemm_tf32_nt256"]:
        row(f"{name} {m}x{n}x{k}", bench(lambda: gemm(name, m, n, k, Ar, k, Br, k, C, n)), 2 * m * n * k)
    row(f"round_tf32 both operands {m}x{k}+{n}x{k}", bench(lambda: (round_dev(cp.asarray(A32)), round_dev(cp.asarray(B32)))), 1)
    del A, B, Ad, Bd, C, A32, B32, Ar, Br
for n in [4096, 11008, 14336]:
    k = 32768
    X = cp.random.standard_normal((k, n), dtype=cp.float32)
    Cp = cp.zeros(n * (n + 1) // 2, dtype=cp.float64)
    splits = max(1, (2 * 132) // ((n // 128) * (n // 128 + 1) // 2))
    ms = bench(lambda: syrk(n, k, X, Cp, splits), reps=5)
    row(f"wg_syrk_tf32 (incl. transpose) n={n} k={k} x8 = per 262144 tokens", ms * 8, 8 * float(n) * n * k)
    del X, Cp
print("\nsummary")
for label, ms, tfl in rows:
    print(f"{label:60s} {ms:10.3f} ms {tfl:8.1f} TFLOP/s")
print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
