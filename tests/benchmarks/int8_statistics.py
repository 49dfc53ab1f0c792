"""How far OpenVINO's int8 BatchNorm pass is from eager fp32's statistics on a run's own posterior and data
(``python -m tests.benchmarks.int8_statistics RUN_DIR TRIAL_ID``; docs/backends.md quotes it).

For fold 0 of the run's trial ``TRIAL_ID`` (any trial: its spec names the data, folds and posteriors), draws samples
0..S-1 as the run does and, for each, computes every BatchNorm layer's statistics over the fold's whole BatchNorm
pass three ways: eager fp32 (what ``update_bn`` computes), the int8 statistics graph as a trial keeps it (calibrated on
the fold's first sample, re-quantized for later ones) and the same graph calibrated anew on this sample. Prints per
sample the largest error in mean (in the reference's standard deviations) and relative error in standard deviation
over all layers and channels, and the seconds each int8 variant took to set up.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path


def _errors(stats, reference) -> tuple[float, float]:
    mean_err = std_err = 0.0
    for (m, v), (rm, rv) in zip(stats, reference, strict=True):
        std = rv.sqrt().clamp(min=1e-3)
        mean_err = max(mean_err, ((m - rm).abs() / std).max().item())
        std_err = max(std_err, (v.sqrt() / std - 1).abs().max().item())
    return mean_err, std_err


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("trial_id")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--calibration-batches", type=int, default=4)
    args = parser.parse_args(argv)

    from swagbench.backends import BackendOptions, get_backend
    from swagbench.bench.execute.worker_loop import TrialSpec, _Worker
    from swagbench.bench.record.seeds import sample_seed
    from swagbench.swag.batchnorm import StatisticsAccumulator, eager_batch_statistics
    from swagbench.swag.sampling import load_flat_parameters

    spec = TrialSpec.load(args.run_dir / "trials" / args.trial_id / "spec.json")
    spec = dataclasses.replace(spec, tasks=[[0, 0, 1]], members_path=None, bn_stats_path=None, journal_path=None)
    worker = _Worker(spec)
    data = worker.fold(0)
    batches = list(data.bn_batches)
    backend = get_backend("openvino")
    extra = {"bn_precision": "int8", "calibration_batches": args.calibration_batches}
    options = BackendOptions(precision="int8", threads=worker.options.threads, batch_size=64, extra=extra)

    def statistics(run):
        accumulator = StatisticsAccumulator()
        for batch in batches:
            accumulator.add(run(batch))
        return accumulator.result()

    kept, model = None, worker.model
    for s in range(args.samples):
        flat = data.sampler.draw(sample_seed(worker.seed, 0, s), out=worker.theta)
        load_flat_parameters(model, flat, data.posterior)
        reference = statistics(lambda b: eager_batch_statistics(model, b))
        t0 = time.perf_counter()
        if kept is None:
            kept = backend.statistics(model, batches[0], options, data.bn_batches)
        else:
            kept = backend.update_statistics(kept, model, batches[0], options, data.bn_batches)
        t1 = time.perf_counter()
        fresh = backend.statistics(model, batches[0], options, data.bn_batches)
        t2 = time.perf_counter()
        (km, ks), (fm, fs) = _errors(statistics(kept), reference), _errors(statistics(fresh), reference)
        print(
            f"sample {s}: calibrated per fold {km:.3f} std in mean, {ks:.1%} in std ({t1 - t0:.2f} s); "
            f"recalibrated {fm:.3f}, {fs:.1%} ({t2 - t1:.2f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
