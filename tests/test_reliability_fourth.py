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


FIXTURE_RUN = ROOT / "tests" / "fixtures" / "run_small"


def _outputs(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.name != "results.jsonl"}


def _reported_copy(tmp_path: Path) -> Path:
    import shutil

    from swagbench.bench.report import build_report

    run = tmp_path / "run"
    shutil.copytree(FIXTURE_RUN, run)
    build_report(run)
    return run


def _rewrite_row(run: Path, line: int, **changes) -> None:
    """Edit row ``line`` (1-based) of results.jsonl and recompute its checksum, as a careless script would."""
    import json

    from swagbench.bench.record.row_store import CHECKSUM, _digest

    lines = (run / "results.jsonl").read_text().splitlines()
    row = {k: v for k, v in json.loads(lines[line - 1]).items() if k != CHECKSUM}
    row.update(changes)
    lines[line - 1] = json.dumps({**row, CHECKSUM: _digest(row)}, sort_keys=True)
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("command", ["report", "summary", "tune", "ceiling"])
@pytest.mark.parametrize("damage", ["torn", "edited", "nan", "empty"])
def test_commands_that_rewrite_a_run_refuse_damaged_rows_and_change_nothing(tmp_path, command, damage, capsys):
    """A half-written results.jsonl, a row edited by hand, a NaN time (checksum recomputed), no row at all: one
    error line naming the line, exit 2, every output as it was (report once truncated summary.csv and wrote
    "No trial succeeded" into recommendation.json, then died with an AttributeError)."""
    from swagbench.bench.cli import main

    run = _reported_copy(tmp_path)
    before = _outputs(run)
    rows = run / "results.jsonl"
    if damage == "torn":
        rows.write_bytes(rows.read_bytes()[:-300])
    elif damage == "edited":
        rows.write_text(rows.read_text().replace('"batch_size": ', '"batch_size": 1', 1))
    elif damage == "nan":
        _rewrite_row(run, 2, ensemble_s=float("nan"))
    else:
        rows.write_text("")
    capsys.readouterr()
    assert main([command, str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("swagbench: error: "), err
    assert {"torn": "line ", "edited": "line 1 ", "nan": "ensemble_s = nan", "empty": "no trial row"}[damage] in err[0]
    assert _outputs(run) == before


def test_a_report_that_fails_midway_leaves_the_previous_one(tmp_path, monkeypatch):
    """Outputs are staged and moved into place only when every one was made: a chart that raises changes nothing,
    and no staging folder is left behind."""
    from swagbench.bench.report import build_report, charts

    run = _reported_copy(tmp_path)
    before = _outputs(run)

    def broken(df, path):
        raise RuntimeError("a chart failed")

    monkeypatch.setattr(charts, "scaling", broken)
    with pytest.raises(RuntimeError, match="a chart failed"):
        build_report(run)
    assert _outputs(run) == before


def test_bench_check_reruns_a_slow_benchmark_and_reports_only_what_stays_slow(capsys):
    """make bench-check cried wolf (+54%, then +12% rerun at once) and ended in pytest-benchmark's traceback: now a
    benchmark over the threshold is rerun, and only one slower both times is reported, in one line."""
    from tests.benchmarks.check import regressions

    def bench(name, seconds):
        return {"name": name, "fullname": f"tests/benchmarks/test_regression.py::{name}", "stats": {"min": seconds}}

    baseline = {n: bench(n, 1e-3) for n in ("steady", "noisy", "slow")}
    now = {"steady": bench("steady", 1.1e-3), "noisy": bench("noisy", 1.54e-3), "slow": bench("slow", 2e-3)}
    asked = []

    def rerun(ids):
        asked.extend(ids)
        return {"noisy": bench("noisy", 1.12e-3), "slow": bench("slow", 1.9e-3)}

    lines = regressions(baseline, now, "min", 40, rerun)
    assert asked == ["tests/benchmarks/test_regression.py::noisy", "tests/benchmarks/test_regression.py::slow"]
    assert lines == [
        "bench-check: REGRESSION slow: min 1 ms in the baseline, now 1.9 ms (+90%; first run +100%) > +40%"
    ]
    assert "noisy was +54%, then +12% on its rerun: noise" in capsys.readouterr().out
    assert regressions(baseline, {"steady": now["steady"]}, "min", 40, rerun) == []


def test_the_onnx_export_keeps_one_initializer_per_parameter_so_rebinding_reaches_each():
    """torch's exporter merged bit-identical initializers (and its optimizer identical convolutions): two folded
    convolutions with the same bias shared one name, and a per-sample rebind gave one the other's bias."""
    import onnxruntime as ort
    import torch
    from torch import nn

    from swagbench.backends.onnx_graph import export_onnx, float_state
    from swagbench.backends.onnxruntime import with_values

    class Twins(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)
            with torch.no_grad():
                self.b.load_state_dict(self.a.state_dict())  # bit-identical, as folded biases can be

        def forward(self, x):
            return self.a(x) + 2 * self.b(x)

    model, x = Twins().eval(), torch.randn(2, 3, 8, 8)
    proto = export_onnx(model, x, optimize=True)  # the int8 and folded-constants graphs' export
    convs = [list(n.input) for n in proto.graph.node if n.op_type == "Conv"]
    assert convs == [["x", "a.weight", "a.bias"], ["x", "b.weight", "b.bias"]]
    with torch.no_grad():
        model.b.bias.add_(1.0)  # the next sample: the twins differ
    session = ort.InferenceSession(with_values(proto, float_state(model)), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-5)


def _reference_file(tmp_path, edit=None):
    """A reference-format posterior of digits_cnn (tests.reference_swag), ``edit``ed in place first; its model."""
    import torch

    from swagbench.swag.models import build_model
    from tests.reference_swag import reference_state_dict, sgd_iterates

    torch.manual_seed(0)
    model = build_model("digits_cnn", 10, 1)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    state = reference_state_dict(model, sgd_iterates(model, x, y, 4), 4)
    if edit:
        edit(state)
    path = tmp_path / "fold0.pt"
    torch.save({"state_dict": state}, path)
    return path, model


def test_a_posterior_with_zero_deviation_rows_is_diagonal_only(tmp_path):
    """``_cov_mat_sqrt`` of 0 rows (a SWAG run saved before it stored a deviation) was a reshape traceback."""
    import torch

    from swagbench.swag.reference_format import load_reference_posterior

    def no_rows(state):
        for key in [k for k in state if k.endswith("_cov_mat_sqrt")]:
            state[key] = torch.zeros(0, state[key].shape[1])

    path, model = _reference_file(tmp_path, no_rows)
    posterior = load_reference_posterior(path, model)
    assert posterior.deviations.shape == (0, posterior.num_parameters)


def test_a_collapsed_posterior_is_a_warning_with_its_share(tmp_path):
    """sq_mean < mean^2 everywhere: every sample is the mean. It ran without a word; now a warning says how much."""
    from swagbench.bench.posteriors import checked_posterior
    from swagbench.swag.reference_format import load_reference_posterior

    def collapse(state):
        for key in [k for k in state if k.endswith("_sq_mean")]:
            state[key] = state[key.replace("_sq_mean", "_mean")] ** 2 * 0.5
            state.pop(key.replace("_sq_mean", "_cov_mat_sqrt"))

    said = []
    path, model = _reference_file(tmp_path, collapse)
    checked_posterior(load_reference_posterior(path, model), path, said.append)
    assert (
        len(said) == 1
        and "100% of parameters have sq_mean <= mean^2" in said[0]
        and "every sample is the mean" in said[0]
    )
    healthy, model = _reference_file(tmp_path)
    said.clear()
    checked_posterior(load_reference_posterior(healthy, model), healthy, said.append)
    assert said == []


@pytest.mark.parametrize("what", ["pickled object", "directory"])
def test_refusing_a_checkpoint_is_one_line_without_unsafe_advice(tmp_path, what, capsys):
    """A pickled object in a posterior was refused by repeating torch's advice to load with weights_only=False (it
    would run the file's code), after torch's warnings; a directory was said not to exist."""
    import argparse

    import torch

    from swagbench.swag.checkpoint import read_tensors
    from swagbench.swag.errors import CheckpointError

    path = tmp_path / "fold0.pt"
    if what == "directory":
        path.mkdir()
    else:
        torch.save({"state_dict": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError) as err:
        read_tensors(path, "posterior file")
    message = str(err.value)
    assert "weights_only=False" not in message and "\n" not in message
    assert capsys.readouterr().err == ""  # no library warning before it
    if what == "directory":
        assert "is a directory, not a file" in message
    else:
        assert "pickled Python object (argparse.Namespace)" in message and "never unpickles" in message


def test_a_class_seen_once_is_named_before_any_image_is_decoded(tmp_path):
    """A manifest class ``zebra`` with one image was "class 3 has only 1 examples", after the whole decode."""
    from swagbench.bench.config import DataConfig
    from swagbench.bench.dataset import load_dataset
    from swagbench.bench.errors import DataError

    root = _folder(tmp_path / "pets", per_class=3)
    rows = [f"{p.relative_to(root)},{p.parent.name}" for p in sorted(root.rglob("*.*")) if p.suffix != ".txt"]
    rows.append(f"{next((root / 'cat').glob('*.png')).relative_to(root)},zebra")
    (root / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"class 'zebra' has only 1 example\(s\)"):
        load_dataset(DataConfig(source=str(root / "labels.csv"), image_size=SIZE), cache, log=lambda s: 0)
    assert not any(cache.rglob("x.npy")), "it decoded first"


@pytest.mark.parametrize("typed, value", [("1e-12", 1e-12), ("5e4", 50000), ("1.5e3", 1500.0), ("-2E+3", -2000)])
def test_numbers_parse_as_people_type_them(typed, value):
    """YAML 1.1 reads 1e-12 as a string: ``ensemble.scale=1e-12`` was refused as "must be float, got '1e-12'"."""
    from swagbench.bench.config.loading import read_yaml

    parsed = read_yaml(typed, "test")
    assert parsed == value and type(parsed) is type(value)


def test_exponents_reach_float_and_int_settings():
    from swagbench.bench.config import load_config

    config = load_config(None, ["ensemble.scale=1e-12", "target.images=5e4"])
    assert (config.ensemble.scale, config.target.images) == (1e-12, 50000)


def test_durations_read_as_people_read_them():
    """The answer for a ResNet-50 job read "1.92e+03 min for the ensemble"."""
    from swagbench.bench.progress import duration

    assert [duration(s) for s in (4.23, 42, 450, 1.92e3 * 60)] == ["4.2 s", "42 s", "7.5 min", "32.0 h"]


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_ceiling_refuses_seconds_that_are_not_finite_and_positive(value, capsys):
    """``ceiling --seconds -1`` wrote ``"seconds": -1.0`` into ceilings.json."""
    from swagbench.bench.cli import main

    with pytest.raises(SystemExit) as done:
        main(["ceiling", str(FIXTURE_RUN), "--seconds", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and len(err) == 1 and err[0].startswith("swagbench: error: ") and "--seconds" in err[0]
