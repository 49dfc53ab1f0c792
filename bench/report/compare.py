"""``swagbench compare A B``: two runs side by side, their differences in config and machine first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swagbench.bench.errors import ResultsError
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.record.rundir import RunDir
from swagbench.bench.report.frames import summary_frame


def compare(run_a: str | Path, run_b: str | Path) -> str:
    """Markdown: the two runs' config and machine differences first (a ratio means nothing without them), then
    their trials side by side, matched on the trial label (backend, precision and every setting), with B/A
    ratios of minutes, throughput and memory; a trial in one run only is marked so."""
    run_a, run_b = RunDir(run_a), RunDir(run_b)
    if run_a.path.resolve() == run_b.path.resolve():
        raise ResultsError(f"compare needs two different runs; both are {run_a.path}")
    a, b = (_frame(r) for r in (run_a, run_b))
    diffs = _differences(run_a, run_b)
    parts = [f"# swagbench compare\n\nA: {run_a.name}\nB: {run_b.name}\n", "## Differences (A -> B)\n"]
    parts += [f"- {d}" for d in diffs] or ["- none in config or machine"]
    if diffs:
        parts.append("\nRatios compare unlike runs: read them with these differences in mind.")
    metrics = ["ensemble_min", "img_per_s", "peak_rss_gb", "ece_given", "validity"]
    frames = [df.assign(label=df.trial.str.split("-", n=1).str[1])[["label", *metrics]] for df in (a, b)]
    merged = frames[0].merge(frames[1], on="label", how="outer", suffixes=(" A", " B"), indicator="in")
    merged["in"] = merged["in"].map({"both": "A and B", "left_only": "A only", "right_only": "B only"})
    for m in ("ensemble_min", "img_per_s", "peak_rss_gb"):
        merged[f"{m} B/A"] = merged[f"{m} B"] / merged[f"{m} A"]
    table = merged.astype(object).where(merged.notna(), None)
    parts += ["\n## Trials\n", table.to_markdown(index=False, floatfmt=".4g", missingval="")]
    return "\n".join(parts) + "\n"


def _differences(run_a: RunDir, run_b: RunDir) -> list[str]:
    """``key: A -> B`` for every config setting (trials as a whole) and machine fact that differs."""

    def flat(d: dict, prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    configs = [flat(r.config_dict()) for r in (run_a, run_b)]
    envs = [r.read_env() for r in (run_a, run_b)]
    machine = [{"cpu": (e.get("cpu") or {}).get("model"), "logical cores": e.get("cores_logical")} for e in envs]
    out = []
    for x, y, ignore in ((configs[0], configs[1], {"name", "results_dir"}), (machine[0], machine[1], set())):
        for key in sorted(set(x) | set(y)):
            if key not in ignore and x.get(key) != y.get(key):
                shown = [f"{len(v)} trials" if key == "trials" else v for v in (x.get(key), y.get(key))]
                out.append(f"{key}: {shown[0]} -> {shown[1]}")
    return out


def _frame(run: RunDir):
    """The run's summary frame; a run without one readable row is one error (its damaged lines counted)."""
    import sys

    warnings: list[str] = []
    rows = read_rows(run, warn=warnings.append)
    if not rows:
        raise ResultsError(
            f"{run.path} has no readable trial row ({len(warnings)} damaged line(s) in {run.rows_path.name}); "
            "pass another run"
        )
    for line in warnings:
        print(line, file=sys.stderr)
    return summary_frame(rows)
