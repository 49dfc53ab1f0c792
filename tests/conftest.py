import contextlib

import pytest

# sklearn digits and a 3-conv CNN: fast to load and run; no runtime ceilings (tests/test_hybrid_and_tune.py has them)
DIGITS = ["data.source=digits", "model=digits_cnn", "ceiling_s=0"]
TINY = [  # seconds, not the embedded default's minutes
    *DIGITS,
    "data.max_examples=120",
    "ensemble.folds=2",
    "ensemble.samples=2",
    "train.epochs=2",
    "train.swa_start=1",
    "train.batch_size=16",
    "threads=1",
    "steady.seconds=0",  # five steady-state calls per phase, not a second of them
]


@pytest.fixture
def tiny_overrides(tmp_path):
    """Overrides for a seconds-long run writing under tmp_path."""
    return [*TINY, f"results_dir={tmp_path / 'results'}"]


def eager_row(**fields):
    """A finished one-worker eager fp32 trial's row with ``fields`` set (the settings every row needs filled in)."""
    from swagbench.bench.record.row import TrialRow

    settings = dict(run_id="r", trial_id="t", backend="eager", precision="fp32", channels_last=False, threads=1)
    return TrialRow(**{**settings, "batch_size": 8, "status": "ok", **fields})


def the_run(results_dir):
    """The one run folder under ``results_dir`` (the posterior cache beside it is not a run)."""
    (run_dir,) = [p for p in results_dir.iterdir() if (p / "config.yaml").is_file()]
    return run_dir


def start_run(args):
    """``swagbench run ARGS`` in its own process (output discarded), from the repository root: a run to kill."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen(
        [sys.executable, "-m", "swagbench.bench.cli", "run", *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def small_tmpfs(path, free_kib: int):
    """A real 64 KiB tmpfs mounted at ``path`` with ``free_kib`` KiB left free (skips where one cannot be
    mounted, e.g. not root); unmounted after the block."""
    import subprocess

    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the /dev/full test covers the write path")
    try:
        try:
            (path / "ballast").write_bytes(b"\0" * (64 - free_kib) * 1024)
        except OSError:
            pass  # full already
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.fixture(autouse=True)
def _a_full_run_is_marked_e2e(request, monkeypatch):
    """Every test that makes a full run (a new run folder, in this process) is marked ``e2e``, so ``make
    test-fast`` (``-m "not e2e"``) leaves out exactly those; a test that forgets the mark fails, saying so. Runs in
    a child process are found by tests/test_architecture.py's scan instead."""
    from swagbench.bench.record.rundir import RunDir

    made = []
    create = RunDir.create.__func__

    def counted(cls, *args, **kwargs):
        made.append(1)
        return create(cls, *args, **kwargs)

    monkeypatch.setattr(RunDir, "create", classmethod(counted))
    yield
    if made and request.node.get_closest_marker("e2e") is None:
        pytest.fail(f"{request.node.nodeid} makes a full run: mark it @pytest.mark.e2e", pytrace=False)
