"""Installable anywhere, beside anything: the wheel adds one import name, ``swagbench``, and runs from any folder
in a fresh environment that already holds other packages called ``bench`` and ``swag`` (frappe-bench installs a
``bench/cli.py``; the reference SWAG implementation installs ``swag.models``)."""

import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TINY, the_run

ROOT = Path(__file__).resolve().parent.parent
FOREIGN = {  # package -> file -> text: what the two colliding distributions install
    "bench": {"bench/__init__.py": "", "bench/cli.py": "FOREIGN = 'frappe-bench'\n"},
    "swag": {"swag/__init__.py": "", "swag/models/__init__.py": "FOREIGN = 'swa_gaussian'\n"},
}


def _pip(python: Path, *args: str, cwd: Path | None = None) -> None:
    done = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _foreign_wheel(tmp_path: Path, name: str) -> Path:
    """A wheel of distribution ``name`` holding ``FOREIGN[name]`` (written directly: a wheel is a zip file)."""
    wheel = tmp_path / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    files = {
        **FOREIGN[name],
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text)
        zf.writestr(f"{info}/RECORD", "".join(f"{rel},,\n" for rel in [*files, f"{info}/RECORD"]))
    return wheel


@pytest.mark.e2e
def test_the_wheel_installs_one_name_beside_foreign_bench_and_swag(tmp_path):
    wheels = tmp_path / "wheels"
    _pip(Path(sys.executable), "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT))
    (wheel,) = wheels.glob("swagbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "swagbench",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    assert "swagbench/bench/measure/profiles/n2-highcpu-32.yaml" in names  # profiles are package data
    assert not [n for n in names if "benchmarks" in n or n.startswith("swagbench/tests")]  # dev-only scripts stay out

    # A fresh environment: its own site-packages, this one's dependencies (torch, ...) reached through a .pth line.
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    for name in FOREIGN:
        _pip(python, "install", "-q", "--no-deps", "--no-index", str(_foreign_wheel(tmp_path, name)))
    _pip(python, "install", "-q", "--no-deps", "--no-index", str(wheel))

    def foreign_intact() -> None:
        for files in FOREIGN.values():
            for rel, text in files.items():
                assert (site / rel).read_text() == text, rel

    foreign_intact()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    version = subprocess.run(
        [str(venv / "bin" / "swagbench"), "--version"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert version.returncode == 0 and version.stdout.startswith("swagbench "), version.stderr[-2000:]
    script = textwrap.dedent("""
        import bench.cli, swag.models, swagbench.bench.cli
        assert bench.cli.FOREIGN == "frappe-bench" and swag.models.FOREIGN == "swa_gaussian"
        print(swagbench.bench.cli.__file__)
    """)
    where = subprocess.run([str(python), "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert where.returncode == 0 and where.stdout.startswith(str(site)), where.stderr[-2000:]  # not the checkout

    args = ["run", "--profile", "n2-highcpu-32", "--backends", "eager", *TINY, "results_dir=out"]
    done = subprocess.run(
        [str(venv / "bin" / "swagbench"), *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = the_run(elsewhere / "out")
    assert '"name": "n2-highcpu-32"' in (run / "env.json").read_text()
    assert '"status": "ok"' in (run / "results.jsonl").read_text()
    assert "swagbench: recommendation:" in done.stdout

    _pip(python, "uninstall", "-y", "-q", "swagbench")
    foreign_intact()  # uninstalling ours removes nothing of theirs
    assert not (site / "swagbench").exists()
