"""The ``ray`` executor: a trial's worker parts run as Ray tasks on a cluster (or a local Ray instance).

Each task runs the same worker code as a local worker process (:func:`swagbench.bench.execute.worker_loop.run_tasks`),
in a fresh Ray worker process (``max_calls=1``: no state, compiled cache or memory high-water mark
carries over from another task), with ``num_cpus`` = the trial's threads per worker. Inputs (the
run folder's data.npz, folds.npy and the posteriors) are read from their paths, so on a cluster
the results and cache folders must be on storage every node mounts at the same path; member
probabilities come back through Ray's object store and the driver writes them into the trial's
member map, after which the trial finishes exactly as a local one (same streaming mean, same
confident learning). A task lost with its node or process is retried (``max_retries``); a task
that raises, or still fails after its retries, fails the trial, which is recorded like any failure.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from swagbench.bench.errors import ConfigError
from swagbench.bench.execute.worker_loop import TrialSpec
from swagbench.bench.execute.worker_process import WorkerOutcome
from swagbench.bench.record.journal import MemberJournal, commit
from swagbench.bench.record.rundir import TrialDir


def _run_part(spec: dict[str, Any]) -> dict[str, Any]:
    from swagbench.bench.execute.worker_loop import run_tasks

    return run_tasks(TrialSpec(**spec))


class RayExecutor:
    """Connects to Ray (``address``: None starts a local instance, ``auto`` joins the cluster this
    machine belongs to, ``ray://host:10001`` a remote one) and runs trial parts as tasks
    (:class:`swagbench.bench.execute.executors.Executor`).

    Ctrl-C or SIGTERM during :meth:`run` leaves the tasks to Ray, which ends a departed driver's tasks (``close``
    disconnects it): cancelling them raced their replies, and Ray 2.60 aborted the process ("Tried to complete task
    that was not pending") before the resume command could be printed."""

    shares_files = False  # results come back through the object store

    def __init__(
        self, address: str | None, max_retries: int, log: Callable[[str], None] = print, node_ip: str | None = None
    ) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("executor=ray needs Ray: pip install -e '.[ray]' (or use executor=local)") from None
        self.ray = ray
        self.max_retries = max_retries
        self.started = not ray.is_initialized()
        if self.started:
            try:
                where = {"_node_ip_address": node_ip} if node_ip else {}
                ours = signal.getsignal(signal.SIGTERM)
                with _loopback(node_ip):
                    ray.init(
                        address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **where
                    )
                # Ray's core worker installs its own SIGTERM handler (a native stack dump, exit 1); a preemption must
                # stop a run or job as Ctrl-C does (members kept, the resume command, exit 143)
                signal.signal(signal.SIGTERM, ours)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"cannot connect to Ray at {address!r} ({exc}); check --ray-address") from exc
        cpus = ray.cluster_resources().get("CPU", 0)
        log(f"swagbench: Ray {ray.__version__} at {address or 'a new local instance'}: {cpus:.0f} CPUs in the cluster")

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()

    def node_cpus(self) -> list[int]:
        """CPUs of every live node that has any (a head started with --num-cpus 0 runs no task)."""
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        return [int(n["Resources"]["CPU"]) for n in nodes if n.get("Resources", {}).get("CPU", 0) >= 1]

    def check_fits(self, threads: int) -> None:
        """A task of ``threads`` CPUs must fit on some node: Ray would keep it pending forever, without a word."""
        cpus = self.node_cpus()
        if not cpus or threads > max(cpus):
            raise ConfigError(
                f"a task needs {threads} CPUs but the largest Ray node has {max(cpus, default=0)}; "
                f"set threads={max(cpus, default=1)} (or fewer) or add bigger nodes"
            )

    def refuses(self, python: str | None) -> str | None:
        if python:
            return f"needs its own interpreter ({python}), which Ray tasks cannot use; run it with executor=local"
        return None

    def run(
        self,
        specs: list[TrialSpec],
        trial_dir: TrialDir,
        threads: int,
        timeout_s: float,
        python: str | None = None,
        on_progress: Callable[[int], None] | None = None,
        journal: MemberJournal | None = None,
    ) -> WorkerOutcome:
        """Run ``specs`` (no map paths) as Ray tasks; write their rows into the trial's member map and their
        BatchNorm statistics into its statistics map (with a job's ``journal``: each member committed as its task
        returns, so a task lost later costs nothing already returned)."""
        ray = self.ray
        try:
            self.check_fits(threads)
        except ConfigError as exc:
            return WorkerOutcome("failed", None, str(exc), 0.0, None)
        remote = ray.remote(num_cpus=threads, max_retries=self.max_retries, max_calls=1)(_run_part)
        start = time.perf_counter()
        pending = {remote.remote(vars(spec)): i for i, spec in enumerate(specs)}
        payloads: list[dict[str, Any] | None] = [None] * len(specs)
        members = np.load(trial_dir.members, mmap_mode="r+")
        bn_stats = np.load(trial_dir.bn_stats, mmap_mode="r+")
        samples_done = 0
        try:
            while pending:
                left = timeout_s - (time.perf_counter() - start)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(left, 0))
                if not ready:
                    return self._stop(pending, f"timed out after {timeout_s:.0f} s (raise timeout_s)", start, "timeout")
                i = pending.pop(ready[0])
                try:
                    payload = ray.get(ready[0])
                except (ray.exceptions.RayTaskError, ray.exceptions.RayError) as exc:
                    reason = _first_line(exc)
                    if isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
                        reason += f" (lost {self.max_retries + 1} times: a crash, the OOM killer or a lost node)"
                    return self._stop(pending, f"Ray task {i + 1}/{len(specs)}: {reason}", start, "failed")
                rows, stats = payload.pop("member_rows"), payload.pop("bn_rows")
                for (sample, idx, probs), (_, fold, vector) in zip(rows, stats, strict=True):
                    if journal is not None:
                        commit(members, bn_stats, journal, sample, fold, np.asarray(idx), probs, vector)
                    else:
                        members[sample, idx], bn_stats[sample, fold] = probs, vector
                payloads[i] = payload
                samples_done += sum(stop - first for _, first, stop in specs[i].tasks)
                if on_progress is not None:
                    on_progress(samples_done)  # summed over shards, like local workers' counts
        finally:  # on Ctrl-C or SIGTERM the tasks are left to Ray (see the class docstring)
            members.flush()
            bn_stats.flush()
            del members, bn_stats
        peak = sum(p["peak_rss_bytes"] or 0 for p in payloads) or None
        anon = sum(p.get("peak_anon_bytes") or 0 for p in payloads) or None  # an upper bound: tasks may not overlap
        return WorkerOutcome("ok", payloads, None, time.perf_counter() - start, peak, anon)

    def _stop(self, pending: dict, error: str, start: float, status: str) -> WorkerOutcome:
        for ref in pending:
            self.ray.cancel(ref, force=True)
        return WorkerOutcome(status, None, error, time.perf_counter() - start, None)


@contextlib.contextmanager
def _loopback(node_ip: str | None):
    """With ``node_ip`` a loopback address (a cluster started on this machine with ``--node-ip-address 127.0.0.1``),
    keep the driver on loopback too: Ray 2.60's ``ray.init`` rewrites a ``127.0.0.1:port`` address to this machine's
    interface address (``resolve_ip_for_localhost``) unless its cluster mode is off, and then waits for a GCS that
    never answers there (minutes, without a word)."""
    import ipaddress

    import ray._private.ray_constants as constants

    try:
        loopback = node_ip == "localhost" or (node_ip is not None and ipaddress.ip_address(node_ip).is_loopback)
    except ValueError:  # a host name: Ray resolves it as given
        loopback = False
    if not loopback or not hasattr(constants, "ENABLE_RAY_CLUSTER"):
        yield
        return
    before, constants.ENABLE_RAY_CLUSTER = constants.ENABLE_RAY_CLUSTER, False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = before


def _first_line(exc: Exception) -> str:
    """Ray wraps a task's exception in a multi-line traceback; keep the exception's own line."""
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
