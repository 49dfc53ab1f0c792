"""The job's benchmarks (issue 32): ``make bench-job`` (``python -m tests.benchmarks.job_bench``).

1. The answer end to end: a proxy run of ``--proxy`` images answers for ``--images`` (``target.images``); the job of
   the answer's strategy on that many images is timed beside the projection (the projection counts the workers'
   loops and confident learning, as the job's sessions plus its confident learning do).
2. The job costs what its strategy costs: its steady per-worker img/s of both phases beside the trial's in the
   proxy run just before it; and the audit's share of the job's wall time.
3. Resume wastes only the members in flight: the same job killed (SIGKILL) once half its members are committed,
   then resumed; its sessions' wall time beside the uninterrupted job's, and one member's time.
4. Ray: the job at ``--ray-images`` on a cluster of one and of two 1-CPU worker nodes (``ray.cluster_utils``, all on
   127.0.0.1), threads=1 per task: wall time ratio.

Prints a Markdown table and writes it with the raw numbers to ``--out``. Everything lives under ``--root`` (one
posterior cache, so every job of a size trains its posteriors once).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def swagbench(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "swagbench.bench.cli", *args], check=True, cwd=ROOT)


def _only(folder: Path) -> Path:
    (run,) = [p for p in folder.iterdir() if (p / "config.yaml").is_file()]
    return run


def _job(folder: Path) -> dict:
    return json.loads((_only(folder) / "job.json").read_text())


def _committed(folder: Path) -> int:
    runs = [p for p in folder.glob("*") if (p / "config.yaml").is_file()]
    journals = list(runs[0].glob("trials/00-*/journal.jsonl")) if runs else []
    return sum(1 for line in journals[0].read_text().splitlines() if line.strip()) if journals else 0


def answer_and_job(root: Path, proxy: int, images: int, samples: int, backends: str, common: list[str]) -> dict:
    """The proxy run's answer for ``images``, and the job of its strategy on that many."""
    sizes = [f"ensemble.samples={samples}", f"target.samples={samples}", "target.folds=5"]
    swagbench("run", "--backends", backends, f"data.max_examples={proxy}", f"target.images={images}", *sizes,
              *common, f"results_dir={root / 'proxy'}")  # fmt: skip
    run = _only(root / "proxy")
    answer = json.loads((run / "recommendation.json").read_text())
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]
    trial = [r for r in rows if r["trial_id"] == answer["trial_id"]][-1]
    strategy = ["--strategy", str(run / "recommendation.json")]
    swagbench("job", *strategy, f"data.max_examples={images}", f"ensemble.samples={samples}", *common,
              f"results_dir={root / 'job'}")  # fmt: skip
    job = _job(root / "job")
    workers = trial["workers"]
    in_run = {p: trial["phases_s"][p] for p in ("bn_update", "predict")}
    return {
        "strategy": answer["trial_id"],
        "job_images": job["sizes"]["images"],  # fewer than asked where the source has fewer
        "projected_min": job["projected"]["minutes"],
        "job_min": job["result"]["total_min"],
        "projected_audit_min": job["projected"]["audit_min"],
        "job_wall_min": job["result"]["wall_min"],
        "audit_s": job["audit"]["seconds"],
        "trial_bn_img_per_s_per_worker": trial["bn_img_per_s"] / workers,
        "trial_predict_img_per_s_per_worker": trial["predict_img_per_s"] / workers,
        "trial_bn_in_run_img_per_s": trial["steady"]["bn_update"]["in_run_images"] / in_run["bn_update"],
        "trial_predict_in_run_img_per_s": trial["images_timed"] / in_run["predict"],
        "job_bn_img_per_s_per_worker": job["result"]["bn_update_img_per_s"],
        "job_predict_img_per_s_per_worker": job["result"]["predict_img_per_s"],
        "job_args": [*strategy, f"data.max_examples={images}", f"ensemble.samples={samples}", *common],
    }


def killed_and_resumed(root: Path, job_args: list[str], members: int) -> dict:
    """Wall-clock seconds of the whole job (posteriors cached by the first job) and of the same job killed at half
    and resumed, each from the command's start to its end."""
    start = time.perf_counter()
    swagbench("job", *job_args, f"results_dir={root / 'whole'}")
    whole_s = time.perf_counter() - start
    folder = root / "resumed"
    cmd = [sys.executable, "-m", "swagbench.bench.cli", "job", *job_args, f"results_dir={folder}"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while _committed(folder) < members // 2:
        if proc.poll() is not None:
            raise SystemExit("the job ended before half its members were committed; use a larger --images")
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = _committed(folder)
    swagbench("job", "--resume", str(_only(folder)))
    resumed_s = time.perf_counter() - start
    member_s = _job(root / "whole")["result"]["wall_min"] * 60 / members
    return {"kept": kept, "whole_s": whole_s, "resumed_s": resumed_s, "member_s": member_s}


def ray_scaling(root: Path, images: int, samples: int, strategy: list[str], common: list[str]) -> dict:
    from ray.cluster_utils import Cluster

    minutes = {}
    for nodes in (1, 2):
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
        )
        for _ in range(nodes):
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        folder = root / f"ray{nodes}"
        try:
            swagbench("job", *strategy, f"data.max_examples={images}", f"ensemble.samples={samples}", *common,
                      "executor=ray", f"ray_address={cluster.address}", "ray_node_ip=127.0.0.1", "threads=1",
                      "workers=1", f"results_dir={folder}")  # fmt: skip
        finally:
            cluster.shutdown()
        minutes[nodes] = _job(folder)["result"]["wall_min"]
    return {
        "ray_images": images,
        "ray1_min": minutes[1],
        "ray2_min": minutes[2],
        "ray_speedup": minutes[1] / minutes[2],
    }


