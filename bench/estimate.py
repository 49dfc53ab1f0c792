"""Project a run's measured costs onto the user's own data size: ``swagbench estimate RUN --images N``.

Each trial's whole-ensemble time is rebuilt phase by phase by :func:`swagbench.bench.answer.projection.project`.
Training (shared by all trials) scales with the training images of all folds, epochs unchanged. The projection is
validated against a real run at another size in docs/answer-and-estimate.md ("Estimating your own run").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from swagbench.bench.answer.projection import project
from swagbench.bench.errors import ConfigError
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.record.rundir import RunDir
from swagbench.bench.report.frames import summary_frame


def estimate(
    run_dir: str | Path,
    images: int,
    folds: int | None = None,
    samples: int | None = None,
    check: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Projected minutes (and money, where the run can be priced) of every trial of ``run_dir`` for ``images``
    images, ``folds`` folds and ``samples`` SWAG samples per fold (default: the run's).

    ``check``: a real run of that size; each trial's projection is set beside the minutes it measured there
    (``check_min``) with the relative error (``check_error``), trials matched by id.

    Returns the table (one row per trial) and facts about the projection (sizes, training, pricing).
    """
    rows = read_rows(run_dir)
    ok = [r for r in rows if r.status == "ok"]
    if not ok:
        raise ConfigError(f"{run_dir} has no successful trial to project from; pass a run where one succeeded")
    first = ok[0]
    folds = first.folds if folds is None else folds  # 0 is a mistake to refuse, not "the run's"
    samples = first.samples if samples is None else samples
    if folds < 2 or samples < 1 or images < 2 * folds:
        raise ConfigError(
            f"--images {images} --folds {folds} --samples {samples}: need folds >= 2, samples >= 1 "
            f"and at least 2 images per fold"
        )
    summary = summary_frame(rows).set_index("trial")
    records = []
    for r in ok:
        p = project(r, images, folds, samples)
        records.append(
            {
                "trial": r.trial_id,
                "result": summary.result[r.trial_id],
                "measured_min": r.ensemble_s / 60,
                **{f"proj_{k}_min": v / 60 for k, v in p.items()},
                "is_reference": bool(summary.is_reference[r.trial_id]),
            }
        )
    df = pd.DataFrame(records)
    ref = df[df.is_reference]
    df["proj_speedup"] = ref.proj_ensemble_min.iloc[0] / df.proj_ensemble_min if len(ref) else None
    facts: dict[str, Any] = {}
    if check is not None:
        _check_against(df, check, (images, folds, samples))
        facts["check"] = str(check)
    train_s = first.train_s or 0.0
    facts.update(
        {
            "measured": (first.n_examples, first.folds, first.samples),
            "projected": (images, folds, samples),
            # training sees each fold's training images every epoch: N (K - 1) over all folds
            "train_min": train_s / 60 * images * (folds - 1) / (first.n_examples * (first.folds - 1))
            if train_s and first.posterior_source != "user"  # from the cache: the original training's time
            else None,
        }
    )
    facts.update(_pricing(df, run_dir))
    return df, facts


def _check_against(df: pd.DataFrame, check: str | Path, size: tuple[int, int, int]) -> None:
    """Add ``check_min`` (what the real run ``check`` of ``size`` (images, folds, samples) measured) and
    ``check_error`` (projection / measured - 1) to ``df``, trials matched by id."""
    other = {r.trial_id: r for r in read_rows(check)}
    ran = {(r.n_examples, r.folds, r.samples) for r in other.values() if r.status == "ok"}
    if ran != {size}:
        raise ConfigError(
            f"--check {check} ran {sorted(ran)} (images, folds, samples), not {size}; "
            "check against a run of the projected size"
        )
    df["check_min"] = [
        other[t].ensemble_s / 60 if t in other and other[t].status == "ok" else float("nan") for t in df.trial
    ]
    df["check_error"] = df.proj_ensemble_min / df.check_min - 1


def _pricing(df: pd.DataFrame, run_dir: str | Path) -> dict[str, Any]:
    """Add each trial's USD on demand and spot to ``df`` when the run was made on its profile's machine; return
    the price used (``price``) or why there is none (``no_price``)."""
    from swagbench.bench.measure.hardware_profiles import load_profile, price

    profile = RunDir(run_dir).read_env().get("profile") or {}
    if not profile.get("name"):
        return {"no_price": "the run used no --profile, so no machine (and no price per hour) is known"}
    if profile.get("host_mismatch"):
        return {"no_price": f"the run was not on a {profile['name']} (env.json: profile.host_mismatch)"}
    rate = price(load_profile(profile["name"]))
    if rate is None:
        return {"no_price": f"profile {profile['name']} states no price per hour"}
    for kind in ("on_demand", "spot"):
        df[f"usd_{kind}"] = df.proj_ensemble_min / 60 * rate[kind]
    return {"price": rate}


def render(df: pd.DataFrame, facts: dict[str, Any]) -> str:
    """The estimate as Markdown: what was projected from what, the table, training and pricing."""
    import swagbench.bench.report.tables as tables

    (n0, k0, s0), (n, k, s) = facts["measured"], facts["projected"]
    lines = [
        f"# swagbench estimate: {n:,} images, {k} folds x {s} samples (from a run of {n0:,} images, {k0} x {s0})",
        "",
        tables.markdown(
            df,
            (
                "trial",
                "result",
                "measured_min",
                "proj_sample_min",
                "proj_data_min",
                "proj_bn_update_min",
                "proj_setup_min",
                "proj_predict_min",
                "proj_confident_learning_min",
                "proj_ensemble_min",
                "proj_speedup",
                "check_min",
                "check_error",
                "usd_on_demand",
                "usd_spot",
            ),
        ),
        "",
    ]
    if "check" in facts:
        errors = df.check_error.dropna().abs()
        lines.append(
            f"Against the real run {facts['check']} (check min): |error| median {errors.median():.0%}, "
            f"max {errors.max():.0%} over {len(errors)} trials."
        )
    if facts.get("train_min") is not None:
        lines.append(f"Training the {k} posteriors (shared by all trials, once): about {facts['train_min']:.1f} min.")
    if "price" in facts:
        rate = facts["price"]
        lines.append(
            f"Money: {rate['machine']} at ${rate['on_demand']:.4f}/h on demand, ${rate['spot']:.4f}/h spot "
            f"({rate['source']}, {rate['date']})."
        )
    else:
        lines.append(f"No cost in money: {facts['no_price']}.")
    return "\n".join(lines) + "\n"
