"""PNG charts of a run's summary (matplotlib, Agg). Each function writes one file and returns its path."""

from __future__ import annotations

import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from swagbench.bench.answer.projection import PROJECTED_PHASES  # noqa: E402
from swagbench.bench.measure.timing import PHASES  # noqa: E402

# One colour per backend in every chart; unknown (third-party) backends get a stable extra colour.
BACKEND_COLOURS = {
    "eager": "#4c72b0",
    "torchscript": "#dd8452",
    "inductor": "#55a868",
    "onnxruntime": "#c44e52",
    "openvino": "#8172b3",
    "ipex": "#937860",
}
_EXTRA = ["#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"]
# Phase colours from the Okabe-Ito palette (distinct for colour-blind readers too): no two phases share a hue.
PHASE_COLOURS = dict(
    zip(PHASES, ["#F0E442", "#56B4E9", "#D55E00", "#CC79A7", "#999999", "#0072B2", "#009E73"], strict=True)
)  # sample yellow, data sky blue, bn_update vermillion, prepare purple, warm-up grey, predict blue, CL green
# Marker per precision, filled for contiguous and hollow for channels_last, in the speed-vs-quality chart.
PRECISION_MARKERS = {"fp32": "o", "bf16": "s", "int8": "^"}
# Every chart of the report: file stem -> title on the page (write_charts draws them in this order).
CHARTS = {
    "time_by_phase": "Minutes by phase: your job, projected, beside this run, measured",
    "peak_memory": "Peak memory per trial",
    "calibration_vs_samples": "Calibration vs number of SWAG samples",
    "speed_vs_quality": "Speed vs quality",
    "scaling": "Throughput scaling",
    "bn_subset": "BatchNorm from a subset: calibration and label issues against images per fold",
}


def backend_colour(backend: str) -> str:
    return BACKEND_COLOURS.get(backend) or _EXTRA[zlib.crc32(backend.encode()) % len(_EXTRA)]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _label(row) -> str:
    """The trial's name, with its result in brackets when it failed, was skipped or is INVALID, or with the precision
    the job machine lacks (``target.isa``) when it is never recommended for that reason."""
    if row.status != "ok" or row.validity == "INVALID":
        return f"{row.trial}  [{row.result}]"
    lacks = getattr(row, "target_lacks", None)
    return f"{row.trial}  [target lacks {lacks}]" if isinstance(lacks, str) else row.trial


