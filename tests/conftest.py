import pytest

DIGITS = ["data.source=digits", "model=digits_cnn"]  # sklearn digits and a 3-conv CNN: fast to load and run
TINY = [  # seconds, not the embedded default's minutes
    *DIGITS,
    "data.max_examples=120",
    "ensemble.folds=2",
    "ensemble.samples=2",
    "train.epochs=2",
    "train.swa_start=1",
    "train.batch_size=16",
    "threads=1",
]


@pytest.fixture
def tiny_overrides(tmp_path):
    """Overrides for a seconds-long run writing under tmp_path."""
    return [*TINY, f"results_dir={tmp_path / 'results'}"]


def the_run(results_dir):
    """The one run folder under ``results_dir`` (the posterior cache beside it is not a run)."""
    (run_dir,) = [p for p in results_dir.iterdir() if (p / "config.yaml").is_file()]
    return run_dir
