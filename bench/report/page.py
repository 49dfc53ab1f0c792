"""report.html: one self-contained page (tables, charts inlined, environment, config) from the report's frames."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import swagbench.bench.report.sections as sections
import swagbench.bench.report.tables as tables
from swagbench.bench.answer.recommend import recommendation
from swagbench.bench.report.charts import CHARTS
from swagbench.bench.report.frames import ReportData

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }
th, td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.scroll { overflow-x: auto; } td { white-space: nowrap; }
.what { background: #eef6ee; border-left: 4px solid #55a868; padding: 0.8em; font-size: 15px; }
.what.failed { background: #fbeeee; border-left-color: #c44e52; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 12px; }
"""


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _answer(data: ReportData) -> str:
    """The recommendation box: green, or red when no trial succeeded."""
    succeeded = len(data.df) and (data.df.status == "ok").any()
    css = "what" if succeeded else "what failed"
    return f'<p class="{css}" id="what-to-use">{html.escape(recommendation(data.df))}</p>'


def _target(data: ReportData) -> str:
    """Which job the answer is for (nothing where it is the run itself) and what ``auto`` chose for it."""
    line = sections.target_line(data.df) if len(data.df) else None
    auto = sections.auto_line(data.rows)
    return (f'<p id="target">{html.escape(line)}</p>' if line else "") + (
        f'<p id="auto">{html.escape(auto)}</p>' if auto else ""
    )


def _issues(data: ReportData) -> str:
    """How many label issues the job found and where they are listed (the job's own output), and what the model's
    BatchNorm layers mean for the numbers."""
    ref = data.reference
    notes = "".join(f'<p class="batchnorm-note">{html.escape(n)}</p>' for n in sections.batchnorm_notes(data.rows))
    if ref is None or ref.n_label_issues_found is None:
        return notes
    return f'<p id="label-issues">{html.escape(sections.issues_line(ref, sections.LABEL_ISSUES_FILE))}</p>{notes}'


def _tables(data: ReportData) -> str:
    out = []
    for section in filter(lambda s: sections.shown(s, data), sections.TABLES):
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        if section is sections.QUALITY and not data.has_quality:
            out.append(f"<p>{html.escape(sections.NO_QUALITY)}</p>")
            continue
        out.append(f"<p>{html.escape(section.note)}</p>{tables.html(data.df, section.columns, section.key)}")
    subset = data.subset
    if len(subset):
        line = sections.subset_line(data.rows)
        out.append(f"<h2>{html.escape(sections.SUBSET.title)}</h2><p>{html.escape(sections.SUBSET.note)}</p>")
        out.append(f'<p id="bn-choice">{html.escape(line)}</p>' if line else "")
        out.append(tables.html(subset, sections.SUBSET.columns, sections.SUBSET.key))
    return "\n".join(out)


def _problems(data: ReportData) -> str:
    items = "".join(
        f"<li><b>{html.escape(t.trial)}</b>: {html.escape(str(t.result))}: {html.escape(str(t.error))}</li>"
        for t in data.flagged.itertuples()
    )
    return f'<h2>{sections.FLAGGED}</h2><ul id="problems">{items or "<li>none</li>"}</ul>'


def environment_rows(env: dict[str, Any]) -> dict[str, Any]:
    """The machine facts the page lists, from env.json."""
    cpu = env.get("cpu", {})
    profile = env.get("profile") or {}
    peak = env.get("peak") or {}
    return {
        "CPU": cpu.get("model"),
        "ISA flags": ", ".join(k for k, v in (cpu.get("flags") or {}).items() if v),
        "cores (physical / logical)": f"{env.get('cores_physical')} / {env.get('cores_logical')}",
        "memory (GB)": f"{(env.get('memory_total_bytes') or 0) / 1e9:.1f}",
        "python": env.get("python"),
        "packages": ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v),
        "threads": json.dumps(env.get("threads")),
        "host": env.get("hostname"),
        "GCP machine": " ".join(str(v) for v in (env.get("gcp") or {}).values() if v) or "not on GCP",
        "profile": profile.get("name", "none")
        + (f" ({profile['host_mismatch']})" if profile.get("host_mismatch") else ""),
        "peak GFLOP/s (roofline)": ", ".join(f"{k} {v:.0f}" for k, v in (peak.get("gflops") or {}).items() if v)
        + f" on {peak.get('threads')} threads",
    }


FIRST_CHART = "time_by_phase"


def render(data: ReportData, charts: dict[str, Path]) -> str:
    """The whole page."""
    env = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in environment_rows(data.env).items()
    )
    # the answer's picture first: minutes at the target beside the proxy's, phase by phase
    first = "".join(f'<h3 id="first-chart">{CHARTS[k]}</h3>{_img(p)}' for k, p in charts.items() if k == FIRST_CHART)
    figures = "".join(f"<h3>{CHARTS[k]}</h3>{_img(p)}" for k, p in charts.items() if k != FIRST_CHART)
    name = html.escape(data.name)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>swagbench report {name}</title>
<style>{STYLE}</style></head><body>
<h1>swagbench report: {name}</h1>
{_answer(data)}
{_target(data)}
{first}
{_issues(data)}
{_tables(data)}
{_problems(data)}
<h2>More charts</h2>
{figures}
<h2>Environment</h2>
<table id="environment">{env}</table>
<h2>Configuration</h2><pre>{html.escape(data.config_text)}</pre>
</body></html>
"""
