"""Backends that misbehave on purpose, loaded by the runner tests as ``tests.faulty_backends:Name``."""

import os
import signal
import time

from swagbench.backends.base import Backend
from swagbench.backends.eager import EagerBackend


class SegfaultBackend(EagerBackend):
    name = "segfault"

    def prepare(self, model, example, options, calibration=None):
        os.kill(os.getpid(), signal.SIGSEGV)


class HangBackend(EagerBackend):
    name = "hang"

    def prepare(self, model, example, options, calibration=None):
        time.sleep(3600)


class RaiseBackend(EagerBackend):
    name = "raise"

    def prepare(self, model, example, options, calibration=None):
        raise RuntimeError("conversion failed on purpose")


class HogBackend(EagerBackend):
    """Touches 3 GB of memory: a memory limit below that must stop it."""

    name = "hog"

    def prepare(self, model, example, options, calibration=None):
        import numpy as np

        ballast = np.ones(3 * 10**9 // 8)
        time.sleep(3600)
        return ballast


class MissingBackend(EagerBackend):
    name = "missing"

    def available(self):
        return False, "package 'nothing' is not installed; pip install nothing"


class PerturbedBackend(EagerBackend):
    """Right shapes, wrong numbers: logits plus noise. The fidelity gate must mark it INVALID."""

    name = "perturbed"

    def prepare(self, model, example, options, calibration=None):
        import torch

        run = super().prepare(model, example, options)
        return lambda batch: run(batch) + 0.5 * torch.randn(batch.shape[0], 10)


class NanBackend(EagerBackend):
    """Right shapes, non-finite numbers in one example: never an ok row, however the rest looks."""

    name = "nan"

    def prepare(self, model, example, options, calibration=None):
        run = super().prepare(model, example, options)

        def poisoned(batch):
            out = run(batch).clone()  # a normal tensor, not an inference-mode one
            out[0, 0] = float("nan")
            return out

        return poisoned


class NoStatisticsBackend(EagerBackend):
    """Predicts like eager but has no BatchNorm statistics runner (as the base class): the harness falls back."""

    name = "no-statistics"
    statistics = Backend.statistics


class SegfaultOnceBackend(EagerBackend):
    """Crashes its process the first time (a lost node or OOM-killed task), then works: a retry must recover.
    The marker file is named by $SWAGBENCH_TEST_MARKER."""

    name = "segfault_once"

    def prepare(self, model, example, options, calibration=None):
        marker = os.environ["SWAGBENCH_TEST_MARKER"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGSEGV)
        return super().prepare(model, example, options, calibration)


class SlowBackend(EagerBackend):
    """Eager, with each predict call taking 0.3 s longer: a job slow enough to be killed half-way, for real."""

    name = "slow"

    def prepare(self, model, example, options, calibration=None):
        run = super().prepare(model, example, options, calibration)

        def slow(batch):
            time.sleep(0.3)
            return run(batch)

        return slow
