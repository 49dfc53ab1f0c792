"""Each runtime's own ceiling on a run's model: the yardstick for our use of it.

For every (backend, precision, layout, batch) a run's trials used, the throughput the runtime reaches on the plain
eval model with its weights as constants, measured with the runtime's own tool where it ships one and a plain API
loop otherwise: OpenVINO's ``benchmark_app`` (in the ``openvino`` wheel; ``-hint throughput -infer_precision``),
an ONNX Runtime ``InferenceSession`` on the trial's threads, eager PyTorch under ``inference_mode`` (bf16: CPU
autocast). The BatchNorm pass's ceiling is the same tool on the pass's own graph at the BatchNorm batch: the
statistics graph (``swagbench.swag.batchnorm.StatisticsGraph``) exported as the trial exports it, with its weights as
constants (eager: the model's train-mode forward), in the engine and precision the pass ran in (a hybrid's BN
engine; an int8 trial's statistics graph in bf16 or fp32, or OpenVINO's int8 statistics graph as NNCF quantizes it
for ``bn_precision: int8``, calibrated on the run's first BatchNorm batches). int8's predict ceiling is the same
tool on the int8 model the backend's own quantizer makes of the run's model (BatchNorm folded, calibrated on the
run's first images, as a trial calibrates a fold): its weights as constants, nothing re-quantized or recompiled. A
trial's predict and BatchNorm throughput as shares of them say how much of what the runtime can do our per-sample step
keeps (binding, re-preparing per sample, the harness's own work between calls).

``swagbench ceiling RUN`` writes ``ceilings.json`` into the run; the report then shows the shares.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from swagbench.bench.record.rundir import RunDir

MEASURED = {
    ("eager", "fp32"),
    ("eager", "bf16"),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
}


def ceiling_key(backend: str, precision: str, channels_last: bool, batch: int) -> str:
    """``openvino:bf16:contiguous:b128``: how ceilings.json names a measurement (and a row finds its own)."""
    return f"{backend}:{precision}:{'channels_last' if channels_last else 'contiguous'}:b{batch}"


def statistics_engine(row) -> tuple[str, str, bool] | None:
    """(backend, precision, channels_last) the row's BatchNorm pass ran in (a hybrid's BN engine; an int8
    trial's statistics graph at the precision it recorded), or None where it fell back to eager."""
    bn = row.bn_update or {}
    if bn.get("where") != "backend":
        return None
    backend = row.bn_engine.split(":")[0] if row.bn_engine else row.backend
    return backend, bn.get("precision", row.precision), bn.get("layout") == "channels_last"


def statistics_key(row, batch: int) -> str | None:
    """The ceilings.json name of the BatchNorm pass's ceiling for ``row`` at ``batch`` (None: no such pass)."""
    engine = statistics_engine(row)
    return f"{ceiling_key(*engine, batch)}:statistics" if engine else None


def _timed(call, seconds: float) -> tuple[float, int]:
    """(seconds, calls) of calling ``call`` repeatedly for at least ``seconds``, after warming up for a fifth of
    that (at least three calls: first calls pick kernels and allocate)."""
    warm, start = 0, time.perf_counter()
    while warm < 3 or time.perf_counter() - start < seconds / 5:
        call()
        warm += 1
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 3:
        call()
        calls += 1
    return time.perf_counter() - start, calls


def eager_rate(model, batch, precision: str, channels_last: bool, seconds: float) -> float:
    """Images per second of eager PyTorch's forward of ``model`` in the mode it is in (eval; train for the
    BatchNorm pass's ceiling) under inference mode (bf16: CPU autocast) on ``batch``."""
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net, x = model.to(memory_format=fmt), batch.contiguous(memory_format=fmt)

    def call():
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            net(x)

    took, calls = _timed(call, seconds)
    return calls * len(batch) / took


