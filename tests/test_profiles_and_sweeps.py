"""Hardware profiles, workers x threads, sweeps and the roofline."""

import time

import numpy as np
import pytest
import torch

from swagbench.bench.cli import main
from swagbench.bench.config import expand_sweep, load_config, parse_grid, parse_plan
from swagbench.bench.errors import ConfigError
from swagbench.bench.execute.worker_loop import split_tasks
from swagbench.bench.measure.hardware_profiles import host_mismatch, load_profile, profile_overrides
from swagbench.bench.measure.roofline import gflop_per_image, roofline
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.run import execute
from swagbench.swag.models import build_model
from tests.conftest import the_run


@pytest.mark.parametrize("folds, samples, workers", [(2, 2, 1), (2, 2, 3), (5, 8, 4), (5, 8, 40), (3, 1, 2)])
def test_split_tasks_covers_every_pair_once_in_order(folds, samples, workers):
    parts = split_tasks(folds, samples, workers)
    assert len(parts) == workers
    pairs = [(f, s) for part in parts for f, first, stop in part for s in range(first, stop)]
    assert pairs == [(f, s) for f in range(folds) for s in range(samples)]
    sizes = [sum(stop - first for _, first, stop in part) for part in parts]
    assert max(sizes) - min(sizes) <= 1


def test_more_workers_than_pairs_is_a_config_error():
    with pytest.raises(ConfigError, match="only 4 \\(fold, sample\\) pairs"):
        load_config(None, ["ensemble.folds=2", "ensemble.samples=2", "workers=5"])


def test_profiles_load_and_set_the_run(monkeypatch):
    n2 = load_profile("n2-highcpu-32")
    assert n2["vcpus"] == 32 and n2["physical_cores"] == 16 and n2["memory_gb"] == 32
    cfg = load_config(None, ["workers=2"], base=profile_overrides(n2))
    assert cfg.threads == 32 and cfg.memory_limit_gb == 30 and cfg.workers == 2  # overrides beat the profile
    local = load_profile("local")
    assert local["vcpus"] >= 1 and local["run"]["threads"] == local["vcpus"]
    assert local["run"]["memory_limit_gb"] == pytest.approx(0.9 * local["memory_gb"], rel=0.01)
    assert all(w * t == local["vcpus"] for w, t in map(parse_plan, local["sweep"]["workers_threads"]))
    assert host_mismatch(local) is None
    import os

    import psutil

    import swagbench.bench.measure.environment

    # Whatever machine runs this (the target VM included): simulate off GCP, then the profiled VM itself.
    monkeypatch.setattr(os, "cpu_count", lambda: 32)
    monkeypatch.setattr(swagbench.bench.measure.environment, "gcp_metadata", lambda timeout_s=0.3: None)
    assert "not a n2-highcpu-32" in host_mismatch(n2) and "not on GCP" in host_mismatch(n2)
    monkeypatch.setattr(
        swagbench.bench.measure.environment, "gcp_metadata", lambda timeout_s=0.3: {"machine_type": "n2-highcpu-32"}
    )
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("vm", (), {"total": 32e9})())
    assert host_mismatch(n2) is None
    with pytest.raises(ConfigError, match="unknown profile 'n3'; choose from local, n2-highcpu-32"):
        load_profile("n3")


