"""``swagbench estimate``: a run's per-phase costs projected to another data size, checked against a real run."""

from pathlib import Path

import pytest

from swagbench.bench.answer.projection import bn_images
from swagbench.bench.cli import main
from swagbench.bench.config import load_config
from swagbench.bench.errors import ConfigError
from swagbench.bench.estimate import estimate, render
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.run import execute
from tests.conftest import DIGITS

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


def _run(tmp_path, name, examples, *extra):
    overrides = [
        *DIGITS,
        f"data.max_examples={examples}",
        "ensemble.folds=2",
        "ensemble.samples=3",
        "train.epochs=2",
        "train.swa_start=1",
        "threads=1",
        "batch_size=32",
        "ensemble.bn_batch_size=64",
        f"results_dir={tmp_path / 'results'}",
        f"name={name}",
        "trials=[{backend: eager}, {backend: eager, precision: bf16}]",
        *extra,
    ]
    return execute(load_config(None, overrides), log=lambda *_: None)


@pytest.mark.e2e
def test_projection_of_a_run_to_a_larger_size_is_checked_against_a_real_run(tmp_path):
    # How close the projection comes is a benchmark (docs/answer-and-estimate.md states it and the command that
    # measures it): on these second-long runs a shared machine's noise moves it by +-50%, so this test checks what
    # does not depend on timing: the check column is the real run's, the error is computed from it, and the
    # projection of three times the images lies between the measured minutes and three times them.
    small, large = _run(tmp_path, "small", 400), _run(tmp_path, "large", 1200)
    projected, facts = estimate(small, images=1200, check=large)
    measured = {r["trial_id"]: r["ensemble_s"] / 60 for r in read_rows(large)}
    assert facts["measured"] == (400, 2, 3) and facts["projected"] == (1200, 2, 3)
    for p in projected.itertuples():
        assert p.check_min == measured[p.trial]
        assert p.check_error == pytest.approx(p.proj_ensemble_min / measured[p.trial] - 1)
        # per-image costs scale by 3, fixed ones do not
        assert p.measured_min < p.proj_ensemble_min <= 3 * p.measured_min * 1.02, p
    with pytest.raises(ConfigError, match="not \\(800, 2, 3\\)"):
        estimate(small, images=800, check=large)  # a check run of another size is refused
    # a projection to the run's own size gives back what the run measured (up to per-phase rounding)
    same, _ = estimate(small, images=400)
    assert same.proj_ensemble_min.to_numpy() == pytest.approx(same.measured_min.to_numpy(), rel=0.02)
    text = render(projected, facts)
    assert "1,200 images, 2 folds x 3 samples (from a run of 400 images, 2 x 3)" in text
    assert "No cost in money: the run used no --profile" in text and "|error| median" in text


def test_bn_images_follow_the_fold_split_or_the_subset():
    assert bn_images(5000, 5, None) == 4000 and bn_images(5000, 5, 1024) == 1024 and bn_images(100, 5, 1024) == 80


@pytest.mark.parametrize(
    "args, message",
    [
        (["--images", "0"], "argument --images: '0' must be a whole number from 1"),
        (["--images", "-5"], "must be a whole number from 1"),
        (["--images", "nan"], "argument --images: 'nan' must be a whole number"),
        (["--images", "inf"], "argument --images: 'inf' must be a whole number"),
        (["--images", "1e30"], "argument --images: '1e30' must be a whole number from 1 to 1,000,000,000"),
        (["--images", "ten"], "'ten' is not a number"),
        ([], "the following arguments are required: --images"),
        (["--images", "1000", "--samples", "2.5"], "argument --samples: '2.5' must be a whole number"),
        (["--images", "1000", "--folds", "1"], "need folds >= 2"),
        (["--images", "3", "--folds", "5"], "at least 2 images per fold"),
    ],
)
def test_estimate_refuses_impossible_sizes_in_one_line(args, message, capsys):
    try:
        code = main(["estimate", str(FIXTURE), *args])
    except SystemExit as exc:  # argparse's own checks exit from inside the parser
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("swagbench: error: ") and message in err, err


def test_estimate_reads_sizes_as_people_type_them(capsys):
    assert main(["estimate", str(FIXTURE), "--images", "5e4"]) == 0
    first = capsys.readouterr().out
    assert main(["estimate", str(FIXTURE), "--images", "50,000"]) == 0
    assert capsys.readouterr().out == first and "50,000 images" in first


def test_estimate_refuses_a_missing_run(tmp_path, capsys):
    assert main(["estimate", str(tmp_path), "--images", "1000"]) == 2
    assert "does not exist" in capsys.readouterr().err


