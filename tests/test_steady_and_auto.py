"""Steady-state rates measured apart from the ensemble (``steady:``) and options chosen at the target size by
measurement (``binding: auto``), issue 21."""

import dataclasses
import html

import pytest

from swagbench.bench.answer.auto import choose, pair_images
from swagbench.bench.answer.projection import project
from swagbench.bench.answer.recommend import recommendation_record
from swagbench.bench.cli import main
from swagbench.bench.measure.steady import harness_share
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.record.rundir import RunDir
from swagbench.bench.report.frames import summary_frame
from tests.conftest import eager_row, the_run

INPUTS = {"rebind_s": 0.001, "bn_update_s_per_image": 4e-4, "predict_s_per_image": 2e-4}  # weights as graph inputs
CONSTANTS = {"rebind_s": 1.5, "bn_update_s_per_image": 3e-4, "predict_s_per_image": 0.5e-4}  # rebuilt per sample


def test_auto_picks_constants_when_the_targets_bn_pass_dwarfs_the_recompile_and_inputs_at_a_tiny_target():
    candidates = {"inputs": INPUTS, "constants": CONSTANTS}
    big = pair_images(50_000, 5, None)  # 40,000 BatchNorm images and 10,000 predicted per (fold, sample)
    assert big == {"bn_update": 40_000, "predict": 10_000}
    chosen, cost = choose(candidates, big)
    assert chosen == "constants"
    assert cost["inputs"] == pytest.approx(0.001 + 40_000 * 4e-4 + 10_000 * 2e-4)  # 18.0 s vs 13.5 s
    assert cost["constants"] == pytest.approx(1.5 + 40_000 * 3e-4 + 10_000 * 0.5e-4)
    assert choose(candidates, pair_images(500, 5, None))[0] == "inputs"  # 400 + 100 images: the rebuild dominates
    # a BatchNorm subset caps the pass, whatever the data size: the rebuild then weighs more
    assert pair_images(50_000, 5, 256)["bn_update"] == 256
    # a hybrid's BatchNorm pass runs in another engine: only predict and the rebind count
    hybrid = {name: {k: v for k, v in c.items() if not k.startswith("bn_")} for name, c in candidates.items()}
    assert choose(hybrid, big)[0] == "constants" and choose(hybrid, pair_images(5_000, 5, None))[0] == "inputs"
    assert choose({"a": INPUTS, "b": dict(INPUTS)}, big)[0] == "a"  # a tie keeps the first candidate


def _one_trial(tiny_overrides, tmp_path, *extra):
    assert main(["run", *tiny_overrides, *extra]) == 0
    run = RunDir(the_run(tmp_path / "results"))
    return run, read_rows(run)


@pytest.mark.e2e
def test_binding_auto_measures_both_bindings_and_runs_the_one_cheapest_at_the_target(tiny_overrides, tmp_path):
    trials = "trials=[{backend: eager}, {backend: onnxruntime, options: {binding: auto}}]"
    run, (_, row) = _one_trial(tiny_overrides, tmp_path, trials, "target.images=4", "target.folds=2")
    auto = row.auto
    assert auto["option"] == "binding" and auto["target"] == {"images": 4, "folds": 2, "samples": 16}
    assert set(auto["candidates"]) == {"inputs", "constants"}
    for c in auto["candidates"].values():
        assert c["rebind_s"] >= 0 and c["bn_update_s_per_image"] > 0 and c["predict_s_per_image"] > 0
    # the choice is the cheapest per (fold, sample) pair at the target, recomputed from what the row recorded
    measured = {n: {k: v for k, v in c.items() if k != "pair_s_at_target"} for n, c in auto["candidates"].items()}
    assert choose(measured, pair_images(4, 2, None))[0] == auto["chosen"]
    # two images per pair: a session rebuilt for every sample cannot pay for itself
    assert auto["chosen"] == "inputs"
    assert row.backend_info["binding"] == row.bn_update["binding"] == "inputs"  # the trial ran with it
    assert row.status == "ok" and row.validity == "VALID", row.validity_reasons
    # a strategy file pins what auto chose for its target: the record made with this trial as the winner (the
    # run's own winner may be the reference) names the binding, not "auto"
    rows = read_rows(run.path)
    df = summary_frame(rows)
    record = recommendation_record(df[df.trial == row.trial_id], rows, run.name)
    assert record["trial_id"] == row.trial_id and record["strategy"]["options"] == {"binding": "inputs"}
    assert auto["values"] == {"binding": "inputs"}
    shown = f"{row.trial_id}: binding inputs (inputs "  # the summary and the report say what auto chose, and why
    assert shown in (run.path / "summary.md").read_text() and html.escape(shown) in run.report_html.read_text()


