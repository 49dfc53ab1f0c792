"""A fixed small run whose outputs are pinned (tests/fixtures/golden/<machine class>/): refactors must leave them
bit-identical on the machine class that made them, and within stated tolerances everywhere else.

Bits depend on the CPU (oneDNN and ONNX Runtime pick kernels by instruction set) and torch, so a fixture is kept
per machine class: :func:`machine` is what a class is, the folder name a readable slug of it.
``python -m tests.golden write`` writes (or regenerates) this machine's fixture: for a new machine class, or when
results are *meant* to change (then regenerate every class's fixture you can reach, saying why in the commit).
``tests/test_golden.py`` reruns the same run and compares every trial's member probabilities, BatchNorm statistics,
label issues, label quality and metrics: exactly with this machine's fixture, with tolerances against every other.
"""

from __future__ import annotations

import json
import platform
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "golden"
ARGS = [
    "run",
    "--name",
    "golden",
    "data.source=digits",
    "model=digits_cnn",
    "data.max_examples=160",
    "batch_size=32",
    "ensemble.folds=2",
    "ensemble.samples=2",
    "train.epochs=3",
    "train.swa_start=1",
    "train.batch_size=16",
    "threads=1",
    "posterior_cache=false",
    "ceiling_s=0",
    "trials=[{backend: eager}, {backend: eager, precision: bf16, channels_last: true}, {backend: onnxruntime}]",
]
ARRAYS = ("member_probs.npy", "bn_stats.npy", "label_issues.npy", "label_quality.npy", "probs.npy")
METRICS = ("calibration", "calibration_given", "calibration_vs_samples", "label_issues", "fidelity", "validity")


def machine() -> dict:
    """What bit-identity depends on besides the code: the CPU (model, family and model numbers, the instruction
    sets that pick kernels) and torch."""
    import torch

    from swagbench.bench.measure.environment import cpu_info

    info = cpu_info()
    ids = {}
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() in ("cpu family", "model") and key.strip() not in ids:
                ids[key.strip()] = value.strip()
    except OSError:
        pass
    return {
        "cpu": info.get("model") or platform.processor(),
        "family": ids.get("cpu family"),
        "model": ids.get("model"),
        "flags": sorted(f for f, on in info.get("flags", {}).items() if on),
        "torch": torch.__version__,
    }


def slug(machine: dict) -> str:
    """A folder name for a machine class: ``amd-epyc-f26-m2``."""
    name = re.sub(r"\(r\)|\(tm\)|processor|cpu", "", machine["cpu"].lower())
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    return f"{name}-f{machine.get('family')}-m{machine.get('model')}"


def fixtures() -> dict[str, tuple[dict, Path]]:
    """Every stored fixture: folder name -> (its machine, its folder)."""
    found = {}
    for folder in sorted(p for p in FIXTURES.iterdir() if (p / "metrics.json").is_file()):
        found[folder.name] = (json.loads((folder / "metrics.json").read_text())["machine"], folder)
    return found


def load(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """(arrays by ``<trial>/<file>``, metrics by trial) stored in a fixture folder."""
    with np.load(folder / "arrays.npz") as f:
        arrays = {k.replace("__", "/"): f[k] for k in f.files}
    return arrays, json.loads((folder / "metrics.json").read_text())["trials"]


def run(results_dir: Path) -> Path:
    from swagbench.bench.cli import main

    if main([*ARGS, f"--results-dir={results_dir}"]) != 0:
        raise RuntimeError("the golden run failed")
    (run_dir,) = [p for p in results_dir.iterdir() if (p / "config.yaml").is_file()]
    return run_dir


def outputs(run_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """(arrays by ``<trial>/<file>``, metrics by trial) of a finished golden run."""
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    arrays = {
        f"{r['trial_id']}/{name}": np.load(run_dir / "trials" / r["trial_id"] / name) for r in rows for name in ARRAYS
    }
    metrics = {r["trial_id"]: {k: r.get(k) for k in METRICS} for r in rows}
    return arrays, metrics


def write() -> Path:
    """Run the golden run and store its outputs as this machine class's fixture; returns the folder."""
    with tempfile.TemporaryDirectory() as tmp:
        arrays, metrics = outputs(run(Path(tmp)))
    here = machine()
    folder = FIXTURES / slug(here)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "arrays.npz", **{k.replace("/", "__"): v for k, v in arrays.items()})
    (folder / "metrics.json").write_text(json.dumps({"machine": here, "trials": metrics}, indent=1) + "\n")
    return folder


if __name__ == "__main__":
    if sys.argv[1:] != ["write"]:
        sys.exit("usage: python -m tests.golden write")
    print(f"golden fixture written to {write()}")
