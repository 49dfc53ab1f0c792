"""Bring your own model and SWAG posterior (issue 20): reference-format posteriors, fold files, model factories of
other signatures, trained checkpoints, the Python API, recommendation.json and the ensemble predictor."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from swagbench.bench import api
from swagbench.bench.cli import main
from swagbench.bench.config import DataConfig, load_config
from swagbench.bench.dataset import load_dataset
from swagbench.bench.errors import ConfigError, DataError
from swagbench.bench.record.folds import check_folds
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.record.rundir import RunDir
from swagbench.swag.checkpoint import load_checkpoint
from swagbench.swag.errors import PosteriorError
from swagbench.swag.models import build_model
from swagbench.swag.posterior import SwagCollector
from swagbench.swag.reference_format import load_reference_posterior
from tests.conftest import TINY, the_run
from tests.reference_swag import reference_state_dict, sgd_iterates


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _iterates(steps=6):
    torch.manual_seed(0)
    model = build_model("digits_cnn", 10, 1)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    return model, sgd_iterates(model, x, y, steps)


@pytest.mark.parametrize("covariance", [True, False], ids=["full covariance", "diagonal only"])
def test_reference_posterior_holds_the_moments_swag_collected(covariance, tmp_path):
    model, iterates = _iterates()
    path = tmp_path / "fold0.pt"
    torch.save({"epoch": 6, "state_dict": reference_state_dict(model, iterates, 4, covariance)}, path)
    collector = SwagCollector(model, max_rank=4)  # this package's own collector, on the same iterates
    for it in iterates:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(it[name])
        collector.collect(model)
    ours = collector.posterior()
    got = load_reference_posterior(path, build_model("digits_cnn", 10, 1))
    torch.testing.assert_close(got.mean, ours.mean)
    torch.testing.assert_close(got.sq_mean, ours.sq_mean)
    assert got.n_models == 6 and got.param_names == ours.param_names
    if covariance:
        torch.testing.assert_close(got.deviations, ours.deviations)
        assert got.max_rank == 4  # the stored rows, unless told otherwise
        assert load_reference_posterior(path, model, max_num_models=20).max_rank == 20
    else:
        assert got.deviations.shape == (0, ours.mean.numel())


def test_a_bare_state_dict_with_or_without_base_prefix_loads(tmp_path):
    model, iterates = _iterates()
    state = reference_state_dict(model, iterates, 4)
    torch.save(state, tmp_path / "bare.pt")
    torch.save({k.removeprefix("base."): v for k, v in state.items()}, tmp_path / "nobase.pt")
    a = load_reference_posterior(tmp_path / "bare.pt", model)
    b = load_reference_posterior(tmp_path / "nobase.pt", model)
    torch.testing.assert_close(a.mean, b.mean)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s: s.pop("base.features.0.weight_mean"), "missing features.0.weight"),
        (lambda s: s.update({"base.extra_mean": torch.zeros(3), "base.extra_sq_mean": torch.zeros(3)}), "unexpected"),
        (lambda s: s.update({"base.fc.bias_mean": torch.zeros(5)}), "shape differs for fc.bias"),
    ],
    ids=["missing", "extra", "mis-shaped"],
)
def test_a_posterior_that_does_not_fit_the_model_names_the_entries(edit, words, tmp_path):
    model, iterates = _iterates()
    state = reference_state_dict(model, iterates, 4)
    edit(state)
    torch.save({"state_dict": state}, tmp_path / "fold0.pt")
    with pytest.raises(PosteriorError, match=words):
        load_reference_posterior(tmp_path / "fold0.pt", model)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("reader", ["posterior", "checkpoint"])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(reader, tmp_path):
    marker = tmp_path / "ran"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsCode(marker)}, tmp_path / "evil.pt")
    model = build_model("digits_cnn", 10, 1)
    with pytest.raises(PosteriorError, match="weights_only"):
        if reader == "posterior":
            load_reference_posterior(tmp_path / "evil.pt", model)
        else:
            load_checkpoint(model, tmp_path / "evil.pt")
    assert not marker.exists()


def _reference_files(tmp_path, covariance=True):
    """Per fold, a reference-format posterior of digits_cnn trained on that fold's training part of the run's data
    (TINY: 120 digits), and the fold file that says so."""
    data = load_dataset(DataConfig(source="digits", max_examples=120), tmp_path / "results" / "cache", log=lambda s: 0)
    fold_of = np.arange(120) % 2
    np.save(tmp_path / "folds.npy", fold_of)
    post = tmp_path / "posteriors"
    post.mkdir()
    for k in range(2):
        train = np.flatnonzero(fold_of != k)
        torch.manual_seed(k)
        model = build_model("digits_cnn", 10, 1)
        its = sgd_iterates(model, data.tensor(train), torch.from_numpy(data.labels[train]), 5, seed=k)
        torch.save({"epoch": 5, "state_dict": reference_state_dict(model, its, 4, covariance)}, post / f"fold{k}.pt")
    return data, fold_of, post


def _by_hand(data, fold_of, post, fold):
    """Fold ``fold``'s SWA-mean member as the reference method makes it: mean weights, update_bn over the fold's
    training data (one batch here), predict its held-out part."""
    from torch.optim.swa_utils import update_bn

    model = build_model("digits_cnn", 10, 1)
    posterior = load_reference_posterior(post / f"fold{fold}.pt", model)
    with torch.no_grad():
        offset = 0
        for p in model.parameters():
            p.copy_(posterior.mean[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
    update_bn([data.tensor(np.flatnonzero(fold_of != fold))], model)
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(data.tensor(np.flatnonzero(fold_of == fold))), 1).numpy()


@pytest.mark.e2e
def test_reference_posteriors_run_through_swagbench_and_match_their_mean_by_hand(tmp_path):
    data, fold_of, post = _reference_files(tmp_path)
    args = [*TINY, f"results_dir={tmp_path / 'results'}", f"posteriors_dir={post}", "ensemble.samples=1"]
    args += [f"data.folds={tmp_path / 'folds.npy'}", "ensemble.scale=0"]
    assert main(["run", "--backends", "eager", *args]) == 0
    run = the_run(tmp_path / "results")
    (row,) = read_rows(run)
    assert row.status == "ok" and row.posterior_source == "user"
    members = np.load(RunDir(run).trial(row.trial_id).members)
    for k in range(2):
        np.testing.assert_allclose(members[0, fold_of == k], _by_hand(data, fold_of, post, k), atol=1e-5)


@pytest.mark.e2e
def test_diagonal_reference_posteriors_run_at_full_scale(tmp_path):
    """Reference posteriors saved without the low-rank part (``no_cov_mat``) import as diagonal ones (rank 0) and
    are sampled at the run's scale: members move away from the SWA mean, by the posterior's own spread."""
    from swagbench.swag.io import load_posterior

    data, fold_of, post = _reference_files(tmp_path, covariance=False)
    args = [*TINY, f"results_dir={tmp_path / 'results'}", f"posteriors_dir={post}", "ensemble.samples=1"]
    assert main(["run", "--backends", "eager", *args, f"data.folds={tmp_path / 'folds.npy'}"]) == 0
    run = the_run(tmp_path / "results")
    (row,) = read_rows(run)
    assert row.status == "ok" and row.posterior_source == "user"
    for path in RunDir(run).read_posteriors()["paths"]:
        imported = load_posterior(path)
        assert imported.deviations.shape[0] == 0  # diagonal: no low-rank term
        assert float((imported.sq_mean - imported.mean**2).clamp(min=0).max()) > 0  # a spread to sample from
    members = np.load(RunDir(run).trial(row.trial_id).members)
    np.testing.assert_allclose(members[0].sum(axis=1), 1.0, atol=1e-5)
    for k in range(2):  # sampled at scale 0.5, not collapsed onto the mean (which scale=0 gives, test above)
        assert np.abs(members[0, fold_of == k] - _by_hand(data, fold_of, post, k)).max() > 1e-3


@pytest.mark.parametrize(
    "folds, words",
    [
        (None, "need data.folds"),
        (np.arange(100) % 2, "holds (100,) fold ids but the data has 120"),
        (np.zeros(120, dtype=int), "fold 1 has no example"),
        (np.arange(120) % 3, "but ensemble.folds=2"),
    ],
    ids=["no fold file", "wrong length", "an empty fold", "K differs"],
)
def test_fold_files_that_do_not_fit_are_one_line(folds, words, tmp_path, capsys):
    _, _, post = _reference_files(tmp_path)
    args = [*TINY, f"results_dir={tmp_path / 'results'}", f"posteriors_dir={post}"]
    if folds is not None:
        np.save(tmp_path / "bad.npy", folds)
        args.append(f"data.folds={tmp_path / 'bad.npy'}")
    capsys.readouterr()
    assert main(["run", "--backends", "eager", *args]) == 2
    assert words in _one_error_line(capsys)


def test_check_folds_refuses_non_integer_ids():
    with pytest.raises(DataError, match="must be integers"):
        check_folds(np.zeros(4), 4, 2, "f.npy")


def test_factories_of_three_signatures(tmp_path, monkeypatch):
    (tmp_path / "zoo.py").write_text(
        "from torch import nn\n"
        "seen = {}\n"
        "def tv(num_classes=1000):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, num_classes))\n"
        "def timm_style(num_classes, in_chans=3, **kw):\n"
        "    seen['in_chans'] = in_chans\n"
        "    return nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.Flatten(), nn.LazyLinear(num_classes))\n"
        "def torch_style(num_classes, in_channels):\n"
        "    seen['in_channels'] = in_channels\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.Flatten(), nn.LazyLinear(num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import zoo

    assert build_model("zoo:tv", 7, 3)(torch.randn(2, 3, 8, 8)).shape == (2, 7)
    assert build_model("zoo:timm_style", 5, 1)(torch.randn(2, 1, 8, 8)).shape == (2, 5)
    assert build_model("zoo:torch_style", 5, 2)(torch.randn(2, 2, 8, 8)).shape == (2, 5)
    assert zoo.seen == {"in_chans": 1, "in_channels": 2}


def test_a_checkpoint_with_a_module_prefix_loads_and_a_wrong_key_is_a_diff(tmp_path):
    trained = build_model("digits_cnn", 10, 1)
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()}}, tmp_path / "a.pt")
    fresh = load_checkpoint(build_model("digits_cnn", 10, 1), tmp_path / "a.pt")
    for a, b in zip(fresh.state_dict().values(), trained.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    state = dict(trained.state_dict())
    state["head.weight_renamed"] = state.pop(next(k for k in state if k.endswith("weight")))
    torch.save(state, tmp_path / "b.pt")
    with pytest.raises(PosteriorError, match="missing .*unexpected head.weight_renamed"):
        load_checkpoint(build_model("digits_cnn", 10, 1), tmp_path / "b.pt")


@pytest.mark.e2e
def test_swag_collection_starts_from_the_checkpoint(tmp_path):
    torch.manual_seed(123)
    trained = build_model("digits_cnn", 10, 1)
    torch.save(trained.state_dict(), tmp_path / "trained.pt")
    args = [*TINY, f"results_dir={tmp_path / 'results'}", f"model_checkpoint={tmp_path / 'trained.pt'}"]
    # from a checkpoint every epoch runs at swa_lr; at 0 every SWAG iterate is the checkpoint itself, so the
    # posterior's mean must be its weights
    args += ["train.swa_lr=0", "train.weight_decay=0", "ensemble.samples=1", "posterior_cache=false"]
    args += ["train.swa_start=0"]  # TINY's 1 is refused with a checkpoint (checked below)
    assert main(["run", "--backends", "eager", *args]) == 0
    from swagbench.swag.io import load_posterior
    from swagbench.swag.posterior import flatten_parameters

    with pytest.raises(ConfigError, match="train.swa_start must be 0"):
        load_config(None, [f"model_checkpoint={tmp_path / 'trained.pt'}", "train.swa_start=1"])
    assert load_config(None, [f"model_checkpoint={tmp_path / 'trained.pt'}"]).train.swa_start == 0  # its default

    posterior = load_posterior(the_run(tmp_path / "results") / "posteriors" / "fold0.safetensors")
    torch.testing.assert_close(posterior.mean, flatten_parameters(trained))


@pytest.mark.e2e
def test_the_python_api_gives_the_clis_rows_and_the_predictor_reproduces_the_winner(tmp_path):
    cli_args = [*TINY, f"results_dir={tmp_path / 'cli'}"]
    assert main(["run", "--backends", "eager,eager:bf16:cl", *cli_args]) == 0
    run = api.run(overrides=[*TINY, f"results_dir={tmp_path / 'api'}"], backends="eager,eager:bf16:cl", log=lambda s: 0)
    cli_rows, api_rows = read_rows(the_run(tmp_path / "cli")), read_rows(run.path)
    assert [r.trial_id for r in cli_rows] == [r.trial_id for r in api_rows]
    for a, b in zip(cli_rows, api_rows, strict=True):
        assert (a.status, a.validity, a.calibration_given, a.label_issues) == (
            b.status,
            b.validity,
            b.calibration_given,
            b.label_issues,
        )
    assert list(run.summary.trial) == [r.trial_id for r in api_rows]
    assert len(run.label_issues) == 120 and run.label_issues.label_quality.is_monotonic_increasing
    rec = run.recommendation
    assert rec["strategy"]["backend"] == "eager" and rec["trial_id"] in {r.trial_id for r in api_rows}
    members = np.load(RunDir(run.path).trial(rec["trial_id"]).members)
    seen = []
    probs = api.predictor(run).predict_proba(on_member=lambda f, s, idx, p: seen.append((s, idx, p)))
    assert len(seen) == 4  # 2 folds x 2 samples
    for s, idx, p in seen:
        np.testing.assert_array_equal(p, members[s, idx])
    np.testing.assert_allclose(probs, members.mean(0), atol=1e-6)
    new = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)
    out = api.predictor(run).predict_proba(new)
    assert out.shape == (5, 10) and np.allclose(out.sum(1), 1, atol=1e-5)
    empty = api.predictor(run).predict_proba(new[:0])  # an empty batch was an IndexError (issue 30)
    assert empty.shape == (0, 10) and empty.dtype == np.float32
    with pytest.raises(DataError, match="shape"):
        api.predictor(run).predict_proba(new[:, :, :4])
    new[4, 0, 3, 3] = np.nan  # the last image: every batch is checked, not only the first rows
    with pytest.raises(DataError, match="NaN or inf among rows 0..4"):
        api.predictor(run).predict_proba(new)


@pytest.mark.e2e
def test_swagbench_run_takes_a_recommendation_json_as_the_trial(tmp_path):
    rec = tmp_path / "recommendation.json"
    rec.write_text(
        json.dumps(
            {
                "format": "swagbench-recommendation-v1",
                "strategy": {"backend": "eager", "precision": "bf16", "channels_last": True, "batch_size": 32},
            }
        )
    )
    assert main(["run", "--strategy", str(rec), *TINY, f"results_dir={tmp_path / 'r'}", "ensemble.samples=1"]) == 0
    rows = read_rows(the_run(tmp_path / "r"))
    assert [r.trial_id for r in rows] == ["00-eager-fp32", "01-eager-bf16-cl-b32"]
    assert Path(the_run(tmp_path / "r") / "recommendation.json").is_file()
