"""User mistakes give one clear line on stderr and exit code 2."""

import numpy as np
import pytest

from swagbench.bench.cli import main
from tests.conftest import DIGITS


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("swagbench: error: ")
    return err[0]


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["run", "--config", "no/such.yaml"], "config file no/such.yaml does not exist"),
        (["run", "--backends", "nope"], "unknown backend 'nope'; choose from eager"),
        (["run", "--backends", "eager:int8"], "no int8 mode"),
        (["run", "data.source=/no/such.npz"], "data.source /no/such.npz does not exist"),
        (["run", "ensemble.smaples=3"], "unknown key(s) ['smaples'] in ensemble"),
        (["run", "ensemble.folds=500"], "but ensemble.folds=500"),
        (["run", "model=vgg"], "unknown model 'vgg'"),
        (["summary", "/no/such/run"], "results.jsonl does not exist"),
        (["run", "--backends", "eager", "ensemble.samples=0"], "ensemble.samples must be >= 1"),  # after an option
    ],
)
def test_bad_input_one_line(argv, msg, capsys, tmp_path):
    assert main([*argv, *(["--results-dir", str(tmp_path)] if argv[0] == "run" else [])]) == 2
    assert msg in _one_error_line(capsys)
    _nothing_half_written(tmp_path)


def _nothing_half_written(results, runs=()):
    """No new run folder and no partial file: beside ``runs``, at most the data cache, holding whole data stores
    (each made once and reused by later runs)."""
    assert [p.name for p in results.iterdir() if p.name != "cache"] == list(runs)
    assert not [p for p in results.rglob("*") if p.name.endswith(".tmp")]


def test_wrong_shape_npz(tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((20, 8, 8), np.float32), y=np.zeros(20, int))
    assert main(["run", f"data.source={path}", "--results-dir", str(tmp_path / "r")]) == 2
    assert "expected 4-D (N, C, H, W)" in _one_error_line(capsys)


def test_list_backends(capsys):
    assert main(["list-backends"]) == 0
    assert any(line.startswith("eager") and "available" in line for line in capsys.readouterr().out.splitlines())


def test_help_explains_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--config", "--backends", "--results-dir", "--name", "KEY=VALUE"):
        assert flag in out


def _npz(tmp_path, **arrays):
    base = {"x": np.zeros((40, 1, 8, 8), np.float32), "y": np.arange(40) % 4}
    path = tmp_path / "bad.npz"
    np.savez(path, **{**base, **arrays})
    return path


def _posteriors(tmp_path, model="digits_cnn", truncate=False, poison=False, missing=None, tensors_of="digits_cnn"):
    """Two folds' posteriors for the embedded default data split into 2 folds, with the metadata a swagbench
    training run writes (so each case below has exactly one defect)."""
    from swagbench.bench.config import load_config
    from swagbench.bench.dataset import load_dataset
    from swagbench.bench.posteriors import posterior_meta
    from swagbench.bench.record.folds import make_folds
    from swagbench.swag.io import save_posterior
    from swagbench.swag.models import build_model
    from swagbench.swag.posterior import synthesize_posterior

    config = load_config(None, [*DIGITS, "ensemble.folds=2"])
    dataset = load_dataset(config.data)
    fold_of = make_folds(dataset.labels, 2, config.ensemble.seed)
    root = tmp_path / "posteriors"
    for k in range(2):
        post = synthesize_posterior(build_model(tensors_of, 10, 1), max_rank=2, seed=k)
        post.meta.update({**posterior_meta(config, dataset, fold_of, k), "model": model})
        path = save_posterior(post, root / f"fold{k}.safetensors")
        if truncate:
            path.write_bytes(path.read_bytes()[:-100])
        if poison and k == 1:  # 4 KB of 0xFF (NaN as float32) in the middle of the tensors, header intact
            data = bytearray(path.read_bytes())
            middle = len(data) // 2
            data[middle : middle + 4096] = b"\xff" * 4096
            path.write_bytes(bytes(data))
        if missing == k:
            path.unlink()
    return root


