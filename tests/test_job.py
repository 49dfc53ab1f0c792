"""``swagbench job``: one strategy over the whole ensemble, an audit first, members committed one by one, resumable
after kill -9 (of the parent or a worker) and SIGTERM with bit-identical pred_probs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from swagbench.bench.cli import main
from swagbench.bench.record.journal import MemberJournal
from swagbench.bench.record.rundir import RunDir
from tests.conftest import TINY, the_run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
SLOW = "tests.faulty_backends:SlowBackend"
JOB = [*TINY, "ensemble.samples=4"]  # 2 folds x 4 samples = 8 members


def _job(tmp_path, *args, name="job"):
    results = tmp_path / name
    code = main(["job", *args, *JOB, f"results_dir={results}"])
    return code, results


def _start_job(tmp_path, *args, name="killed"):
    """``swagbench job`` in its own process (from the repository root), its stderr captured."""
    results = tmp_path / name
    proc = subprocess.Popen(
        [sys.executable, "-m", "swagbench.bench.cli", "job", *args, *JOB, f"results_dir={results}"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, results


def _wait_for_members(results: Path, at_least: int, timeout_s: float = 180) -> Path:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        runs = [p for p in results.glob("*") if (p / "config.yaml").is_file()]
        journals = list(runs[0].glob("trials/00-*/journal.jsonl")) if runs else []
        if journals and len(MemberJournal(journals[0]).committed()) >= at_least:
            return runs[0]
        time.sleep(0.05)
    raise AssertionError(f"no {at_least} members committed in {timeout_s} s")


def _committed(job_dir: Path) -> int:
    (journal,) = job_dir.glob("trials/00-*/journal.jsonl")
    return len(MemberJournal(journal).committed())


def test_a_job_writes_pred_probs_and_the_label_issues_cleanlab_finds_in_them(tmp_path, capsys):
    code, results = _job(tmp_path, "--backends", "eager:bf16")
    assert code == 0
    job_dir = the_run(results)
    run = RunDir(job_dir)
    record = run.read_job()
    assert record["status"] == "done" and record["members_done"] == record["members_total"] == 8
    assert record["audit"]["verdict"] == "VALID" and record["audit"]["members"] == 1
    assert sorted(p.name for p in (job_dir / "trials").iterdir()) == [
        "00-eager-bf16",
        "audit-eager-fp32",
    ]  # no reference
    probs = np.load(run.pred_probs)
    labels = np.load(job_dir / "labels.npz")["y"]  # the labels the job saw (with the injected noise)
    assert probs.shape == (120, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # each example by its own fold's 4 members: the mean of the member map's rows
    members = np.load(job_dir / "trials" / "00-eager-bf16" / "member_probs.npy")
    np.testing.assert_allclose(probs, members.mean(axis=0), rtol=1e-6, atol=1e-7)
    from cleanlab.filter import find_label_issues

    config = run.config_dict()["cleanlab"]
    direct = find_label_issues(labels, probs, filter_by=config["filter_by"])
    table = pd.read_csv(run.label_issues_csv)
    assert sorted(table[table.is_issue]["index"]) == sorted(np.flatnonzero(direct))
    assert len(table) == 120
    out = capsys.readouterr().out
    assert "pred_probs.npy (120 x 10, out of sample)" in out and "audit: VALID" in out.replace(
        "audit VALID", "audit: VALID"
    )
    rates = record["result"]
    assert rates["bn_update_img_per_s"] > 0 and rates["predict_img_per_s"] > 0


def test_kill_9_of_the_parent_then_resume_gives_bit_identical_pred_probs(tmp_path):
    code, whole = _job(tmp_path, "--backends", SLOW, name="whole")
    assert code == 0
    proc, results = _start_job(tmp_path, "--backends", SLOW)
    job_dir = _wait_for_members(results, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(1)
    assert not subprocess.run(["pgrep", "-f", f"worker .*{job_dir.name}"], capture_output=True).stdout  # no orphan
    kept = _committed(job_dir)
    assert 3 <= kept < 8
    assert main(["job", "--resume", str(job_dir)]) == 0
    record = RunDir(job_dir).read_job()
    assert record["status"] == "done" and sum(s["members"] for s in record["sessions"][1:]) >= 8 - kept
    assert np.load(RunDir(job_dir).pred_probs).tobytes() == np.load(RunDir(the_run(whole)).pred_probs).tobytes()


def test_a_worker_killed_mid_job_stops_it_and_a_resume_finishes_bit_identical(tmp_path, capsys):
    code, whole = _job(tmp_path, "--backends", SLOW, name="whole")
    assert code == 0
    proc, results = _start_job(tmp_path, "--backends", SLOW)
    job_dir = _wait_for_members(results, 3)
    worker = subprocess.run(
        ["pgrep", "-f", f"execute.worker .*{job_dir.name}/trials/00-"], capture_output=True, text=True
    ).stdout.split()
    assert worker, "no worker found"
    os.kill(int(worker[0]), signal.SIGKILL)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 1 and "committed members are kept" in err, err
    assert main(["job", "--resume", str(job_dir)]) == 0
    assert np.load(RunDir(job_dir).pred_probs).tobytes() == np.load(RunDir(the_run(whole)).pred_probs).tobytes()


def sigterm_then_resume(tmp_path, *args) -> Path:
    """A job (``args``) sent SIGTERM once 2 members are committed: it stops within 10 s, exit 143, members kept and
    the resume command printed; the resume finishes it. Returns the job folder."""
    proc, results = _start_job(tmp_path, "--backends", SLOW, *args)
    job_dir = _wait_for_members(results, 2)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert time.time() - sent < 10
    assert proc.returncode == 143, err
    assert f"swagbench job --resume {job_dir}" in err and "committed members are kept" in err
    assert _committed(job_dir) >= 2
    assert main(["job", "--resume", str(job_dir)]) == 0
    return job_dir


def test_sigterm_stops_the_job_keeping_its_members_and_prints_the_resume_command(tmp_path):
    sigterm_then_resume(tmp_path)


def test_a_backend_with_wrong_probabilities_fails_the_audit_before_the_ensemble(tmp_path, capsys):
    code, results = _job(tmp_path, "--backends", "tests.faulty_backends:PerturbedBackend:fp32")
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after training's progress lines: one line, why
    assert last.startswith("swagbench: job stopped: the audit found the strategy INVALID") and "max |dp|" in last
    job_dir = the_run(results)
    record = RunDir(job_dir).read_job()
    assert record["status"] == "audit failed" and record["audit"]["verdict"] == "INVALID"
    assert _committed(job_dir) == 1 and not RunDir(job_dir).pred_probs.exists()  # only the audited member ran


def test_a_resume_refuses_a_changed_strategy_or_ensemble_naming_it(tmp_path, capsys):
    code, results = _job(tmp_path, "--backends", "eager", "audit.members=0")
    assert code == 0 and "audit skipped (audit.members=0)" in capsys.readouterr().out
    job_dir = the_run(results)
    config = (job_dir / "config.yaml").read_text()
    for edit, word in (
        (("samples: 4", "samples: 5"), "ensemble"),
        (("backend: eager", "backend: onnxruntime"), "trials"),
    ):
        assert edit[0] in config
        (job_dir / "config.yaml").write_text(config.replace(*edit, 1))
        assert main(["job", "--resume", str(job_dir)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("swagbench: error:") and word in err and len(err.strip().splitlines()) == 1, err
        assert "swagbench job --resume" in err
    (job_dir / "config.yaml").write_text(config)
    assert main(["job", "--resume", str(job_dir), "--backends", "eager"]) == 2
    assert "--resume finishes the job with its stored settings" in capsys.readouterr().err


def test_a_job_needs_exactly_one_strategy(tmp_path, capsys):
    assert main(["job", *JOB, f"results_dir={tmp_path}"]) == 2
    assert "give --strategy RUN/recommendation.json or --backends ENGINE" in capsys.readouterr().err
    assert main(["job", "--backends", "eager,openvino", *JOB, f"results_dir={tmp_path}"]) == 2
    assert "a job runs exactly one strategy, got 2 trials" in capsys.readouterr().err


def test_a_benchmarks_answer_runs_as_a_job_with_its_projection(tmp_path, capsys):
    assert main(["run", "--backends", "eager,eager:bf16", *TINY, f"results_dir={tmp_path / 'bench'}"]) == 0
    out = capsys.readouterr().out
    bench = the_run(tmp_path / "bench")
    assert f"swagbench job --strategy {bench / 'recommendation.json'}" in out  # the run points at the job
    code, results = _job(tmp_path, "--strategy", str(bench / "recommendation.json"))
    assert code == 0
    record = RunDir(the_run(results)).read_job()
    strategy = json.loads((bench / "recommendation.json").read_text())["strategy"]
    assert (record["strategy"]["backend"], record["strategy"]["precision"]) == (
        strategy["backend"],
        strategy["precision"],
    )
    projected = record["projected"]
    assert projected["trial_id"] and projected["ensemble_min"] > 0 and projected["audit_min"] > 0
    assert projected["minutes"] == pytest.approx(projected["ensemble_min"] + projected["audit_min"])
    result = record["result"]  # what the projection is set against: every session, the audit's eager one included
    assert result["total_min"] * 60 > record["audit"]["eager_seconds"] + result["wall_min"] * 60
