"""Launch one trial in an isolated worker process and survive whatever happens to it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swagbench.bench.measure.memory import anon_bytes, peak_rss_bytes, tree_rss_bytes

# The user's own choice, read before torch runs in this process: torch writes this variable into
# os.environ the first time Inductor looks up its cache, and the parent must not pass that on.
USER_INDUCTOR_CACHE = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
WORKER_MODULE = "swagbench.bench.execute.worker"  # python -m WORKER_MODULE SPEC RESULT


@dataclass
class WorkerOutcome:
    """status: ``ok`` | ``failed`` | ``timeout`` | ``oom``. payloads: one per worker when all
    succeeded. peak_rss_bytes: the sum over workers of each one's VmHWM (polled by the parent while
    it runs, so known even for a worker that crashed, and taken together with the worker's own
    final reading); with one worker, exactly its peak, with several an upper bound of their
    combined peak. peak_anon_bytes: the peak of the workers' anonymous memory together (what would run out;
    RSS also counts the memory-mapped data's shared page cache), polled by the parent, or what the workers
    measured themselves if that is more."""

    status: str
    payloads: list[dict[str, Any]] | None
    error: str | None
    wall_s: float
    peak_rss_bytes: int | None
    peak_anon_bytes: int | None = None


@dataclass
class WorkerJob:
    """One worker process of a trial: ``python -m swagbench.bench.execute.worker spec result``, stderr to log."""

    spec_path: Path
    result_path: Path
    log_path: Path


def thread_env(threads: int) -> dict[str, str]:
    """Environment that pins every threading library of a worker to ``threads``."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def run_workers(
    jobs: list[WorkerJob],
    threads: int,
    timeout_s: float,
    python: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    memory_limit_bytes: int | None = None,
) -> WorkerOutcome:
    """Run a trial's workers concurrently, each with ``threads`` threads, under one wall-clock limit.

    ``on_progress`` gets the number of samples done by all workers together. If one worker
    fails, the others are stopped: the trial failed. With ``memory_limit_bytes`` the workers
    (with any children, e.g. compiler processes) are killed once their resident memory together
    exceeds it: the trial would not fit on the target machine.
    """
    env = {**os.environ, **thread_env(threads)}
    # swagbench is installed; the working directory is importable as for the parent (the user's own modules)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    done = [0] * len(jobs)

    def report(i: int, count: int) -> None:
        done[i] = count
        if on_progress is not None:
            on_progress(sum(done))

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="swagbench-cache-"))
        # Compilers start cold in every trial (as on a new VM) unless the user chose a cache dir.
        env["TORCHINDUCTOR_CACHE_DIR"] = USER_INDUCTOR_CACHE or cache
        watch = _Watch(len(jobs), start, timeout_s, memory_limit_bytes)
        readers = []
        try:
            # Started from this (main) thread: workers are killed when it dies (PR_SET_PDEATHSIG).
            for i, job in enumerate(jobs):
                job.result_path.unlink(missing_ok=True)
                log = stack.enter_context(open(job.log_path, "wb"))
                proc = subprocess.Popen(
                    [python or sys.executable, "-m", WORKER_MODULE, str(job.spec_path), str(job.result_path)],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                )
                watch.procs.append(proc)
                reader = threading.Thread(target=_read_progress, args=(proc.stdout, i, report), daemon=True)
                reader.start()
                readers.append(reader)
            watch.supervise()
        except BaseException:  # Ctrl-C or any error here: workers (own sessions) must not outlive us
            _kill(watch.procs, watch.codes)
            raise
        for reader in readers:
            reader.join(timeout=5)
    return watch.outcome(jobs, time.perf_counter() - start)


