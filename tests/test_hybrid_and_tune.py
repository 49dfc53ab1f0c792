"""Hybrid trials (the BatchNorm pass in one engine, predict in another) and ``swagbench tune`` (issue 21)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from swagbench.bench.cli import main
from swagbench.bench.config import TrialConfig
from swagbench.bench.errors import ConfigError
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.record.rundir import RunDir
from swagbench.bench.tune import bn_engine_of, compose
from tests.conftest import the_run

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


@pytest.mark.e2e
def test_a_hybrid_trials_statistics_are_its_bn_engines_and_its_probabilities_match_eager(tiny_overrides, tmp_path):
    trials = "trials=[{backend: eager}, {backend: eager, precision: bf16, channels_last: true}, "
    trials += '{backend: onnxruntime, bn: "eager:bf16:cl"}]'
    assert main(["run", *tiny_overrides, trials]) == 0
    run = RunDir(the_run(tmp_path / "results"))
    ref, engine, hybrid = read_rows(run)
    assert hybrid.bn_engine == "eager:bf16:cl" and hybrid.trial_id.endswith("-bn=eager:bf16:cl")
    assert hybrid.bn_update["precision"] == "bf16" and hybrid.bn_update["layout"] == "channels_last"
    # the same engine, the same samples and batches: the same statistics, to the bit
    np.testing.assert_array_equal(
        np.load(run.trial(hybrid.trial_id).bn_stats), np.load(run.trial(engine.trial_id).bn_stats)
    )
    assert hybrid.status == "ok" and hybrid.validity == "VALID", hybrid.validity_reasons  # at bf16's tolerance
    assert "onnxruntime-fp32-bn=eager:bf16:cl | VALID    | eager bf16 cl" in (run.path / "summary.md").read_text()


def test_a_hybrid_names_a_bad_engine_before_any_work(tiny_overrides, capsys):
    assert main(["run", *tiny_overrides, "trials=[{backend: eager, bn: 'eager:fp16'}]"]) == 2
    assert "cannot read 'fp16' in trial bn 'eager:fp16'" in capsys.readouterr().err


def _rows(**bn_scale):
    """The fixture's rows with the BatchNorm (``bn``) and predict (``pred``) phases of chosen trials scaled."""
    rows = []
    for r in read_rows(FIXTURE):
        bn, pred = bn_scale.get(r.trial_id, (1.0, 1.0))
        if r.phases_s:
            phases = {**r.phases_s, "bn_update": r.phases_s["bn_update"] * bn, "predict": r.phases_s["predict"] * pred}
            r = dataclasses.replace(r, phases_s=phases, ensemble_s=sum(phases.values()))  # one worker: wall = sum
        rows.append(r)
    return rows


def test_tune_composes_the_cheapest_bn_engine_with_the_cheapest_predict_side():
    others = {r.trial_id: (1.0, 100.0) for r in read_rows(FIXTURE)}  # predict dominates everyone else's time
    rows = _rows(**{**others, "01-eager-bf16": (0.01, 100.0), "05-onnxruntime-fp32": (100.0, 1.0)})
    plan = compose(rows, {"images": 4000, "samples": 8})
    assert (plan.bn_from, plan.predict_from) == ("01-eager-bf16", "05-onnxruntime-fp32")
    assert plan.trial.backend == "onnxruntime" and plan.trial.bn == "eager:bf16"
    assert plan.size == (4000, 2, 8)


def test_tune_never_proposes_an_invalid_component():
    # the perturbed trial is INVALID: made the cheapest in both parts, it must still not be chosen
    rows = _rows(**{"06-PerturbedBackend-fp32": (0.001, 0.001)})
    plan = compose(rows, {"images": 4000})
    valid = {r.trial_id for r in rows if r.validity == "VALID"}
    assert plan.bn_from in valid and plan.predict_from in valid
    with pytest.raises(ConfigError, match="no successful VALID trial"):
        compose([dataclasses.replace(r, validity="INVALID") for r in rows], None)


def test_bn_engine_of_a_row_says_where_its_pass_ran():
    (row,) = [r for r in read_rows(FIXTURE) if r.trial_id == "01-eager-bf16"]
    assert bn_engine_of(row) == "eager:bf16"
    assert bn_engine_of(dataclasses.replace(row, bn_update={"where": "eager", "reason": "x"})) == "eager"
    assert bn_engine_of(dataclasses.replace(row, bn_update={"where": "none"})) is None
    assert bn_engine_of(dataclasses.replace(row, bn_engine="openvino:bf16")) == "openvino:bf16"


