#!/usr/bin/env python3
"""Checks and times the on-device unstructured mask selection of one column block (issue 8) outside Java, on
the GPU machine: the old 11-launch chain of CudaBackend.selectUnstructuredDevice (-Dsparkprune.cuda.
unstructuredSelect=radix4: unstr_scores, unstr_init, 4 x (unstr_hist + unstr_pick), unstr_mark, unstr_ties,
launched exactly as the backend launches them) against the one cooperative launch that replaces it
(unstr_select_r16: keys in registers, or unstr_select_g: keys in global memory; kernels/src/main/cuda/
unstr_select.cuh, grid and chunk chosen as CudaBackend.selectFused chooses them: see default_launch below).

Checks ("check LABEL: DETAIL ok|FAIL"), each on fresh random inputs (the seed is printed):
- the mask of every new launch equals the old chain's BITWISE over the whole mask buffer (rows x ldm, the
  padding beyond the block's width included: it starts as 7 and must stay 7), and both equal a numpy
  reference (the keys w^2 / U[c,c]^2 in float32, a stable argsort of the uint32 keys, the first k marked);
- after every new launch the kernel's workspace header and histograms are zero again (the kernel cleans up
  after itself: a stale count would corrupt the next block);
- shapes: rows 4096, 11008, 14336 x width 128 (row strides 512, U a 512 x 512 inverse factor, the block at
  column 128), k = n/2 and n/2 + 1 (the backend's prunedPerBlock); all-equal keys; few distinct keys (many
  ties at the threshold); bf16-rounded weights (a checkpoint's first block); 60 % exact zeros (the threshold
  is 0.0: ties among zeros); k = 1, n - 1 and n; width 6 and 100 (strides 133 and 7), 1 row; and the grid
  forced small (1, 2, 7 blocks: the global-memory variant, several blocks straddling nothing or everything).

Times ("time ..." lines, CUDA events; the selection does not change W, so nothing is restored): for rows 4096, 11008, 14336 x width 128, random W, k = n/2 + 1:
- "sync": the median of 50 single selections, each between its own pair of events (stream idle before);
- "back-to-back": 50 selections between one pair of events, divided by 50 (as in a solve, where the next
  block's launches queue behind this one's); also "x112 blocks" (a 4096 x 14336 weight has 112 blocks);
- both include the host's launch cost (CuPy's, a few us per launch like JCuda's: the old chain pays it 11
  times, which is the point);
- for the old chain, the new default, and the new kernel at other grid sizes / the other variant (so the
  default can be retuned from this output alone); plus all-equal keys (the slowest, tie-walking case).

Each part runs in a child process of its own with a time limit (a trap or a failed launch poisons the CUDA
context; the kernel itself traps instead of waiting over ~2 s at a grid barrier), so the probe never hangs.

Build the cubin first, in the repository root (the pom's nvcc flags for sm_90; .probe/ is ignored by git,
so the run must carry it):

  mkdir -p .probe
  nvcc --cubin -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 \\
       -o .probe/sparkprune_sm90.cubin kernels/src/main/cuda/sparkprune.cu

Usage: python3 tools/device/select_probe.py .probe/sparkprune_sm90.cubin
Exit status 1 when a check fails or a child process dies. About a minute on an H200.
"""
import subprocess, sys, time

US_THREADS = 512        # unstr_select.cuh
US_KPT = 16
US_BINS, US_LAST, US_HDR = 4096, 256, 4
CLEAN_WORDS = US_HDR + 2 * US_BINS + US_LAST   # must be zero between launches (blockHist need not)


def ws_words(grid):
    return CLEAN_WORDS + grid * US_LAST