def onnxruntime_rate(onnx_path: Path, batch, threads: int, seconds: float) -> float:
    """Images per second of an ONNX Runtime session (all graph optimisations, ``threads`` intra-op) on ``batch``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    x = {"x": batch.numpy()}
    took, calls = _timed(lambda: session.run(None, x), seconds)
    return calls * len(batch) / took


def openvino_rate(onnx_path: Path, shape: tuple[int, ...], precision: str, seconds: float) -> tuple[float, str]:
    """(images per second, the command) of OpenVINO's ``benchmark_app`` (throughput hint: its own choice of streams
    and threads on this machine) on the model."""
    tool = Path(sys.executable).with_name("benchmark_app")
    command = [
        str(tool),
        "-m",
        str(onnx_path),
        "-d",
        "CPU",
        "-hint",
        "throughput",
        "-infer_precision",
        {"fp32": "f32", "bf16": "bf16"}[precision],
        "-shape",
        f"[{','.join(map(str, shape))}]",
        "-t",
        str(max(1, round(seconds))),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    found = re.search(r"Throughput:\s*([\d.]+)\s*FPS", out.stdout)
    if out.returncode or not found:
        raise RuntimeError(f"benchmark_app failed ({out.returncode}): {(out.stderr or out.stdout)[-300:]}")
    # benchmark_app's FPS counts images (batch x inferences per second), as its README quotes it
    return float(found.group(1)), " ".join(command[1:])


@contextlib.contextmanager
def _output_into(path: Path):
    """This process's file descriptors 1 and 2 appended to ``path`` (the exporters', quantizers' and torch's own
    warnings and progress bars), restored after."""
    saved = []
    with open(path, "ab") as sink:
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            saved.append(os.dup(fd))
            os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
                stream.flush()
                os.dup2(saved[fd - 1], fd)
                os.close(saved[fd - 1])


def _run_model(run: RunDir, config):
    """The run's model with the first fold's SWA weights (speed does not depend on the values, realism does)."""
    from swagbench.swag.io import load_posterior
    from swagbench.swag.models import build_model
    from swagbench.swag.sampling import load_flat_parameters

    dataset = run.load_data()
    model = build_model(config.model, dataset.num_classes, int(dataset.x.shape[1])).eval()
    posterior = load_posterior(run.read_posteriors()["paths"][0])
    load_flat_parameters(model, posterior.mean, posterior)
    return model, dataset


def measure(run_dir, seconds: float = 5.0, log=print) -> dict[str, Any]:
    """Measure the ceiling of every (backend, precision, layout, batch) the run's successful trials used, of the
    eval model (predict) and, where a trial ran its BatchNorm pass in its own engine, of the model's statistics
    graph at the BatchNorm batch (``<key>:statistics``); write ``ceilings.json`` and return its contents."""
    import torch

    from swagbench.bench.config import load_config
    from swagbench.bench.measure.memory import fix_mmap_threshold
    from swagbench.bench.record.row_store import read_rows

    fix_mmap_threshold()  # malloc as the trials' workers have it: eager's speed depends on it (measure.memory)
    run = RunDir.existing(run_dir)
    config = load_config(run.config_path, [f"results_dir={run.path.parent}"])
    rows = sorted((r for r in read_rows(run, strict=True) if r.status == "ok"), key=lambda r: r.trial_id)
    model, dataset = _run_model(run, config)
    out: dict[str, Any] = {"seconds": seconds, "ceilings": {}}
    wanted = []  # (row, engine, batch, statistics)
    for r in rows:
        if (r.backend, r.precision) in MEASURED:
            wanted.append((r, (r.backend, r.precision, r.channels_last), r.batch_size, False))
        engine = statistics_engine(r)
        if engine and engine[:2] in MEASURED and (engine[1] != "int8" or engine[0] == "openvino"):
            wanted.append((r, engine, config.ensemble.bn_batch_size, True))
    with tempfile.TemporaryDirectory(prefix="swagbench-ceiling-") as tmp:
        for r, engine, size, statistics in wanted:
            key = statistics_key(r, size) if statistics else ceiling_key(*engine, size)
            if key in out["ceilings"]:
                continue
            torch.set_num_threads(r.threads)

            def batches(count: int, size: int = size) -> list:  # the run's first count x size images
                return [dataset.tensor(np.arange(i * size, (i + 1) * size) % len(dataset.labels)) for i in range(count)]

            entry: dict[str, Any] = {
                "threads": r.threads,
                "batch": size,
                "graph": "statistics" if statistics else "eval" + (", quantized" if engine[1] == "int8" else ""),
            }
            try:
                with _output_into(run.ceiling_log):
                    entry.update(_rate(r, engine, model, batches, statistics, Path(tmp), seconds))
            except Exception as exc:  # a runtime that cannot be measured is said, not hidden
                entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
            log(
                f"swagbench: ceiling {key}: "
                + (f"{entry['img_per_s']:,.0f} img/s" if "img_per_s" in entry else entry["error"])
            )
            out["ceilings"][key] = entry
    run.write_ceilings(out)
    return out


def _rate(r, engine, model, batches, statistics: bool, tmp: Path, seconds: float) -> dict[str, Any]:
    """One ceiling: the runtime's own throughput on ``model`` (eval, its statistics graph, or its int8 model
    calibrated on the run's first images) on the first batch of ``batches(count)``."""
    import copy

    from swagbench.backends.onnx_graph import export_onnx, export_statistics

    backend, precision, channels_last = engine
    batch = batches(1)[0]
    if backend == "eager":
        net = copy.deepcopy(model).train() if statistics else model  # train mode: BatchNorm from the batch
        return {"img_per_s": eager_rate(net, batch, precision, channels_last, seconds), "tool": "api loop"}
    stem = f"{backend}_{precision}_{'statistics' if statistics else 'model'}_b{len(batch)}"
    if precision == "int8" and statistics:
        path = _int8_statistics_model(r, model, batches, tmp / stem)
    elif precision == "int8":
        path = _int8_model(r, backend, model, batches, tmp / stem)
    else:
        path = tmp / f"{'statistics' if statistics else 'model'}_b{len(batch)}.onnx"
        if not path.exists():
            proto = export_statistics(copy.deepcopy(model), batch)[0] if statistics else export_onnx(model, batch)
            path.write_bytes(proto.SerializeToString())
    if backend == "onnxruntime":
        return {"img_per_s": onnxruntime_rate(path, batch, r.threads, seconds), "tool": "api loop"}
    # an int8 model's float parts run in f32, as the trial compiles it (swagbench.backends.openvino)
    rate, command = openvino_rate(path, tuple(batch.shape), "fp32" if precision == "int8" else precision, seconds)
    return {"img_per_s": rate, "tool": "benchmark_app", "command": command.replace(str(tmp), "<tmp>")}


