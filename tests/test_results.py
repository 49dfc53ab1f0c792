import json

import pytest

from bench.errors import ResultsError
from bench.results import append_row, read_rows, summary_frame


def _row(trial, backend="eager", precision="fp32", predict=2.0, status="ok", img_per_s=100.0):
    return {
        "ensemble_s": 6.0 + predict,  # one worker: the sum of its phases
        "trial_id": trial,
        "backend": backend,
        "precision": precision,
        "channels_last": False,
        "threads": 2,
        "batch_size": 64,
        "status": status,
        "samples_total": 4,
        "train_s": 60.0,
        "peak_rss_bytes": 2e9,
        "rss_growth_bytes": 1e9,
        "phases_s": {
            "sample": 1.0,
            "bn_update": 1.0,
            "prepare": 4.0,
            "warmup": 0.0,
            "predict": predict,
            "confident_learning": 0.0,
        },
        "calibration": {"ece": 0.1},
        "predict_img_per_s": img_per_s,
        "label_issues": {"precision": 0.9, "recall": 0.8, "f1": 0.85},
    }


def test_append_and_read(tmp_path):
    append_row(tmp_path, _row("a"))
    append_row(tmp_path, _row("b"))
    assert [r["trial_id"] for r in read_rows(tmp_path)] == ["a", "b"]


def test_torn_last_line_is_dropped(tmp_path):
    append_row(tmp_path, _row("a"))
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write(json.dumps(_row("b"))[:40])
    assert [r["trial_id"] for r in read_rows(tmp_path)] == ["a"]


def test_missing_results(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        read_rows(tmp_path)


def test_summary_minutes_and_speedup():
    df = summary_frame(
        [
            _row("ref", predict=8.0),
            _row("fast", precision="bf16", predict=2.0, img_per_s=250.0),
            {**_row("bad"), "status": "failed", "phases_s": None, "error": "boom"},
        ]
    )
    ref, fast, bad = df.itertuples()
    assert ref.ensemble_min == pytest.approx(14 / 60) and ref.speedup == pytest.approx(1.0)
    assert fast.ensemble_min == pytest.approx(8 / 60) and fast.speedup == pytest.approx(14 / 8)
    assert fast.prepare_s_per_sample == pytest.approx(1.0) and fast.peak_rss_gb == pytest.approx(2.0)
    assert fast.predict_speedup == pytest.approx(2.5) and ref.predict_speedup == pytest.approx(1.0)
    assert bad.status == "failed" and bad.error == "boom"
