"""PNG charts of a run's summary (matplotlib, Agg). Each function writes one file and returns its path."""

from __future__ import annotations

import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

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
    "time_by_phase": "Time comparison (minutes, stacked by phase)",
    "peak_memory": "Peak memory per trial",
    "calibration_vs_samples": "Calibration vs number of SWAG samples",
    "speed_vs_quality": "Speed vs quality",
    "scaling": "Throughput scaling",
}


def backend_colour(backend: str) -> str:
    return BACKEND_COLOURS.get(backend) or _EXTRA[zlib.crc32(backend.encode()) % len(_EXTRA)]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _label(row) -> str:
    """The trial's name, with its result in brackets when it failed, was skipped or is INVALID."""
    return f"{row.trial}  [{row.result}]" if row.status != "ok" or row.validity == "INVALID" else row.trial


def _empty(path: Path, title: str, message: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    return _save(fig, path)


def _nothing_succeeded(df: pd.DataFrame) -> bool:
    return df.empty or not (df.status == "ok").any()


NO_TRIAL = "No trial succeeded: nothing to plot. Each trial's error is in summary.md and the report."


def time_by_phase(df: pd.DataFrame, path: Path) -> Path:
    """Stacked horizontal bars: minutes per phase for every trial (failed trials as empty bars)."""
    if _nothing_succeeded(df):
        return _empty(path, "Whole-ensemble time by phase", NO_TRIAL)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(df) + 1.8))
    left = pd.Series(0.0, index=df.index)
    for phase in PHASES:
        minutes = df[f"{phase}_min"].fillna(0.0)
        ax.barh(df.trial, minutes, left=left, color=PHASE_COLOURS[phase], label=phase.replace("_", " "))
        left += minutes
    ax.set_yticks(range(len(df)), [_label(r) for r in df.itertuples()])
    for tick, backend in zip(ax.get_yticklabels(), df.backend, strict=True):
        tick.set_color(backend_colour(backend))
    ax.invert_yaxis()
    ax.set_xlabel("wall-clock minutes per trial (training is shared and excluded)")
    ax.set_title("Whole-ensemble time by phase")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="phase")
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
    backend; shape: precision; hollow: channels_last; x: INVALID), each in the legend. The quality axis spans at
    least +-0.01 so that rounding noise does not look like a cliff. Timing-only runs plot max |p - p_eager| on a
    log axis with each precision's tolerance instead."""
    ok = df[(df.status == "ok") & df.speedup.notna()]
    timing_only = not ok.delta_ece.notna().any() if "delta_ece" in ok else True
    metric = "max_abs_dp" if timing_only else "delta_ece"
    ok = ok[ok[metric].notna() | ok.is_reference]
    if ok.empty:
        return _empty(
            path, "Speed vs quality", NO_TRIAL if _nothing_succeeded(df) else "No trial has a quality measure."
        )
    fig, ax = plt.subplots(figsize=(11, 5.2))
    for row in ok.itertuples():
        invalid = row.validity == "INVALID"
        y = 0.0 if row.is_reference else getattr(row, metric)
        if timing_only:
            y = max(y, EXACT)  # a log axis has no 0: identical outputs sit on the floor
        colour = backend_colour(row.backend)
        marker = "X" if invalid else PRECISION_MARKERS.get(row.precision, "D")
        hollow = row.channels_last and not invalid
        ax.scatter(
            row.speedup,
            y,
            s=80,
            marker=marker,
            facecolors="none" if hollow else colour,
            edgecolors=colour,
            linewidths=1.8,
            label=f"{row.trial} ({row.speedup:.2f}x)" + (" [INVALID]" if invalid else ""),
        )
    _speed_axis(ax, ok.speedup)
    if timing_only:
        _tolerance_axis(ax)
    else:
        ax.axhline(0.0, color="grey", lw=1)
        span = max(0.01, 1.15 * float(ok[metric].abs().max()))
        ax.set_ylim(-span, span)
        ax.set_ylabel("ECE change vs eager fp32, given labels (below 0 = better calibrated)")
    ax.set_xlabel("whole-ensemble speedup over eager fp32 (right is faster; dotted line = eager fp32)")
    ax.set_title(
        "Speed vs quality (colour: backend; shape: precision o fp32, ■ bf16, ▲ int8; hollow: channels_last)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


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


def write_charts(df: pd.DataFrame, cal: pd.DataFrame, run) -> dict[str, Path]:
    """All report charts (:data:`CHARTS`) into run folder ``run`` (a RunDir); returns {chart name: path}."""
    draw = {
        "time_by_phase": lambda path: time_by_phase(df, path),
        "peak_memory": lambda path: peak_memory(df, path),
        "calibration_vs_samples": lambda path: calibration_vs_samples(cal, df, path),
        "speed_vs_quality": lambda path: speed_vs_quality(df, path),
        "scaling": lambda path: scaling(df, path),
    }
    return {name: draw[name](run.chart(name)) for name in CHARTS}
