"""IPEX in its own interpreter. Marked ``ipex``: ``make test-ipex`` runs them, ``make test`` does not."""

import subprocess
import textwrap

import pytest

from swagbench.backends import ipex as ipex_module
from swagbench.backends.ipex import IpexBackend
from swagbench.bench.cli import main
from swagbench.bench.record.row_store import read_rows
from tests.conftest import the_run

needs_env = pytest.mark.skipif(not ipex_module.env_python().is_file(), reason="no .venv-ipex; run make ipex-env")


def test_missing_environment_is_reported_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("SWAGBENCH_IPEX_PYTHON", str(tmp_path / "nope" / "bin" / "python"))
    ok, reason = IpexBackend().available()
    assert not ok and "make ipex-env" in reason and "SWAGBENCH_IPEX_PYTHON" in reason
    assert IpexBackend().python() == str(tmp_path / "nope" / "bin" / "python")  # the setting picks the interpreter


@pytest.mark.ipex
@needs_env
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnets_load_torchvision_state_dicts_with_identical_outputs(name):
    script = textwrap.dedent(f"""
        import torch, torchvision
        from swagbench.swag.models import build_model
        torch.manual_seed(0)
        ref = getattr(torchvision.models, "{name}")(weights=None, num_classes=1000).eval()
        ref.train(); ref(torch.randn(4, 3, 64, 64)); ref.eval()  # non-trivial BN statistics
        ours = build_model("{name}", 1000, 3).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        assert list(ours.state_dict()) == list(ref.state_dict())
        x = torch.randn(2, 3, 224, 224)
        with torch.no_grad():
            diff = (ours(x) - ref(x)).abs().max().item()
        print(diff)
    """)
    out = subprocess.run([str(ipex_module.env_python()), "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) == 0.0


@pytest.mark.ipex
@pytest.mark.e2e
@needs_env
def test_ipex_rows_are_valid_beside_eager(tiny_overrides, tmp_path):
    trials = (
        "trials=[{backend: eager}, {backend: ipex}, {backend: ipex, precision: bf16},"
        " {backend: ipex, options: {jit: true}}]"
    )
    assert main(["run", *tiny_overrides, trials]) == 0
    run_dir = the_run(tmp_path / "results")
    eager, *rows = read_rows(run_dir)
    assert eager["versions"]["torch"].startswith("2.13")
    assert [r["trial_id"] for r in rows] == ["01-ipex-fp32", "02-ipex-bf16", "03-ipex-fp32-jit"]
    for r in rows:
        assert r["status"] == "ok" and r["validity"] == "VALID", r.get("error")
        assert r["versions"]["torch"].startswith("2.8") and r["versions"]["intel-extension-for-pytorch"].startswith(
            "2.8"
        )
        assert r["python"] == str(ipex_module.env_python())