BAD_INPUTS = {
    "wrong type": (lambda t: ["ensemble.samples=many"], "ensemble.samples must be int, got 'many'"),
    "S < 1": (lambda t: ["ensemble.samples=0"], "ensemble.samples must be >= 1"),
    "unknown trial key": (lambda t: ["trials=[{backend: eager, precison: bf16}]"], "valid keys: backend, batch_size"),
    "bad precision": (lambda t: ["--backends", "eager:fp16"], "use backend[:fp32|bf16|int8][:cl]"),
    "int8 where there is none": (lambda t: ["--backends", "inductor:int8"], "backend 'inductor' has no int8 mode"),
    "folds > examples per class": (lambda t: ["data.max_examples=60", "ensemble.folds=8"], "use at most"),
    "NaN in x": (lambda t: [f"data.source={_npz(t, x=np.full((40, 1, 8, 8), np.nan, np.float32))}"], "NaN or inf"),
    "integer x": (lambda t: [f"data.source={_npz(t, x=np.zeros((40, 1, 8, 8), np.int64))}"], "expected float"),
    "label out of range": (lambda t: [f"data.source={_npz(t, num_classes=3)}"], "has label 3 but num_classes=3"),
    "labels of the wrong length": (lambda t: [f"data.source={_npz(t, y=np.zeros(7, int))}"], "expected (40,)"),
    "posterior of another architecture": (
        lambda t: [f"posteriors_dir={_posteriors(t, model='resnet18')}", "ensemble.folds=2"],
        "has model='resnet18' but this run needs model='digits_cnn'",
    ),
    "posterior whose metadata lies": (  # says digits_cnn, holds resnet8's tensors: caught before any trial
        lambda t: [f"posteriors_dir={_posteriors(t, tensors_of='resnet8')}", "ensemble.folds=2"],
        "was collected for a different model",
    ),
    "truncated posterior": (
        lambda t: [f"posteriors_dir={_posteriors(t, truncate=True)}", "ensemble.folds=2"],
        "is corrupt",
    ),
    "missing posterior": (
        lambda t: [f"posteriors_dir={_posteriors(t, missing=1)}", "ensemble.folds=2"],
        "but not fold1.safetensors",
    ),
    "negative memory limit": (lambda t: ["memory_limit_gb=-1"], "memory_limit_gb must be > 0"),
    "non-finite posterior": (
        lambda t: [f"posteriors_dir={_posteriors(t, poison=True)}", "ensemble.folds=2"],
        "fold1.safetensors: tensor",  # ... 'mean' holds 1024 non-finite value(s)
    ),
    "posterior of another fold split": (
        lambda t: [f"posteriors_dir={_posteriors(t)}", "ensemble.folds=2", "ensemble.seed=1"],
        "trained on another fold assignment",
    ),
    "posterior of other labels": (
        lambda t: [f"posteriors_dir={_posteriors(t)}", "ensemble.folds=2", "data.noise_rate=0.1"],
        "trained on other images or labels",
    ),
    "one class": (lambda t: [f"data.source={_npz(t, y=np.zeros(40, int))}"], "need at least 2 classes"),
    "text file as .npz": (lambda t: [f"data.source={_text(t)}"], "is not an .npz archive"),
    "name with a slash": (lambda t: ["--name", "a/b"], "must be a plain folder name"),
    "unwritable cache_dir": (lambda t: [f"cache_dir={_text(t)}/cache"], "cache_dir"),
    "empty --backends": (lambda t: ["--backends", ""], "--backends is empty"),
}


