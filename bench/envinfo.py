"""What machine and software a run was measured on (written to env.json)."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = (
    "torch",
    "numpy",
    "scikit-learn",
    "cleanlab",
    "safetensors",
    "pandas",
    "onnxruntime",
    "onnx",
    "onnxscript",
    "openvino",
    "nncf",
    "intel-extension-for-pytorch",
)
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "KMP_AFFINITY", "OMP_PROC_BIND")


def cpu_info() -> dict[str, Any]:
    """CPU model and the ISA flags that matter for inference (from /proc/cpuinfo on Linux)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "flags": {f: f in flags for f in CPU_FLAGS}}


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def environment(threads: int) -> dict[str, Any]:
    """Machine, library and thread facts for env.json."""
    import psutil

    return {
        "cpu": cpu_info(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_logical": psutil.cpu_count(logical=True),
        "memory_total_bytes": psutil.virtual_memory().total,
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "threads": {"trial_default": threads, **{k: os.environ.get(k) for k in THREAD_VARS}},
    }
