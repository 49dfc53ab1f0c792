"""bn_examples: auto — the BatchNorm subset ladder and the size it chooses (swagbench.bench.answer.subset)."""

from __future__ import annotations

import json

import pytest

from swagbench.bench.answer.subset import LIMITS, choose, describe, ladder_trials, misses
from swagbench.bench.config import TrialConfig, load_config
from swagbench.bench.errors import ConfigError
from swagbench.bench.record.row import TrialRow
from tests.conftest import eager_row


def _row(trial_id: str, n: int | None, **fidelity) -> TrialRow:
    """A finished eager fp32 trial with BatchNorm from ``n`` images per fold and these fidelity numbers."""
    full = {"issue_jaccard": 1.0, "delta_ece": 0.0, "delta_nll": 0.0, "delta_issue_f1": 0.0}
    return eager_row(
        trial_id=trial_id,
        bn_examples=n,
        trial_bn_examples=n,
        ensemble_s=1.0,
        fidelity={**full, **fidelity},
    )


LADDER = [
    _row("00-eager-fp32", None),
    _row("01-eager-fp32-bn250", 250, issue_jaccard=0.90),  # misses the Jaccard limit
    _row("02-eager-fp32-bn500", 500, delta_ece=0.004),  # misses the ECE limit
    _row("03-eager-fp32-bn1000", 1000, delta_nll=0.02),  # misses the NLL limit
    _row("04-eager-fp32-bn2000", 2000, issue_jaccard=0.96, delta_ece=0.002, delta_nll=0.005, delta_issue_f1=-0.005),
    _row("05-eager-fp32-bn3000", 3000, issue_jaccard=0.99),
]


def test_auto_takes_the_smallest_size_within_every_limit():
    choice = choose(reversed(LADDER), metrics_meaningful=True)  # order of the rows does not matter
    assert choice["chosen"] == 2000
    assert [s["images"] for s in choice["ladder"]] == [250, 500, 1000, 2000, 3000]  # not the full-data reference
    missed = {s["images"]: s["misses"] for s in choice["ladder"]}
    assert missed[250] == ["issue Jaccard 0.900 < 0.95"]
    assert missed[500] == ["ECE +0.0040 > +0.003"] and missed[1000] == ["NLL +0.0200 > +0.01"]
    assert missed[2000] == [] and missed[3000] == []
    assert choice["limits"] == LIMITS
    assert describe(choice).startswith("bn_examples auto chose 2,000 images per fold")


def test_an_issue_f1_drop_beyond_its_limit_rules_a_size_out_and_an_unknown_truth_does_not():
    assert misses({"issue_jaccard": 0.99, "delta_ece": 0, "delta_nll": 0, "delta_issue_f1": -0.02}) == [
        "issue F1 -0.0200 < -0.01"
    ]
    assert misses({"issue_jaccard": 0.99, "delta_ece": 0, "delta_nll": 0, "delta_issue_f1": None}) == []
    assert misses({"issue_jaccard": 0.99, "delta_ece": None, "delta_nll": 0, "delta_issue_f1": None}) == [
        "ECE not measured"
    ]


def test_auto_keeps_the_full_data_when_nothing_qualifies_and_says_why():
    none_within = choose(LADDER[:4], metrics_meaningful=True)
    assert none_within["chosen"] is None and none_within["why"] == "no size of the ladder stays within the limits"
    timing_only = choose(LADDER, metrics_meaningful=False)
    assert timing_only["chosen"] is None and "timing-only" in timing_only["why"]
    assert "kept all training images" in describe(timing_only)
    # a failed ladder trial, another precision, or an auto trial's own row is not a ladder step
    failed = TrialRow(**{**LADDER[4].to_dict(), "status": "failed"})
    bf16 = TrialRow(**{**LADDER[4].to_dict(), "precision": "bf16"})
    auto = TrialRow(**{**LADDER[4].to_dict(), "bn_choice": {"chosen": 2000}})
    assert choose([LADDER[0], failed, bf16, auto], metrics_meaningful=True)["ladder"] == []


