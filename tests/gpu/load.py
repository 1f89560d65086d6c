#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""GPU work for tests/gpu: `busy SECONDS` runs bf16 matrix products and prints
the rate; `check LIMIT_MIB` prints what CUDA shows the process and whether
allocations below and above LIMIT_MIB succeed."""
import sys
import time

import torch


def busy(seconds):
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    start = time.time()
    n = 0
    while time.time() - start < seconds:
        for _ in range(10):
            a @ b
        torch.cuda.synchronize()
        n += 10
    took = time.time() - start
    print(f"busy start={start:.1f} end={start + took:.1f} tflops={n * 2 * 8192 ** 3 / took / 1e12:.0f}", flush=True)


def check(limit_mib):
    p = torch.cuda.get_device_properties(0)
    free, total = torch.cuda.mem_get_info(0)
    print(f"cuda name={p.name} sms={p.multi_processor_count} total_mib={total >> 20} free_mib={free >> 20}", flush=True)
    for what, mib in [("below", limit_mib // 2), ("above", limit_mib * 6 // 5)]:
        try:
            x = torch.empty(mib << 20, dtype=torch.uint8, device="cuda")
            x.fill_(1)
            torch.cuda.synchronize()
            print(f"alloc_{what} {mib} MiB ok", flush=True)
            del x
        except torch.OutOfMemoryError:
            print(f"alloc_{what} {mib} MiB oom", flush=True)
        except RuntimeError as e:
            print(f"alloc_{what} {mib} MiB error {str(e).splitlines()[0]}", flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    if sys.argv[1] == "busy":
        busy(float(sys.argv[2]))
    else:
        check(int(sys.argv[2]))