def test_gcp_metadata_is_read_from_the_server_and_absent_without_one(monkeypatch):
    """Against a local stand-in for the metadata server (so the test means the same on and off GCP)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import swagbench.bench.measure.environment

    class Metadata(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Metadata-Flavor") != "Google":
                self.send_error(403)
                return
            body = json.dumps(
                {
                    "machineType": "projects/1/machineTypes/n2-highcpu-32",
                    "zone": "projects/1/zones/us-central1-a",
                    "cpuPlatform": "Intel Ice Lake",
                }
            ).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(
            swagbench.bench.measure.environment,
            "GCP_METADATA",
            f"http://127.0.0.1:{server.server_port}/?recursive=true",
        )
        swagbench.bench.measure.environment.gcp_metadata.cache_clear()
        assert swagbench.bench.measure.environment.gcp_metadata() == {
            "machine_type": "n2-highcpu-32",
            "zone": "us-central1-a",
            "cpu_platform": "Intel Ice Lake",
        }
    finally:
        server.shutdown()
    swagbench.bench.measure.environment.gcp_metadata.cache_clear()
    monkeypatch.setattr(
        swagbench.bench.measure.environment, "GCP_METADATA", f"http://127.0.0.1:{server.server_port}/"
    )  # nobody there
    start = time.perf_counter()
    assert swagbench.bench.measure.environment.gcp_metadata(timeout_s=0.3) is None  # never an error
    assert time.perf_counter() - start < 2
    swagbench.bench.measure.environment.gcp_metadata.cache_clear()


def test_sweep_expansion_and_grid_parsing():
    base = load_config(None, ["trials=[{backend: eager}, {backend: eager, precision: bf16}]"])
    grid = parse_grid(["workers_threads=1x2,2x1", "batch_size=32,128", "members=stream,hold"])
    trials = expand_sweep(base.trials, grid)
    assert len(trials) == 2 * 2 * 2 * 2 and len({t.label for t in trials}) == 16
    assert {(t.workers, t.threads) for t in trials} == {(1, 2), (2, 1)}
    with pytest.raises(ConfigError, match="KEY one of workers_threads"):
        parse_grid(["threads=1,2"])
    with pytest.raises(ConfigError, match="is not like 4x8"):
        expand_sweep(base.trials, parse_grid(["workers_threads=4*8"]))
    # The BatchNorm subset is a strategy dimension like the others: its trials are named for it.
    subsets = expand_sweep(base.trials[:1], parse_grid(["bn_examples=256,8192"]))
    assert [t.label for t in subsets] == ["eager-fp32-bn256", "eager-fp32-bn8192"]
    with pytest.raises(ConfigError, match="bn_examples must be >= 2"):
        expand_sweep(base.trials[:1], parse_grid(["bn_examples=1"]))


def test_flop_count_matches_the_architecture():
    # ResNet-50 at 224x224: 4.09 GMACs (the published figure), a multiply-add counts 2.
    resnet50 = build_model("resnet50", 1000, 3).eval()
    assert gflop_per_image(resnet50, torch.randn(1, 3, 224, 224)) == pytest.approx(8.18, rel=0.01)
    lin = torch.nn.Linear(100, 10)
    assert gflop_per_image(lin, torch.randn(4, 100)) == pytest.approx(2 * 100 * 10 / 1e9)
    r = roofline(2.0, 50.0, "bf16", {"gflops": {"fp32": 200.0, "bf16": 400.0}})
    assert r["achieved_gflops"] == 100.0 and r["pct_of_peak"] == 25.0
    assert roofline(2.0, None, "int8", {"gflops": {"int8": None}})["pct_of_peak"] is None


@pytest.mark.e2e
def test_workers_and_members_strategies_give_identical_probabilities(tiny_overrides):
    """The same SWAG members, whichever way the work is split or the weights are held."""
    trials = (
        "trials=[{backend: eager, workers: 1, threads: 1}, {backend: eager, workers: 3, threads: 1},"
        " {backend: eager, workers: 2, threads: 1, members: hold}]"
    )
    run_dir = execute(load_config(None, [*tiny_overrides, trials, "ensemble.samples=3"]), log=lambda *_: None)
    rows = read_rows(run_dir)
    assert [r["workers"] for r in rows] == [1, 3, 2] and rows[2]["members"] == "hold"
    ref = np.load(run_dir / "trials" / rows[0]["trial_id"] / "member_probs.npy")
    assert ref.shape == (3, 120, 10) and np.allclose(ref.sum(axis=2), 1.0, atol=1e-5)
    for row in rows[1:]:
        assert row["status"] == "ok" and row["validity"] == "VALID" and row["fidelity"]["max_abs_dp"] == 0.0
        np.testing.assert_array_equal(np.load(run_dir / "trials" / row["trial_id"] / "member_probs.npy"), ref)
        assert len(list((run_dir / "trials" / row["trial_id"]).glob("worker.*.log"))) == row["workers"]
    for row in rows:
        assert row["ensemble_s"] > 0 and row["roofline"]["gflop_per_image"] == pytest.approx(0.0012, rel=0.01)
        assert row["roofline"]["peak_gflops"] > 0
    env = __import__("json").loads((run_dir / "env.json").read_text())
    assert env["peak"]["gflops"]["fp32"] > 1 and env["peak"]["threads"] == 1


@pytest.mark.e2e
def test_sweep_cli_records_profile_and_draws_scaling(tiny_overrides, tmp_path, capsys):
    args = [
        "sweep",
        "--backends",
        "eager",
        "--grid",
        "workers_threads=1x1,2x1",
        "--grid",
        "batch_size=16",
        "--grid",
        "channels_last=false",
    ]
    assert main([*args, *tiny_overrides]) == 0
    out = capsys.readouterr().out
    assert "profile local (this host matches it)" in out and "sweep of 2 trials" in out
    run_dir = the_run(tmp_path / "results")
    rows = read_rows(run_dir)
    assert [(r["workers"], r["threads"], r["batch_size"]) for r in rows] == [(1, 1, 16), (2, 1, 16)]
    assert all(r["profile"] == "local" for r in rows)
    env = __import__("json").loads((run_dir / "env.json").read_text())
    assert env["profile"]["name"] == "local" and env["profile"]["host_mismatch"] is None
    assert (run_dir / "scaling.png").stat().st_size > 20_000  # a real chart, not the "no sweep" placeholder


def test_a_profile_prices_its_machine_with_a_source(tmp_path):
    from swagbench.bench.measure.hardware_profiles import price

    rate = price(load_profile("n2-highcpu-32"))
    assert rate["machine"] == "n2-highcpu-32" and 0 < rate["spot"] < rate["on_demand"]
    assert rate["source"] and rate["date"]
    assert price(load_profile("local")) is None
    bad = tmp_path / "cheap.yaml"
    bad.write_text("name: cheap\nprice: {on_demand: 1.0, spot: 0.3}\n")
    with pytest.raises(ConfigError, match="price lacks \\['date', 'source'\\]"):
        price(load_profile(str(bad)))
    bad.write_text("name: cheap\nprice: {on_demand: 1.0, spot: 0.3, source: x, date: y, discount: 0.5}\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) \\['discount'\\]"):
        load_profile(str(bad))
