"""Reliability, fourth pass (issue 30): each case found by trying swagbench as a hostile new user would, injected
for real. docs/reliability.md lists them with these tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY
from tests.test_images import SIZE, _folder

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
def test_an_unguarded_script_runs_once(tmp_path):
    """docs/your-data.md's Python example as a script without ``if __name__ == "__main__":``: the image decoding
    processes must not re-import it (multiprocessing's spawn did: the script ran 47 times and hung)."""
    root = _folder(tmp_path / "pets", per_class=6)
    script = tmp_path / "job.py"
    overrides = [*TINY, f"data.source={root}", f"data.image_size={SIZE}", "data.decode_workers=2"]
    overrides += [f"cache_dir={tmp_path / 'cache'}", f"results_dir={tmp_path / 'results'}"]
    script.write_text(
        f"""
from pathlib import Path
from swagbench.bench import api

with open({str(tmp_path / "started")!r}, "a") as f:
    f.write("started\\n")
run = api.run(overrides={overrides!r}, backends="eager")
probs = api.predictor(run).predict_proba({str(root)!r})
print("shape", probs.shape)
"""
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "started").read_text() == "started\n"  # once: no worker ran the script again
    assert "shape (18, 3)" in done.stdout
