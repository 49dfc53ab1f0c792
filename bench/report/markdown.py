"""summary.md (and summary.csv): the report as Markdown, from the frames built once (swagbench.bench.report.frames)."""

from __future__ import annotations

from pathlib import Path

import swagbench.bench.report.sections as sections
import swagbench.bench.report.tables as tables
from swagbench.bench.answer.recommend import recommendation
from swagbench.bench.report.frames import ReportData


def render(data: ReportData) -> str:
    """The run's summary as Markdown, ending with the recommendation."""
    df = data.df
    parts = [f"# swagbench run {data.name}", ""]
    if df.empty:
        parts += ["(no trials)", ""]
    else:
        parts += [sections.workload(data.rows[0])]
        parts += [f"\n{note}" for note in sections.batchnorm_notes(data.rows)]
        lines = (sections.target_line(df), sections.auto_line(data.rows))
        parts += [f"\n{line}" for line in lines if line]
        if data.reference is not None and data.reference.n_label_issues_found is not None:
            parts += ["", sections.issues_line(data.reference, sections.LABEL_ISSUES_FILE)]
        for section in filter(lambda s: sections.shown(s, data), sections.TABLES):
            if section is sections.QUALITY and not data.has_quality:
                continue
            parts += ["", f"## {section.title}", "", section.note, "", tables.markdown(df, section.columns)]
        subset = data.subset
        if len(subset):
            line = sections.subset_line(data.rows)
            parts += ["", f"## {sections.SUBSET.title}", "", sections.SUBSET.note, ""]
            parts += [line, ""] if line else []
            parts += [tables.markdown(subset, sections.SUBSET.columns)]
        for title, frame in ((sections.FLAGGED, data.flagged), (sections.NOTES, data.noted)):
            if len(frame):
                parts += ["", f"## {title}", ""]
                parts += [
                    f"- {t.trial}: {t.result}: {t.error}" if title == sections.FLAGGED else f"- {t.trial}: {t.error}"
                    for t in frame.itertuples()
                ]
        for metric, title in sections.BY_SAMPLES if len(data.cal) else ():
            parts += [
                "",
                f"## {sections.by_samples_title(title)}",
                "",
                tables.by_samples(data.cal, metric).to_markdown(index=False, disable_numparse=True),
            ]
    parts += ["", f"## {sections.RECOMMENDATION}", "", recommendation(df)]
    return "\n".join(parts) + "\n"


def write(data: ReportData, csv_path: Path, md_path: Path) -> str:
    """Write summary.csv and summary.md to these paths; return the Markdown."""
    data.df.to_csv(csv_path, index=False)
    text = render(data)
    md_path.write_text(text)
    return text
