"""The report's sections, in order, each with its title and the sentence that says how to read it: summary.md
and report.html both take their headings and wording from here (one source for every table and heading)."""

from __future__ import annotations

from dataclasses import dataclass

import swagbench.bench.report.tables as tables
from swagbench.bench.answer.metrics import HEADLINE_LABELS, HEADLINE_WHY


@dataclass(frozen=True)
class Section:
    """A titled table of the summary frame: ``columns`` (swagbench.bench.report.tables) under ``title``, read by
    ``note``."""

    key: str  # the HTML table's id
    title: str
    note: str
    columns: tuple[str, ...]


TRIALS = Section(
    "trials",
    "Trials",
    "Minutes are wall-clock per trial (training is shared and listed apart); speedup = eager fp32 ensemble minutes "
    "/ this trial's; spread = (max - min) / median over repeats; at target: the same, projected to the job named "
    "above (the recommendation ranks by it); harness share = the part of the BatchNorm pass's and predict's steady "
    "time per image spent outside the runtime's call (reading and normalising each batch, adding its statistics, "
    "softmax), the phases weighted as the target's images per fold x sample; fidelity is against the eager fp32 "
    "reference on the same SWAG samples.",
    tables.OVERVIEW,
)
PHASES = Section(
    "phases",
    "Minutes per phase",
    "Worker-minutes per phase (train is shared by all trials), and when prepare + warm-up are paid (seconds: the "
    "trial's first sample, each further fold's first, every other sample).",
    tables.PHASE_TABLE,
)
QUALITY = Section(
    "quality",
    "Calibration and label-issue detection",
    f"Headline: vs the {HEADLINE_LABELS} labels, because {HEADLINE_WHY}; vs the true labels beside it. Label-issue "
    "detection is scored against the injected truth.",
    tables.QUALITY,
)
MEMORY = Section(
    "memory",
    "Memory",
    "Peaks of the trial's workers together: anonymous memory (what would run out and be OOM-killed) and RSS, which "
    "also counts the page cache of the memory-mapped data and member files (shared, reclaimable); harness: the "
    "parent process's anonymous peak over the run so far.",
    tables.MEMORY,
)
CEILING = Section(
    "ceiling",
    "Against each runtime's own ceiling",
    "Ceilings: the runtime's own throughput with the weights as constants, same precision, layout and threads "
    "(OpenVINO's benchmark_app; ONNX Runtime and eager by an API loop), measured right after the trials: on the "
    "plain eval model at the trial's batch (predict; int8: the model the backend's own quantizer makes, "
    "calibrated once), and on the BatchNorm pass's statistics graph at the BatchNorm batch in the engine and "
    "precision the pass ran in (eager: its train-mode forward). The shares say how much of it the trial's "
    "steady-state per-sample step keeps.",
    tables.CEILING,
)
TABLES = (TRIALS, PHASES, CEILING, MEMORY, QUALITY)
SUBSET = Section(
    "subset",
    "BatchNorm from a subset: the ladder",
    "Eager fp32 with each fold's BatchNorm statistics from a seeded subset of its training images, against the "
    "full-data reference on the same SWAG samples (calibration vs the given labels; issue F1 vs the injected truth "
    "where known). A subset is a fixed number of images per pass, so at the target it saves far more than here "
    "(speedup at target). bn_examples auto takes the smallest size within every limit.",
    tables.SUBSET,
)


def shown(section: Section, data) -> bool:
    """Whether a report shows ``section`` (the ceiling table only where ceilings were measured)."""
    return section is not CEILING or data.has_ceilings


NO_QUALITY = "Not measured: a timing-only run, or no trial succeeded."
FLAGGED = "Failed, skipped or INVALID"
NOTES = "Notes"
RECOMMENDATION = "Recommendation"
LABEL_ISSUES_FILE = "label_issues.csv in this folder"
BY_SAMPLES = (("ece", "ECE"), ("nll", "NLL"), ("brier", "Brier score"))


def by_samples_title(title: str) -> str:
    """Heading of a metric-vs-S table."""
    return f"{title} vs number of SWAG samples S per fold: vs given labels (vs true labels)"


def issues_line(reference, csv_path) -> str:
    """How many label issues the job found (from the reference trial's probabilities) and where they are listed."""
    return (
        f"label issues: {reference.n_label_issues_found} found by confident learning on the reference trial's "
        f"({reference.trial_id}) probabilities; every example, worst label quality first, in {csv_path}"
    )


def workload(first) -> str:
    """One line: the run's data, model and ensemble size, from its first row."""
    line = (
        f"{first.dataset} ({first.n_examples} images), model {first.model}, "
        f"{first.folds} folds x {first.samples} SWAG samples"
    )
    return line + (
        "; timing-only: calibration and label metrics not meaningful" if not first.metrics_meaningful else ""
    )


def batchnorm_notes(rows) -> list[str]:
    """What the model's BatchNorm layers mean for every trial's numbers (no BatchNorm pass, layers that normalise
    each batch with its own statistics, dropout active during the pass), as the trials' workers found them."""
    notes: list[str] = []
    for row in rows:
        for note in (row.bn_update or {}).get("notes", []):
            if note not in notes:
                notes.append(note)
    return [f"BatchNorm: {n}." for n in notes]


def auto_line(rows) -> str | None:
    """What each trial with an option left to ``auto`` chose, with every candidate's cost per (fold, sample) pair at
    the target (``swagbench.bench.answer.auto``); None where no trial had one."""
    chosen = []
    for row in rows:
        auto = row.auto
        if auto:
            costs = " vs ".join(
                f"{name} {c['pair_s_at_target']:.3g} s"
                for name, c in sorted(auto["candidates"].items(), key=lambda item: item[0] != auto["chosen"])
            )
            chosen.append(f"{row.trial_id}: {auto['option']} {auto['chosen']} ({costs})")
    if not chosen:
        return None
    return "Chosen by measurement on each trial's first sample (auto), cheapest per fold x sample at the target: " + (
        "; ".join(chosen) + "."
    )


def subset_line(rows) -> str | None:
    """What a ``bn_examples: auto`` trial chose, with the limits (None where no trial had one)."""
    from swagbench.bench.answer.subset import describe

    choice = next((r.bn_choice for r in rows if r.bn_choice), None)
    if choice is None:
        return None
    limits = choice["limits"]
    return (
        f"{describe(choice)}. Limits against full data: issue Jaccard >= {limits['min_issue_jaccard']}, ECE and NLL "
        f"(given labels) up by at most {limits['max_delta_ece']} and {limits['max_delta_nll']}, issue F1 down by at "
        f"most {limits['max_issue_f1_drop']}."
    )


def target_line(df) -> str | None:
    """Which job the answer is for, and that its minutes are projections (None where the target is the run)."""
    from swagbench.bench.answer.projection import PROJECTION_ERROR

    rows = df[df.target_size.notna()] if "target_size" in df else df.iloc[0:0]
    if rows.empty or rows.target_size.iloc[0] == rows.run_size.iloc[0]:
        return None
    return (
        f"Target: the answer is for a job of {rows.target_size.iloc[0]} (config target:, --target-images/-folds/"
        f"-samples); this run measured {rows.run_size.iloc[0]}. Minutes at the target are projected phase by phase "
        f"from the steady-state costs measured here, good to about +-{PROJECTION_ERROR:.0%} "
        "(docs/answer-and-estimate.md: Estimating your own run)."
    )
