"""Everything that shows a run: the frames built once from its rows (``frames``), and the renderers that read
them: ``markdown`` (summary.md / summary.csv), ``page`` (report.html), ``charts`` (PNGs), ``tables`` (how each
column reads), ``sections`` (every heading) and ``compare`` (run vs run).

Outputs are written all or nothing: every file is made in a staging folder inside the run folder first and moved
into place only when all of them were made, so a report that fails leaves the previous one as it was."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from swagbench.bench.record.row_store import read_rows
from swagbench.bench.record.rundir import RunDir
from swagbench.bench.report import charts, markdown, page
from swagbench.bench.report.compare import compare
from swagbench.bench.report.frames import ReportData

__all__ = ["build_report", "compare", "load", "write_summary"]


def load(run_dir: str | Path | RunDir, warn=None) -> ReportData:
    """Read a run's rows, environment and config and build its frames, once. With ``warn`` (a run's own report, whose
    resume reruns what is damaged) a torn or damaged row is reported through it and skipped; without (a command that
    rewrites a finished run's outputs) it is refused with a ResultsError naming the line."""
    run = RunDir(run_dir)
    return ReportData.of(run, read_rows(run, warn=warn, strict=warn is None))


@contextlib.contextmanager
def _staged(run: RunDir):
    """``stage(path)`` -> where to write ``path`` for now; on leaving without an error every staged file replaces its
    path (one rename each), on an error none does."""
    with tempfile.TemporaryDirectory(dir=run.path, prefix=".report-") as folder:
        moves: dict[Path, Path] = {}

        def stage(path: Path) -> Path:
            moves[path] = Path(folder) / path.name
            return moves[path]

        yield stage
        for path, staged in moves.items():
            os.replace(staged, path)


def write_summary(run_dir: str | Path | RunDir) -> str:
    """Write summary.csv and summary.md; return the Markdown."""
    run = RunDir(run_dir)
    data = load(run)
    with _staged(run) as stage:
        return markdown.write(data, stage(run.summary_csv), stage(run.summary_md))


def build_report(run_dir: str | Path | RunDir, data: ReportData | None = None) -> Path:
    """Write summary.csv/md, recommendation.json, the charts and report.html into the run folder; return
    report.html's path."""
    from swagbench.bench.answer.recommend import recommendation_record

    run = RunDir(run_dir)
    data = data or load(run)
    with _staged(run) as stage:
        markdown.write(data, stage(run.summary_csv), stage(run.summary_md))
        record = recommendation_record(data.df, data.rows, run.name)
        stage(run.recommendation_json).write_text(json.dumps(record, indent=2))
        drawn = charts.write_charts(data.df, data.cal, lambda name: stage(run.chart(name)), data.subset)
        stage(run.report_html).write_text(page.render(data, drawn))
    return run.report_html