def _empty(path: Path, title: str, message: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    return _save(fig, path)


def _nothing_succeeded(df: pd.DataFrame) -> bool:
    return df.empty or not (df.status == "ok").any()


NO_TRIAL = "No trial succeeded: nothing to plot. Each trial's error is in summary.md and the report."


def recommended_trial(df: pd.DataFrame) -> str | None:
    """The trial the answer recommends (the fastest VALID one at the target), None when there is none."""
    from swagbench.bench.answer.recommend import ranked

    valid = ranked(df)
    return None if valid.empty else valid.trial.iloc[0]


def at_target(df: pd.DataFrame) -> bool:
    """Whether the run answers for a target size other than its own (then charts show both)."""
    return bool(df.target_min.notna().any() and (df.target_size != df.run_size).any()) if "target_min" in df else False


def _trial_axis(ax, df: pd.DataFrame, best: str | None) -> None:
    """Trial names down the y axis in backend colours, the recommended one starred and bold."""
    labels = [("\u2605 " if r.trial == best else "") + _label(r) for r in df.itertuples()]
    ax.set_yticks(range(len(df)), labels)
    for tick, row in zip(ax.get_yticklabels(), df.itertuples(), strict=True):
        tick.set_color(backend_colour(row.backend))
        if row.trial == best:
            tick.set_fontweight("bold")
    ax.invert_yaxis()


def _phase_bars(ax, df: pd.DataFrame, phases: dict[str, str], best: str | None) -> None:
    """Stacked bars of ``phases`` (column -> legend label) per trial, each bar's total written at its end."""
    rows = range(len(df))
    left = pd.Series(0.0, index=df.index)
    for column, label in phases.items():
        minutes = df[column].fillna(0.0).astype(float)
        colour = PHASE_COLOURS.get(column.removeprefix("target_").removesuffix("_min"), PHASE_COLOURS["prepare"])
        ax.barh(rows, minutes, left=left, color=colour, label=label)
        left += minutes
    for i, (total, row) in enumerate(zip(left, df.itertuples(), strict=True)):
        if total > 0:
            ax.text(
                total, i, f" {total:.3g}", va="center", fontsize=7, fontweight="bold" if row.trial == best else None
            )
    ax.set_xlim(0, float(left.max()) * 1.18 or 1.0)


def time_by_phase(df: pd.DataFrame, path: Path) -> Path:
    """Stacked horizontal bars of minutes per phase for every trial (failed trials as empty bars): at the target
    size the answer is for, projected phase by phase, beside what this run (the proxy) measured; the recommended
    trial starred."""
    if _nothing_succeeded(df):
        return _empty(path, "Whole-ensemble time by phase", NO_TRIAL)
    best = recommended_trial(df)
    measured = {f"{phase}_min": phase.replace("_", " ") for phase in PHASES}
    if not at_target(df):
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(df) + 1.8))
        _phase_bars(ax, df, measured, best)
        _trial_axis(ax, df, best)
        ax.set_xlabel("wall-clock minutes per trial (training is shared and excluded)")
        ax.set_title("Whole-ensemble time by phase (\u2605 recommended)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="phase")
        return _save(fig, path)
    fig, (target_ax, run_ax) = plt.subplots(1, 2, figsize=(15, 0.45 * len(df) + 2.2), sharey=True)
    projected = {f"target_{phase}_min": phase.replace("_", " ") for phase in PROJECTED_PHASES}
    projected["target_setup_min"] = "prepare + warm-up"
    _phase_bars(target_ax, df, projected, best)
    _phase_bars(run_ax, df, measured, best)
    _trial_axis(target_ax, df, best)
    size = df.target_size.dropna().iloc[0]
    target_ax.set_title(f"Your job, projected: {size}\n(what the answer ranks by; \u2605 recommended)", fontsize=10)
    run_ax.set_title(
        f"This run, measured: {df.run_size.dropna().iloc[0]}\n(one-off costs weigh far more here)", fontsize=10
    )
    target_ax.set_xlabel("projected wall-clock minutes for the ensemble")
    run_ax.set_xlabel("measured wall-clock minutes (training is shared and excluded)")
    run_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="phase")
    fig.suptitle("Whole-ensemble time by phase", fontsize=11)
    return _save(fig, path)


