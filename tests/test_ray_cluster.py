"""``swagbench job`` on a real multi-node Ray cluster on this machine: a head with no CPUs and two worker nodes of one
CPU each, every one its own raylet (Ray's own multi-node fixture, ``ray.cluster_utils.Cluster``), all bound to
127.0.0.1, the driver included. One worker node is killed mid-job; its tasks are retried on the other, and the
job's pred_probs equal a local job's."""

import threading
import time

import numpy as np
import pytest

from swagbench.bench.cli import main
from swagbench.bench.record.rundir import RunDir
from tests.conftest import the_run
from tests.test_job import JOB, _committed, sigterm_then_resume

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
pytestmark = pytest.mark.e2e

LOOPBACK = "127.0.0.1"
SLOW = "tests.faulty_backends:SlowBackend"


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": LOOPBACK, "include_dashboard": False},
    )
    workers = [nodes.add_node(num_cpus=1, node_ip_address=LOOPBACK) for _ in range(2)]
    nodes.wait_for_nodes()
    try:
        yield nodes, workers
    finally:
        nodes.shutdown()


def _killer(job_root, nodes, node, done: list) -> threading.Thread:
    """Kill ``node`` once the job has committed its first member."""

    def watch():
        deadline = time.time() + 300
        while time.time() < deadline:
            runs = [p for p in job_root.glob("*") if (p / "trials").is_dir()]
            journals = list(runs[0].glob("trials/00-*/journal.jsonl")) if runs else []
            if journals and _committed(runs[0]) >= 1:
                nodes.remove_node(node, allow_graceful=False)
                done.append(time.time())
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_job_survives_losing_a_ray_node_and_matches_the_local_job(cluster, tmp_path):
    nodes, workers = cluster
    args = ["--backends", SLOW, *JOB, "threads=1", "audit.members=0"]
    ray_root = tmp_path / "ray"
    killed: list = []
    watcher = _killer(ray_root, nodes, workers[0], killed)
    ray_args = ["executor=ray", f"ray_address={nodes.address}", f"ray_node_ip={LOOPBACK}", "ray_max_retries=3"]
    assert main(["job", *args, *ray_args, f"results_dir={ray_root}"]) == 0
    watcher.join(timeout=1)
    assert killed, "the job ended before a node could be killed"
    assert main(["job", *args, f"results_dir={tmp_path / 'local'}"]) == 0
    on_ray, local = (RunDir(the_run(tmp_path / name)) for name in ("ray", "local"))
    assert on_ray.read_job()["status"] == "done" and on_ray.read_job()["members_done"] == 8
    np.testing.assert_array_equal(np.load(on_ray.pred_probs), np.load(local.pred_probs))


def test_sigterm_under_ray_keeps_members_and_prints_the_resume_command(cluster, tmp_path):
    """As locally: within 10 s, exit 143, the committed members kept, the resume command printed (it used to end
    with Ray's native stack dump and exit 1); the resume, on the same cluster, finishes the job."""
    nodes, _ = cluster
    ray_args = ["executor=ray", f"ray_address={nodes.address}", f"ray_node_ip={LOOPBACK}", "threads=1"]
    job_dir = sigterm_then_resume(tmp_path, *ray_args)
    assert RunDir(job_dir).read_job()["members_done"] == 8
