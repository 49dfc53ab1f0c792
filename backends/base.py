"""The backend interface every inference strategy implements.

A backend runs the whole per-sample step of the SWAG ensemble in its own runtime and precision:

1. a *statistics runner* (:meth:`Backend.statistics`) maps a float32 batch (N, C, H, W) of the fold's
   training data to every BatchNorm layer's batch mean and unbiased variance
   (:data:`swagbench.swag.batchnorm.BatchStatistics`); the harness averages them over the fold's BN batches exactly
   as ``torch.optim.swa_utils.update_bn`` does and writes them into the model;
2. a *runner* (:meth:`Backend.prepare`) maps a float32 batch to logits (N, classes) as a CPU float32
   tensor, with the sample's weights and those statistics.

Both are bound to a new sample's weights by :meth:`Backend.update_statistics` / :meth:`Backend.update`
(swap, where the runtime allows it) or built again. A backend that cannot compute statistics raises
:class:`StatisticsUnsupported` and the harness runs that pass in eager fp32, recording it and why.
Backends import their heavy libraries inside methods, so listing them is cheap and a missing package
only affects that backend.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from swagbench import checked
from swagbench.backends.errors import BackendError
from swagbench.backends.precisions import PRECISIONS
from swagbench.swag.batchnorm import BatchStatistics, StatisticsUnsupported

Runner = Callable[[torch.Tensor], torch.Tensor]
"""A runner may carry an ``info`` dict attribute (e.g. verified precision, streams) that is recorded."""
StatisticsRunner = Callable[[torch.Tensor], BatchStatistics]
"""batch -> per BatchNorm layer (batch mean, unbiased batch variance); its ``info`` dict says how the statistics
were computed: ``precision``, ``layout`` and ``method`` (recorded in the row as ``bn_update``)."""


@dataclass(frozen=True)
class BackendOptions:
    """What a trial asks of a backend.

    Attributes
    ----------
    precision : str
        One of :data:`PRECISIONS`.
    threads : int
        Intra-op thread budget of the trial's worker.
    batch_size : int
        Images per runner call.
    channels_last : bool
        Use the NHWC memory format where the backend supports it.
    extra : dict
        A trial's ``options`` mapping as the config gives it (JSON, to cross into worker processes); a
        backend reads it only as its typed :attr:`Backend.Options` (:meth:`Backend.settings`).
    target_isa : list of str or None
        The instruction-set features of the machine the answer is for (``target.isa``; None: this one), for a
        choice a backend makes by the precisions that machine runs natively (OpenVINO's ``bn_precision: auto``).
    """

    precision: str = "fp32"
    threads: int = 1
    batch_size: int = 64
    channels_last: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    target_isa: list[str] | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {PRECISIONS}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1 (got {self.threads})")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {self.batch_size})")


def option(default, help: str, choices: tuple | None = None):
    """A backend option: a dataclass field with its default, help text and (for text options) its choices."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class NoOptions:
    """A backend without options of its own."""


def typed_options(cls, raw: dict[str, Any], backend: str):
    """``cls`` (a backend's options dataclass) from a trial's ``options`` mapping (:func:`swagbench.checked.build`):
    unknown keys, wrong types and values outside a field's choices raise :class:`BackendError`."""
    return checked.build(cls, raw, f"{backend} options", BackendError)


def describe_options(cls) -> list[str]:
    """``key (default: value; one of a|b): help`` for every option of ``cls``, as ``list-backends`` shows them."""
    lines = []
    for f in dataclasses.fields(cls):
        choices = f.metadata.get("choices")
        extra = f"; one of {'|'.join(map(str, choices))}" if choices else ""
        lines.append(f"{f.name} (default: {f.default!r}{extra}): {f.metadata.get('help', '')}")
    return lines


class Backend(ABC):
    """One inference strategy.

    Attributes
    ----------
    name : str
        Registry name.
    precisions : tuple of str
        Precisions this backend implements.
    Options : type
        Frozen dataclass of the options a trial may set for it (``options:`` in the config), each an
        :func:`option` with default and help; validated before any work (:meth:`check`).
    """

    name: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    Options: type = NoOptions

    @abstractmethod
    def available(self) -> tuple[bool, str]:
        """Return (ok, reason); reason says why not and how to fix it when ok is False."""

    @abstractmethod
    def prepare(
        self,
        model: nn.Module,
        example: torch.Tensor,
        options: BackendOptions,
        calibration: list[torch.Tensor] | None = None,
    ) -> Runner:
        """Build a runner for ``model`` (eval mode, BN statistics already set).

        ``calibration``: batches of the fold's training inputs, for backends that calibrate (int8).
        Called once per trial when :meth:`can_swap` is True (later samples, of any fold, go through
        :meth:`update`), else for every sample.
        """

    def python(self) -> str | None:
        """Interpreter its worker runs under, when it cannot share the harness's environment
        (None = the harness's own). A trial's ``python:`` overrides it."""
        return None

    def can_swap(self, options: BackendOptions) -> bool:
        """True if :meth:`update` can move a runner to new weights without re-preparing."""
        return False

    def variants(self, options: BackendOptions) -> tuple[str, dict[str, BackendOptions]] | None:
        """Where ``options`` leave an option to ``auto``: its name and each candidate's concrete options, in order;
        the harness measures them on the trial's first sample and keeps the cheapest at the target
        (:mod:`swagbench.bench.answer.auto`). None (the default): nothing to choose."""
        return None

    def predict_options(self, options: BackendOptions) -> BackendOptions:
        """``options`` less those that shape only the BatchNorm pass (e.g. OpenVINO int8's ``bn_precision``): candidates
        of :meth:`variants` that agree on them share one predict graph, which ``auto`` then measures once."""
        return options

    def prepare_compiles(self, options: BackendOptions) -> bool:
        """True if :meth:`prepare` builds something (a trace, a compiled graph, a session) whose first call per
        batch shape pays a one-off cost; that call is then timed as ``warmup``. False (eager) times every call
        after the worker's first per shape as ``predict``."""
        return True

    def update(
        self, runner: Runner, model: nn.Module, options: BackendOptions, calibration: list[torch.Tensor] | None = None
    ) -> Runner:
        """Move ``runner`` to the weights (and BN statistics) now in ``model``; see :meth:`can_swap`.

        ``model`` is the module that was prepared, updated in place; ``calibration`` is the current
        fold's training inputs."""
        raise BackendError(f"backend {self.name!r} cannot swap weights; it re-prepares per sample")

    def statistics(
        self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None
    ) -> StatisticsRunner:
        """A runner computing BatchNorm batch statistics with the weights now in ``model`` (train-mode BN).

        Called once per trial; later samples go through :meth:`update_statistics`. ``example`` is one of the
        fold's BN batches; ``calibration``, all of them (an int8 pass calibrates on their first few; a new
        object means a new fold). Raise :class:`StatisticsUnsupported` (saying why) where this backend cannot.
        """
        raise StatisticsUnsupported(f"backend {self.name!r} does not compute BatchNorm statistics")

    def update_statistics(
        self,
        runner: StatisticsRunner,
        model: nn.Module,
        example: torch.Tensor,
        options: BackendOptions,
        calibration=None,
    ) -> StatisticsRunner:
        """Move a statistics runner to the weights now in ``model`` (updated in place); by default build it anew."""
        return self.statistics(model, example, options, calibration)

    def versions(self) -> dict[str, str]:
        """Library versions this backend runs on, recorded in each result row."""
        return {"torch": torch.__version__}

    def check(self, options: BackendOptions) -> None:
        """Raise BackendError if ``options`` are impossible for this backend."""
        if options.precision not in self.precisions:
            raise BackendError(
                f"backend {self.name!r} has no {options.precision} mode; choose one of {', '.join(self.precisions)}"
            )
        self.settings(options)

    def settings(self, options: BackendOptions):
        """The trial's typed, validated :attr:`Options` (defaults for what it does not set)."""
        return typed_options(self.Options, options.extra, self.name)
