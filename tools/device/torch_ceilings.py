#!/usr/bin/env python3
"""The ceilings issue 8 compares SparkPrune's GPU kernels against, measured with PyTorch on this GPU:
bf16 and TF32 matrix-product rates (TFLOP/s) at 8192^3 and device-to-device copy bandwidth (GB/s,
bytes read plus bytes written). Random data (not zeros), a warm-up, then the median of CUDA-event timed
repeats. Usage (on the GPU machine): python3 tools/device/torch_ceilings.py [reps=20]
"""
import statistics
import sys

import torch


def timed_ms(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to PyTorch")
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    n = 8192
    rows = []
    for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("tf32", torch.float32, True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        c = torch.empty(n, n, device=dev, dtype=dtype)
        ms = timed_ms(lambda: torch.matmul(a, b, out=c), reps)
        rows.append((f"torch matmul {name} {n}^3", ms, 2.0 * n ** 3 / ms / 1e9, "TFLOP/s"))
        del a, b, c
    torch.backends.cuda.matmul.allow_tf32 = False
    nbytes = 2 * 1024 ** 3  # 2 GiB source
    src = torch.randint(0, 255, (nbytes,), device=dev, dtype=torch.uint8)
    dst = torch.empty_like(src)
    ms = timed_ms(lambda: dst.copy_(src), reps)
    rows.append(("device-to-device copy 2 GiB", ms, 2.0 * nbytes / ms / 1e6, "GB/s"))
    print(f"{'ceiling':<32} {'ms':>10} {'rate':>10}")
    for what, ms, rate, unit in rows:
        print(f"{what:<32} {ms:>10.3f} {rate:>10.1f} {unit}")


if __name__ == "__main__":
    main()
