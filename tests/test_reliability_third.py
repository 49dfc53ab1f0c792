"""Reliability, third pass: each fault injected for real (an edited stored config, a killed reference worker, a
YAML alias bomb, a factory that cannot be called, a full disk at the start, an impossible sample count)."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from swagbench.bench.cli import main
from swagbench.bench.record.row_store import read_rows
from tests.conftest import small_tmpfs, start_run, the_run

ROOT = Path(__file__).resolve().parent.parent


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _tiny_run(tiny_overrides, tmp_path, *extra):
    assert main(["run", "--backends", "eager,eager:bf16", *tiny_overrides, *extra]) == 0
    return the_run(tmp_path / "results")


@pytest.mark.e2e
@pytest.mark.parametrize("edit", [("ensemble", "samples", 1), ("ensemble", "scale", 0.02)])
def test_resume_after_the_stored_config_was_edited_is_refused_naming_the_keys(edit, tiny_overrides, tmp_path, capsys):
    run = _tiny_run(tiny_overrides, tmp_path)
    lines = (run / "results.jsonl").read_text().splitlines(keepends=True)
    (run / "results.jsonl").write_text(lines[0])  # as if killed after the first trial
    section, key, value = edit
    stored = yaml.safe_load((run / "config.yaml").read_text())
    stored[section][key] = value
    (run / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
    capsys.readouterr()
    assert main(["run", "--resume", str(run)]) == 2
    line = _one_error_line(capsys)
    assert f"{section}.{key}" in line and "fixed when it is created" in line
    assert len(read_rows(run)) == 1  # nothing recorded is lost, nothing new was judged under other settings


@pytest.mark.e2e
def test_resume_may_change_what_cannot_change_results(tiny_overrides, tmp_path, capsys):
    run = _tiny_run(tiny_overrides, tmp_path)
    lines = (run / "results.jsonl").read_text().splitlines(keepends=True)
    (run / "results.jsonl").write_text(lines[0])
    assert main(["run", "--resume", str(run), "timeout_s=900", "memory_limit_gb=20"]) == 0
    assert [r.status for r in read_rows(run)] == ["ok", "ok"]
    capsys.readouterr()
    assert main(["run", "--resume", str(run), "ensemble.samples=3"]) == 2
    assert "drop KEY=VALUE" in _one_error_line(capsys)


def _worker_pids(trial: str) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-f", f"swagbench.bench.execute.worker .*{trial}"], capture_output=True, text=True
    ).stdout
    return [int(p) for p in out.split()]


@pytest.mark.e2e
def test_a_reference_that_crashed_is_rerun_and_every_trial_gated_again(tiny_overrides, tmp_path):
    results = tmp_path / "results"
    # steady.seconds: each worker lives 3 s after its last sample, so the kill finds it however loaded the machine
    args = ["--backends", "eager,eager:bf16", *tiny_overrides, "train.synthesize=true", "steady.seconds=3"]
    proc = start_run(args)
    deadline, killed = time.time() + 120, False
    while time.time() < deadline and not killed:  # kill the reference trial's worker for real, once it runs
        for pid in _worker_pids("00-eager-fp32"):
            os.kill(pid, signal.SIGKILL)
            killed = True
        time.sleep(0.02)
    assert proc.wait(timeout=300) == 0 and killed
    run = the_run(results)
    ref, other = read_rows(run)
    assert ref.status == "failed" and "SIGKILL" in ref.error
    assert other.status == "ok" and other.validity == "UNCHECKED"
    assert main(["run", "--resume", str(run), "--retry-failed"]) == 0
    ref, other = read_rows(run)
    assert ref.status == "ok" and other.validity == "VALID" and other.fidelity is not None


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefgh"):
        prev = "a" if i == 0 else "bcdefgh"[i - 1]
        bomb.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    config = tmp_path / "bomb.yaml"
    config.write_text("\n".join(bomb).replace("a: &a", "x0: &a") + "\nname: *h\n")
    start = time.perf_counter()
    assert main(["run", "--config", str(config), "--results-dir", str(tmp_path / "r")]) == 2
    assert time.perf_counter() - start < 10
    assert "expands to more than 100,000 values through YAML aliases" in _one_error_line(capsys)
    override = "trials=[{backend: eager, options: &o [1,1,1,1,1,1,1,1,1,1]}]"
    assert main(["run", override, "--results-dir", str(tmp_path / "r")]) == 2  # small: refused for other reasons
    assert "expands" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "factory, message",
    [
        ("def make(n_classes):\n    return None\n", "cannot be called as factory(num_classes=...)"),
        ("def make(num_classes, in_channels):\n    raise RuntimeError('no weights here')\n", "raised RuntimeError"),
    ],
    ids=["other argument names", "raises"],
)
def test_a_model_factory_that_cannot_be_used_is_one_line(factory, message, tmp_path, capsys, monkeypatch):
    module = f"factory_{abs(hash(factory))}"  # its own module name: another test's module of that name is cached
    (tmp_path / f"{module}.py").write_text(factory)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["run", f"model={module}:make", "data.source=digits", "ensemble.folds=2", "--results-dir", "r"])
    assert code == 2 and message in _one_error_line(capsys)


def test_a_full_disk_at_the_start_leaves_no_run_folder(tmp_path, tiny_overrides, capsys):
    with small_tmpfs(tmp_path / "small", free_kib=12) as mnt:  # room for about three small files
        code = main(["run", *tiny_overrides, "--results-dir", str(mnt), f"cache_dir={tmp_path / 'cache'}"])
        err = capsys.readouterr().err.strip().splitlines()
        left = sorted(p.name for p in mnt.iterdir())
    assert code == 2 and len(err) == 1 and "free disk space" in err[0], err
    assert left == ["ballast"]  # no run folder, no half-made staging folder


def test_an_impossible_sample_count_is_refused_before_any_file(tmp_path, tiny_overrides, capsys):
    assert main(["run", *tiny_overrides, "ensemble.samples=1000000000"]) == 2
    assert "GB of member probabilities per trial" in _one_error_line(capsys)
    assert not [p for p in (tmp_path / "results").iterdir() if p.name != "cache"]


def test_compare_with_a_run_whose_rows_are_all_damaged_is_one_line(tmp_path, capsys):
    import shutil

    good, bad = tmp_path / "a", tmp_path / "b"
    for run in (good, bad):
        shutil.copytree(ROOT / "tests" / "fixtures" / "run_small", run)
    (bad / "results.jsonl").write_text((bad / "results.jsonl").read_text().replace('"status"', '"statu5"'))
    assert main(["compare", str(good), str(bad)]) == 2
    line = _one_error_line(capsys)
    assert "has no readable trial row" in line and str(bad) in line


@pytest.mark.e2e
def test_a_run_made_before_settings_were_added_still_resumes(tiny_overrides, tmp_path):
    import json

    run = _tiny_run(tiny_overrides, tmp_path)
    lines = (run / "results.jsonl").read_text().splitlines(keepends=True)
    (run / "results.jsonl").write_text(lines[0])
    settings = json.loads((run / "settings.json").read_text())
    for key in ("model_checkpoint", "posteriors_max_num_models", "data.folds"):  # unknown to the older version
        del settings[key]
    (run / "settings.json").write_text(json.dumps(settings))
    assert main(["run", "--resume", str(run)]) == 0
    assert [r.status for r in read_rows(run)] == ["ok", "ok"]
