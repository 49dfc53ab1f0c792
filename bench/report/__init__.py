"""Everything that shows a run: the frames built once from its rows (``frames``), and the renderers that read
them: ``markdown`` (summary.md / summary.csv), ``page`` (report.html), ``charts`` (PNGs), ``tables`` (how each
column reads), ``sections`` (every heading) and ``compare`` (run vs run)."""

from __future__ import annotations

from pathlib import Path

from swagbench.bench.record.row_store import read_rows
from swagbench.bench.record.rundir import RunDir
from swagbench.bench.report import charts, markdown, page
from swagbench.bench.report.compare import compare
from swagbench.bench.report.frames import ReportData

__all__ = ["build_report", "compare", "load", "write_summary"]


def load(run_dir: str | Path | RunDir, warn=None) -> ReportData:
    """Read a run's rows, environment and config and build its frames, once."""
    run = RunDir(run_dir)
    return ReportData.of(run, read_rows(run, warn=warn))


def write_summary(run_dir: str | Path | RunDir) -> str:
    """Write summary.csv and summary.md; return the Markdown."""
    return markdown.write(RunDir(run_dir), load(run_dir))


def build_report(run_dir: str | Path | RunDir, data: ReportData | None = None) -> Path:
    """Write summary.csv/md, recommendation.json, the charts and report.html into the run folder; return
    report.html's path."""
    from swagbench.bench.answer.recommend import recommendation_record

    run = RunDir(run_dir)
    data = data or load(run)
    markdown.write(run, data)
    run.write_recommendation(recommendation_record(data.df, data.rows, run.name))
    drawn = charts.write_charts(data.df, data.cal, run)
    run.report_html.write_text(page.render(data, drawn))
    return run.report_html
