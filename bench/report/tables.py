"""How summary columns read, in summary.md and report.html alike: one header and one format per column.

Numbers are shown in plain units (``70,340`` images/s, ``1.25`` min, ``12%``), never as ``7.034e+04``;
an empty cell is blank, never ``None`` or ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from swagbench.bench.measure.timing import PHASES


def _fixed(digits: int) -> Callable[[float], str]:
    return lambda v: f"{v:.{digits}f}"


def _amount(v: float) -> str:
    """Minutes, seconds, GB: 1 decimal from 100 up, 2 from 0.1 up, 2 significant digits from 0.01 up, else 3
    decimals (0.000 for what is below a millisecond or a thousandth of a minute)."""
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 0.1:
        return f"{v:.2f}"
    return f"{v:.2g}" if abs(v) >= 0.01 else f"{v:.3f}"


def _small(v: float) -> str:
    """Differences that span orders of magnitude (max |dp|, BN error): 2.8e-03, and 0 as 0."""
    return "0" if v == 0 else f"{v:.1e}"


_PERCENT = "{:.0%}".format
_METRIC = _fixed(4)
# column -> (header, format of a non-empty value); columns not listed show their name and 4 significant digits
COLUMNS: dict[str, tuple[str, Callable]] = {
    "trial": ("trial", str),
    "result": ("result", str),
    "bn": ("BN pass ran in", str),
    "plan": ("workers x threads", str),
    "ensemble_min": ("ensemble min", _amount),
    "ensemble_spread": ("spread", _PERCENT),
    "repeats": ("repeats", "{:.0f}".format),
    "workers": ("workers", "{:.0f}".format),
    "batch": ("batch", "{:.0f}".format),
    "speedup": ("speedup", "{:.2f}x".format),
    "target_min": ("min at target", _amount),
    "ceiling_img_per_s": ("runtime ceiling img/s", "{:,.0f}".format),
    "bn_ceiling_img_per_s": ("BN ceiling img/s", "{:,.0f}".format),
    "predict_pct_ceiling": ("predict % of ceiling", _PERCENT),
    "bn_pct_ceiling": ("BN % of ceiling", _PERCENT),
    "target_speedup": ("speedup at target", "{:.2f}x".format),
    "predict_speedup": ("predict speedup", "{:.2f}x".format),
    "img_per_s": ("predict img/s", "{:,.0f}".format),
    "bn_img_per_s": ("BN img/s", "{:,.0f}".format),
    "gflops": ("GFLOP/s", "{:,.1f}".format),
    "pct_of_peak": ("% of peak", "{:.1f}%".format),
    "bn_pct_of_peak": ("BN % of peak", "{:.1f}%".format),
    "sample_prepare_share": ("sample+prepare share", _PERCENT),
    "harness_share": ("harness share", "{:.1%}".format),
    "peak_rss_gb": ("peak RSS GB", _amount),
    "rss_growth_gb": ("RSS growth GB", _amount),
    "peak_anon_gb": ("peak anon GB", _amount),
    "parent_anon_gb": ("harness anon GB", _amount),
    "max_abs_dp": ("max |dp|", _small),
    "argmax_agree": ("argmax agree", _fixed(4)),
    "issue_jaccard": ("issue Jaccard", _fixed(3)),
    "bn_mean_err": ("BN mean err (std)", _small),
    "train_min": ("train min", _amount),
    **{f"{p}_min": (f"{p.replace('_', ' ')} min", _amount) for p in PHASES},
    "first_setup_s": ("first setup s", _amount),
    "fold_setup_s": ("fold setup s", _amount),
    "sample_setup_s": ("sample setup s", _amount),
    **{
        f"{k}_{labels}": (f"{name} ({labels})", _METRIC)
        for k, name in (("ece", "ECE"), ("mce", "MCE"), ("nll", "NLL"), ("brier", "Brier"), ("accuracy", "accuracy"))
        for labels in ("given", "true")
    },
    "issue_precision": ("issue precision", _fixed(3)),
    "issue_recall": ("issue recall", _fixed(3)),
    "issue_f1": ("issue F1", _fixed(3)),
    "delta_ece": ("ΔECE (given)", "{:+.4f}".format),
    "delta_nll": ("ΔNLL (given)", "{:+.4f}".format),
    "delta_issue_f1": ("Δissue F1", "{:+.3f}".format),
    "bn_examples": ("BN examples", "{:,.0f}".format),
    # the BatchNorm subset ladder (frames.subset_frame)
    "bn_images": ("BN images per fold", "{:,.0f}".format),
    "limits": ("against the limits", str),
    "chosen": ("auto chose", str),
    # swagbench estimate
    "measured_min": ("measured min", _amount),
    **{
        f"proj_{p}_min": (f"{p.replace('_', ' ')} min", _amount)
        for p in ("sample", "data", "bn_update", "setup", "predict")
    },
    "proj_confident_learning_min": ("CL min", _amount),
    "proj_ensemble_min": ("projected ensemble min", _amount),
    "proj_speedup": ("speedup", "{:.2f}x".format),
    "check_min": ("measured there min", _amount),
    "check_error": ("error", "{:+.0%}".format),
    "usd_on_demand": ("USD on demand", "${:,.2f}".format),
    "usd_spot": ("USD spot", "${:,.2f}".format),
}

OVERVIEW = (
    "trial",
    "result",
    "bn",
    "ensemble_min",
    "ensemble_spread",
    "speedup",
    "target_min",
    "target_speedup",
    "img_per_s",
    "pct_of_peak",
    "bn_img_per_s",
    "bn_pct_of_peak",
    "sample_prepare_share",
    "harness_share",
    "peak_rss_gb",
    "max_abs_dp",
    "argmax_agree",
    "issue_jaccard",
)
PHASE_TABLE = (
    ("trial", "train_min")
    + tuple(f"{p}_min" for p in PHASES)
    + ("ensemble_min", "first_setup_s", "fold_setup_s", "sample_setup_s")
)
CEILING = (
    "trial",
    "img_per_s",
    "ceiling_img_per_s",
    "predict_pct_ceiling",
    "bn_img_per_s",
    "bn_ceiling_img_per_s",
    "bn_pct_ceiling",
)
SUBSET = (
    "bn_images",
    "trial",
    "speedup",
    "target_speedup",
    "ece_given",
    "nll_given",
    "issue_jaccard",
    "delta_ece",
    "delta_nll",
    "delta_issue_f1",
    "limits",
    "chosen",
)
MEMORY = ("trial", "peak_anon_gb", "peak_rss_gb", "rss_growth_gb", "parent_anon_gb", "workers", "batch")
QUALITY = (
    "trial",
    "ece_given",
    "ece_true",
    "nll_given",
    "nll_true",
    "brier_given",
    "brier_true",
    "accuracy_true",
    "issue_precision",
    "issue_recall",
    "issue_f1",
    "delta_ece",
    "delta_nll",
    "delta_issue_f1",
    "bn_examples",
)


def cell(column: str, value) -> str:
    """One value as its column shows it ('' when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    fmt = COLUMNS.get(column, (column, None))[1]
    if fmt is None:
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    return fmt(value)


def formatted(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The ``columns`` of ``df`` that it has (and that are not empty throughout) as display strings under
    display headers; a column every row leaves empty is dropped rather than shown blank."""
    shown = [c for c in columns if c in df and df[c].notna().any()]
    return pd.DataFrame({COLUMNS.get(c, (c,))[0]: [cell(c, v) for v in df[c]] for c in shown})


def markdown(df: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return formatted(df, columns).to_markdown(index=False, disable_numparse=True)


def html(df: pd.DataFrame, columns: tuple[str, ...], table_id: str) -> str:
    """A scrollable HTML table (values escaped)."""
    table = formatted(df, columns).to_html(index=False, escape=True, border=0, table_id=table_id)
    return f'<div class="scroll">{table}</div>'


def by_samples(cal: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials x ensemble size S, each cell ``given (true)`` for ``metric`` (ece, nll, brier)."""
    out = {}
    for trial, part in cal.groupby("trial", sort=False):
        out[trial] = {
            f"S={int(p.samples)}": cell(f"{metric}_given", p[f"{metric}_given"])
            + (f" ({cell(f'{metric}_true', p[f'{metric}_true'])})" if pd.notna(p[f"{metric}_true"]) else "")
            for _, p in part.sort_values("samples").iterrows()
        }
    wide = pd.DataFrame.from_dict(out, orient="index").fillna("")
    return wide.rename_axis("trial").reset_index()
