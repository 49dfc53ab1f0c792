"""Run report: summary tables, charts and a self-contained ``report.html``; and run-vs-run comparison."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from bench import tables
from bench.charts import CHARTS, write_charts
from bench.errors import ResultsError
from bench.metrics import HEADLINE_LABELS, HEADLINE_WHY
from bench.recommend import recommendation
from bench.results import calibration_frame, flagged_trials, read_env, read_rows, summary_frame, write_summary


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def build_report(run_dir: str | Path) -> Path:
    """Write summary.csv/md, the charts and report.html into ``run_dir``; return report.html's path."""
    run_dir = Path(run_dir)
    rows = read_rows(run_dir)
    write_summary(run_dir, rows)
    df = summary_frame(rows)
    charts = write_charts(df, calibration_frame(rows), run_dir)
    env = read_env(run_dir)
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else "(missing)"
    flagged = df[flagged_trials(df)] if len(df) else df
    problems = (
        "".join(
            f"<li><b>{html.escape(t.trial)}</b>: {html.escape(str(t.result))}: {html.escape(str(t.error))}</li>"
            for t in flagged.itertuples()
        )
        or "<li>none</li>"
    )
    succeeded = len(df) and (df.status == "ok").any()
    answer = recommendation(df)
    box = (
        f'<p class="what" id="what-to-use">{html.escape(answer)}</p>'
        if succeeded
        else f'<p class="what failed" id="what-to-use">{html.escape(answer)}</p>'
    )
    quality = (
        f"<p>Headline: vs the {HEADLINE_LABELS} labels, because {html.escape(HEADLINE_WHY)}; vs the true labels "
        "beside it.</p>" + tables.html(df, tables.QUALITY, "quality")
        if len(df) and df.ece_given.notna().any()
        else "<p>Not measured: a timing-only run, or no trial succeeded.</p>"
    )
    cpu = env.get("cpu", {})
    env_rows = {
        "CPU": cpu.get("model"),
        "ISA flags": ", ".join(k for k, v in (cpu.get("flags") or {}).items() if v),
        "cores (physical / logical)": f"{env.get('cores_physical')} / {env.get('cores_logical')}",
        "memory (GB)": f"{(env.get('memory_total_bytes') or 0) / 1e9:.1f}",
        "python": env.get("python"),
        "packages": ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v),
        "threads": json.dumps(env.get("threads")),
        "host": env.get("hostname"),
        "GCP machine": " ".join(str(v) for v in (env.get("gcp") or {}).values() if v) or "not on GCP",
        "profile": (env.get("profile") or {}).get("name", "none")
        + (f" ({env['profile']['host_mismatch']})" if (env.get("profile") or {}).get("host_mismatch") else ""),
        "peak GFLOP/s (roofline)": ", ".join(
            f"{k} {v:.0f}" for k, v in ((env.get("peak") or {}).get("gflops") or {}).items() if v
        )
        + f" on {(env.get('peak') or {}).get('threads')} threads",
    }
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>swagbench report {html.escape(run_dir.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }}
th, td {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }}
.scroll {{ overflow-x: auto; }} td {{ white-space: nowrap; }}
.what {{ background: #eef6ee; border-left: 4px solid #55a868; padding: 0.8em; font-size: 15px; }}
.what.failed {{ background: #fbeeee; border-left-color: #c44e52; }}
pre {{ background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 12px; }}
</style></head><body>
<h1>swagbench report: {html.escape(run_dir.name)}</h1>
{box}
<h2>Trials</h2>
<p>Minutes are wall-clock per trial (training is shared and listed apart); speedup = eager fp32 ensemble
minutes / this trial's; spread = (max - min) / median over repeats; fidelity is against the eager fp32 reference
on the same SWAG samples.</p>
{tables.html(df, tables.OVERVIEW, "trials")}
<h2>Minutes per phase</h2>
{tables.html(df, tables.PHASE_TABLE, "phases")}
<h2>Calibration and label-issue detection</h2>
{quality}
<h2>Failed, skipped or INVALID</h2><ul id="problems">{problems}</ul>
<h2>Charts</h2>
{"".join(f"<h3>{CHARTS[k]}</h3>{_img(p)}" for k, p in charts.items())}
<h2>Environment</h2>
<table id="environment">{
        "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in env_rows.items())
    }</table>
<h2>Configuration</h2><pre>{html.escape(config)}</pre>
</body></html>
"""
    out = run_dir / "report.html"
    out.write_text(page)
    return out


def compare(run_a: str | Path, run_b: str | Path) -> str:
    """Markdown: the two runs' config and machine differences first (a ratio means nothing without them), then
    their trials side by side, matched on the trial label (backend, precision and every setting), with B/A
    ratios of minutes, throughput and memory; a trial in one run only is marked so."""
    run_a, run_b = Path(run_a), Path(run_b)
    if run_a.resolve() == run_b.resolve():
        raise ResultsError(f"compare needs two different runs; both are {run_a}")
    a, b = (summary_frame(read_rows(r)) for r in (run_a, run_b))
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


def _differences(run_a: Path, run_b: Path) -> list[str]:
    """``key: A -> B`` for every config setting (trials as a whole) and machine fact that differs."""
    import yaml

    def flat(d: dict, prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    configs = [flat(yaml.safe_load((r / "config.yaml").read_text()) or {}) for r in (run_a, run_b)]
    envs = [read_env(r) for r in (run_a, run_b)]
    machine = [{"cpu": (e.get("cpu") or {}).get("model"), "logical cores": e.get("cores_logical")} for e in envs]
    out = []
    for x, y, ignore in ((configs[0], configs[1], {"name", "results_dir"}), (machine[0], machine[1], set())):
        for key in sorted(set(x) | set(y)):
            if key not in ignore and x.get(key) != y.get(key):
                shown = [f"{len(v)} trials" if key == "trials" else v for v in (x.get(key), y.get(key))]
                out.append(f"{key}: {shown[0]} -> {shown[1]}")
    return out
