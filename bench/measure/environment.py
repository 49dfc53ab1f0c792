"""What machine and software a run was measured on (written to env.json)."""

from __future__ import annotations

import functools
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
    from swagbench.backends.precisions import cpu_model_and_flags

    model, flags = cpu_model_and_flags()
    return {"model": model or platform.processor() or "unknown", "flags": {f: f in flags for f in CPU_FLAGS}}


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


GCP_METADATA = "http://169.254.169.254/computeMetadata/v1/instance/?recursive=true"


@functools.lru_cache(maxsize=1)
def gcp_metadata(timeout_s: float = 0.3) -> dict[str, Any] | None:
    """Machine type, zone and CPU platform from the GCP metadata server; None off GCP (never an error).

    Asked once per process: the profile check, env.json and the baseline key all need it."""
    import json
    import urllib.request

    request = urllib.request.Request(GCP_METADATA, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            data = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return {
        "machine_type": str(data.get("machineType", "")).rsplit("/", 1)[-1] or None,
        "zone": str(data.get("zone", "")).rsplit("/", 1)[-1] or None,
        "cpu_platform": data.get("cpuPlatform"),
    }


def environment(threads: int) -> dict[str, Any]:
    """Machine, library and thread facts for env.json (``swagbench.bench.run`` adds the profile the run was made
    for)."""
    import psutil

    return {
        "gcp": gcp_metadata(),
        "cpu": cpu_info(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_logical": psutil.cpu_count(logical=True),
        "memory_total_bytes": psutil.virtual_memory().total,
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "threads": {"trial_default": threads, **{k: os.environ.get(k) for k in THREAD_VARS}},
        # oneDNN's instruction-set cap (OpenVINO's and torch's kernels): set, it stands in for a target machine's
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    }
