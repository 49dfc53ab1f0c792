"""Reliability, third pass, rough edges (issue 22, items 8 and 9): models whose BatchNorm pass means something
else, oversubscribed thread plans, refused estimate sizes, a worker killed from outside, SIGTERM, module:Class on
the command line, and one-line messages."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from swagbench.bench.cli import main
from swagbench.bench.errors import DataError
from swagbench.bench.execute.worker_process import _crash_reason
from swagbench.bench.record.folds import make_folds
from swagbench.bench.record.row_store import read_rows
from swagbench.swag.batchnorm import batchnorm_facts
from tests import odd_models
from tests.conftest import the_run

ROOT = Path(__file__).resolve().parent.parent


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_batchnorm_facts_name_what_changes_the_pass():
    x = torch.randn(2, 1, 8, 8)
    plain = batchnorm_facts(odd_models.no_batchnorm(3, 1), x)
    assert plain.layers == 0 and "no BatchNorm pass" in plain.notes()[0]
    untracked = batchnorm_facts(odd_models.untracked_batchnorm(3, 1), x)
    assert (untracked.layers, untracked.batch_dependent, untracked.dropout_before) == (1, ["1"], [])
    assert "depend on the batch size" in untracked.notes()[0]
    dropout = batchnorm_facts(odd_models.dropout_before_batchnorm(3, 1), x)
    assert (dropout.layers, dropout.dropout_before) == (1, ["1"]) and "active during" in dropout.notes()[0]
    from swagbench.swag.models import build_model

    assert batchnorm_facts(build_model("digits_cnn", 10, 1), x).notes() == []  # an ordinary model: nothing to say


@pytest.mark.e2e
def test_a_model_without_batchnorm_runs_no_batchnorm_pass_and_says_so(tiny_overrides, tmp_path, capsys):
    code = main(["run", "--backends", "eager,onnxruntime", *tiny_overrides, "model=tests.odd_models:no_batchnorm"])
    assert code == 0
    out = capsys.readouterr().out
    assert "note: BatchNorm: the model has no BatchNorm layer" in out
    run = the_run(tmp_path / "results")
    for row in read_rows(run):
        assert row.status == "ok" and row.validity == "VALID"
        assert row.bn_update["where"] == "none" and row.phases_s["bn_update"] == 0
        assert row.bn_img_per_s is None
    summary = (run / "summary.md").read_text()
    assert "none (no BatchNorm)" in summary and "there is no BatchNorm pass" in summary
    assert "there is no BatchNorm pass" in (run / "report.html").read_text()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "model, note",
    [("untracked_batchnorm", "depend on the batch size"), ("dropout_before_batchnorm", "active during the BatchNorm")],
)
def test_batch_dependent_layers_and_dropout_are_recorded_in_the_row_and_summary(model, note, tiny_overrides, tmp_path):
    assert main(["run", "--backends", "eager", *tiny_overrides, f"model=tests.odd_models:{model}"]) == 0
    run = the_run(tmp_path / "results")
    (row,) = read_rows(run)
    assert row.status == "ok" and any(note in n for n in row.bn_update["notes"])
    assert note in (run / "summary.md").read_text()


@pytest.mark.e2e
def test_more_threads_than_cpus_is_warned_about(tiny_overrides, capsys):
    assert main(["run", "--backends", "eager", *tiny_overrides, "threads=1000", "ensemble.samples=1"]) == 0
    out = capsys.readouterr().out
    assert f"warning: threads=1000 but this machine has {os.cpu_count()} logical CPUs" in out


@pytest.mark.parametrize("flag", ["--samples", "--folds"])
def test_estimate_refuses_zero_instead_of_using_the_runs_value(flag, capsys):
    run = ROOT / "tests" / "fixtures" / "run_small"
    with pytest.raises(SystemExit) as stopped:  # argparse's own check of the number, before the run is read
        main(["estimate", str(run), "--images", "1000", flag, "0"])
    assert stopped.value.code == 2
    assert f"argument {flag}: '0' must be a whole number from 1" in _one_error_line(capsys)


def test_a_sigkill_is_blamed_on_memory_only_near_the_limit(tmp_path):
    log = tmp_path / "log"
    far = _crash_reason(-signal.SIGKILL, log, peak_bytes=300_000_000, limit_bytes=8_000_000_000)
    assert "not for memory" in far and "likely out of memory" not in far and "0.30 GB resident of 8.00 GB" in far
    near = _crash_reason(-signal.SIGKILL, log, peak_bytes=7_000_000_000, limit_bytes=8_000_000_000)
    assert "likely out of memory" in near


@pytest.mark.e2e
def test_sigterm_stops_the_run_like_ctrl_c_with_the_resume_hint(tiny_overrides, tmp_path):
    args = ["--backends", "eager,eager:bf16", *tiny_overrides, "train.epochs=400", "train.swa_start=399"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "swagbench.bench.cli", "run", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 600  # start-up (imports, data, folds) took over 120 s on a loaded 2-core machine
    while time.time() < deadline and not list((tmp_path / "results").glob("*/config.yaml")):
        time.sleep(0.05)  # training: the run folder exists
    assert list((tmp_path / "results").glob("*/config.yaml")), "the run folder never appeared"
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    run = the_run(tmp_path / "results")
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and f"swagbench run --resume {run}" in err


@pytest.mark.e2e
def test_a_module_class_backend_works_on_the_command_line(tiny_overrides, tmp_path):
    spec = "tests.faulty_backends:PerturbedBackend:fp32"
    assert main(["run", "--backends", f"eager,{spec}", *tiny_overrides, "ensemble.samples=1"]) == 0
    rows = read_rows(the_run(tmp_path / "results"))
    assert [r.backend for r in rows] == ["eager", "tests.faulty_backends:PerturbedBackend"]
    assert rows[1].status == "ok"


def test_too_few_examples_in_a_class_for_two_folds_says_what_to_do():
    with pytest.raises(DataError, match="every class needs at least 2 examples") as err:
        make_folds(np.array([0, 0, 0, 1]), folds=2, seed=0)
    assert "at most 1 folds" not in str(err.value)


def test_a_python_tag_in_yaml_is_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "is not valid YAML" in _one_error_line(capsys)


def test_a_missing_data_source_names_every_kind_of_source(tmp_path, capsys):
    assert main(["run", f"data.source={tmp_path / 'photos'}", "--results-dir", str(tmp_path / "r")]) == 2
    line = _one_error_line(capsys)
    assert "does not exist" in line and "image folder" in line and ".csv manifest" in line
