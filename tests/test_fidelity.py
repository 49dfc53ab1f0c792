import numpy as np
import pytest

from swagbench.bench.answer.fidelity import TOLERANCES, compare, verdict
from swagbench.bench.config import load_config
from swagbench.bench.record.row import TrialRow
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.run import execute


def _trial(tmp_path, name, probs, issues):
    d = tmp_path / name
    d.mkdir()
    np.save(d / "member_probs.npy", probs.astype(np.float32))
    np.save(d / "label_issues.npy", issues)
    return d


def _row(calibration_given):
    settings = dict(run_id="r", trial_id="t", backend="eager", precision="fp32", channels_last=False)
    return TrialRow(**settings, threads=1, batch_size=1, status="ok", calibration_given=calibration_given)


def test_compare_and_verdict(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=(3, 50))
    issues = rng.random(50) < 0.2
    ref = _trial(tmp_path, "ref", p, issues)
    same = _trial(tmp_path, "same", p + 1e-5, issues)
    flipped = issues.copy()
    flipped[:25] = ~flipped[:25]
    worse = _trial(tmp_path, "worse", p[:, :, ::-1], flipped)
    row = _row({"ece": 0.1, "nll": 0.5})
    f_same = compare(ref, same, row, _row({"ece": 0.07, "nll": 0.5}))
    assert f_same["max_abs_dp"] == pytest.approx(1e-5, rel=0.1) and f_same["argmax_agreement"] == 1.0
    assert f_same["issue_jaccard"] == 1.0 and f_same["delta_ece"] == pytest.approx(-0.03)
    assert verdict(f_same, "fp32") == ("VALID", [])
    f_worse = compare(ref, worse, row, row)
    status, reasons = verdict(f_worse, "int8")
    assert status == "INVALID" and len(reasons) == 3
    assert verdict(f_worse, "int8", check_decisions=False)[1] == reasons[:1]


def test_batchnorm_statistics_are_gated(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), size=(2, 30))
    issues = rng.random(30) < 0.2
    stats = np.stack([rng.normal(size=(2, 3, 16)), rng.uniform(0.5, 2, size=(2, 3, 16))], axis=2)  # (S, K, 2, C)
    ref, close, off = (_trial(tmp_path, n, p, issues) for n in ("ref", "close", "off"))
    np.save(ref / "bn_stats.npy", stats.astype(np.float32))
    np.save(close / "bn_stats.npy", (stats * (1 + 1e-6)).astype(np.float32))
    shifted = stats.copy()
    shifted[1, 2, 0, 5] += 0.1 * np.sqrt(shifted[1, 2, 1, 5])  # one channel's mean moved by 0.1 std
    np.save(off / "bn_stats.npy", shifted.astype(np.float32))
    row = _row({"ece": 0.1, "nll": 0.5})
    assert verdict(compare(ref, close, row, row), "fp32") == ("VALID", [])
    f_off = compare(ref, off, row, row)
    assert f_off["bn_mean_err"] == pytest.approx(0.1, rel=1e-3) and f_off["bn_var_err"] < 1e-5
    status, reasons = verdict(f_off, "fp32")
    assert status == "INVALID" and reasons == ["BN mean error 0.1 std > 0.001"]
    assert verdict(f_off, "bf16")[0] == "VALID"
    nan = stats.copy()
    nan[0, 0, 1, 0] = np.nan
    np.save(off / "bn_stats.npy", nan.astype(np.float32))
    assert verdict(compare(ref, off, row, row), "int8")[0] == "INVALID"  # non-finite statistics never pass


def test_tolerances_loosen_with_precision():
    assert TOLERANCES["fp32"].max_abs_dp < TOLERANCES["bf16"].max_abs_dp < TOLERANCES["int8"].max_abs_dp


@pytest.mark.e2e
def test_perturbed_backend_is_marked_invalid_and_kept(tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, "trials=[{backend: 'tests.faulty_backends:PerturbedBackend'}]"])
    run_dir = execute(cfg, log=lambda *_: None)
    ref, bad = read_rows(run_dir)  # the eager fp32 reference was added and ran first
    assert ref["backend"] == "eager" and ref["validity"] == "VALID" and ref["fidelity"]["max_abs_dp"] == 0
    assert bad["status"] == "ok" and bad["validity"] == "INVALID"
    assert any("max |dp|" in r for r in bad["validity_reasons"])
    assert "INVALID" in (run_dir / "summary.md").read_text()
