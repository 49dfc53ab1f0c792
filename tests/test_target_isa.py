"""The answer for the job machine's instruction set (issue 31): ``target.isa`` (features, or a profile's name; the
run machine's by default). A trial that used a precision the target does not run natively (its own or its
BatchNorm pass's) stays in the tables but is never recommended, and the answer says which and why."""

from pathlib import Path

import pytest

from swagbench.backends.precisions import isa_of_flags, not_native
from swagbench.bench.answer.recommend import ranked, recommendation
from swagbench.bench.config import load_config
from swagbench.bench.errors import ConfigError
from swagbench.bench.measure.hardware_profiles import load_profile, profile_overrides, target_isa
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.report.frames import summary_frame, trial_precisions

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"
N2 = ("n2-highcpu-32", ["avx512", "vnni"])


def test_precisions_need_their_units():
    zen4 = isa_of_flags({"avx2": True, "avx512f": True, "avx512_bf16": True, "avx512_vnni": True})
    assert zen4 == ["avx2", "avx512", "vnni", "avx512_bf16"]
    assert not_native(["fp32", "bf16", "int8"], zen4) == []
    assert not_native(["bf16", "int8", "bf16"], ["avx512", "vnni"]) == ["bf16"]  # an N2
    assert not_native(["int8"], ["avx2"]) == ["int8"] and not_native(["int8", "bf16"], ["amx"]) == []


def test_target_isa_is_features_a_profile_or_the_run_machine():
    assert target_isa(["avx512", "vnni"], None) == ("the target", ["avx512", "vnni"])
    assert target_isa("n2-highcpu-32", None) == N2
    assert target_isa(None, {"avx512f": True, "avx512_vnni": True}) == ("this machine", ["avx512", "vnni"])
    assert target_isa(None, None) is None  # a run that recorded no flags: nothing is excluded
    with pytest.raises(ConfigError, match="unknown profile 'n3'"):
        target_isa("n3", None)
    with pytest.raises(ConfigError, match="states no isa"):
        target_isa("local", None)
    with pytest.raises(ConfigError, match="target.isa names 'avx1024'"):
        load_config(None, ["target.isa=[avx512, avx1024]"])
    assert load_config(None, ["target.isa=n2-highcpu-32"]).target.isa == "n2-highcpu-32"


def test_profile_n2_sets_the_target_isa_and_a_config_files_target_keeps_it(tmp_path):
    base = profile_overrides(load_profile("n2-highcpu-32"))
    assert base["target"] == {"isa": "n2-highcpu-32"}
    config_file = tmp_path / "job.yaml"
    config_file.write_text("target:\n  images: 10000\n")
    config = load_config(config_file, [], base=base)
    assert (config.target.isa, config.target.images) == ("n2-highcpu-32", 10000)


def test_an_n2_answer_never_picks_bf16_and_says_why():
    rows = read_rows(FIXTURE)
    here = summary_frame(rows, None, ("this machine", ["avx512", "vnni", "avx512_bf16"]))
    n2 = summary_frame(rows, None, N2)
    assert here.target_lacks.isna().all()  # the run's own AMD machine runs every precision natively
    uses_bf16 = [r.trial_id for r in rows if "bf16" in trial_precisions(r)]
    assert uses_bf16 and sorted(n2[n2.target_lacks == "bf16"].trial) == sorted(uses_bf16)
    assert not set(ranked(n2).trial) & set(uses_bf16)
    line = recommendation(n2)
    assert "not recommended for n2-highcpu-32 (avx512, vnni), which lacks them natively" in line
    assert "(needs bf16)" in line
    assert ranked(here).trial.iloc[0] == "01-eager-bf16"  # the fixture's winner here: bf16 on this AMD machine
    assert ranked(n2).trial.iloc[0] == "00-eager-fp32" and line.startswith("Stay on eager fp32")


def test_the_charts_name_what_the_target_lacks():
    from swagbench.bench.report.charts import _label

    n2 = summary_frame(read_rows(FIXTURE), None, N2)
    labels = {row.trial: _label(row) for row in n2.itertuples()}
    assert (
        labels["01-eager-bf16"] == "01-eager-bf16  [target lacks bf16]" and labels["00-eager-fp32"] == "00-eager-fp32"
    )
