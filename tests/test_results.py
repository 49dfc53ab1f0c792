import json

import pytest

from swagbench.bench.errors import ResultsError
from swagbench.bench.record.row_store import append_row, read_rows
from swagbench.bench.report.frames import summary_frame


def _row(trial, backend="eager", precision="fp32", predict=2.0, status="ok", img_per_s=100.0):
    return {
        "run_id": "20260101-000000-test",
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
        "peak_rss_bytes": 2_000_000_000,
        "rss_growth_bytes": 1_000_000_000,
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


def test_rows_carry_their_schema_and_foreign_rows_are_refused(tmp_path, capsys):
    import dataclasses

    from swagbench.bench.cli import main
    from swagbench.bench.record.row import SCHEMA_VERSION, TrialRow
    from swagbench.bench.record.row_store import CHECKSUM, _digest

    append_row(tmp_path, _row("a"))
    stored = json.loads((tmp_path / "results.jsonl").read_text())
    assert stored["schema_version"] == SCHEMA_VERSION == 7
    assert set(stored) - {CHECKSUM} == {f.name for f in dataclasses.fields(TrialRow)}  # every field, written
    (row,) = read_rows(tmp_path)
    assert isinstance(row, TrialRow) and row.ensemble_s == 8.0 and row["trial_id"] == "a" and row.python is None
    with pytest.raises(ResultsError, match="does not define"):
        append_row(tmp_path, {**_row("b"), "ensemble_minutes": 1.0})  # a field the schema lacks: a bug, refused

    def write(path, row):
        path.mkdir()
        (path / "results.jsonl").write_text(json.dumps({**row, CHECKSUM: _digest(row)}, sort_keys=True) + "\n")
        return path

    old = write(tmp_path / "v1", _row("c"))  # no schema_version: written before there was one; loads
    (loaded,) = read_rows(old)
    assert loaded.schema_version == SCHEMA_VERSION and loaded.ensemble_s_repeats is None and loaded.workers == 1
    newer = write(tmp_path / "v9", {**_row("d"), "schema_version": 9})
    with pytest.raises(ResultsError, match="schema_version 9, newer than this swagbench reads"):
        read_rows(newer)
    assert main(["summary", str(newer)]) == 2  # one error line, exit 2, never a misread table
    assert "upgrade swagbench" in capsys.readouterr().err