def test_the_ladder_is_added_after_the_reference_below_a_folds_training_part_once():
    trials = [TrialConfig(), TrialConfig(backend="openvino", precision="int8", bn_examples="auto")]
    laddered = ladder_trials(trials, [250, 500, 1000, 2000], 800, lambda n: TrialConfig(bn_examples=n))
    assert [t.label for t in laddered] == [
        "eager-fp32",
        "eager-fp32-bn250",
        "eager-fp32-bn500",
        "openvino-int8-bnauto",
    ]
    assert ladder_trials(laddered, [250, 500, 1000, 2000], 800, lambda n: TrialConfig(bn_examples=n)) == laddered
    assert ladder_trials(trials[:1], [250], 800, lambda n: TrialConfig(bn_examples=n)) == trials[:1]


def test_bn_examples_and_the_ladder_are_checked():
    assert load_config(None, ["trials=[{backend: eager, bn_examples: auto}]"]).trials[0].bn_examples == "auto"
    with pytest.raises(ConfigError, match="bn_examples must be >= 2, auto or null"):
        load_config(None, ["trials=[{backend: eager, bn_examples: most}]"])
    with pytest.raises(ConfigError, match="bn_ladder must be a non-empty increasing list"):
        load_config(None, ["ensemble.bn_ladder=[500, 250]"])


def test_a_job_refuses_auto_and_names_the_fix():
    from swagbench.bench.job import check_job

    config = load_config(None, ["trials=[{backend: eager, bn_examples: auto}]"])
    with pytest.raises(ConfigError, match="recommendation.json, which holds the size the run chose"):
        check_job(config)


@pytest.mark.e2e
def test_a_tiny_run_with_auto_runs_the_ladder_and_the_size_its_limits_imply(tiny_overrides, tmp_path):
    from swagbench.bench.cli import main
    from tests.conftest import the_run

    overrides = [
        *tiny_overrides,
        "ensemble.bn_ladder=[8, 16, 32, 500]",  # a fold's training part is 60 images: 500 is dropped
        "trials=[{backend: eager}, {backend: onnxruntime, bn_examples: auto}]",
    ]
    assert main(["run", *overrides]) == 0
    run_dir = the_run(tmp_path / "results")
    rows = {r["trial_id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}
    assert list(rows) == [
        "00-eager-fp32",
        "01-eager-fp32-bn8",
        "02-eager-fp32-bn16",
        "03-eager-fp32-bn32",
        "04-onnxruntime-fp32-bnauto",
    ]
    auto = rows["04-onnxruntime-fp32-bnauto"]
    within = [n for n, t in ((8, "01"), (16, "02"), (32, "03")) if not misses(_step(rows, t, n))]
    expected = within[0] if within else None
    assert auto["bn_choice"]["chosen"] == expected
    assert auto["bn_examples"] == auto["trial_bn_examples"] == expected
    assert [s["images"] for s in auto["bn_choice"]["ladder"]] == [8, 16, 32]
    summary = (run_dir / "summary.md").read_text()
    assert "## BatchNorm from a subset: the ladder" in summary and "bn_examples auto" in summary
    assert (run_dir / "bn_subset.png").stat().st_size > 20_000
    if expected is not None:  # the answer names the subset where the auto trial is the one recommended
        record = json.loads((run_dir / "recommendation.json").read_text())
        if record.get("trial_id") == "04-onnxruntime-fp32-bnauto":
            assert record["strategy"]["bn_examples"] == expected


def _step(rows, prefix: str, n: int) -> dict:
    """The ladder step of trial ``prefix-...`` as ``misses`` reads it, from its recorded fidelity."""
    (row,) = [r for k, r in rows.items() if k.startswith(prefix)]
    return {"images": n, **{k: row["fidelity"].get(k) for k in ("issue_jaccard", "delta_ece", "delta_nll")}} | {
        "delta_issue_f1": row["fidelity"].get("delta_issue_f1")
    }
