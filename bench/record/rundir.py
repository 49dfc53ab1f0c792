"""A run folder, ``results/<UTC timestamp>-<name>/``: the one place its file names are spelled.

:class:`RunDir` creates a run folder, locks it, checks it can be written, and reads and writes its files (config,
environment, tolerances, data, folds, where the posteriors are); the row store (``swagbench.bench.record.row_store``),
the report and the trials ask it for their paths. :class:`TrialDir` does the same for ``trials/<trial id>/``. What each
file holds: results/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swagbench.bench.errors import ConfigError, ResultsError


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename: a reader sees the old file or the
    new one, never half of either, and a failure leaves the old one as it was."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask's permissions, as write_text gives
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class TrialDir:
    """``trials/<trial id>/``: one trial's outputs."""

    path: Path

    @property
    def members(self) -> Path:
        """(S, N, C) float32 member probabilities, written by the workers through a memory map."""
        return self.path / "member_probs.npy"

    @property
    def bn_stats(self) -> Path:
        """(S, K, 2, channels) float32 BatchNorm running means and variances of every sample."""
        return self.path / "bn_stats.npy"

    @property
    def probs(self) -> Path:
        """(N, C) float32 ensemble probabilities."""
        return self.path / "probs.npy"

    @property
    def label_issues(self) -> Path:
        """(N,) bool: the label issues confident learning found."""
        return self.path / "label_issues.npy"

    @property
    def label_issues_csv(self) -> Path:
        """Every example ranked by label quality, worst first, with its given and suggested label."""
        return self.path / "label_issues.csv"

    @property
    def label_quality(self) -> Path:
        """(N,) float: cleanlab's label quality score of every example."""
        return self.path / "label_quality.npy"

    @property
    def predict_batch_s(self) -> Path:
        """Raw per-batch predict seconds of all workers."""
        return self.path / "predict_batch_s.npy"

    @property
    def journal(self) -> Path:
        """A job's committed members, one JSON line each (``swagbench.bench.record.journal``)."""
        return self.path / "journal.jsonl"

    def worker_session_files(self, session: int, index: int) -> tuple[Path, Path, Path]:
        """(spec JSON, result JSON, log) of worker ``index`` in a job's ``session`` (each start or resume)."""
        return tuple(
            self.path / f"{stem}.s{session}.{index}.{ext}"
            for stem, ext in (("spec", "json"), ("result", "json"), ("worker", "log"))
        )

    def worker_files(self, index: int, workers: int) -> tuple[Path, Path, Path]:
        """(spec JSON, result JSON, log) of worker ``index`` of ``workers``."""
        suffix = f".{index}" if workers > 1 else ""
        return tuple(
            self.path / f"{stem}{suffix}.{ext}"
            for stem, ext in (("spec", "json"), ("result", "json"), ("worker", "log"))
        )

    def reset(self) -> TrialDir:
        """Empty the folder (what an interrupted attempt left) and create it; return self."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        return self


class RunDir:
    """A run folder: ``RunDir.create`` makes a new one, ``RunDir.existing`` opens one made earlier."""

    CONFIG = "config.yaml"
    ENV = "env.json"
    TOLERANCES = "tolerances.json"
    SETTINGS = "settings.json"
    DATA = "data.json"
    LABELS = "labels.npz"
    LABEL_ISSUES = "label_issues.csv"
    FOLDS = "folds.npy"
    POSTERIORS = "posteriors.json"
    RECOMMENDATION = "recommendation.json"
    CEILINGS = "ceilings.json"
    ROWS = "results.jsonl"
    SUMMARY_CSV = "summary.csv"
    SUMMARY_MD = "summary.md"
    REPORT = "report.html"
    LOCK = ".lock"
    JOB = "job.json"  # a job's state and outcome (swagbench job)
    JOB_MD = "job.md"
    PRED_PROBS = "pred_probs.npy"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # -- creating and opening -------------------------------------------------------------------------------

    @classmethod
    def create(cls, results_dir: str | Path, name: str, fill) -> RunDir:
        """Create ``results_dir/<UTC timestamp>-<name>`` (a new name if taken) whole or not at all: ``fill(run)``
        writes the run's first files into a hidden staging folder, which is then renamed into place; if anything
        fails (a full disk), the staging folder is removed and no run folder exists."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        base = Path(results_dir) / f"{stamp}-{name}"
        staging = cls(Path(results_dir) / f".{base.name}.partial-{os.getpid()}")
        try:
            staging.path.mkdir(parents=True)
            fill(staging)
            path, i = base, 1
            while path.exists():
                path, i = Path(f"{base}-{i}"), i + 1
            os.rename(staging.path, path)
        except OSError as exc:
            shutil.rmtree(staging.path, ignore_errors=True)
            raise ResultsError(
                f"cannot create a run folder in {results_dir} ({exc.strerror or exc}); free disk space or pass a "
                "writable --results-dir, then run again"
            ) from exc
        except BaseException:
            shutil.rmtree(staging.path, ignore_errors=True)
            raise
        return cls(path)

    @classmethod
    def existing(cls, path: str | Path) -> RunDir:
        """A run folder made by ``swagbench run`` (it has a config), else ConfigError."""
        run = cls(Path(path).resolve())
        if not run.config_path.is_file():
            raise ConfigError(f"{run.path} has no {cls.CONFIG}, so it is not a swagbench run; pass results/<run-id>")
        return run

    @staticmethod
    def check_writable(folder: Path, setting: str) -> None:
        """Raise ConfigError naming ``setting`` unless ``folder`` can be created and written (before any run folder
        exists, so a bad setting leaves nothing half-made)."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise ConfigError(
                f"{setting} {folder} is not writable ({exc.strerror or exc}); set {setting} to a writable folder"
                + {"cache_dir": " or posterior_cache=false", "results_dir": " (--results-dir)"}.get(setting, "")
            ) from exc

    def lock(self):
        """Hold an exclusive lock on the folder (released when the returned file closes or the process dies), so
        two processes never append to one results.jsonl."""
        import fcntl

        if not self.config_path.is_file() and any(self.path.iterdir()):
            raise ResultsError(
                f"{self.path} is not a swagbench run directory (no {self.CONFIG}); pass results/<run-id>"
            )
        handle = open(self.path / self.LOCK, "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ResultsError(
                f"another swagbench process is writing {self.path}; wait for it or stop it first"
            ) from None
        return handle

    # -- paths ----------------------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def env_path(self) -> Path:
        return self.path / self.ENV

    @property
    def data_path(self) -> Path:
        """data.json: which data store the run reads (its folder and SHA-256), never a copy of the data."""
        return self.path / self.DATA

    @property
    def label_issues_csv(self) -> Path:
        """The label issues confident learning found with the reference trial (worst first)."""
        return self.path / self.LABEL_ISSUES

    @property
    def folds_path(self) -> Path:
        return self.path / self.FOLDS

    @property
    def rows_path(self) -> Path:
        return self.path / self.ROWS

    @property
    def summary_csv(self) -> Path:
        return self.path / self.SUMMARY_CSV

    @property
    def summary_md(self) -> Path:
        return self.path / self.SUMMARY_MD

    @property
    def report_html(self) -> Path:
        return self.path / self.REPORT

    @property
    def own_posteriors(self) -> Path:
        """Where a run that does not use the shared posterior cache keeps its trained posteriors."""
        return self.path / "posteriors"

    def chart(self, name: str) -> Path:
        """The PNG of chart ``name`` (a key of ``swagbench.bench.report.charts.CHARTS``)."""
        return self.path / f"{name}.png"

    def trial(self, trial_id: str) -> TrialDir:
        return TrialDir(self.path / "trials" / trial_id)

    # -- a job's files (swagbench job: a run folder with one strategy and no reference) ---------------------

    @property
    def job_json(self) -> Path:
        """The job's strategy, sizes, status, members done, minutes, audit and projection (JSON)."""
        return self.path / self.JOB

    @property
    def job_md(self) -> Path:
        return self.path / self.JOB_MD

    @property
    def pred_probs(self) -> Path:
        """(N, C) float32 out-of-sample probabilities: each example by its own fold's S members."""
        return self.path / self.PRED_PROBS

    def read_job(self) -> dict[str, Any] | None:
        """job.json, or None where the folder holds no job."""
        return json.loads(self.job_json.read_text()) if self.job_json.is_file() else None

    def write_job(self, record: dict[str, Any]) -> None:
        """job.json, replaced atomically (a reader never sees half of it)."""
        write_atomic(self.job_json, json.dumps(record, indent=2))

    # -- files ----------------------------------------------------------------------------------------------

    def write_config(self, config: dict[str, Any]) -> None:
        import yaml

        write_atomic(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def write_settings(self, digests: dict[str, str]) -> None:
        """settings.json: each setting's digest when the run was created
        (``swagbench.bench.config.setting_digests``)."""
        write_atomic(self.path / self.SETTINGS, json.dumps(digests, indent=1, sort_keys=True))

    def read_settings(self) -> dict[str, str] | None:
        """The digests the run was created with, or None for a run made before they were recorded."""
        path = self.path / self.SETTINGS
        return json.loads(path.read_text()) if path.is_file() else None

    def config_text(self) -> str:
        """The stored config as written (``(missing)`` where a folder has none)."""
        return self.config_path.read_text() if self.config_path.is_file() else "(missing)"

    def config_dict(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load(self.config_path.read_text()) or {}

    def read_env(self) -> dict[str, Any]:
        """env.json (machine, packages, profile, peak), or {} where a run folder has none."""
        return json.loads(self.env_path.read_text()) if self.env_path.is_file() else {}

    def write_env(self, env: dict[str, Any]) -> None:
        write_atomic(self.env_path, json.dumps(env, indent=2))

    def write_tolerances(self, table: dict[str, Any]) -> None:
        write_atomic(self.path / self.TOLERANCES, json.dumps(table, indent=2))

    def write_posteriors(self, record: dict[str, Any]) -> None:
        """posteriors.json: where the run's per-fold posteriors are and where they came from."""
        write_atomic(self.path / self.POSTERIORS, json.dumps(record, indent=2))

    def read_posteriors(self) -> dict[str, Any]:
        """posteriors.json (ResultsError where the run has none yet: it never finished training)."""
        path = self.path / self.POSTERIORS
        if not path.is_file():
            raise ResultsError(f"{self.path} records no posteriors (training never finished); resume the run first")
        return json.loads(path.read_text())

    @property
    def recommendation_json(self) -> Path:
        """The run's answer as data (``swagbench.bench.answer.recommend.recommendation_record``)."""
        return self.path / self.RECOMMENDATION

    @property
    def ceiling_log(self) -> Path:
        """What the runtimes' own tools and exporters printed while the ceilings were measured."""
        return self.path / "ceiling.log"

    def write_ceilings(self, record: dict[str, Any]) -> None:
        """ceilings.json: each runtime's own throughput on the run's model (``swagbench.bench.measure.ceiling``)."""
        write_atomic(self.path / self.CEILINGS, json.dumps(record, indent=2))

    def read_ceilings(self) -> dict[str, Any]:
        """ceilings.json's ``ceilings`` mapping, or {} where none was measured."""
        path = self.path / self.CEILINGS
        return json.loads(path.read_text()).get("ceilings", {}) if path.is_file() else {}

    def read_recommendation(self) -> dict[str, Any]:
        """recommendation.json as written (empty where the run has none yet)."""
        path = self.recommendation_json
        return json.loads(path.read_text()) if path.is_file() else {}

    def save_data(self, dataset) -> None:
        """Record which data store the run reads (data.json) and the labels it sees (labels.npz: noisy and true)."""
        import numpy as np

        meta = dataset.store.meta
        record = {"store": str(dataset.store.folder.resolve()), "sha256": meta.sha256, "name": dataset.name}
        if dataset.root is not None:
            record["root"] = str(dataset.root)  # where the store's relative image paths lie
        record["exact_copies"] = dataset.copies
        write_atomic(self.data_path, json.dumps({**record, "shape": meta.shape, "dtype": meta.dtype}, indent=2))
        labels = {"y": dataset.labels} | ({} if dataset.true_labels is None else {"y_true": dataset.true_labels})
        np.savez(self.path / self.LABELS, **labels)

    def load_data(self, rebuild=None):
        """The run's data set, its store's bytes checked against the recorded SHA-256 (DataError if changed);
        ``rebuild`` makes a store that is gone anew (see :func:`swagbench.bench.dataset.open_recorded`)."""
        import numpy as np

        from swagbench.bench.dataset import open_recorded

        if not self.data_path.is_file():
            old = " (it holds a data.npz: made by an older swagbench)" if (self.path / "data.npz").is_file() else ""
            raise ResultsError(f"{self.path} records no data set{old}; start a new run")
        try:
            record = json.loads(self.data_path.read_text())
            with np.load(self.path / self.LABELS, allow_pickle=False) as f:
                labels, truth = f["y"], (f["y_true"] if "y_true" in f.files else None)
        except (OSError, ValueError, KeyError) as exc:
            raise ResultsError(f"{self.data_path} or its labels are damaged ({exc}); start a new run") from exc
        return open_recorded(record, labels, truth, rebuild)

    def save_folds(self, fold_of) -> None:
        import numpy as np

        np.save(self.folds_path, fold_of)

    def load_folds(self):
        import numpy as np

        try:
            return np.load(self.folds_path, allow_pickle=False)
        except ValueError as exc:  # a pickled object, or not an .npy at all: never unpickled
            raise ResultsError(f"{self.folds_path} is not a plain fold array ({exc}); start a new run") from exc
