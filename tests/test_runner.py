"""The parent survives crashing, hanging and failing workers and records each as a row."""

import numpy as np
import pytest

from swagbench.bench.config import load_config
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.run import execute
from tests.conftest import the_run

pytestmark = pytest.mark.e2e


def test_faulty_workers_are_recorded_and_the_run_continues(tiny_overrides):
    trials = (
        "[{backend: 'tests.faulty_backends:SegfaultBackend'}, {backend: 'tests.faulty_backends:HangBackend'},"
        " {backend: 'tests.faulty_backends:RaiseBackend'}, {backend: 'tests.faulty_backends:MissingBackend'},"
        " {backend: 'tests.faulty_backends:NanBackend'}, {backend: eager}]"
    )
    cfg = load_config(None, [*tiny_overrides, f"trials={trials}", "timeout_s=25"])
    run_dir = execute(cfg, log=lambda *_: None)
    rows = {r["backend"].rsplit(":", 1)[-1]: r for r in read_rows(run_dir)}
    assert read_rows(run_dir)[0]["backend"] == "eager"  # the reference runs first
    assert rows["eager"]["status"] == "ok" and rows["eager"]["validity"] == "VALID"
    assert rows["SegfaultBackend"]["status"] == "failed" and "SIGSEGV" in rows["SegfaultBackend"]["error"]
    assert rows["SegfaultBackend"]["peak_rss_bytes"] > 0  # polled by the parent though the worker died
    assert rows["HangBackend"]["status"] == "timeout" and "timed out after 25 s" in rows["HangBackend"]["error"]
    assert rows["RaiseBackend"]["status"] == "failed"
    assert "conversion failed on purpose" in rows["RaiseBackend"]["error"]
    assert rows["MissingBackend"]["status"] == "skipped" and "pip install nothing" in rows["MissingBackend"]["error"]
    assert rows["NanBackend"]["status"] == "failed" and "non-finite probabilities" in rows["NanBackend"]["error"]
    assert rows["NanBackend"]["validity"] is None  # a failed trial gets no verdict
    summary = (run_dir / "summary.md").read_text()
    assert "## Failed, skipped or INVALID" in summary and "SIGSEGV" in summary


def test_worker_peak_memory_is_not_inherited_from_the_parent(tiny_overrides):
    # On Linux a child's ru_maxrss includes its forked parent's peak; VmHWM does not. Hold ~2 GB
    # here so an inherited figure would stand out against a digits worker's few hundred MB.
    ballast = np.ones(2 * 1024**3 // 8)
    cfg = load_config(None, [*tiny_overrides, "trials=[{backend: eager}]"])
    (row,) = read_rows(execute(cfg, log=lambda *_: None))
    assert ballast.sum() > 0
    assert 50e6 < row["peak_rss_bytes"] < 1.5e9
    assert 0 <= row["rss_growth_bytes"] < row["peak_rss_bytes"]


def test_ctrl_c_stops_cleanly_and_leaves_no_worker(tiny_overrides, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import psutil

    root = Path(__file__).resolve().parent.parent
    trials = "trials=[{backend: eager}, {backend: 'tests.faulty_backends:HangBackend'}]"
    proc = subprocess.Popen(
        [sys.executable, "-m", "swagbench.bench.cli", "run", *tiny_overrides, trials],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A shell runs background jobs with SIGINT ignored, and the child would inherit that (Python
        # then installs no KeyboardInterrupt handler): give it the default disposition a terminal has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    results = tmp_path / "results"
    deadline = time.time() + 120
    while not list(results.glob("*/trials/01-*/worker.log")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # the hanging worker is now running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    assert f"swagbench run --resume {the_run(results)}" in err  # how to go on
    run_dir = the_run(results)
    assert [r["status"] for r in read_rows(run_dir)] == ["ok"]  # what finished is kept
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(run_dir) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []
