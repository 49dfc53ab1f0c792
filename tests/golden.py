"""A fixed small run whose outputs are pinned (tests/fixtures/golden): refactors must leave them bit-identical.

``python -m tests.golden write`` regenerates the fixture (only when results are *meant* to change, saying why in
the commit); ``tests/test_golden.py`` reruns the same run and compares every trial's member probabilities, label
issues, label quality and metrics with the stored ones.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "golden"
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


def machine() -> dict[str, str]:
    """What bit-identity depends on besides the code: the CPU and torch."""
    import torch

    from swagbench.bench.measure.environment import cpu_info

    return {"cpu": cpu_info().get("model") or platform.processor(), "torch": torch.__version__}


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


def write() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        arrays, metrics = outputs(run(Path(tmp)))
    FIXTURE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE / "arrays.npz", **{k.replace("/", "__"): v for k, v in arrays.items()})
    (FIXTURE / "metrics.json").write_text(json.dumps({"machine": machine(), "trials": metrics}, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["write"]:
        sys.exit("usage: python -m tests.golden write")
    write()
