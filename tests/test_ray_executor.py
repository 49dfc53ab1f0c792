"""The Ray executor: same probabilities as local processes, and failures recorded, never a hung run.

Each test starts a local Ray instance (what --executor ray does without an address)."""

import numpy as np
import pytest

from swagbench.bench.config import load_config
from swagbench.bench.record.row_store import read_rows
from swagbench.bench.run import execute

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")


def _quiet(*_):
    pass


@pytest.mark.e2e
def test_ray_gives_the_same_probabilities_as_local_processes(tiny_overrides):
    trials = "trials=[{backend: eager, workers: 2, threads: 1}, {backend: eager, precision: bf16}]"
    runs = {
        ex: execute(load_config(None, [*tiny_overrides, trials, f"executor={ex}", "data_shards=2"]), log=_quiet)
        for ex in ("local", "ray")
    }
    local, ray = (read_rows(runs[ex]) for ex in ("local", "ray"))
    for a, b in zip(local, ray, strict=True):
        assert a["status"] == b["status"] == "ok" and b["executor"] == "ray" and b["data_shards"] == 2
        member_a, member_b = (np.load(runs[ex] / "trials" / a["trial_id"] / "member_probs.npy") for ex in runs)
        assert np.allclose(member_a.sum(axis=2), 1.0, atol=1e-5)  # every (sample, example) cell written once
        np.testing.assert_array_equal(member_a, member_b)
        assert a["calibration"] == b["calibration"] and a["label_issues"] == b["label_issues"]
    # and sharding the data changed nothing against an unsharded local run
    plain = execute(load_config(None, [*tiny_overrides, trials]), log=_quiet)
    first = read_rows(plain)[0]["trial_id"]
    np.testing.assert_array_equal(
        np.load(plain / "trials" / first / "member_probs.npy"),
        np.load(runs["ray"] / "trials" / first / "member_probs.npy"),
    )


@pytest.mark.e2e
def test_ray_retries_lost_tasks_and_records_permanent_failures(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("SWAGBENCH_TEST_MARKER", str(tmp_path / "crashed-once"))
    trials = (
        "trials=[{backend: eager}, {backend: 'tests.faulty_backends:SegfaultOnceBackend'},"
        " {backend: 'tests.faulty_backends:SegfaultBackend'}, {backend: 'tests.faulty_backends:RaiseBackend'},"
        " {backend: 'tests.faulty_backends:HangBackend'}]"
    )
    cfg = load_config(None, [*tiny_overrides, trials, "executor=ray", "ray_max_retries=1", "timeout_s=40"])
    rows = {r["backend"].rsplit(":", 1)[-1]: r for r in read_rows(execute(cfg, log=_quiet))}
    assert rows["eager"]["status"] == "ok"
    once = rows["SegfaultOnceBackend"]
    assert once["status"] == "ok" and once["validity"] == "VALID"  # lost once, retried, same result
    assert (tmp_path / "crashed-once").exists()
    crash = rows["SegfaultBackend"]
    assert crash["status"] == "failed" and "Ray task 1/1" in crash["error"]
    assert (
        rows["RaiseBackend"]["status"] == "failed" and "conversion failed on purpose" in rows["RaiseBackend"]["error"]
    )
    assert rows["HangBackend"]["status"] == "timeout" and rows["HangBackend"]["wall_s"] < 80


def test_gcp_cluster_yaml_passes_rays_own_schema():
    from pathlib import Path

    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((Path(__file__).parent.parent / "deploy" / "gcp-n2-highcpu-32.yaml").read_text())
    validate_config(prepare_config(config))  # raises on a schema error
    assert config["available_node_types"]["worker"]["node_config"]["machineType"] == "n2-highcpu-32"