def table(r: dict, args) -> str:
    def pct(a, b):
        return f"{a / b - 1:+.0%}"

    lines = {
        "answer": lambda: [
            f"| job of {r['job_images']:,} images ({r['strategy']}) vs the projection from {args.proxy} | "
            f"{r['job_min']:.2f} min vs {r['projected_min']:.2f} min projected "
            f"({pct(r['job_min'], r['projected_min'])}; the audit {r['projected_audit_min']:.2f} min of it) "
            "| within 15% |",
            f"| BatchNorm pass img/s per worker, job vs the trial's own calls (its steady-state rate) | "
            f"{r['job_bn_img_per_s_per_worker']:,.0f} vs {r['trial_bn_in_run_img_per_s']:,.0f} "
            f"({pct(r['job_bn_img_per_s_per_worker'], r['trial_bn_in_run_img_per_s'])}; steady "
            f"{r['trial_bn_img_per_s_per_worker']:,.0f}) | within 10% |",
            f"| predict img/s per worker, job vs the trial's own calls (its steady-state rate) | "
            f"{r['job_predict_img_per_s_per_worker']:,.0f} vs {r['trial_predict_in_run_img_per_s']:,.0f} "
            f"({pct(r['job_predict_img_per_s_per_worker'], r['trial_predict_in_run_img_per_s'])}; steady "
            f"{r['trial_predict_img_per_s_per_worker']:,.0f}) | within 10% |",
            f"| audit's share of the job's wall time | {r['audit_s'] / 60 / r['job_min']:.1%} | stated |",
        ],
        "resume": lambda: [
            f"| killed at half ({r['kept']} members kept) and resumed vs uninterrupted, command wall time | "
            f"{r['resumed_s']:.0f} vs {r['whole_s']:.0f} s ({r['resumed_s'] - r['whole_s']:+.0f} s; one member "
            f"{r['member_s']:.1f} s) | at most one member's time more (plus start-up) |"
        ],
        "ray": lambda: [
            f"| Ray job of {r['ray_images']:,} images, two 1-CPU nodes vs one | {r['ray_speedup']:.2f}x "
            f"({r['ray1_min']:.2f} vs {r['ray2_min']:.2f} min) | >= 1.7x |"
        ],
    }
    head = ["| benchmark | measured | asked |", "|---|---|---|"]
    return "\n".join(head + [line for part in args.parts.split(",") for line in lines[part]()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="job_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxy", type=int, default=500, help="images of the proxy benchmark run")
    parser.add_argument("--images", type=int, default=10_000, help="images of the job (the target)")
    parser.add_argument("--samples", type=int, default=4, help="samples per fold of both")
    parser.add_argument("--backends", default="eager,openvino:int8", help="the proxy run's trials")
    parser.add_argument("--ray-images", type=int, default=2_000, help="images of the Ray jobs")
    parser.add_argument("--set", action="append", default=[], help="an override for every run and job (repeat)")
    parser.add_argument("--root", type=Path, default=ROOT / "results" / "job-bench")
    parser.add_argument("--parts", default="answer,resume,ray", help="which benchmarks: answer,resume,ray")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "job_bench.json")
    args = parser.parse_args(argv)
    if args.root.exists() and any(args.root.iterdir()):
        raise SystemExit(f"{args.root} is not empty; remove it or pass another --root")
    common = [f"cache_dir={args.root / 'cache'}", *args.set]
    result = answer_and_job(args.root, args.proxy, args.images, args.samples, args.backends, common)
    job_args = result.pop("job_args")
    if "resume" in args.parts:
        result.update(killed_and_resumed(args.root, job_args, 5 * args.samples))
    if "ray" in args.parts:
        strategy = ["--strategy", str(_only(args.root / "proxy") / "recommendation.json")]
        result.update(ray_scaling(args.root, args.ray_images, args.samples, strategy, common))
    text = table(result, args)
    print(text)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **result, "table": text}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
