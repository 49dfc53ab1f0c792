"""Reliability, fourth pass (issue 30): each case found by trying swagbench as a hostile new user would, injected
for real. docs/reliability.md lists them with these tests."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_a_store_shared_by_identical_folders_keeps_each_callers_paths_and_name(tmp_path):
    """Two byte-identical photo folders share one decoded store; each run's label_issues.csv and data.json must
    name its own folder (they named whichever folder made the store, possibly one since deleted)."""
    from swagbench.bench.config import DataConfig
    from swagbench.bench.dataset import load_dataset
    from swagbench.bench.record.rundir import RunDir

    first = _folder(tmp_path / "photos", per_class=4)
    second = tmp_path / "copy_of_photos"
    import shutil

    shutil.copytree(first, second)
    a, b = (
        load_dataset(DataConfig(source=str(r), image_size=SIZE), tmp_path / "cache", print) for r in (first, second)
    )
    assert a.store.folder == b.store.folder  # one store, decoded once
    shutil.rmtree(first)
    assert b.name == "copy_of_photos" and all(p.startswith(str(second) + os.sep) for p in b.paths)
    assert all(Path(p).is_file() for p in b.paths)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.save_data(b)
    again = run.load_data()  # a resumed run: the same caller's paths and name
    assert again.paths == b.paths and again.name == "copy_of_photos"
    manifest = second / "list.csv"
    manifest.write_text(
        "path,label\n" + "".join(f"{Path(p).relative_to(second)},x{i % 2}\n" for i, p in enumerate(b.paths))
    )
    listed = load_dataset(DataConfig(source=str(manifest), image_size=SIZE), tmp_path / "cache", print)
    assert listed.name == "list" and listed.paths == b.paths


def test_exact_copies_share_a_fold_and_are_named(tmp_path):
    """A manifest of 60 rows plus 10 repeated ones, and an image folder holding two identical files: copies are
    counted, kept in one fold, a user fold column that splits them is warned about by name, and label_issues.csv
    names each copy's original (5 of 10 pairs used to land in different folds, without a word)."""
    import pandas as pd

    from swagbench.bench.config import DataConfig
    from swagbench.bench.dataset import load_dataset
    from swagbench.bench.execute.finish import write_label_issues
    from swagbench.bench.record.folds import assign_folds

    root = _folder(tmp_path / "pets", per_class=20)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.suffix in (".png", ".jpg"))
    rows = [(str(p), p.parts[0]) for p in files] + [(str(p), p.parts[0]) for p in files[::6]]
    table = pd.DataFrame(rows, columns=["path", "label"])
    table.to_csv(root / "list.csv", index=False)
    logs = []
    ds = load_dataset(DataConfig(source=str(root / "list.csv"), image_size=SIZE), tmp_path / "cache", logs.append)
    assert ds.copies == 10 and any("10 of 70 examples are exact copies" in line for line in logs)
    copies = np.flatnonzero(ds.copy_of != np.arange(70))
    assert sorted(copies) == list(range(60, 70)) and ds.copy_of[60] == 0
    for seed in range(3):
        fold_of = assign_folds(None, ds, 5, seed, str(root / "list.csv"))
        assert np.array_equal(fold_of[copies], fold_of[ds.copy_of[copies]]) and set(fold_of) == set(range(5))
    warned = []
    np.save(tmp_path / "folds.npy", np.arange(70) % 2)  # originals 0, 6, .., 54 in fold 0; copies alternate
    assign_folds(str(tmp_path / "folds.npy"), ds, 2, 0, str(root / "list.csv"), warned.append)
    (line,) = warned
    assert "puts 5 exact copies in another fold" in line and f"{root / files[6]} = {root / files[6]}" in line

    probs = np.full((70, 3), 1 / 3)
    write_label_issues(tmp_path / "label_issues.csv", ds, probs, np.zeros(70, bool), np.linspace(0, 1, 70))
    written = pd.read_csv(tmp_path / "label_issues.csv").set_index("index")
    assert written.duplicate_of.loc[60] == 0 and written.duplicate_of.drop(copies).isna().all()

    same = root / "cat" / "copy.png"  # two identical files in an image folder
    same.write_bytes((root / "cat" / "01.png").read_bytes())
    folder = load_dataset(DataConfig(source=str(root), image_size=SIZE), tmp_path / "cache", print)
    assert folder.copies == 1
