"""Long runs survive faults: kill -9 and resume, torn and damaged rows, cached posteriors,
memory limits and a full disk. Each fault is injected for real."""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from swagbench.bench.cli import main
from swagbench.bench.config import load_config
from swagbench.bench.dataset import load_dataset
from swagbench.bench.errors import ResultsError
from swagbench.bench.posteriors import obtain_posteriors
from swagbench.bench.record.folds import make_folds
from swagbench.bench.record.row_store import append_row, read_rows
from swagbench.bench.run import execute
from tests.conftest import small_tmpfs, start_run, the_run

ROOT = Path(__file__).resolve().parent.parent

# The fields every stored row has (bench/record/row.py); these tests are about the store, not the measurements.
ROW = {"run_id": "r", "backend": "eager", "precision": "fp32", "channels_last": False, "threads": 1, "batch_size": 8}


def _quiet(*_):
    pass


def _kill_9_once(args, results: Path, when: str, settle_s: float = 0.0) -> Path:
    """Start ``swagbench run ARGS`` in a process, SIGKILL it once ``results`` holds a path matching ``when`` (and
    ``settle_s`` more seconds have passed), and return the run folder it left."""
    proc = start_run(args)
    deadline = time.time() + 180
    while not list(results.glob(when)) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(settle_s)
    proc.send_signal(signal.SIGKILL)  # the harness dies at once
    proc.wait()
    return the_run(results)


def test_torn_tail_is_skipped_and_the_next_row_starts_a_fresh_line(tmp_path):
    append_row(tmp_path, {**ROW, "trial_id": "a", "status": "ok"})
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"trial_id": "b", "sta')  # killed mid-write
    append_row(tmp_path, {**ROW, "trial_id": "c", "status": "ok"})
    warnings = []
    assert [r["trial_id"] for r in read_rows(tmp_path, warn=warnings.append)] == ["a", "c"]
    assert len(warnings) == 1 and "line 2 is torn or damaged" in warnings[0]


def test_damaged_row_fails_its_checksum_and_the_rest_is_kept(tmp_path):
    for t in "abc":
        append_row(tmp_path, {**ROW, "trial_id": t, "status": "ok", "wall_s": 1.5})
    path = tmp_path / "results.jsonl"
    path.write_text(path.read_text().replace('"wall_s": 1.5', '"wall_s": 9.5', 1))  # a flipped digit, valid JSON
    warnings = []
    assert [r["trial_id"] for r in read_rows(tmp_path, warn=warnings.append)] == ["b", "c"]
    assert "line 1" in warnings[0]


def test_rerun_row_replaces_the_earlier_one_in_place(tmp_path):
    append_row(tmp_path, {**ROW, "trial_id": "a", "status": "failed"})
    append_row(tmp_path, {**ROW, "trial_id": "b", "status": "ok"})
    append_row(tmp_path, {**ROW, "trial_id": "a", "status": "ok"})
    assert [(r["trial_id"], r["status"]) for r in read_rows(tmp_path)] == [("a", "ok"), ("b", "ok")]


def test_full_disk_is_one_clear_error(tmp_path):
    (tmp_path / "results.jsonl").symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(ResultsError, match="No space left on device.*free disk space"):
        append_row(tmp_path, {**ROW, "trial_id": "a", "status": "ok"})


def test_run_on_a_full_filesystem_exits_2_with_one_line(tmp_path, tiny_overrides, capsys):
    with small_tmpfs(tmp_path / "small", free_kib=0) as mnt:  # full from the start
        code = main(["run", *tiny_overrides, "--results-dir", str(mnt), "--backends", "eager"])
        err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "No space left on device" in err[0] and "free disk space" in err[0]


def test_posteriors_are_cached_by_content_and_a_damaged_cache_is_retrained(tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides)
    data = load_dataset(cfg.data)
    folds = make_folds(data.labels, cfg.ensemble.folds, cfg.ensemble.seed)
    first = obtain_posteriors(cfg, data, folds, tmp_path, log=_quiet)
    assert first.source == "trained" and len(first.paths) == 2
    again = obtain_posteriors(cfg, data, folds, tmp_path, log=_quiet)
    assert again.source == "cache" and again.paths == first.paths and again.train_s == first.train_s
    other = load_config(None, [*tiny_overrides, "train.lr=0.01"])  # any training input changes the key
    assert obtain_posteriors(other, data, folds, tmp_path, log=_quiet).key != first.key
    with open(first.paths[1], "r+b") as f:  # flip bytes inside a cached tensor
        f.seek(-64, os.SEEK_END)
        f.write(b"\xff" * 8)
    logs = []
    fixed = obtain_posteriors(cfg, data, folds, tmp_path, log=logs.append)
    assert fixed.source == "trained" and any("damaged; retraining" in m for m in logs)


@pytest.mark.e2e
def test_memory_limit_stops_the_trial_as_oom_and_the_run_continues(tiny_overrides):
    trials = "trials=[{backend: eager}, {backend: 'tests.faulty_backends:HogBackend'}]"
    run_dir = execute(load_config(None, [*tiny_overrides, trials, "memory_limit_gb=1.5"]), log=_quiet)
    ref, hog = read_rows(run_dir)
    assert ref["status"] == "ok"
    assert hog["status"] == "oom" and "over the 1.50 GB memory limit" in hog["error"]
    assert hog["wall_s"] < 60  # stopped, not left to the timeout