def _fixture_with_profile(tmp_path, profile):
    import json
    import shutil
    from pathlib import Path

    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "fixtures" / "run_small", run)
    env = json.loads((run / "env.json").read_text())
    env["profile"] = profile
    (run / "env.json").write_text(json.dumps(env))
    return run


def test_money_only_for_a_run_on_the_priced_machine(tmp_path):
    from swagbench.bench.measure.hardware_profiles import load_profile, price

    rate = price(load_profile("n2-highcpu-32"))
    on_it = _fixture_with_profile(tmp_path / "a", {"name": "n2-highcpu-32", "host_mismatch": None})
    df, facts = estimate(on_it, images=10_000, samples=8)
    assert df.usd_on_demand.to_numpy() == pytest.approx(df.proj_ensemble_min.to_numpy() / 60 * rate["on_demand"])
    assert df.usd_spot.to_numpy() == pytest.approx(df.proj_ensemble_min.to_numpy() / 60 * rate["spot"])
    assert f"${rate['on_demand']:.4f}/h on demand" in render(df, facts) and rate["source"] in render(df, facts)
    elsewhere = _fixture_with_profile(
        tmp_path / "b", {"name": "n2-highcpu-32", "host_mismatch": "this host is not a n2-highcpu-32 (2 vCPUs)"}
    )
    df, facts = estimate(elsewhere, images=10_000)
    assert "usd_on_demand" not in df and "was not on a n2-highcpu-32" in render(df, facts)


def test_the_reports_target_projection_equals_the_estimate_commands(tmp_path):
    import shutil
    from pathlib import Path

    import yaml

    from swagbench.bench.report import load

    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "fixtures" / "run_small", run)
    stored = yaml.safe_load((run / "config.yaml").read_text())
    stored["target"] = {"images": 3000, "folds": None, "samples": 8}
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    data = load(run)
    table, _ = estimate(run, 3000, None, 8)
    ok = data.df[data.df.status == "ok"].set_index("trial")
    assert len(ok) >= 2
    for trial, projected in table.set_index("trial").proj_ensemble_min.items():
        assert ok.target_min[trial] == pytest.approx(projected, rel=1e-9)
    assert ok.target_size.iloc[0] == "3,000 images x 2 folds x 8 samples"


def test_the_recommendation_is_made_at_the_target_not_at_the_proxy(tmp_path):
    from pathlib import Path

    from swagbench.bench.answer.recommend import recommendation, recommendation_record
    from swagbench.bench.report.frames import summary_frame

    rows = read_rows(Path(__file__).parent / "fixtures" / "run_small")
    df = summary_frame(rows, {"images": 3000, "samples": 8})
    df["validity"] = "VALID"
    ok = df[(df.status == "ok") & ~df.is_reference]
    slow_here, fast_there = ok.trial.iloc[0], ok.trial.iloc[1]
    ref = df.is_reference
    df.loc[ref, ["ensemble_min", "target_min"]] = [1.0, 100.0]
    df.loc[df.trial == slow_here, ["ensemble_min", "target_min"]] = [0.5, 80.0]  # wins the proxy
    df.loc[df.trial == fast_there, ["ensemble_min", "target_min"]] = [2.0, 20.0]  # wins the job
    df.loc[~ref & ~df.trial.isin([slow_here, fast_there]), "target_min"] = 500.0
    df["speedup"] = 1.0 / df.ensemble_min
    df["target_speedup"] = 100.0 / df.target_min
    line = recommendation(df)
    assert "for a job of 3," in line and "20.0 min for the ensemble, 5.00x eager fp32" in line, line
    assert "good to about +-25%" in line
    record = recommendation_record(df, rows, "r")
    assert record["trial_id"] == fast_there and record["target"]["projected"] is True
    assert record["target"]["speedup_vs_eager_fp32"] == pytest.approx(5.0)


def test_a_session_of_members_costs_its_setup_once_and_each_members_share():
    from swagbench.bench.answer.projection import members_seconds, project, session_setup_seconds

    row = next(r for r in read_rows(FIXTURE) if r.status == "ok")
    one, three = (members_seconds(row, 5000, 5, 1, m) for m in (1, 3))
    setup_one, setup_three = session_setup_seconds(row, 1), session_setup_seconds(row, 3)
    assert 0 < setup_one <= setup_three < three
    assert three - setup_three == pytest.approx(3 * (one - setup_one))  # each member's share is the same
    # with one sample per fold a session of every member is the ensemble without confident learning
    whole = project(row, 5000, 5, 1)
    assert members_seconds(row, 5000, 5, 1, 5) == pytest.approx(whole["ensemble"] - whole["confident_learning"])
