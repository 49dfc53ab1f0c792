"""Launch one trial in an isolated worker process and survive whatever happens to it."""

from __future__ import annotations

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

from bench.memory import peak_rss_bytes, tree_rss_bytes

REPO_ROOT = Path(__file__).resolve().parent.parent
# The user's own choice, read before torch runs in this process: torch writes this variable into
# os.environ the first time Inductor looks up its cache, and the parent must not pass that on.
USER_INDUCTOR_CACHE = os.environ.get("TORCHINDUCTOR_CACHE_DIR")


@dataclass
class WorkerOutcome:
    """status: ``ok`` | ``failed`` | ``timeout`` | ``oom``. peak_rss_bytes is the worker's VmHWM, polled by
    the parent while it runs (so known even for a worker that crashed) and taken together with
    the worker's own final reading."""

    status: str
    payload: dict[str, Any] | None
    error: str | None
    wall_s: float
    peak_rss_bytes: int | None
    returncode: int | None


def thread_env(threads: int) -> dict[str, str]:
    """Environment that pins every threading library of a worker to ``threads``."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def run_worker(
    spec_path: Path,
    result_path: Path,
    threads: int,
    timeout_s: float,
    log_path: Path,
    python: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    memory_limit_bytes: int | None = None,
) -> WorkerOutcome:
    """Run ``python -m bench.worker spec result`` with a thread budget and a wall-clock limit.

    With ``memory_limit_bytes`` the worker (with any children, e.g. compiler processes) is
    killed once its resident memory exceeds it: the trial would not fit on the target machine.
    """
    env = {**os.environ, **thread_env(threads)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.getcwd(), env.get("PYTHONPATH")]))
    result_path.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(log_path, "wb") as log, tempfile.TemporaryDirectory(prefix="swagbench-cache-") as cache:
        # Compilers start cold in every trial (as on a new VM) unless the user chose a cache dir.
        env["TORCHINDUCTOR_CACHE_DIR"] = USER_INDUCTOR_CACHE or cache
        proc = subprocess.Popen(
            [python or sys.executable, "-m", "bench.worker", str(spec_path), str(result_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            start_new_session=True,
        )
        reader = threading.Thread(target=_read_progress, args=(proc.stdout, on_progress), daemon=True)
        reader.start()
        killed_for, peak, resident = None, 0, 0
        try:
            while True:
                peak = max(peak, peak_rss_bytes(proc.pid) or 0)
                if memory_limit_bytes is not None:
                    resident = max(resident, tree_rss_bytes(proc.pid))
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - start > timeout_s:
                    killed_for = "timeout"
                elif memory_limit_bytes is not None and resident > memory_limit_bytes:
                    killed_for = "oom"
                if killed_for:
                    os.killpg(proc.pid, signal.SIGKILL)
                    pid, status = os.waitpid(proc.pid, 0)
                    break
                time.sleep(0.05)
        except BaseException:  # Ctrl-C or any error here: the worker (own session) must not outlive us
            os.killpg(proc.pid, signal.SIGKILL)
            os.waitpid(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
        reader.join(timeout=5)
    wall = time.perf_counter() - start
    code = proc.returncode
    if killed_for == "timeout":
        return WorkerOutcome("timeout", None, f"timed out after {timeout_s:.0f} s (raise timeout_s)", wall, peak, code)
    if killed_for == "oom":
        error = (
            f"stopped at {resident / 1e9:.2f} GB resident, over the {memory_limit_bytes / 1e9:.2f} GB memory limit "
            "(memory_limit_gb / the profile's memory); use fewer workers, a smaller batch or a bigger machine"
        )
        return WorkerOutcome("oom", None, error, wall, max(peak, resident), code)
    payload = json.loads(result_path.read_text()) if result_path.is_file() else None
    peak = max(peak, (payload or {}).get("peak_rss_bytes") or 0) or None
    if payload and payload.get("ok"):
        return WorkerOutcome("ok", payload, None, wall, peak, code)
    if payload:
        return WorkerOutcome("failed", None, payload.get("error"), wall, peak, code)
    return WorkerOutcome("failed", None, _crash_reason(code, log_path), wall, peak, code)


def _read_progress(stream, on_progress) -> None:
    for raw in stream:
        parts = raw.decode(errors="replace").split()
        if len(parts) == 3 and parts[0] == "progress" and on_progress is not None:
            on_progress(int(parts[1]), int(parts[2]))


def _crash_reason(code: int, log_path: Path) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = {
            signal.SIGKILL: " (likely out of memory: the kernel's OOM killer)",
            signal.SIGBUS: " (often a full disk under a memory-mapped file: free space in the results folder)",
        }.get(-code, "")
        reason = f"worker killed by {name}{hint}"
    else:
        reason = f"worker exited with code {code} and no result"
    tail = log_path.read_text(errors="replace").strip().splitlines()[-3:] if log_path.is_file() else []
    return reason + (f"; log: {' | '.join(tail)}" if tail else "")
