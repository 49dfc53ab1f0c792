"""Installable anywhere: a non-editable install runs a profile from another directory."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import TINY

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
def test_a_non_editable_install_runs_a_profile_from_another_directory(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            ROOT,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (site / "bench" / "profiles" / "n2-highcpu-32.yaml").is_file()  # profiles are package data
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["run", "--profile", "n2-highcpu-32", "--backends", "eager", *TINY, "results_dir=out"]
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        import bench.cli
        assert bench.cli.__file__.startswith({str(site)!r}), bench.cli.__file__  # the installed copy, not the checkout
        sys.exit(bench.cli.main({args!r}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = [p for p in (elsewhere / "out").iterdir() if (p / "config.yaml").is_file()]
    env_json = json.loads((run / "env.json").read_text())
    assert env_json["profile"]["name"] == "n2-highcpu-32" and env_json["profile"]["memory_gb"] == 32
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok"] and rows[0]["profile"] == "n2-highcpu-32"
    assert "swagbench: recommendation:" in done.stdout