def peak_memory(df: pd.DataFrame, path: Path) -> Path:
    """Per trial, the workers' peak anonymous memory (solid: what would run out) over their peak RSS (light: it
    also counts the memory-mapped data's page cache, which is shared and reclaimable)."""
    if _nothing_succeeded(df) or df.peak_rss_gb.isna().all():
        return _empty(path, "Peak memory per trial", NO_TRIAL)
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(10, 0.4 * len(df) + 2.2))
    colours = [backend_colour(b) for b in df.backend]
    rows = range(len(df))
    ax.barh(rows, df.peak_rss_gb.fillna(0.0), color=colours, alpha=0.3)
    ax.barh(rows, df.peak_anon_gb.fillna(0.0), color=colours)
    ax.set_yticks(rows, [_label(r) for r in df.itertuples()])
    ax.invert_yaxis()
    ax.set_xlabel("the trial's workers together (GB)")
    ax.set_title("Peak memory per trial: anonymous (solid) within RSS (light)")
    key = [
        Patch(color="#555555", label="peak anonymous memory: what would run out"),
        Patch(color="#555555", alpha=0.3, label="peak RSS: also the memory-mapped data's page cache"),
    ]
    ax.legend(handles=key, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    return _save(fig, path)


def _variant(trial: str, backend: str) -> str:
    """A trial's name within its backend's panel (``00-eager-bf16-cl`` -> ``bf16-cl``)."""
    return trial.split("-", 1)[-1].removeprefix(f"{backend}-")


def calibration_vs_samples(cal: pd.DataFrame, df: pd.DataFrame, path: Path) -> Path:
    """Small multiples: one row of panels per backend, one column per measure (ECE and NLL, each against the
    given labels, the headline, and against the true labels where known), every column on one scale; each
    trial of the backend a colour, the eager fp32 reference in grey in every other backend's panels."""
    title = "Calibration vs number of SWAG samples S"
    if cal.empty:
        return _empty(path, title, "No calibration data: timing-only run (not meaningful) or no successful trial.")
    trials = df.set_index("trial")
    cal = cal[cal.trial.isin(trials.index)]
    ref = df[df.is_reference].trial.tolist()
    ref_part = cal[cal.trial == ref[0]].sort_values("samples") if ref else cal.iloc[:0]
    backends = list(dict.fromkeys(trials.loc[cal.trial.unique()].backend))
    names = {"ece": "ECE (15 bins)", "nll": "NLL (nats)"}
    columns = [
        (f"{m}_{labels}", f"{names[m]}, vs {labels} labels")
        for m in names
        for labels in ("given", "true")
        if cal[f"{m}_{labels}"].notna().any()
    ]
    fig, axes = plt.subplots(
        len(backends),
        len(columns),
        figsize=(3.3 * len(columns) + 1.6, 2.3 * len(backends) + 0.9),
        squeeze=False,
        sharex=True,
        sharey="col",
    )
    palette = plt.get_cmap("tab10").colors
    ticks = sorted(int(t) for t in cal.samples.unique())
    for r, (axrow, backend) in enumerate(zip(axes, backends, strict=True)):
        shown = [t for t in cal.trial.unique() if trials.backend[t] == backend]
        for ax, (column, name) in zip(axrow, columns, strict=True):
            if len(ref_part) and ref[0] not in shown:
                ax.plot(ref_part.samples, ref_part[column], color="#bbbbbb", lw=3, label="eager fp32 (reference)")
            for i, trial in enumerate(shown):
                part = cal[cal.trial == trial].sort_values("samples")
                invalid = " [INVALID]" if trials.validity[trial] == "INVALID" else ""
                ax.plot(
                    part.samples,
                    part[column],
                    "-o",
                    color=palette[i % len(palette)],
                    ms=4,
                    label=_variant(trial, backend) + invalid,
                )
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(name, fontsize=9)
        short = backend.rsplit(":", 1)[-1]  # module:Class -> Class
        axrow[0].set_ylabel(short, fontsize=10, color=backend_colour(backend), fontweight="bold")
        axrow[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for ax in axes[-1]:
        ax.set_xlabel("SWAG samples S per fold")
    fig.suptitle(f"{title} (headline: vs the given labels)", fontsize=11)
    return _save(fig, path)


EXACT = 1e-8  # where a timing-only chart's log axis shows outputs identical to eager fp32's


def _speed_axis(ax, speedup: pd.Series) -> None:
    """A log speedup axis (0.5x and 2x equally far from eager fp32) with readable ticks and eager's line."""
    ax.axvline(1.0, color="grey", lw=1, ls=":")
    ax.set_xscale("log")
    low, high = float(speedup.min()), float(speedup.max())
    steps = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 20, 50, 100)
    ticks = [t for t in steps if low / 1.3 <= t <= high * 1.3]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xlim(min(low, 1.0) / 1.25, max(high, 1.0) * 1.25)


def _tolerance_axis(ax) -> None:
    """A log axis of max |dp| with each precision's tolerance drawn (timing-only runs)."""
    from swagbench.bench.answer.fidelity import TOLERANCES

    ax.set_yscale("log")
    for precision, tol in TOLERANCES.items():
        ax.axhline(tol.max_abs_dp, color="grey", lw=0.8, ls="--")
        ax.annotate(
            f"{precision} tolerance",
            (1.0, tol.max_abs_dp),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=7,
            color="grey",
        )
    ax.set_ylabel(f"max |p - p_eager fp32| (lower is better; identical = {EXACT:g})")


def speed_vs_quality(df: pd.DataFrame, path: Path) -> Path:
    """Speedup over eager fp32 vs the change in ECE (given labels) against it, one marker per trial (colour:
    backend; shape: precision; hollow: channels_last; x: INVALID), each in the legend; the recommended trial ringed.
    Where the run answers for a target size, the speedups there (what the answer ranks by) beside the measured ones.
    The quality axis spans at least +-0.01 so that rounding noise does not look like a cliff. Timing-only runs plot
    max |p - p_eager| on a log axis with each precision's tolerance instead."""
    ok = df[(df.status == "ok") & df.speedup.notna()]
    timing_only = not ok.delta_ece.notna().any() if "delta_ece" in ok else True
    metric = "max_abs_dp" if timing_only else "delta_ece"
    ok = ok[ok[metric].notna() | ok.is_reference]
    if ok.empty:
        return _empty(
            path, "Speed vs quality", NO_TRIAL if _nothing_succeeded(df) else "No trial has a quality measure."
        )
    best = recommended_trial(df)
    title = (
        "Speed vs quality (colour: backend; shape: precision o fp32, \u25a0 bf16, \u25b2 int8; hollow: channels_last)"
    )
    if not at_target(df):
        fig, ax = plt.subplots(figsize=(11, 5.2))
        _quality_panel(ax, ok, "speedup", metric, best)
        ax.set_xlabel("whole-ensemble speedup over eager fp32 (right is faster; dotted line = eager fp32)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return _save(fig, path)
    fig, (target_ax, run_ax) = plt.subplots(1, 2, figsize=(16, 5.6), sharey=True)
    _quality_panel(target_ax, ok[ok.target_speedup.notna()], "target_speedup", metric, best)
    both = ok.trial + " (job " + ok.target_speedup.map("{:.2f}x".format) + ", here " + ok.speedup.map("{:.2f}x".format)
    _quality_panel(
        run_ax,
        ok,
        "speedup",
        metric,
        best,
        labels=both + ok.validity.eq("INVALID").map({True: ") [INVALID]", False: ")"}),
    )
    target_ax.set_xlabel(f"speedup at your job's size, projected ({ok.target_size.dropna().iloc[0]})")
    run_ax.set_xlabel(f"speedup this run measured ({ok.run_size.dropna().iloc[0]})")
    target_ax.set_title("Your job (what the answer ranks by; ringed: recommended)", fontsize=10)
    run_ax.set_title("This run (the proxy)", fontsize=10)
    run_ax.set_ylabel("")
    run_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _quality_panel(
    ax, ok: pd.DataFrame, speed: str, metric: str, best: str | None, labels: pd.Series | None = None
) -> None:
    """One speed-vs-quality scatter: x the ``speed`` column, y the quality ``metric``; the ``best`` trial ringed;
    legend ``labels`` per trial (default: its name and speedup)."""
    timing_only = metric == "max_abs_dp"
    for index, row in zip(ok.index, ok.itertuples(), strict=True):
        invalid = row.validity == "INVALID"
        y = 0.0 if row.is_reference else getattr(row, metric)
        if timing_only:
            y = max(y, EXACT)  # a log axis has no 0: identical outputs sit on the floor
        colour = backend_colour(row.backend)
        marker = "X" if invalid else PRECISION_MARKERS.get(row.precision, "D")
        x = getattr(row, speed)
        ax.scatter(
            x,
            y,
            s=80,
            marker=marker,
            facecolors="none" if row.channels_last and not invalid else colour,
            edgecolors=colour,
            linewidths=1.8,
            label=(
                labels[index] if labels is not None else f"{row.trial} ({x:.2f}x)" + (" [INVALID]" if invalid else "")
            )
            + (f" [target lacks {row.target_lacks}]" if isinstance(getattr(row, "target_lacks", None), str) else ""),
        )
        if row.trial == best:
            ax.scatter(x, y, s=420, facecolors="none", edgecolors="black", linewidths=1.2, zorder=3)
            ax.annotate("recommended", (x, y), textcoords="offset points", xytext=(0, 14), ha="center", fontsize=8)
    _speed_axis(ax, ok[speed])
    if timing_only:
        _tolerance_axis(ax)
    else:
        ax.axhline(0.0, color="grey", lw=1)
        span = max(0.01, 1.15 * float(ok[metric].abs().max()))
        ax.set_ylim(-span, span)
        ax.set_ylabel("ECE change vs eager fp32, given labels (below 0 = better calibrated)")
    ax.grid(alpha=0.3)


def scaling(df: pd.DataFrame, path: Path) -> Path:
    """Throughput vs workers x threads and vs batch size, one line per backend x precision x layout,
    when the run swept them (``swagbench sweep``); other settings of a line held at their first value."""
    ok = df[(df.status == "ok") & df.img_per_s.notna()].copy()
    ok["line"] = ok.backend + " " + ok.precision + ok.channels_last.map({True: " cl", False: ""})
    swept = [c for c in ("plan", "batch") if ok.groupby("line")[c].nunique().gt(1).any()]
    if not swept:
        return _empty(
            path,
            "Throughput scaling",
            "This run did not sweep workers x threads or batch size (run 'swagbench sweep').",
        )
    fig, axes = plt.subplots(1, len(swept), figsize=(6 * len(swept), 4), squeeze=False)
    for ax, col in zip(axes[0], swept, strict=True):
        other = "batch" if col == "plan" else "plan"
        for line, part in ok.groupby("line"):
            part = part[(part[other] == part[other].iloc[0]) & (part.members == part.members.iloc[0])]
            if col == "plan":
                part = part.assign(order=part.workers).sort_values("order")
                x = part.plan
            else:
                part = part.sort_values("batch")
                x = part.batch.astype(str)
            backend = line.split(" ")[0]
            style = "--" if line.endswith(" cl") else "-"
            ax.plot(x, part.img_per_s, style, marker="o", color=backend_colour(backend), label=line)
        ax.set_xlabel("workers x threads per worker" if col == "plan" else "batch size")
        ax.set_ylabel("predict throughput, all workers (images/s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_title("Throughput scaling")
    return _save(fig, path)


def bn_subset(subset: pd.DataFrame, path: Path) -> Path:
    """ECE and NLL (given labels) and label-issue Jaccard against full data, against BatchNorm images per fold
    (log axis), one point per ladder size and the full-data reference; each limit drawn around the reference, the
    size ``bn_examples: auto`` chose ringed (``swagbench.bench.report.frames.subset_frame``)."""
    from swagbench.bench.answer.subset import LIMITS

    if subset is None or subset.empty:
        return _empty(
            path,
            "BatchNorm from a subset",
            "No BatchNorm subset ladder in this run (a trial with bn_examples: auto adds one where labels are real).",
        )
    ref = subset[subset.limits == "full data"].iloc[0]
    panels = (
        ("ece_given", "ECE (given labels)", ref.ece_given + LIMITS["max_delta_ece"], "upper limit"),
        ("nll_given", "NLL (given labels)", ref.nll_given + LIMITS["max_delta_nll"], "upper limit"),
        ("issue_jaccard", "label-issue Jaccard vs full data", LIMITS["min_issue_jaccard"], "lower limit"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (column, label, limit, which) in zip(axes, panels, strict=True):
        ax.plot(subset.bn_images, subset[column], "-o", color=BACKEND_COLOURS["eager"])
        ax.axhline(limit, color="#c44e52", ls="--", lw=1, label=f"{which} of auto")
        ax.scatter([ref.bn_images], [ref[column]], s=90, marker="s", color="black", label="full data", zorder=3)
        picked = subset[subset.chosen == "chosen"]
        if len(picked):
            ax.scatter(picked.bn_images, picked[column], s=300, facecolors="none", edgecolors="k", label="auto chose")
        ax.set_xscale("log")
        ax.set_xticks(subset.bn_images, [f"{n:,}" for n in subset.bn_images], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel("BatchNorm images per fold (log)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Eager fp32 ensembles with BatchNorm from a subset, against the full-data one (same SWAG samples)")
    return _save(fig, path)


def write_charts(df: pd.DataFrame, cal: pd.DataFrame, path_of, subset: pd.DataFrame | None = None) -> dict[str, Path]:
    """All report charts (:data:`CHARTS`), each to ``path_of(name)``; returns {chart name: path}."""
    draw = {
        "time_by_phase": lambda path: time_by_phase(df, path),
        "peak_memory": lambda path: peak_memory(df, path),
        "calibration_vs_samples": lambda path: calibration_vs_samples(cal, df, path),
        "speed_vs_quality": lambda path: speed_vs_quality(df, path),
        "scaling": lambda path: scaling(df, path),
        "bn_subset": lambda path: bn_subset(subset, path),
    }
    return {name: draw[name](path_of(name)) for name in CHARTS}