@pytest.mark.e2e
def test_torchscript_freeze_auto_runs_the_variant_it_chose(tiny_overrides, tmp_path):
    run, (_, row) = _one_trial(
        tiny_overrides, tmp_path, "trials=[{backend: eager}, {backend: torchscript, options: {freeze: auto}}]"
    )
    auto = row.auto
    assert auto["option"] == "freeze" and set(auto["candidates"]) == {"frozen", "swap"}
    frozen = auto["values"]["freeze"]
    assert frozen == (auto["chosen"] == "frozen") and row.backend_info == {"frozen": frozen}
    assert row.strategy == ("reprepare" if frozen else "swap_weights")  # the variant really ran
    assert row.validity == "VALID", row.validity_reasons
    assert main(["run", *tiny_overrides, "trials=[{backend: torchscript, options: {freeze: sometimes}}]"]) == 2


@pytest.mark.e2e
def test_steady_state_is_measured_apart_on_full_batches_and_used_for_the_rates(tiny_overrides, tmp_path):
    run, (row,) = _one_trial(
        tiny_overrides, tmp_path, "trials=[{backend: eager}]", "steady.batches=3", "steady.seconds=0.5"
    )
    steady = row.steady
    assert steady["bn_update"]["batch"] == 256 and steady["predict"]["batch"] == 128  # the configured sizes
    for phase in ("bn_update", "predict"):
        assert steady[phase]["calls"] >= 3 and steady[phase]["s_per_image"] > 0
        assert steady[phase]["img_per_s"] == pytest.approx(1 / steady[phase]["s_per_image"])  # one worker
        assert 0 < steady[phase]["in_run_images"] <= 2 * 120  # the run's own timed calls, samples x images
        # the per-batch work around the runtime's call, timed apart: cheaper than the step that contains the post-work
        assert 0 < steady[phase]["post_s_per_image"] < steady[phase]["s_per_image"]
        assert steady[phase]["read_s_per_image"] > 0
    share = harness_share(steady, {"bn_update": 4.0, "predict": 1.0})
    assert 0 < share < 1
    assert (
        row.predict_img_per_s == steady["predict"]["img_per_s"] and row.bn_img_per_s == steady["bn_update"]["img_per_s"]
    )
    # not counted in the ensemble: the workers' loop (all of its phases and a little between them) ended before it
    worker_s = sum(v for k, v in row.phases_s.items() if k != "confident_learning")
    loop_s = row.ensemble_s - row.phases_s["confident_learning"]
    assert worker_s <= loop_s < worker_s + 2 * 0.5  # the two phases' 0.5 s of steady-state calls are not in it


@pytest.mark.e2e
def test_no_steady_state_measurement_when_turned_off(tiny_overrides, tmp_path):
    _, (row,) = _one_trial(tiny_overrides, tmp_path, "trials=[{backend: eager}]", "steady.batches=0")
    assert row.steady is None and row.predict_img_per_s > 0  # from the run's own calls


def _row(steady):
    """A one-worker trial of 100 images x 2 folds x 2 samples: BN pass 10 s, predict 4 s (warm-up apart)."""
    entries = [
        [f, s, {"sample": 0.1, "prepare": 0.5 if (f, s) == (0, 0) else 0.0, "warmup": 0.0}]
        for f in (0, 1)
        for s in (0, 1)
    ]
    phases = {
        "sample": 0.4,
        "data": 0.0,
        "bn_update": 10.0,
        "prepare": 0.5,
        "warmup": 0.0,
        "predict": 4.0,
        "confident_learning": 0.0,
    }
    return eager_row(
        batch_size=50,
        n_examples=100,
        folds=2,
        samples=2,
        samples_total=4,
        phases_s=phases,
        ensemble_s=sum(phases.values()),
        sample_phases_s=entries,
        steady=steady,
    )


