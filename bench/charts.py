"""PNG charts of a run's summary (matplotlib, Agg). Each function writes one file and returns its path."""

from __future__ import annotations

import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from bench.trial import PHASES  # noqa: E402

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
# BN update and warm-up must never be confused: orange vs grey (sample light blue, prepare dark orange).
PHASE_COLOURS = dict(zip(PHASES, ["#9ecae1", "#fdae6b", "#d94801", "#bdbdbd", "#3182bd", "#74c476"], strict=True))
CHARTS = ("time_by_phase", "peak_memory", "calibration_vs_samples", "speed_vs_quality", "scaling")


def backend_colour(backend: str) -> str:
    return BACKEND_COLOURS.get(backend) or _EXTRA[zlib.crc32(backend.encode()) % len(_EXTRA)]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _label(row) -> str:
    mark = (
        ""
        if row.status == "ok" and row.validity != "INVALID"
        else f"  [{row.validity if row.status == 'ok' else row.status}]"
    )
    return f"{row.trial}{mark}"


def _empty(path: Path, title: str, message: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    return _save(fig, path)


def time_by_phase(df: pd.DataFrame, path: Path) -> Path:
    """Stacked horizontal bars: minutes per phase for every trial (failed trials as empty bars)."""
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
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(df) + 1.6))
    ax.barh(range(len(df)), df.peak_rss_gb.fillna(0.0), color=[backend_colour(b) for b in df.backend])
    ax.set_yticks(range(len(df)), [_label(r) for r in df.itertuples()])
    ax.invert_yaxis()
    ax.set_xlabel("peak RSS of the trial's worker process (GB)")
    ax.set_title("Peak memory per trial")
    return _save(fig, path)


def calibration_vs_samples(cal: pd.DataFrame, df: pd.DataFrame, path: Path) -> Path:
    title = "Calibration vs number of SWAG samples"
    if cal.empty:
        return _empty(path, title, "No calibration data: timing-only run (not meaningful) or no successful trial.")
    backends = df.set_index("trial").backend
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"fp32": "-", "bf16": "--", "int8": ":"}
    precisions = df.set_index("trial").precision
    validity = df.set_index("trial").validity
    for trial, part in cal.groupby("trial"):
        label = trial + (" [INVALID]" if validity[trial] == "INVALID" else "")
        for ax, metric in zip(axes, ("ece", "nll"), strict=True):
            ax.plot(
                part.samples,
                part[metric],
                marker="o",
                label=label,
                color=backend_colour(backends[trial]),
                linestyle=styles.get(precisions[trial], "-"),
            )
    ticks = sorted(int(t) for t in cal.samples.unique())
    for ax, name in zip(axes, ("ECE (15 bins)", "NLL (nats)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("SWAG samples S per fold")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    axes[1].legend(fontsize=7, loc="best")
    return _save(fig, path)


def speed_vs_quality(df: pd.DataFrame, path: Path) -> Path:
    """Total minutes vs ECE (or max |dp| for timing-only runs); INVALID trials as crosses."""
    ok = df[df.status == "ok"]
    metric, name = ("ece", "ECE of the ensemble") if ok.ece.notna().any() else ("max_abs_dp", "max |p - p_eager|")
    ok = ok[ok[metric].notna()]
    if ok.empty:
        return _empty(path, "Speed vs quality", "No successful trials with a quality measure.")
    fig, ax = plt.subplots(figsize=(10, 5))
    for row in ok.itertuples():  # a legend, not annotations: close points would overprint their labels
        invalid = row.validity == "INVALID"
        ax.scatter(
            row.ensemble_min,
            getattr(row, metric),
            color=backend_colour(row.backend),
            s=60,
            marker="x" if invalid else "o",
            label=row.trial + (" [INVALID]" if invalid else ""),
        )
    valid = ok[ok.validity != "INVALID"].sort_values("ensemble_min")
    front = valid[valid[metric] <= valid[metric].cummin()]
    ax.step(front.ensemble_min, front[metric], where="post", color="grey", alpha=0.6, label="Pareto front (VALID)")
    ax.set_xlabel("whole-ensemble minutes (lower is better)")
    ax.set_ylabel(f"{name} (lower is better)")
    ax.set_title("Speed vs quality")
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


def write_charts(df: pd.DataFrame, cal: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """All report charts into ``out_dir``; returns {chart name: path}."""
    return {
        "time_by_phase": time_by_phase(df, out_dir / "time_by_phase.png"),
        "peak_memory": peak_memory(df, out_dir / "peak_memory.png"),
        "calibration_vs_samples": calibration_vs_samples(cal, df, out_dir / "calibration_vs_samples.png"),
        "speed_vs_quality": speed_vs_quality(df, out_dir / "speed_vs_quality.png"),
        "scaling": scaling(df, out_dir / "scaling.png"),
    }
