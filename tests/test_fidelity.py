import numpy as np
import pytest

from bench.config import load_config
from bench.fidelity import TOLERANCES, compare, verdict
from bench.results import read_rows
from bench.run import execute


def _trial(tmp_path, name, probs, issues):
    d = tmp_path / name
    d.mkdir()
    np.save(d / "member_probs.npy", probs.astype(np.float32))
    np.save(d / "label_issues.npy", issues)
    return d


def test_compare_and_verdict(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=(3, 50))
    issues = rng.random(50) < 0.2
    ref = _trial(tmp_path, "ref", p, issues)
    same = _trial(tmp_path, "same", p + 1e-5, issues)
    flipped = issues.copy()
    flipped[:25] = ~flipped[:25]
    worse = _trial(tmp_path, "worse", p[:, :, ::-1], flipped)
    row = {"calibration": {"ece": 0.1, "nll": 0.5}}
    f_same = compare(ref, same, row, row)
    assert f_same["max_abs_dp"] == pytest.approx(1e-5, rel=0.1) and f_same["argmax_agreement"] == 1.0
    assert f_same["issue_jaccard"] == 1.0 and f_same["delta_ece"] == 0.0
    assert verdict(f_same, "fp32") == ("VALID", [])
    f_worse = compare(ref, worse, row, row)
    status, reasons = verdict(f_worse, "int8")
    assert status == "INVALID" and len(reasons) == 3
    assert verdict(f_worse, "int8", check_decisions=False)[1] == reasons[:1]


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