@pytest.mark.e2e
def test_kill_9_mid_trial_then_resume_finishes_without_redoing_recorded_trials(tiny_overrides, tmp_path):
    import psutil

    args = [*tiny_overrides, "--backends", "eager,eager:bf16,torchscript"]
    run_dir = _kill_9_once(args, tmp_path / "results", when="*/trials/01-*/spec.json")  # mid-trial
    before = read_rows(run_dir)
    assert [r["trial_id"] for r in before] == ["00-eager-fp32"]
    time.sleep(1)
    orphans = [p for p in psutil.process_iter(["cmdline"]) if str(run_dir) in " ".join(p.info["cmdline"] or [])]
    assert orphans == []  # the worker died with its parent

    assert main(["run", "--resume", str(run_dir)]) == 0
    rows = read_rows(run_dir)
    assert [r["trial_id"] for r in rows] == ["00-eager-fp32", "01-eager-bf16", "02-torchscript-fp32"]
    assert rows[0] == before[0]  # recorded, not rerun
    assert all(r["status"] == "ok" and r.get("validity") == "VALID" for r in rows)
    assert all(r["posterior_source"] == "cache" for r in rows[1:])
    assert json.loads((run_dir / "posteriors.json").read_text())["source"] == "cache"
    assert main(["run", "--resume", str(run_dir)]) == 0  # nothing left to do: no new rows
    assert (run_dir / "results.jsonl").read_text().count("\n") == 3


@pytest.mark.e2e
def test_resume_reruns_failed_trials_only_when_asked(tiny_overrides):
    trials = "trials=[{backend: eager}, {backend: 'tests.faulty_backends:RaiseBackend'}]"
    run_dir = execute(load_config(None, [*tiny_overrides, trials]), log=_quiet)
    assert [r["status"] for r in read_rows(run_dir)] == ["ok", "failed"]
    lines = (run_dir / "results.jsonl").read_text()
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert (run_dir / "results.jsonl").read_text() == lines
    assert main(["run", "--resume", str(run_dir), "--retry-failed"]) == 0
    assert (run_dir / "results.jsonl").read_text().startswith(lines)  # appended, nothing rewritten
    assert [r["status"] for r in read_rows(run_dir)] == ["ok", "failed"]  # it fails again, as it should


def test_a_torn_row_that_a_resume_replaced_is_not_reported_again(tmp_path):
    append_row(tmp_path, {**ROW, "trial_id": "a", "status": "ok"})
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"backend": "eager", "ca')  # killed mid-write: too short to name its trial
    warnings = []
    read_rows(tmp_path, warn=warnings.append)
    assert len(warnings) == 1  # it matters: that trial has no row yet
    append_row(tmp_path, {**ROW, "trial_id": "b", "status": "ok"})  # the resume reran it
    warnings.clear()
    assert [r["trial_id"] for r in read_rows(tmp_path, warn=warnings.append)] == ["a", "b"]
    assert warnings == []
    # A damaged row that names its trial matters until that trial has a newer intact row.
    path = tmp_path / "results.jsonl"
    path.write_text(path.read_text().replace('"status": "ok"', '"status": "OK"', 1))
    read_rows(tmp_path, warn=warnings.append)
    assert len(warnings) == 1 and "line 1" in warnings[0]
    append_row(tmp_path, {**ROW, "trial_id": "a", "status": "ok"})
    warnings.clear()
    read_rows(tmp_path, warn=warnings.append)
    assert warnings == []


@pytest.mark.e2e
def test_a_run_killed_while_training_resumes_from_training(tiny_overrides, tmp_path):
    args = [*tiny_overrides, "train.epochs=400", "--backends", "eager"]
    # folds.npy is written just before training starts; 400 epochs take tens of seconds
    run_dir = _kill_9_once(args, tmp_path / "results", when="*/folds.npy", settle_s=1.0)
    assert not (run_dir / "results.jsonl").exists()
    assert main(["run", "--resume", str(run_dir)]) == 0
    (row,) = read_rows(run_dir)
    assert row["status"] == "ok" and row["validity"] == "VALID" and row["posterior_source"] == "trained"


@pytest.mark.e2e
def test_resume_from_another_directory_uses_the_runs_own_folders(tiny_overrides, tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    home.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(home)
    relative = [o for o in tiny_overrides if not o.startswith("results_dir=")]  # the default: ./results
    assert main(["run", *relative, "--backends", "eager,eager:bf16"]) == 0
    run_dir = the_run(home / "results")
    rows = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text(rows[0])  # as if killed after the first trial
    monkeypatch.chdir(elsewhere)
    assert main(["run", "--resume", str(run_dir)]) == 0
    assert list(elsewhere.iterdir()) == []  # no stray ./results or cache here
    assert [r["posterior_source"] for r in read_rows(run_dir)] == ["trained", "cache"]
    paths = json.loads((run_dir / "posteriors.json").read_text())["paths"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths)


@pytest.mark.e2e
def test_a_model_factory_in_the_users_directory_is_found(tiny_overrides, tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(
        "from swagbench.swag.models import build_model\n\n"
        "def make_net(num_classes, in_channels):\n"
        "    return build_model('digits_cnn', num_classes, in_channels)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["run", "--backends", "eager", *tiny_overrides, "model=mymodels:make_net"]) == 0
    (row,) = read_rows(the_run(tmp_path / "results"))
    assert row["status"] == "ok" and row["model"] == "mymodels:make_net"