def _int8_statistics_model(r, model, batches, stem: Path) -> Path:
    """OpenVINO's int8 statistics graph of ``model`` (``bn_precision: int8``: its convolutions quantized by NNCF,
    calibrated on as many of the run's first BatchNorm batches as the trial calibrates a fold on), written next to
    ``stem``: the graph the trial's BatchNorm pass runs, once, with nothing re-quantized or recompiled."""
    import copy

    import openvino as ov

    from swagbench.backends import BackendOptions, get_backend

    engine = get_backend("openvino")
    size = len(batches(1)[0])
    extra = {**r.options, "bn_precision": "int8"}
    options = BackendOptions(precision="int8", threads=r.threads, batch_size=size, extra=extra)
    calibration = batches(engine.settings(options).calibration_batches)
    runner = engine.statistics(copy.deepcopy(model), calibration[0], options, calibration)
    path = stem.with_suffix(".xml")
    ov.save_model(runner.quantized.graph.ov_model, str(path), compress_to_fp16=False)
    return path


def _int8_model(r, backend: str, model, batches, stem: Path) -> Path:
    """The int8 model the backend's own quantizer makes of ``model`` (BatchNorm folded, calibrated on as many of
    ``batches`` as the trial's ``calibration_batches``) with its weights as constants, written next to ``stem`` in
    the runtime's own format."""
    import copy

    from swagbench.backends import BackendOptions, get_backend

    engine = get_backend(backend)
    options = BackendOptions(precision="int8", threads=r.threads, batch_size=r.batch_size, extra=dict(r.options))
    calibration = batches(engine.settings(options).calibration_batches)
    if backend == "onnxruntime":  # its quantizer alone: the ceiling re-quantizes nothing
        from swagbench.backends.folding import FoldedModel
        from swagbench.backends.onnxruntime import quantized_model

        folded = FoldedModel(copy.deepcopy(model))
        folded.refold()
        path = stem.with_suffix(".onnx")
        path.write_bytes(quantized_model(folded.graph_module, calibration[0], calibration))
        return path
    runner = engine.prepare(copy.deepcopy(model), calibration[0], options, calibration=calibration)
    import openvino as ov

    path = stem.with_suffix(".xml")
    ov.save_model(runner.graph.ov_model, str(path), compress_to_fp16=False)
    return path