class _Watch:
    """The parent's watch over a trial's running workers: exit codes, peak memory, and why it stopped them."""

    def __init__(self, workers: int, start: float, timeout_s: float, memory_limit_bytes: int | None) -> None:
        self.procs: list[subprocess.Popen] = []
        self.codes: list[int | None] = [None] * workers
        self.peaks = [0] * workers
        self.start, self.timeout_s, self.memory_limit_bytes = start, timeout_s, memory_limit_bytes
        self.killed_for: str | None = None
        self.killed: set[int] = set()
        self.resident = 0
        self.anon = 0  # peak of the workers' anonymous memory together

    def supervise(self) -> None:
        """Poll until every worker ended, or stop them all: a sibling failed, the time or the memory ran out."""
        while True:
            running = [(i, p) for i, p in enumerate(self.procs) if self.codes[i] is None]
            for i, proc in running:
                self.peaks[i] = max(self.peaks[i], peak_rss_bytes(proc.pid) or 0)
            self.anon = max(self.anon, sum(anon_bytes(p.pid) or 0 for _, p in running))
            if self.memory_limit_bytes is not None:
                self.resident = max(self.resident, sum(tree_rss_bytes(p.pid) for _, p in running))
            for i, proc in running:
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
                if pid:
                    self.codes[i] = proc.returncode = os.waitstatus_to_exitcode(status)
            if all(c is not None for c in self.codes):
                return
            if any(c not in (None, 0) for c in self.codes):
                self.killed_for = "sibling"
            elif time.perf_counter() - self.start > self.timeout_s:
                self.killed_for = "timeout"
            elif self.memory_limit_bytes is not None and self.resident > self.memory_limit_bytes:
                self.killed_for = "oom"
            if self.killed_for:
                self.killed = _kill(self.procs, self.codes)
                return
            time.sleep(0.05)

    def outcome(self, jobs: list[WorkerJob], wall: float) -> WorkerOutcome:
        payloads = [json.loads(j.result_path.read_text()) if j.result_path.is_file() else None for j in jobs]
        peaks = zip(self.peaks, payloads, strict=True)
        peak = sum(max(pk, (pl or {}).get("peak_rss_bytes") or 0) for pk, pl in peaks) or None
        anon = max(self.anon, sum((pl or {}).get("peak_anon_bytes") or 0 for pl in payloads)) or None
        if self.killed_for == "timeout":
            error = f"timed out after {self.timeout_s:.0f} s (raise timeout_s)"
            return WorkerOutcome("timeout", None, error, wall, peak, anon)
        if self.killed_for == "oom":
            error = (
                f"stopped at {self.resident / 1e9:.2f} GB resident, over the {self.memory_limit_bytes / 1e9:.2f} GB "
                "memory limit (memory_limit_gb / the profile's memory); use fewer workers, a smaller batch or a "
                "bigger machine"
            )
            return WorkerOutcome("oom", None, error, wall, max(peak or 0, self.resident), anon)
        if all(pl and pl.get("ok") for pl in payloads):
            return WorkerOutcome("ok", payloads, None, wall, peak, anon)
        for i, (job, pl) in enumerate(zip(jobs, payloads, strict=True)):  # the first worker that failed by itself
            if i in self.killed:
                continue
            reason = (
                pl.get("error")
                if pl
                else _crash_reason(self.codes[i], job.log_path, self.peaks[i], self.memory_limit_bytes)
            )
            return WorkerOutcome("failed", None, _worker_name(i, len(jobs)) + reason, wall, peak, anon)
        raise AssertionError("unreachable: a trial that did not succeed has a worker that failed")


def _worker_name(i: int, n: int) -> str:
    return f"worker {i + 1}/{n}: " if n > 1 else ""


def _kill(procs: list[subprocess.Popen], codes: list[int | None]) -> set[int]:
    """SIGKILL every still-running worker's process group; return their indices."""
    killed = set()
    for i, proc in enumerate(procs):
        if codes[i] is None:
            killed.add(i)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            _, status = os.waitpid(proc.pid, 0)
            codes[i] = proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    return killed


def _read_progress(stream, index: int, report: Callable[[int, int], None]) -> None:
    for raw in stream:
        parts = raw.decode(errors="replace").split()
        if len(parts) == 3 and parts[0] == "progress":
            report(index, int(parts[1]))


# A SIGKILLed worker is blamed on the kernel's OOM killer only when its memory came this close to the limit (or to
# the machine's memory): a kill -9 from outside is not an out-of-memory verdict.
OOM_NEAR = 0.8


def _crash_reason(code: int, log_path: Path, peak_bytes: int = 0, limit_bytes: int | None = None) -> str:
    """Why a worker ended without a result; ``peak_bytes``: its peak resident memory, ``limit_bytes``: the trial's
    memory limit (None: this machine's memory)."""
    if code < 0:
        name = signal.Signals(-code).name
        hint = ""
        if -code == signal.SIGKILL:
            import psutil

            limit = limit_bytes or psutil.virtual_memory().total
            used = f"{peak_bytes / 1e9:.2f} GB resident of {limit / 1e9:.2f} GB"
            hint = (
                f" (likely out of memory: the kernel's OOM killer; {used})"
                if peak_bytes >= OOM_NEAR * limit
                else f" (from outside this run, not for memory: {used})"
            )
        elif -code == signal.SIGBUS:
            hint = " (often a full disk under a memory-mapped file: free space in the results folder)"
        reason = f"worker killed by {name}{hint}"
    else:
        reason = f"worker exited with code {code} and no result"
    tail = log_path.read_text(errors="replace").strip().splitlines()[-3:] if log_path.is_file() else []
    return reason + (f"; log: {' | '.join(tail)}" if tail else "")
