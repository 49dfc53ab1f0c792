"""A real (tiny) run through the CLI: training, worker processes, metrics, results files."""

import json

import numpy as np
import pytest
import yaml

from swagbench.bench.cli import main
from swagbench.bench.record.folds import fold_split
from swagbench.bench.record.row_store import read_rows
from swagbench.swag.io import read_metadata
from tests.conftest import the_run

pytestmark = pytest.mark.e2e


def test_tiny_run_end_to_end(tiny_overrides, tmp_path, capsys):
    assert main(["run", "--backends", "eager,eager:bf16,eager:fp32:cl", "--name", "tiny", *tiny_overrides]) == 0
    run_dir = the_run(tmp_path / "results")
    assert run_dir.name.endswith("-tiny")
    captured = capsys.readouterr()
    out = captured.out
    assert "## Trials" in out and str(run_dir) in out
    # The answer is the run's last line, and the same as summary.md's last line.
    last = out.rstrip().splitlines()[-1]
    summary_last = (run_dir / "summary.md").read_text().rstrip().splitlines()[-1]
    assert last == f"swagbench: recommendation: {summary_last}" and summary_last.startswith(("Use ", "Stay ", "No "))
    # stderr is not a terminal here: plain progress lines, never carriage-return redraws
    assert "\r" not in captured.err and "swagbench: 00-eager-fp32: started" in captured.err
    assert "swagbench: 00-eager-fp32: done 4/4 samples" in captured.err

    env = json.loads((run_dir / "env.json").read_text())
    assert env["cores_logical"] >= 1 and env["packages"]["torch"].startswith("2.13")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["ensemble"]["samples"] == 2

    rows = read_rows(run_dir)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    fp32, bf16, cl = rows
    for r in rows:
        assert set(r["phases_s"]) == {
            "sample",
            "data",
            "bn_update",
            "prepare",
            "warmup",
            "predict",
            "confident_learning",
        }
        assert all(v >= 0 for v in r["phases_s"].values()) and r["phases_s"]["predict"] > 0
        assert r["peak_rss_bytes"] > r["baseline_rss_bytes"] > 0 and r["threads"] == 1
        assert [p["samples"] for p in r["calibration_vs_samples"]] == [1, 2]
        assert 0 <= r["calibration"]["ece"] <= 1 and r["calibration_labels"] == "true"
        assert r["label_issues"]["n_true"] > 0

    # Every example is predicted by exactly one fold's model, one that never trained on it.
    fold_of = np.load(run_dir / "folds.npy")
    posteriors = json.loads((run_dir / "posteriors.json").read_text())
    assert posteriors["source"] == "trained" and all(r["posterior_source"] == "trained" for r in rows)
    for k in range(2):
        train, test = fold_split(fold_of, k)
        assert np.intersect1d(train, test).size == 0
        assert read_metadata(posteriors["paths"][k])["fold"] == str(k)
    members = np.load(run_dir / "trials" / "00-eager-fp32" / "member_probs.npy")
    assert members.shape == (2, 120, 10)
    np.testing.assert_allclose(members.sum(axis=2), 1.0, atol=1e-5)  # every (sample, example) filled once
    probs = np.load(run_dir / "trials" / "00-eager-fp32" / "probs.npy")
    np.testing.assert_allclose(probs, members.mean(axis=0), atol=1e-6)  # streaming mean == mean of members

    # Same seeds -> same SWAG samples: channels_last matches fp32; bf16 close.
    p_cl = np.load(run_dir / "trials" / "02-eager-fp32-cl" / "probs.npy")
    p_bf = np.load(run_dir / "trials" / "01-eager-bf16" / "probs.npy")
    assert np.abs(p_cl - probs).max() < 1e-4 and np.abs(p_bf - probs).max() < 0.05
    assert cl["calibration"]["nll"] == pytest.approx(fp32["calibration"]["nll"], abs=1e-3)
    assert bf16["calibration"]["nll"] == pytest.approx(fp32["calibration"]["nll"], abs=0.05)

    summary = (run_dir / "summary.csv").read_text().splitlines()
    assert len(summary) == 4 and "speedup" in summary[0]


def test_backends_compute_batchnorm_statistics_and_a_bn_subset_is_judged_by_decisions(tiny_overrides, tmp_path):
    """The whole per-sample step in ONNX Runtime / OpenVINO (statistics graph, then inference) gives eager's
    probabilities and BatchNorm statistics within the fp32 tolerance; a BatchNorm subset (swept) is recorded as
    such and judged on its decisions, with its quality cost beside it."""
    trials = "trials=[{backend: eager}, {backend: onnxruntime}, {backend: openvino}, {backend: eager, bn_examples: 30}]"
    assert main(["run", trials, *tiny_overrides]) == 0
    run_dir = the_run(tmp_path / "results")
    rows = {r["trial_id"]: r for r in read_rows(run_dir)}
    ref = rows["00-eager-fp32"]
    assert ref["bn_examples"] is None and ref["bn_update"]["where"] == "backend" and ref["validity"] == "VALID"
    for name in ("onnxruntime", "openvino"):
        row = rows[next(t for t in rows if name in t)]
        assert row["status"] == "ok" and row["validity"] == "VALID", row.get("validity_reasons")
        assert row["bn_update"]["where"] == "backend" and name in row["bn_update"]["method"].lower().replace(" ", "")
        assert row["fidelity"]["max_abs_dp"] < 1e-3 and row["fidelity"]["bn_mean_err"] < 1e-3
        assert row["bn_img_per_s"] > 0 and row["roofline_bn"]["achieved_gflops"] > 0
    subset = rows["03-eager-fp32-bn30"]
    assert subset["bn_examples"] == 30 and subset["validity"] in ("VALID", "INVALID")
    assert not any("max |dp|" in r or "BN mean" in r for r in subset["validity_reasons"])  # decisions only
    assert subset["fidelity"]["bn_mean_err"] > 1e-3  # its statistics really came from fewer examples
    assert "delta_issue_f1" in subset["fidelity"]
    summary = (run_dir / "summary.md").read_text()
    assert "Δissue F1" in summary and "backend fp32" in summary
