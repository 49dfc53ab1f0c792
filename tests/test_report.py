"""Report from a stored small run (tests/fixtures/run_small, made by tests/fixtures/make_run_small.sh)."""

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from swagbench.bench.answer.recommend import recommendation
from swagbench.bench.cli import main
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.report import build_report, compare
from swagbench.bench.report.charts import CHARTS
from swagbench.bench.report.frames import summary_frame

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"


@pytest.fixture
def run_dir(tmp_path):
    dst = tmp_path / FIXTURE.name
    shutil.copytree(FIXTURE, dst)
    return dst


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_report_writes_every_artifact(run_dir):
    report = build_report(run_dir)
    for name in CHARTS:
        width, height = _png_size(run_dir / f"{name}.png")
        assert width > 300 and height > 150
    text = report.read_text()
    assert text.count("data:image/png;base64,") == len(CHARTS)  # self-contained
    for needle in (
        'id="trials"',
        'id="phases"',
        'id="environment"',
        'id="what-to-use"',
        "INVALID",
        "skipped",
        "SIGSEGV",
        (run_dir / "env.json").read_text().split('"model": "')[1].split('"')[0],  # the CPU model
    ):
        assert needle in text, needle
    visible = re.sub(r'src="data:image/png;base64,[^"]*"', "", text)  # the text a reader sees, not chart bytes
    assert "None" not in visible and "nan" not in visible
    csv = (run_dir / "summary.csv").read_text().splitlines()
    assert len(csv) == len(read_rows(run_dir)) + 1
    md = (run_dir / "summary.md").read_text()
    assert "## Failed, skipped or INVALID" in md
    for metric in ("ECE", "NLL", "Brier score"):
        assert f"## {metric} vs number of SWAG samples S per fold: vs given labels (vs true labels)" in md
    for header in ("ECE (given)", "ECE (true)", "NLL (given)", "NLL (true)", "issue precision", "issue recall"):
        assert f" {header} " in md, header
    # the answer is the last thing summary.md says
    assert md.rstrip().splitlines()[-1] == recommendation(summary_frame(read_rows(run_dir)))
    assert md.rstrip().splitlines()[-3] == "## Recommendation"
    assert "None" not in md and "nan" not in md and not re.search(r"\de\+\d", md)  # plain units, blank if empty


def test_recommendation_picks_fastest_valid(run_dir):
    df = summary_frame(read_rows(run_dir))
    line = recommendation(df)
    valid = df[(df.status == "ok") & (df.validity == "VALID")].sort_values("ensemble_min")
    best = valid.iloc[0]
    if best.trial == df.trial.iloc[0]:  # the reference itself was fastest in this recorded run
        assert line.startswith("Stay on eager fp32")
        best = valid.iloc[1]
        df.loc[df.trial == best.trial, "ensemble_min"] = valid.ensemble_min.min() / 2
        line = recommendation(df)
    assert line.startswith(f"Use {best.backend} {best.precision}")
    assert "ECE" in line and "INVALID" not in line
    assert recommendation(df.assign(validity="INVALID")).startswith("No trial")
    only_ref = df[df.trial == df.trial.iloc[0]]
    assert recommendation(only_ref).startswith("Stay on eager fp32")
    # An eager fp32 trial with a BatchNorm subset is a different strategy, not the reference: if it wins, say so.
    rows = read_rows(run_dir)
    subset = {**rows[0], "trial_id": "09-eager-fp32-bn30", "trial_bn_examples": 30, "bn_examples": 30}
    subset["ensemble_s"] = rows[0]["ensemble_s"] / 3
    mixed = summary_frame([rows[0], subset])
    assert mixed.is_reference.tolist() == [True, False] and mixed.speedup.iloc[1] == pytest.approx(3.0)
    assert recommendation(mixed).startswith("Use eager fp32 with BatchNorm from 30 examples per fold (reprepare)")


def test_recommendation_names_ties_within_measured_noise(run_dir):
    df = summary_frame(read_rows(run_dir))
    valid = df[(df.status == "ok") & (df.validity == "VALID")].sort_values("ensemble_min")
    a, b = valid.trial.iloc[0], valid.trial.iloc[1]
    df["repeats"] = 3
    df.loc[df.trial == a, ["ensemble_min", "ensemble_min_lo", "ensemble_min_hi"]] = [1.0, 0.9, 1.2]
    df.loc[df.trial == b, ["ensemble_min", "ensemble_min_lo", "ensemble_min_hi"]] = [1.1, 1.05, 1.3]
    df.loc[~df.trial.isin([a, b]), ["ensemble_min", "ensemble_min_lo", "ensemble_min_hi"]] = [5.0, 4.9, 5.1]
    df["ensemble_spread"] = (df.ensemble_min_hi - df.ensemble_min_lo) / df.ensemble_min
    line = recommendation(df)
    assert line.startswith("No single winner:") and "within this run's measured noise" in line
    assert "(66 s)" in line and "over 3 repeats" in line
    df.loc[df.trial == b, ["ensemble_min", "ensemble_min_lo", "ensemble_min_hi"]] = [2.0, 1.9, 2.1]  # clear gap
    line = recommendation(df)
    assert not line.startswith("No single winner") and line.endswith("(spread over 3 repeats: 30%).")
    assert recommendation(df.assign(status="failed")).startswith("No trial succeeded")


