#!/usr/bin/env python3
"""Checks and times the fused SparseGPT block kernels (issue 8) outside Java, on the GPU machine.

Every lane-per-row variant of kernels/src/main/cuda/sparsegpt_lanes.cuh (sparsegpt_block_l4, _l8, _l16,
_l8r2, _l16r2) and the thread-per-row sparsegpt_block_rows are compared BITWISE with sparsegpt_block
(the warp-per-row kernel whose operation order the CPU backend shares) on fresh random inputs: W, U
upper triangular with a positive diagonal (garbage below it and in the stride padding), pre-selected
masks, 2:4 and 4:8, 4- and 8-bit grids per row and per group (32, 64, 25), rows that are no multiple
of the thread-block size, width 128 and shorter last blocks (100, 104), row strides larger than the
width. Compared: the whole W, Err, mask, codes, scale and zero buffers (padding included) and the
fp64 losses. Then every kernel is timed (median of 30 launches, CUDA events around each launch, W and
the mask restored between launches outside the timed span) for one 128-column block at rows = 4096,
11008 and 14336, 2:4 and pre-selected (unstructured) masks, at several thread-block sizes.

Each kernel's checks and timings run in a child process of their own, so a trap or a failed launch
(which poisons the CUDA context) costs only that kernel's lines.

Build the cubin first, in the repository root (the pom's nvcc flags for sm_90; .probe/ is ignored by
git, so the run must carry it):

  mkdir -p .probe
  nvcc --cubin -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 \\
       -o .probe/sparkprune_sm90.cubin kernels/src/main/cuda/sparkprune.cu

Usage: python3 tools/device/block_probe.py .probe/sparkprune_sm90.cubin
Prints "check LABEL: DETAIL ok|FAIL" and "time ..." lines; exit status 1 when a check fails (or a
child process dies). Under a minute on an H200.
"""
import subprocess, sys, time

SB_W = 128
BLOCK_SMEM = (128 * 128 + 16 * 128) * 4          # CudaBackend.BLOCK_SMEM (16 warps)
SL_UPACK = SB_W * (SB_W + 1) // 2
def sl_smem(rows_per_block):                      # SL_SMEM in sparsegpt_lanes.cuh
    return 4 * (SL_UPACK + SB_W) + rows_per_block * (4 * (SB_W + 1) + SB_W + 4)
def sr_smem(T):                                   # SR_SMEM in sparkprune.cu
    return 4 * 128 * 128 + 2 * 4 * 128 * (T + 1) + 2 * 128 * (T + 1)
LANES = {"sparsegpt_block_l4": (4, 1), "sparsegpt_block_l8": (8, 1), "sparsegpt_block_l16": (16, 1),
         "sparsegpt_block_l8r2": (8, 2), "sparsegpt_block_l16r2": (16, 2)}
KERNELS = ["sparsegpt_block"] + ["sparsegpt_block_rows"] + list(LANES)