def chunk_of(n, grid):
    """CudaBackend.selectChunk: ceil(n / grid) rounded up to a multiple of 32."""
    c = -(-n // grid)
    return -(-c // 32) * 32


class Ctx:
    def __init__(self, cubin):
        import numpy as np
        import cupy as cp
        self.np, self.cp = np, cp
        m = cp.RawModule(path=cubin)
        self.f = {n: m.get_function(n) for n in ("unstr_scores", "unstr_init", "unstr_hist", "unstr_pick", "unstr_mark",
                                                 "unstr_ties", "unstr_select_r16", "unstr_select_g")}
        self.sms = cp.cuda.runtime.getDeviceProperties(0)["multiProcessorCount"]
        self.max_grid = {}
        for v in ("unstr_select_r16", "unstr_select_g"):
            k = self.f[v]
            try:
                per_sm = cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(k.kernel.ptr, US_THREADS, 0)
            except Exception:
                try:
                    per_sm = cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(k.ptr, US_THREADS, 0)
                except Exception as e:   # an older CuPy: __launch_bounds__(512, 2)
                    print(f"note: occupancy query failed for {v} ({e}); assuming 2 blocks per SM", flush=True)
                    per_sm = 2
            self.max_grid[v] = per_sm * self.sms
            try:
                regs = k.num_regs
            except Exception:
                regs = "?"
            print(f"info {v}: {regs} registers, {per_sm} blocks of {US_THREADS} per SM, {self.sms} SMs, max grid "
                  f"{self.max_grid[v]}", flush=True)
        self.cooperative = True
        self.ws = cp.zeros(ws_words(max(self.max_grid.values()) + 8), cp.uint32)
        self.state = cp.zeros(4 + 256, cp.uint32)

    def default_launch(self, n):
        """CudaBackend.selectFused's choice: the register variant when its largest grid (capped at one block per
        512 keys) gives each block at most 16 x 512 keys, else the global-memory variant."""
        g = max(1, min(self.max_grid["unstr_select_r16"], -(-n // US_THREADS)))
        if chunk_of(n, g) <= US_KPT * US_THREADS:
            return "unstr_select_r16", g
        return "unstr_select_g", max(1, min(self.max_grid["unstr_select_g"], -(-n // US_THREADS)))

    def old(self, rows, width, W, woff, ldw, U, uoff, ldu, k, keys, M, ldm):
        """CudaBackend.selectUnstructuredDevice's radix4 chain, launch for launch."""
        np, cp = self.np, self.cp
        i32 = np.int32
        if k <= 0:
            return
        n = rows * width
        blocks = (n + 255) // 256
        st = self.state
        hist = cp.uint64(st.data.ptr + 16)
        self.f["unstr_scores"]((blocks,), (256,), (i32(rows), i32(width), cp.uint64(W.data.ptr + 4 * woff), i32(ldw),
                                                   cp.uint64(U.data.ptr + 4 * uoff), i32(ldu), keys))
        self.f["unstr_init"]((1,), (256,), (st, hist, i32(k)))
        grid = min(4 * self.sms, max(1, blocks))
        for shift in (24, 16, 8, 0):
            self.f["unstr_hist"]((grid,), (256,), (np.int64(n), keys, st, i32(shift), hist))
            self.f["unstr_pick"]((1,), (32,), (st, hist, i32(shift)))
        self.f["unstr_mark"]((blocks,), (256,), (i32(rows), i32(width), keys, st, M, i32(ldm)))
        self.f["unstr_ties"]((1,), (1024,), (i32(rows), i32(width), keys, st, M, i32(ldm)))

    def new(self, rows, width, W, woff, ldw, U, uoff, ldu, k, keys, M, ldm, variant=None, grid=None):
        np, cp = self.np, self.cp
        i32 = np.int32
        if k <= 0:
            return None
        n = rows * width
        if variant is None:
            variant, grid = self.default_launch(n)
        chunk = chunk_of(n, grid)
        args = (i32(rows), i32(width), cp.uint64(W.data.ptr + 4 * woff), i32(ldw), cp.uint64(U.data.ptr + 4 * uoff),
                i32(ldu), i32(k), np.uint32(chunk), keys, M, i32(ldm), self.ws)
        if self.cooperative:
            try:
                self.f[variant]((grid,), (US_THREADS,), args, enable_cooperative_groups=True)
                return variant, grid, chunk
            except TypeError:
                self.cooperative = False
                print("note: this CuPy has no cooperative launch; plain launches (grid <= occupancy: all resident)",
                      flush=True)
        self.f[variant]((grid,), (US_THREADS,), args)
        return variant, grid, chunk


def make_input(np, rng, kind, rows, width, ldw, ldu, i1):
    """W (rows x ldw), U (ldu x ldu; only the block's diagonal U[i1 + c, i1 + c] is read): float32."""
    cols = ldw
    if kind == "equal":
        w = np.full((rows, cols), 0.5, np.float32)
        diag = np.ones(ldu, np.float32)
    elif kind == "few":
        w = (rng.integers(-2, 3, (rows, cols)) * 0.25).astype(np.float32)
        diag = rng.choice(np.array([1.0, 2.0], np.float32), ldu)
    else:
        w = rng.standard_normal((rows, cols), dtype=np.float32)
        diag = (0.5 + rng.random(ldu, dtype=np.float32)).astype(np.float32)
        if kind == "bf16":
            w = (w.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
        elif kind == "zeros":
            w[rng.random((rows, cols)) < 0.6] = 0.0
    u = (rng.standard_normal((ldu, ldu), dtype=np.float32) * 0.01).astype(np.float32)
    u[np.arange(ldu), np.arange(ldu)] = diag
    return w, u


def reference(np, w, u, rows, width, i1, k):
    blk = w[:, i1:i1 + width]
    d = u[np.arange(i1, i1 + width), np.arange(i1, i1 + width)]
    with np.errstate(all="ignore"):
        sc = (blk * blk) / (d * d)[None, :]
        sc = (sc + np.float32(0.0)).astype(np.float32)
    keys = sc.view(np.uint32).ravel()
    order = np.argsort(keys, kind="stable")
    m = np.zeros(rows * width, np.uint8)
    m[order[:min(k, rows * width)]] = 1
    return m.reshape(rows, width)


def checks(cubin):
    ctx = Ctx(cubin)
    np, cp = ctx.np, ctx.cp
    seed = int(time.time() * 1000) % (1 << 32)
    rng = np.random.default_rng(seed)
    print(f"info checks seed {seed}", flush=True)
    failures = []

    def check(label, ok, detail):
        print(f"check {label}: {detail} {'ok' if ok else 'FAIL'}", flush=True)
        if not ok:
            failures.append(label)

    def case(label, kind, rows, width, ks, ldw=None, i1=None, forced=()):
        try:
            if i1 is None:
                i1 = 128 if width == 128 else 1
            ldw = ldw or (512 if width == 128 else width + 7)
            ldu = ldw
            ldm = ldw
            w, u = make_input(np, rng, kind, rows, width, ldw, ldu, i1)
            W, U = cp.asarray(w), cp.asarray(u)
            n = rows * width
            keys = cp.zeros(max(1, n), cp.uint32)
            for k in ks:
                k = min(max(k, 1), n)
                ref = reference(np, w, u, rows, width, i1, k)
                M0 = cp.full((rows, ldm), 7, cp.uint8)
                ctx.old(rows, width, W, i1, ldw, U, i1 * ldu + i1, ldu, k, keys, cp.uint64(M0.data.ptr + i1), ldm)
                m_old = cp.asnumpy(M0)
                ok_old = np.array_equal(m_old[:, i1:i1 + width], ref)
                runs = [(None, None)] + list(forced)
                for variant, grid in runs:
                    M1 = cp.full((rows, ldm), 7, cp.uint8)
                    used = ctx.new(rows, width, W, i1, ldw, U, i1 * ldu + i1, ldu, k, keys, cp.uint64(M1.data.ptr + i1),
                                   ldm, variant, grid)
                    cp.cuda.runtime.deviceSynchronize()
                    m_new = cp.asnumpy(M1)
                    same = np.array_equal(m_old, m_new)
                    ok_ref = np.array_equal(m_new[:, i1:i1 + width], ref)
                    pad = np.concatenate([m_new[:, :i1].ravel(), m_new[:, i1 + width:].ravel()])
                    ok_pad = bool((pad == 7).all())
                    clean = int(cp.count_nonzero(ctx.ws[:CLEAN_WORDS]).item())
                    marked = int(m_new[:, i1:i1 + width].sum())
                    detail = (f"{used[0]} grid {used[1]} chunk {used[2]}, k={k} of n={n}: new == old bitwise "
                              f"{'yes' if same else 'NO'}, old == numpy {'yes' if ok_old else 'NO'}, new == numpy "
                              f"{'yes' if ok_ref else 'NO'}, {marked} marked, padding "
                              f"{'untouched' if ok_pad else 'WRITTEN'}, workspace {'clean' if clean == 0 else f'{clean} words left non-zero'}")
                    check(f"{label} k={k}" + (f" [{variant} grid {grid}]" if variant else ""),
                          same and ok_old and ok_ref and ok_pad and clean == 0 and marked == k, detail)
                    if clean:
                        ctx.ws.fill(0)
        except Exception as ex:  # a failed launch: report, go on (the context may be unusable afterwards)
            check(label, False, f"raised {type(ex).__name__}: {ex}")

    for rows in (4096, 11008, 14336):
        n = rows * 128
        case(f"random {rows}x128", "random", rows, 128, [n // 2, n // 2 + 1])
    n = 4096 * 128
    small = [("unstr_select_g", 1), ("unstr_select_g", 2), ("unstr_select_g", 7), ("unstr_select_g", ctx.sms)]
    r16_ok = [(v, g) for v, g in [("unstr_select_r16", 64), ("unstr_select_r16", ctx.sms)]
              if chunk_of(n, g) <= US_KPT * US_THREADS]
    case("all-equal keys 4096x128", "equal", 4096, 128, [n // 2, n // 3 + 5, 1, n - 1, n], forced=small + r16_ok)
    case("few distinct keys 4096x128", "few", 4096, 128, [n // 2, n // 2 + 1, n // 3, n - 1], forced=small + r16_ok)
    case("bf16-rounded W 4096x128", "bf16", 4096, 128, [n // 2 + 1], forced=small + r16_ok)
    case("60% exact zeros 4096x128", "zeros", 4096, 128, [n // 2, n // 2 + 1], forced=small + r16_ok)
    case("random 4096x128 extreme k", "random", 4096, 128, [1, 2, n - 1, n], forced=small[:2] + r16_ok)
    case("random 14336x128 global variant", "random", 14336, 128, [14336 * 64 + 1],
         forced=[("unstr_select_g", ctx.max_grid["unstr_select_g"]), ("unstr_select_g", 3)])
    case("random 4096x6", "random", 4096, 6, [4096 * 3, 4096 * 3 + 1, 1, 4096 * 6 - 1], forced=small[:3])
    case("few distinct keys 4096x6", "few", 4096, 6, [4096 * 3 + 1], forced=small[:3])
    case("random 11008x100", "random", 11008, 100, [11008 * 50 + 1], forced=small[2:])
    case("few distinct keys 11008x100", "few", 11008, 100, [11008 * 50, 11008 * 50 + 1], forced=small[2:])
    case("random 1x6", "random", 1, 6, [1, 3, 4, 6], forced=[("unstr_select_g", 1), ("unstr_select_r16", 1)])
    case("few distinct keys 37x100", "few", 37, 100, [1850, 1851, 3699], forced=small[:3])
    # a second and third launch on the same workspace with other grids (its cleanliness is what they rely on)
    case("random 11008x128 after other grids", "random", 11008, 128, [11008 * 64 + 1],
         forced=[("unstr_select_g", 5), ("unstr_select_g", ctx.sms)])
    sys.exit(1 if failures else 0)


def timings(cubin):
    ctx = Ctx(cubin)
    np, cp = ctx.np, ctx.cp
    rng = np.random.default_rng(12345)
    reps = 50
    for kind, rows_list in (("random", (4096, 11008, 14336)), ("equal", (4096,)), ("bf16", (4096,))):
        for rows in rows_list:
            width, ldw, i1 = 128, 4096, 256
            n = rows * width
            k = n // 2 + 1
            try:
                w, u = make_input(np, rng, kind, rows, width, ldw, ldw, i1)
                W, U = cp.asarray(w), cp.asarray(u)
                keys = cp.zeros(n, cp.uint32)
                M = cp.zeros((rows, ldw), cp.uint8)
                margs = (rows, width, W, i1, ldw, U, i1 * ldw + i1, ldw, k, keys, cp.uint64(M.data.ptr + i1), ldw)
                dv, dg = ctx.default_launch(n)
                configs = [("old radix4 (11 launches)", lambda: ctx.old(*margs)),
                           (f"new default {dv} grid {dg}", lambda: ctx.new(*margs))]
                for v in ("unstr_select_r16", "unstr_select_g"):
                    for g in sorted({ctx.sms // 2, ctx.sms, 2 * ctx.sms, ctx.max_grid[v]}):
                        g = max(1, min(g, ctx.max_grid[v], -(-n // US_THREADS)))
                        if (v, g) == (dv, dg) or (v == "unstr_select_r16" and chunk_of(n, g) > US_KPT * US_THREADS):
                            continue
                        if any(c[0] == f"new {v} grid {g}" for c in configs):
                            continue
                        configs.append((f"new {v} grid {g}", lambda v=v, g=g: ctx.new(*margs, variant=v, grid=g)))
                for label, run in configs:
                    for _ in range(3):
                        run()
                    cp.cuda.runtime.deviceSynchronize()
                    s, t = cp.cuda.Event(), cp.cuda.Event()
                    ts = []
                    for _ in range(reps):
                        s.record()
                        run()
                        t.record()
                        t.synchronize()
                        ts.append(cp.cuda.get_elapsed_time(s, t) * 1000)
                    s.record()
                    for _ in range(reps):
                        run()
                    t.record()
                    t.synchronize()
                    b2b = cp.cuda.get_elapsed_time(s, t) * 1000 / reps
                    med = float(np.median(ts))
                    print(f"time {kind} rows={rows} width=128 k=n/2+1 {label}: sync {med:.1f} us per block "
                          f"(min {min(ts):.1f}), back-to-back {b2b:.1f} us per block (x112 blocks = "
                          f"{b2b * 112 / 1000:.2f} ms)", flush=True)
                del W, U, keys, M
            except Exception as ex:
                print(f"check timing {kind} rows={rows}: raised {type(ex).__name__}: {ex} FAIL", flush=True)
                sys.exit(1)


def main():
    if len(sys.argv) >= 4 and sys.argv[2] == "--only":
        (checks if sys.argv[3] == "checks" else timings)(sys.argv[1])
        return
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    bad = []
    for part in ("checks", "timings"):
        try:
            p = subprocess.run([sys.executable, sys.argv[0], sys.argv[1], "--only", part], capture_output=True,
                               text=True, timeout=400)
            out, err, rc = p.stdout, p.stderr, p.returncode
        except subprocess.TimeoutExpired as ex:
            out = ex.stdout.decode() if isinstance(ex.stdout, bytes) else (ex.stdout or "")
            err, rc = "timed out after 400 s", -1
        sys.stdout.write(out)
        if rc != 0:
            tail = "\n".join(err.strip().splitlines()[-5:])
            print(f"check {part} child process: exit {rc} {tail} FAIL", flush=True)
            bad.append(part)
    print("FAILED: " + ", ".join(bad) if bad else "all checks passed", flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
