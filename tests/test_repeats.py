"""``repeats: R``: each trial run R times, its row the median repeat with every repeat's time."""

import pytest

from swagbench.bench.config import load_config
from swagbench.bench.errors import ConfigError
from swagbench.bench.execute.trial import repeated
from swagbench.bench.record.row import TrialRow
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.report.frames import summary_frame
from swagbench.bench.run import execute


def _row(**measured):
    settings = dict(run_id="r", trial_id="00-eager-fp32", backend="eager", precision="fp32", channels_last=False)
    return TrialRow(**settings, threads=1, batch_size=1, **measured)


def test_the_median_repeat_is_kept_with_every_time_and_the_highest_peak():
    times = iter([30.0, 10.0, 20.0])
    peaks = iter([5, 9, 7])

    def attempt():
        return _row(status="ok", ensemble_s=next(times), peak_rss_bytes=next(peaks))

    row = repeated(3, attempt)
    assert row["ensemble_s"] == 20.0 and row["ensemble_s_repeats"] == [30.0, 10.0, 20.0]
    assert row["peak_rss_bytes"] == 9


def test_a_failed_repeat_ends_the_trial_with_its_row():
    outcomes = iter([_row(status="ok", ensemble_s=1.0), _row(status="timeout", error="over 60 s")])
    calls = []

    def attempt():
        calls.append(1)
        return next(outcomes)

    assert repeated(3, attempt)["status"] == "timeout" and len(calls) == 2


def test_repeats_must_be_positive():
    with pytest.raises(ConfigError, match="repeats must be >= 1"):
        load_config(None, ["repeats=0"])


@pytest.mark.e2e
def test_a_run_with_repeats_reports_median_and_spread(tiny_overrides):
    run_dir = execute(
        load_config(None, [*tiny_overrides, "repeats=2", "trials=[{backend: eager}]"]), log=lambda *_: None
    )
    (row,) = read_rows(run_dir)
    assert len(row["ensemble_s_repeats"]) == 2 and row["ensemble_s"] == min(row["ensemble_s_repeats"])
    df = summary_frame([row])
    lo, hi = min(row["ensemble_s_repeats"]) / 60, max(row["ensemble_s_repeats"]) / 60
    assert df.repeats[0] == 2 and df.ensemble_min_lo[0] == lo and df.ensemble_min_hi[0] == hi
    assert df.ensemble_spread[0] == pytest.approx((hi - lo) / df.ensemble_min[0])
    assert "over 2 repeats" in (run_dir / "summary.md").read_text().splitlines()[-1]