def test_a_run_where_every_trial_failed_says_so_everywhere(run_dir):
    """The page, summary.md and the charts of an all-failed run: no success box, no None cells, no empty axes."""
    import json

    from swagbench.bench.record.row_store import CHECKSUM, _digest

    rows = read_rows(run_dir)
    skipped = next(r for r in rows if r["status"] == "skipped")  # a real row with no measurements
    failed = []
    for row in rows:
        settings = {k: row[k] for k in ("trial_id", "backend", "precision", "channels_last", "threads", "workers")}
        row = {**skipped.to_dict(), **settings, "status": "failed", "error": "RuntimeError: boom"}
        failed.append(json.dumps({**row, CHECKSUM: _digest(row)}, sort_keys=True))
    (run_dir / "results.jsonl").write_text("\n".join(failed) + "\n")
    page = build_report(run_dir).read_text()
    assert 'class="what failed"' in page and "No trial succeeded" in page
    visible = re.sub(r'src="data:image/png;base64,[^"]*"', "", page)
    assert "None" not in visible and "nan" not in visible
    md = (run_dir / "summary.md").read_text()
    assert "None" not in md and md.rstrip().endswith("each trial's error is listed above.")
    for name in ("time_by_phase", "peak_memory", "speed_vs_quality", "calibration_vs_samples"):
        assert _png_size(run_dir / f"{name}.png")[1] < 400, name  # the one-line message figure, not empty axes


def test_compare_two_runs(run_dir, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    assert main(["compare", str(run_dir), str(other)]) == 0
    out = capsys.readouterr().out
    assert "ensemble_min B/A" in out and "| eager-fp32 " in out
    table = compare(run_dir, other)
    assert "- none in config or machine" in table
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    ratio_cols = [i for i, name in enumerate(header) if name.endswith("B/A")]
    assert len(ratio_cols) == 3 and len(rows) == 9  # every trial of the fixture, matched
    assert all(row[header.index("in")] == "A and B" for row in rows)
    ratios = [float(row[i]) for row in rows for i in ratio_cols if row[i]]  # failed trials have no timings
    assert len(ratios) >= 18 and set(ratios) == {1.0}  # identical runs: every ratio is 1


def test_report_cli(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert "report.html" in capsys.readouterr().out


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.e2e
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    report = build_report(run_dir)
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [browser, *CHROMIUM_FLAGS, *profile, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert dom.count("<img") == len(CHARTS) and 'id="trials"' in dom and "<td>" in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, *profile, "--window-size=1400,2000", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        timeout=120,
    )
    width, height = _png_size(shot)
    assert (width, height) == (1400, 2000)
    assert shot.stat().st_size > 50_000  # a rendered page with tables and charts, not a blank one


def test_charts_show_the_target_beside_the_proxy_and_mark_the_answer(run_dir, tmp_path):
    """The pictures tell the same story as the answer: minutes at the target (what the answer ranks by) beside the
    proxy's, phase by phase, with the recommended trial marked; a run answering for its own size draws one panel."""
    from swagbench.bench.answer.projection import PROJECTED_PHASES
    from swagbench.bench.answer.recommend import describe, ranked
    from swagbench.bench.report.charts import at_target, recommended_trial, speed_vs_quality, time_by_phase

    rows = read_rows(run_dir)
    df = summary_frame(rows, {"images": 50_000, "samples": 16})
    ok = df[df.target_min.notna()]
    assert len(ok) >= 2
    phases = ok[[f"target_{p}_min" for p in PROJECTED_PHASES]].sum(axis=1)
    assert (abs(phases - ok.target_min) <= 1e-9 * ok.target_min).all()  # the bars add up to the ranked minutes
    assert at_target(df) and recommended_trial(df) == ranked(df).trial.iloc[0]
    assert f"Use {describe(ranked(df).iloc[0])} " in recommendation(df)
    two = [_png_size(draw(df, tmp_path / f"{draw.__name__}.png"))[0] for draw in (time_by_phase, speed_vs_quality)]
    own = summary_frame(rows)  # no target: the run's own size
    assert not at_target(own)
    one = [_png_size(draw(own, tmp_path / f"own-{draw.__name__}.png"))[0] for draw in (time_by_phase, speed_vs_quality)]
    assert two[0] > 1.4 * one[0] and two[1] > 1.4 * one[1]  # a second panel: the target's


def test_the_page_opens_on_the_answer_and_its_picture(run_dir):
    text = build_report(run_dir).read_text()
    assert text.index('id="what-to-use"') < text.index('id="first-chart"') < text.index('id="trials"')