def test_tune_dry_run_prints_the_plan(tmp_path, capsys):
    import shutil

    shutil.copytree(FIXTURE, tmp_path / "run")
    assert main(["tune", str(tmp_path / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "swagbench: tune: for " in out and "BatchNorm pass as in" in out


def test_a_hybrid_label_and_engine():
    trial = TrialConfig(backend="openvino", precision="int8", bn="eager:bf16:cl")
    assert trial.label == "openvino-int8-bn=eager:bf16:cl"
    engine = trial.bn_engine
    assert (engine.backend, engine.precision, engine.channels_last, engine.bn) == ("eager", "bf16", True, None)


@pytest.mark.e2e
def test_the_ceiling_step_records_its_settings_and_the_report_shows_the_shares(tiny_overrides, tmp_path):
    import json

    args = ["run", "--backends", "eager,onnxruntime", *tiny_overrides, "ensemble.samples=1", "ceiling_s=0.1"]
    assert main(args) == 0
    run = the_run(tmp_path / "results")
    measured_in_the_run = json.loads((run / "ceilings.json").read_text())  # in the same window as the trials
    assert measured_in_the_run["seconds"] == 0.1 and len(measured_in_the_run["ceilings"]) == 4  # eval + statistics
    assert (run / "ceiling.log").is_file()  # the exporters' and runtimes' own output, kept off the user's terminal
    assert main(["ceiling", str(run), "--seconds", "0.2"]) == 0  # or again, later, by the command
    record = json.loads((run / "ceilings.json").read_text())
    assert record["seconds"] == 0.2
    for backend in ("eager", "onnxruntime"):
        for key, batch, graph in (
            (f"{backend}:fp32:contiguous:b128", 128, "eval"),
            (f"{backend}:fp32:contiguous:b256:statistics", 256, "statistics"),
        ):
            entry = record["ceilings"][key]
            assert entry["threads"] == 1 and entry["batch"] == batch and entry["tool"] == "api loop"
            assert entry["graph"] == graph and entry["img_per_s"] > 0
    assert "BN ceiling img/s" in (run / "summary.md").read_text()
    summary = (run / "summary.md").read_text()
    assert "## Against each runtime's own ceiling" in summary and "predict % of ceiling" in summary


@pytest.mark.e2e
def test_int8_ceilings_run_the_backends_own_quantized_model_and_a_hybrid_is_measured_against_its_bn_engine(
    tiny_overrides, tmp_path
):
    import json

    from swagbench.bench.report.frames import ReportData

    trials = "trials=[{backend: eager}, {backend: openvino, precision: int8}, {backend: onnxruntime, precision: int8},"
    trials += ' {backend: onnxruntime, bn: "eager:fp32"}]'
    assert main(["run", *tiny_overrides, "ensemble.samples=1", "ceiling_s=0.1", trials]) == 0
    run = RunDir(the_run(tmp_path / "results"))
    ceilings = json.loads((run.path / "ceilings.json").read_text())["ceilings"]
    ov_int8 = ceilings["openvino:int8:contiguous:b128"]
    assert ov_int8["graph"] == "eval, quantized" and ov_int8["tool"] == "benchmark_app" and ov_int8["img_per_s"] > 0
    assert ".xml" in ov_int8["command"] and "-infer_precision f32" in ov_int8["command"]  # as the trial compiles it
    assert ceilings["onnxruntime:int8:contiguous:b128"]["img_per_s"] > 0
    rows = {r.trial_id: r for r in read_rows(run)}
    df = ReportData.of(run, list(rows.values())).df.set_index("trial")
    # an int8 trial's BatchNorm pass is its statistics graph at the precision it recorded (bf16 or fp32)
    ov_bn = rows["01-openvino-int8"].bn_update["precision"]
    assert (
        df.loc["01-openvino-int8", "bn_ceiling_img_per_s"]
        == ceilings[f"openvino:{ov_bn}:contiguous:b256:statistics"]["img_per_s"]
    )
    assert df.loc["01-openvino-int8", "predict_pct_ceiling"] > 0
    # a hybrid's BatchNorm pass against its BN engine's ceiling (eager fp32's train-mode forward), not predict's
    hybrid = df.loc["03-onnxruntime-fp32-bn=eager:fp32"]
    assert hybrid.bn_ceiling_img_per_s == ceilings["eager:fp32:contiguous:b256:statistics"]["img_per_s"]


def test_openvinos_own_benchmark_app_measures_a_model(tmp_path):
    import torch

    from swagbench.backends.onnx_graph import export_onnx
    from swagbench.bench.measure.ceiling import openvino_rate
    from swagbench.swag.models import build_model

    model = build_model("digits_cnn", 10, 1).eval()
    path = tmp_path / "m.onnx"
    path.write_bytes(export_onnx(model, torch.randn(8, 1, 8, 8)).SerializeToString())
    rate, command = openvino_rate(path, (8, 1, 8, 8), "fp32", seconds=1)
    assert rate > 0 and "-hint throughput -infer_precision f32 -shape [8,1,8,8]" in command


@pytest.mark.e2e
def test_a_hybrid_engine_converting_its_module_never_reaches_the_predict_engine(tiny_overrides, tmp_path):
    # Found by swagbench tune's verification: eager channels_last converted the shared module in place, and
    # OpenVINO's weights, bound once to that module's memory, went stale (max |dp| 0.94, INVALID). Each engine of
    # a hybrid now has a module of its own.
    trial = '{backend: openvino, bn: "eager:fp32:cl"}'
    assert main(["run", *tiny_overrides, f"trials=[{{backend: eager}}, {trial}]"]) == 0
    ref, hybrid = read_rows(the_run(tmp_path / "results"))
    assert hybrid.status == "ok" and hybrid.validity == "VALID", hybrid.validity_reasons
    assert hybrid.fidelity["max_abs_dp"] < 1e-3
