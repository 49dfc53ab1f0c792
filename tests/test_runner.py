"""The parent survives crashing, hanging and failing workers and records each as a row."""

import pytest

from bench.config import load_config
from bench.results import read_rows
from bench.run import execute

pytestmark = pytest.mark.e2e


def test_faulty_workers_are_recorded_and_the_run_continues(tiny_overrides):
    trials = (
        "[{backend: 'tests.faulty_backends:SegfaultBackend'}, {backend: 'tests.faulty_backends:HangBackend'},"
        " {backend: 'tests.faulty_backends:RaiseBackend'}, {backend: 'tests.faulty_backends:MissingBackend'},"
        " {backend: eager}]"
    )
    cfg = load_config(None, [*tiny_overrides, f"trials={trials}", "timeout_s=25"])
    run_dir = execute(cfg, log=lambda *_: None)
    rows = {r["trial_id"].split("-")[0]: r for r in read_rows(run_dir)}
    assert rows["00"]["status"] == "failed" and "SIGSEGV" in rows["00"]["error"]
    assert rows["00"]["peak_rss_bytes"] > 0  # measured by the kernel even though the worker died
    assert rows["01"]["status"] == "timeout" and "timed out after 25 s" in rows["01"]["error"]
    assert rows["02"]["status"] == "failed" and "conversion failed on purpose" in rows["02"]["error"]
    assert rows["03"]["status"] == "skipped" and "pip install nothing" in rows["03"]["error"]
    assert rows["04"]["status"] == "ok"
    summary = (run_dir / "summary.md").read_text()
    assert "## Failed or skipped" in summary and "SIGSEGV" in summary
