"""One trial's result row: every field, typed and documented, and the one place rows are checked.

``swagbench.bench.run`` assembles a row (settings, outcome, measurements from
``swagbench.bench.execute.finish.finish_trial``, the gate's verdict) and ``swagbench.bench.record.row_store.append_row``
writes it through :meth:`TrialRow.from_dict` (a field this schema does not know is a bug, refused);
``swagbench.bench.record.row_store.read_rows`` reads every row back through it. Readers use attributes
(``row.ensemble_s``); ``row["ensemble_s"]`` and ``{**row}`` work too.

Versions: :data:`SCHEMA_VERSION` is written in every row. An older row is brought to this version by the steps
in :data:`UPGRADES`, one per version, in order (the one place old rows are interpreted); a row of a newer version,
or with a field this version does not know, is refused with a message.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from swagbench import checked
from swagbench.bench.errors import ResultsError

SCHEMA_VERSION = 7


@dataclass
class TrialRow:
    """A trial's row in ``results.jsonl``.

    Attributes
    ----------
    run_id, trial_id : str
        The run folder's name; ``<index>-<label>`` of the trial (label = backend, precision, settings).
    backend, precision, channels_last, threads, workers, batch_size, members, options
        The trial's settings (threads per worker; ``options``: the backend's options as configured).
    status : str
        ``ok``, ``failed``, ``timeout``, ``oom`` or ``skipped``; ``error`` says why when not ``ok``.
    bn_examples, trial_bn_examples : int or None
        BatchNorm statistics from this many examples per fold (None: all); the trial's own setting (for a trial
        with ``bn_examples: auto``, the size chosen).
    bn_choice : dict or None
        A ``bn_examples: auto`` trial's choice (``swagbench.bench.answer.subset.choose``): the ladder's steps against
        full data, the limits and the size chosen; None for any other trial.
    bn_engine : str or None
        A hybrid trial's BatchNorm engine (``backend[:precision][:cl]``, the trial's ``bn``); None: its own.
    model, dataset, n_examples, folds, samples, samples_total
        The workload: N images, K folds x S samples (K x S = samples_total).
    train_s : float
        Seconds of training all folds' posteriors (shared by every trial; the original time when cached).
    ensemble_s : float
        Whole-ensemble wall-clock seconds: workers' loops, first start to last end, plus confident learning;
        with ``repeats`` > 1 the median repeat's, every repeat's in ``ensemble_s_repeats``.
    phases_s : dict
        Worker-seconds per phase (``swagbench.bench.measure.timing.PHASES``) summed over workers.
    sample_phases_s : list
        ``[fold, sample, {phase: seconds}]`` for every (fold, sample) pair.
    predict_img_per_s, bn_img_per_s : float or None
        Steady-state images per second of predict and of the BatchNorm pass: from ``steady`` where measured, else
        the run's own timed calls (warm-up calls excluded).
    auto : dict or None
        Options the trial left to ``auto`` (``swagbench.bench.answer.auto``): which, the candidate chosen and the
        option values it sets (``values``), the target it was chosen for and every candidate's measured rebind seconds,
        seconds per image and cost per (fold, sample) pair there.
    steady : dict or None
        Per phase (``bn_update``, ``predict``) the steady-state measurement of :mod:`swagbench.bench.measure.steady`:
        seconds per image, img/s, calls, batch size, and the images the run's own timed calls saw (None: not measured).
    peak_rss_bytes, rss_growth_bytes, baseline_rss_bytes : int or None
        Peak resident memory of the trial's workers, its growth over their baseline after loading data. RSS
        counts the page cache of the memory-mapped data and member files too (shared, reclaimable).
    peak_anon_bytes, parent_peak_anon_bytes : int or None
        Peak anonymous memory (what would run out) of the trial's workers together, and of the harness process
        over the run up to the end of this trial.
    calibration, calibration_given : dict
        ECE, MCE, NLL, Brier, accuracy vs the true labels (``calibration_labels == "true"``) and the given ones.
    calibration_vs_samples : list
        The same (``<metric>`` true, ``<metric>_given``) for the first S = 1, 2, 4, ... samples.
    label_issues : dict or None
        Precision, recall, F1 of the found label issues against the injected errors (None: truth unknown).
    roofline, roofline_bn : dict or None
        Achieved GFLOP/s and percent of the machine's peak, of predict and of the BatchNorm pass.
    fidelity : dict or None
        Against the eager fp32 reference: max |dp|, argmax agreement, issue-set Jaccard, BN statistics errors,
        calibration and issue-F1 deltas.
    validity : str or None
        ``VALID``, ``INVALID`` or ``UNCHECKED`` (``validity_reasons`` says why).
    """

    run_id: str
    trial_id: str
    backend: str
    precision: str
    channels_last: bool
    threads: int
    batch_size: int
    status: str
    error: str | None = None
    workers: int = 1
    data_shards: int = 1
    executor: str = "local"
    members: str = "stream"
    options: dict[str, Any] = field(default_factory=dict)
    python: str | None = None
    bn_examples: int | None = None
    trial_bn_examples: int | None = None
    bn_choice: dict[str, Any] | None = None
    bn_engine: str | None = None
    model: str | None = None
    dataset: str | None = None
    n_examples: int | None = None
    folds: int | None = None
    samples: int | None = None
    samples_total: int | None = None
    train_s: float = 0.0
    profile: str | None = None
    posterior_source: str | None = None
    metrics_meaningful: bool = True
    started_utc: str | None = None
    wall_s: float | None = None
    peak_rss_bytes: int | None = None
    rss_growth_bytes: int | None = None
    baseline_rss_bytes: int | None = None
    peak_anon_bytes: int | None = None
    parent_peak_anon_bytes: int | None = None
    strategy: str | None = None
    auto: dict[str, Any] | None = None
    backend_info: dict[str, Any] | None = None
    versions: dict[str, str] | None = None
    phases_s: dict[str, float] | None = None
    ensemble_s: float | None = None
    ensemble_s_repeats: list[float] | None = None
    worker_startup_s: float | None = None
    sample_phases_s: list | None = None
    images_predicted: int | None = None
    images_timed: int | None = None
    predict_img_per_s: float | None = None
    predict_batch_ms: dict[str, float] | None = None
    bn_img_per_s: float | None = None
    steady: dict[str, Any] | None = None
    bn_update: dict[str, Any] | None = None
    calibration_labels: str | None = None
    calibration: dict[str, float] | None = None
    calibration_given: dict[str, float] | None = None
    calibration_vs_samples: list[dict[str, float]] | None = None
    label_issues: dict[str, float] | None = None
    n_label_issues_found: int | None = None
    roofline: dict[str, Any] | None = None
    roofline_bn: dict[str, Any] | None = None
    fidelity: dict[str, Any] | None = None
    validity: str | None = None
    validity_reasons: list[str] | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "row") -> TrialRow:
        """A row from its JSON mapping, upgraded to this version (:data:`UPGRADES`); refuses newer versions and
        fields or types this schema does not define."""
        version = raw.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ResultsError(
                f"{where} has schema_version {version!r}, newer than this swagbench reads ({SCHEMA_VERSION}); "
                "upgrade swagbench to read it"
            )
        for step in range(version, SCHEMA_VERSION):
            raw = UPGRADES[step](raw)
        unknown = set(raw) - FIELDS
        if unknown:
            raise ResultsError(
                f"{where} has field(s) {sorted(unknown)} that schema version {SCHEMA_VERSION} does not define; "
                "it was not written by this swagbench"
            )
        missing = REQUIRED - set(raw)
        if missing:
            raise ResultsError(f"{where} lacks required field(s) {sorted(missing)}; it is not a swagbench row")
        row = checked.build(cls, raw, where, ResultsError)
        bad = row.non_finite()
        if bad:
            raise ResultsError(
                f"{where} (trial {row.trial_id}) has a non-finite or negative {bad}; it was edited or damaged: "
                "rerun that trial (swagbench run --resume) or restore the file"
            )
        return row

    def non_finite(self) -> str | None:
        """The first measurement (a time, a rate, a calibration metric) that is NaN, infinite or negative, named
        as it reads in the row; None when every one is a number a run can produce."""
        for name in MEASURED:
            value = getattr(self, name)
            items = (
                value.items()
                if isinstance(value, dict)
                else enumerate(value or [])
                if isinstance(value, list)
                else [(None, value)]
            )
            for key, number in items:
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    continue
                if not (math.isfinite(number) and number >= 0):
                    return f"{name}{'' if key is None else f'[{key!r}]'} = {number}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # Read like the mapping it is stored as: row["field"], row.get("field"), {**row}.
    def __getitem__(self, key: str) -> Any:
        if key not in FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in FIELDS else default

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]

    def __iter__(self):
        return iter(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in FIELDS


FIELDS = {f.name for f in dataclasses.fields(TrialRow)}
# The measurements every report reads: times, rates and calibration metrics, each finite and >= 0.
MEASURED = (
    "train_s",
    "wall_s",
    "ensemble_s",
    "ensemble_s_repeats",
    "worker_startup_s",
    "phases_s",
    "predict_img_per_s",
    "bn_img_per_s",
    "calibration",
    "calibration_given",
)
REQUIRED = {
    f.name
    for f in dataclasses.fields(TrialRow)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
}


def as_row(row: TrialRow | dict[str, Any]) -> TrialRow:
    """``row`` as a :class:`TrialRow` (a mapping is checked on the way)."""
    return row if isinstance(row, TrialRow) else TrialRow.from_dict(dict(row))


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 (rows written before the schema had a number) holds a subset of version 2's fields with the same
    meanings: the others take their defaults."""
    return {**raw, "schema_version": 2}