def test_the_harness_share_weighs_each_phase_by_its_images_per_pair():
    steady = {
        "bn_update": {"s_per_image": 3.0, "read_s_per_image": 1.0, "post_s_per_image": 1.0},  # 2 of 4 outside
        "predict": {"s_per_image": 1.0, "read_s_per_image": 0.0, "post_s_per_image": 0.0},  # 0 of 1 outside
    }
    assert harness_share(steady, {"bn_update": 1.0, "predict": 1.0}) == pytest.approx(2 / 5)
    assert harness_share(steady, {"bn_update": 4.0, "predict": 1.0}) == pytest.approx(8 / 17)
    assert harness_share({"predict": {"s_per_image": 1.0}}, {"predict": 1.0}) is None  # rows made before it


def test_the_projection_takes_per_image_costs_from_the_steady_state_and_the_rest_per_sample():
    # the run's own calls: 200 BN images in 10 s (0.05 s each, partial batches), steady 0.01 s per image
    steady = {
        "bn_update": {"s_per_image": 0.01, "in_run_images": 200},
        "predict": {"s_per_image": 0.02, "in_run_images": 200},
    }
    row = _row(steady)
    same = project(row, 100, 2, 2)  # at the run's own size: what it measured
    assert same["bn_update"] == pytest.approx(10.0) and same["predict"] == pytest.approx(4.0)
    big = project(row, 2000, 2, 2)  # 20x the images, the same pairs: 20x the per-image part, the same per-pair rest
    assert big["bn_update"] == pytest.approx(0.01 * 2000 * 2 + (10.0 - 0.01 * 200))
    assert big["predict"] == pytest.approx(0.02 * 2000 * 2 + (4.0 - 0.02 * 200))
    # without a steady-state measurement: the run's own seconds per image, partial batches and all
    old = project(dataclasses.replace(row, steady=None), 2000, 2, 2)
    assert old["bn_update"] == pytest.approx(10.0 * 20)


@pytest.mark.e2e
def test_bn_precision_auto_measures_the_targets_precisions_and_the_pass_runs_the_one_chosen(tiny_overrides, tmp_path):
    from swagbench.backends import get_backend
    from swagbench.backends.precisions import host_isa

    if not get_backend("openvino").available()[0] or not {"vnni", "amx"} & set(host_isa()):
        pytest.skip("needs OpenVINO on a CPU with VNNI or AMX (an int8 pass measured here stands for an N2's)")
    trials = "trials=[{backend: eager}, {backend: openvino, precision: int8, options: {binding: inputs}}]"
    run, (_, row) = _one_trial(tiny_overrides, tmp_path, trials, "target.isa=n2-highcpu-32")
    auto = row.auto
    assert auto["option"] == "bn_precision" and set(auto["candidates"]) == {"int8", "fp32"}  # no bf16 on an N2
    for c in auto["candidates"].values():
        assert c["rebind_s"] > 0 and c["bn_update_s_per_image"] > 0 and c["predict_s_per_image"] > 0
    # int8's predict graph is the same whatever the pass: measured once, so both candidates carry its rate
    assert auto["candidates"]["int8"]["predict_s_per_image"] == auto["candidates"]["fp32"]["predict_s_per_image"]
    measured = {n: {k: v for k, v in c.items() if k != "pair_s_at_target"} for n, c in auto["candidates"].items()}
    target = auto["target"]
    assert choose(measured, pair_images(target["images"], target["folds"], None))[0] == auto["chosen"]
    assert auto["values"] == {"bn_precision": auto["chosen"]}
    assert row.bn_update["precision"] == auto["chosen"]  # the pass ran in the precision chosen
    assert f"{row.trial_id}: bn_precision {auto['chosen']} (" in (run.path / "summary.md").read_text()