def _text(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("x,y\n1,2\n")
    return path


def _recorded_run(dest):
    """A copy of the stored small run at ``dest``."""
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).parent / "fixtures" / "run_small", dest)
    return dest


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_matrix_leaves_recorded_results_untouched(case, tmp_path, capsys):
    """Every bad input: exit code 2, one line naming the problem and the fix, no run folder, and a
    run already in the results folder byte-for-byte unchanged."""
    results = tmp_path / "results"
    recorded = _recorded_run(results / "20260101-000000-small")
    before = {p.name: p.read_bytes() for p in recorded.iterdir()}
    args, msg = BAD_INPUTS[case]
    assert main(["run", *DIGITS, *args(tmp_path), "--results-dir", str(results)]) == 2
    assert msg in _one_error_line(capsys)
    _nothing_half_written(results, [recorded.name])
    assert {p.name: p.read_bytes() for p in recorded.iterdir()} == before


def test_results_dir_that_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    assert main(["run", "data.max_examples=60", "ensemble.folds=2", "--results-dir", str(blocker)]) == 2
    assert "results_dir" in _one_error_line(capsys)


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["run", "--resume", "{run}", "ensemble.samples=2"], "--resume reruns the run's stored config; drop KEY=VALUE"),
        (["run", "--resume", "{tmp}"], "has no config.yaml"),
        (["run", "--retry-failed"], "--retry-failed only applies with --resume"),
        (["report", "{tmp}"], "results.jsonl does not exist"),
    ],
)
def test_resume_and_report_misuse(argv, msg, tmp_path, capsys):
    run = _recorded_run(tmp_path / "run")
    argv = [a.format(run=run, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    assert msg in _one_error_line(capsys)


def test_a_run_being_written_cannot_be_resumed_twice(tmp_path, capsys):
    from swagbench.bench.record.rundir import RunDir

    run = _recorded_run(tmp_path / "run")
    held = RunDir(run).lock()
    try:
        assert main(["run", "--resume", str(run)]) == 2
    finally:
        held.close()
    assert "another swagbench process is writing" in _one_error_line(capsys)


@pytest.mark.e2e
def test_a_run_in_which_every_trial_failed_exits_non_zero(tiny_overrides, capsys):
    assert main(["run", "--backends", "eager", *tiny_overrides, "memory_limit_gb=0.05"]) == 1
    assert "no trial succeeded" in capsys.readouterr().err


def test_version_config_listing_and_sweep_resume(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("swagbench 0.")
    assert main(["config", "--show"]) == 0
    shown = capsys.readouterr().out
    for line in ("ensemble.samples: 4", "data.noise_rate: null", "memory_limit_gb: null", "trials[].bn_examples: null"):
        assert line in shown
    assert "S SWAG samples per fold" in shown  # each section's meaning comes with it
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "every built-in backend" in capsys.readouterr().out
    run = _recorded_run(tmp_path / "run")
    assert main(["sweep", "--resume", str(run), "--grid", "batch_size=8"]) == 2  # a sweep resumes like a run
    assert "drop --grid" in _one_error_line(capsys)


def test_compare_lists_differences_marks_one_sided_trials_and_refuses_a_run_with_itself(tmp_path, capsys):
    import json

    import yaml

    a = _recorded_run(tmp_path / "a")
    b = _recorded_run(tmp_path / "b")
    config = yaml.safe_load((b / "config.yaml").read_text())
    config["ensemble"]["samples"] = 2
    (b / "config.yaml").write_text(yaml.safe_dump(config))
    lines = (b / "results.jsonl").read_text().splitlines(keepends=True)
    (b / "results.jsonl").write_text("".join(lines[:-1]))  # B lacks A's last trial
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert out.index("ensemble.samples: 4 -> 2") < out.index("## Trials")
    last = json.loads(lines[-1])["trial_id"].split("-", 1)[1]
    (row,) = [line for line in out.splitlines() if line.startswith(f"| {last} ")]
    assert "A only" in row and "nan" not in out
    assert main(["compare", str(a), str(a)]) == 2
    assert "two different runs" in _one_error_line(capsys)