def _v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 3 adds the anonymous-memory peaks (unknown, None, for older rows) and the ``data`` phase (absent
    from older rows' ``phases_s``: their batches were in memory)."""
    return {**raw, "schema_version": 3}


def _v3_to_v4(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 4 adds ``bn_engine`` (hybrid trials): older rows ran both passes in their own engine (None)."""
    return {**raw, "schema_version": 4}


def _v4_to_v5(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 5 adds ``steady`` (the steady-state measurement) and ``auto`` (options chosen by measurement): older
    rows made neither (None)."""
    return {**raw, "schema_version": 5}


def _v5_to_v6(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 6 adds ``bn_choice`` (``bn_examples: auto``): older rows chose no subset (None)."""
    return {**raw, "schema_version": 6}


def _v6_to_v7(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 7's ``auto`` may choose two options at once (``bn_precision/binding``): the value it chose became
    ``values``, a mapping of option to value."""
    auto = raw.get("auto")
    if auto and "value" in auto:
        auto = {**{k: v for k, v in auto.items() if k != "value"}, "values": {auto["option"]: auto["value"]}}
    return {**raw, "auto": auto, "schema_version": 7}


# UPGRADES[v] turns a version-v row into a version v + 1 row.
UPGRADES = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5, 5: _v5_to_v6, 6: _v6_to_v7}
