"""Roofline figures: the model's FLOPs per image and this machine's practical peak.

A trial's achieved GFLOP/s is FLOPs per image x predict throughput; its share of the peak
measured for its precision on the same machine and thread budget says how much room is left.
FLOPs are counted by ``torch.utils.flop_counter`` (a multiply-add counts 2).
"""

from __future__ import annotations

import time
from typing import Any

PEAK_SECONDS = 0.4  # per kernel: long enough to reach steady clocks, short enough for every run


def gflop_per_image(model, example) -> float:
    """GFLOPs of one forward pass of ``model`` on one image shaped like ``example[0]``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(example[:1])
    return counter.get_total_flops() / 1e9


def _rate(fn, flops: float) -> float:
    """Best GFLOP/s of ``fn`` (which does ``flops`` FLOPs) over repeats filling PEAK_SECONDS."""
    fn()  # warm-up: kernel selection, packing
    best, spent = 0.0, 0.0
    while spent < PEAK_SECONDS:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        spent += dt
        best = max(best, flops / dt / 1e9)
    return best


def measure_peak(threads: int) -> dict[str, Any]:
    """Practical peak GFLOP/s per precision with ``threads`` threads: the best of a large matmul and a
    ResNet-style 3x3 convolution (fp32, bf16), and an int8 matmul where torch has one on CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        n = 2048
        kernels: dict[str, float | None] = {}
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
            kernels[f"matmul_{name}"] = _rate(lambda a=a, b=b: torch.mm(a, b), 2 * n**3)
            x = torch.randn(32, 128, 28, 28, dtype=dtype).to(memory_format=torch.channels_last)
            w = torch.randn(128, 128, 3, 3, dtype=dtype).to(memory_format=torch.channels_last)
            conv_flops = 2 * 32 * 128 * 128 * 9 * 28 * 28
            kernels[f"conv3x3_{name}"] = _rate(lambda x=x, w=w: torch.nn.functional.conv2d(x, w, padding=1), conv_flops)
        try:
            a8 = torch.randint(-128, 127, (n, n), dtype=torch.int8)
            kernels["matmul_int8"] = _rate(lambda: torch._int_mm(a8, a8), 2 * n**3)
        except (RuntimeError, AttributeError, NotImplementedError):
            kernels["matmul_int8"] = None  # no int8 GEMM exposed on this CPU build
    finally:
        torch.set_num_threads(before)
    peak = {
        "fp32": max(kernels["matmul_fp32"], kernels["conv3x3_fp32"]),
        "bf16": max(kernels["matmul_bf16"], kernels["conv3x3_bf16"]),
        "int8": kernels["matmul_int8"],
    }
    return {"threads": threads, "gflops": peak, "kernels_gflops": kernels, "seconds_per_kernel": PEAK_SECONDS}


def roofline(gflop: float | None, img_per_s: float | None, precision: str, peak: dict[str, Any] | None) -> dict:
    """Achieved GFLOP/s of a trial's predict phase and its percent of the machine's peak for
    ``precision`` (None where a figure is unknown)."""
    achieved = gflop * img_per_s if gflop and img_per_s else None
    top = (peak or {}).get("gflops", {}).get(precision)
    return {
        "gflop_per_image": gflop,
        "achieved_gflops": achieved,
        "peak_gflops": top,
        "pct_of_peak": 100 * achieved / top if achieved and top else None,
    }