def lanes_threads(rows, sms, L, R):
    """CudaBackend.laneThreads: threads per block of a lane kernel."""
    per_sm = -(-rows // sms)
    threads_per_sm = -(-per_sm // R) * L
    k = -(-threads_per_sm // 512)
    return max(32, min(512, -(-(-(-threads_per_sm // k)) // 32) * 32))


def child(cubin, name):
    import numpy as np
    import cupy as cp
    i32, f32 = np.int32, np.float32
    mod = cp.RawModule(path=cubin)
    ref = mod.get_function("sparsegpt_block")
    ref.max_dynamic_shared_size_bytes = BLOCK_SMEM
    kern = mod.get_function(name)
    if name in LANES:
        L, R = LANES[name]
        kern.max_dynamic_shared_size_bytes = sl_smem(R * 512 // L)
    elif name == "sparsegpt_block_rows":
        L, R = 1, 1
        kern.max_dynamic_shared_size_bytes = sr_smem(128)
    else:
        L, R = 32, 1
        kern.max_dynamic_shared_size_bytes = BLOCK_SMEM
    rng = np.random.default_rng(int(time.time() * 1000) % (1 << 32))
    failures = []

    def check(label, ok, detail):
        print(f"check {name} {label}: {detail} {'ok' if ok else 'FAIL'}", flush=True)
        if not ok:
            failures.append(label)

    def launch(k, T, rows, width, W, ldw, U, ldu, E, lde, M, ldm, nmKeep, nmGroup, qbits, qsym, qgroup, S, Z, ldq,
               C, ldc, Ls, woff=0, uoff=0, moff=0):
        args = (i32(rows), i32(width), cp.uint64(W.data.ptr + 4 * woff), i32(ldw), cp.uint64(U.data.ptr + 4 * uoff),
                i32(ldu), cp.uint64(E.data.ptr), i32(lde), cp.uint64(M.data.ptr + moff), i32(ldm), i32(nmKeep),
                i32(nmGroup), i32(qbits), i32(qsym), i32(qgroup), cp.uint64(S.data.ptr), cp.uint64(Z.data.ptr),
                i32(ldq), cp.uint64(C.data.ptr), i32(ldc), cp.uint64(Ls.data.ptr))
        if k is ref or (k is kern and L == 32):
            k(((rows + T // 32 - 1) // (T // 32),), (T,), args, shared_mem=BLOCK_SMEM)
        elif L == 1:
            k(((rows + T - 1) // T,), (T,), args, shared_mem=sr_smem(T))
        else:
            rpb = R * T // L
            k(((rows + rpb - 1) // rpb,), (T,), args, shared_mem=sl_smem(rpb))

    def case(label, rows, width, nmKeep, nmGroup, qbits, qsym, qgroup, premask, T, pad=0):
        if nmGroup > 0 and L > 1 and L < 32 and L % nmGroup != 0:
            print(f"check {name} {label}: skip (N:M group {nmGroup} needs L % M == 0, L = {L}: CudaBackend uses "
                  f"sparsegpt_block there)", flush=True)
            return
        try:
            ld = width + pad
            w = rng.standard_normal((rows, ld), dtype=np.float32)
            u = rng.standard_normal((width, ld), dtype=np.float32)   # garbage below the diagonal and in the padding
            u[:, :width] = np.where(np.triu(np.ones((width, width), bool)), u[:, :width] * 0.05, u[:, :width])
            u[np.arange(width), np.arange(width)] = 0.5 + rng.random(width, dtype=np.float32)
            m0 = (rng.random((rows, ld)) < 0.5).astype(np.uint8) if premask else np.zeros((rows, ld), np.uint8)
            if premask:
                m0[rng.random((rows, ld)) < 0.05] = 2   # any non-zero byte means pruned and must stay as given
            groups = 1 if qgroup == 0 else width // qgroup
            ldq = groups + (1 if pad else 0)
            s0 = rng.random((rows, ldq), dtype=np.float32) * 0.1 + 0.01
            z0 = np.full((rows, ldq), 7.0 if qbits == 4 else 127.0, np.float32)
            outs = []
            for k in (ref, kern):
                W, U, M = cp.asarray(w), cp.asarray(u), cp.asarray(m0)
                E = cp.full((rows, ld), cp.nan, cp.float32)
                S, Z = cp.asarray(s0), cp.asarray(z0)
                C = cp.full((rows, ld), 99, cp.int8)
                Ls = cp.asarray(np.full(rows, 0.5))
                launch(k, 512 if k is ref else T, rows, width, W, ld, U, ld, E, ld, M, ld, nmKeep, nmGroup, qbits, qsym,
                       qgroup, S, Z, ldq, C, ld, Ls)
                cp.cuda.runtime.deviceSynchronize()
                outs.append([cp.asnumpy(a) for a in (W, E, M, S, Z, C, Ls)])
            diff = [n for n, a, b in zip("W Err mask scale zero codes loss".split(), outs[0], outs[1])
                    if not np.array_equal(a.view(np.uint8), b.view(np.uint8))]
            nerr = int(np.isnan(outs[1][1][:, :width]).sum())
            check(label, not diff and nerr == 0, "bitwise W/Err/mask/scales/zeros/codes/loss vs sparsegpt_block"
                  + (" differ: " + ",".join(diff) if diff else "") + (f", {nerr} Err entries unwritten" if nerr else ""))
        except Exception as ex:  # a failed launch: report, go on (the context may be unusable afterwards)
            check(label, False, f"raised {type(ex).__name__}: {ex}")

    Ts = [512, 256, 96] if L not in (1, 32) else ([128, 96, 64] if L == 1 else [512])
    sms = cp.cuda.Device().attributes["MultiProcessorCount"]
    if name != "sparsegpt_block":
        for T in Ts:
            case(f"2:4, 1000 rows, T={T}", 1000, 128, 2, 4, 0, 0, 0, False, T)
        T = Ts[-1]
        case(f"2:4, 77 rows, width 100, ld 128, T={T}", 77, 100, 2, 4, 0, 0, 0, False, T, pad=28)
        case(f"4:8, 300 rows, width 104, ld 133, T={T}", 300, 104, 4, 8, 0, 0, 0, False, T, pad=29)
        case(f"pre-selected mask, 515 rows, width 100, ld 117, T={T}", 515, 100, 0, 0, 0, 0, 0, True, T, pad=17)
        case(f"pre-selected mask, 4099 rows, width 128, T={Ts[0]}", 4099, 128, 0, 0, 0, 0, 0, True, Ts[0])
        case(f"2:4 + int4 per-row grid, 700 rows, T={T}", 700, 128, 2, 4, 4, 0, 0, False, T)
        case(f"4:8 + int4 asymmetric groups of 32, 300 rows, ld 140, T={T}", 300, 128, 4, 8, 4, 0, 32, False, T, pad=12)
        case(f"2:4 + int4 asymmetric groups of 25, width 100, T={T}", 333, 100, 2, 4, 4, 0, 25, False, T)
        case(f"int8 symmetric groups of 64, pre-selected mask, 129 rows, ld 131, T={T}", 129, 128, 0, 0, 8, 1, 64, True,
             T, pad=3)
        case(f"int8 per-row symmetric grid, pre-selected mask, width 100, T={T}", 257, 100, 0, 0, 8, 1, 0, True, T)
        case(f"2:4 + int8 asymmetric groups of 64, 1 row, T={T}", 1, 128, 2, 4, 8, 0, 64, False, T)

    # ---- timing: one 128-column block of a rows x 4096 tensor
    for rows in (4096, 11008, 14336):
        cols = 4096
        try:
            W0 = cp.random.standard_normal((rows, cols), dtype=cp.float32)
            U = cp.triu(cp.random.standard_normal((SB_W, cols), dtype=cp.float32) * 0.01)
            U[cp.arange(SB_W), cp.arange(SB_W)] = 1.0 + cp.random.random(SB_W, dtype=cp.float32)
            Mp = (cp.random.random((rows, cols)) < 0.5).astype(cp.uint8)
            Mz = cp.zeros((rows, cols), cp.uint8)
            E = cp.empty((rows, SB_W), cp.float32); Ls = cp.zeros(rows, cp.float64)
            nul = cp.zeros(8, cp.float32); nulc = cp.zeros(8, cp.int8)
            W = W0.copy(); M = Mz.copy()
            for pat, (keep, grp, Msrc) in {"2:4": (2, 4, Mz), "pre-selected": (0, 0, Mp)}.items():
                auto = lanes_threads(rows, sms, L, R) if L not in (1, 32) else None
                for T in Ts + ([auto] if auto and auto not in Ts else []):
                    ts = []
                    s, t = cp.cuda.Event(), cp.cuda.Event()
                    for rep in range(31):
                        cp.copyto(W, W0); cp.copyto(M, Msrc)
                        s.record()
                        launch(kern, T, rows, SB_W, W, cols, U, cols, E, SB_W, M, cols, keep, grp, 0, 0, 0, nul, nul, 1,
                               nulc, cols, Ls)
                        t.record(); t.synchronize()
                        if rep > 0:
                            ts.append(cp.cuda.get_elapsed_time(s, t))
                    med = float(np.median(ts)) * 1000
                    print(f"time {name} rows={rows} width=128 {pat} T={T}{' (CudaBackend)' if T == auto else ''}: "
                          f"{med:.1f} us per block "
                          f"(x32 blocks = {med * 32 / 1000:.2f} ms)", flush=True)
            del W0, U, Mp, Mz, E, W, M
        except Exception as ex:
            check(f"timing rows={rows}", False, f"raised {type(ex).__name__}: {ex}")
    sys.exit(1 if failures else 0)


def main():
    if len(sys.argv) >= 4 and sys.argv[2] == "--only":
        child(sys.argv[1], sys.argv[3])
        return
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    bad = []
    for name in KERNELS:
        p = subprocess.run([sys.executable, sys.argv[0], sys.argv[1], "--only", name], capture_output=True, text=True,
                           timeout=300)
        sys.stdout.write(p.stdout)
        if p.returncode != 0:
            tail = "\n".join(p.stderr.strip().splitlines()[-3:])
            if "FAIL" not in p.stdout or tail:
                print(f"check {name} child process: exit {p.returncode} {tail} FAIL", flush=True)
            bad.append(name)
    print("FAILED: " + ", ".join(bad) if bad else "all checks passed", flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
