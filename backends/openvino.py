"""OpenVINO CPU plugin.

Both graphs of a sample run in OpenVINO: the statistics graph (BatchNorm statistics over the fold's BN
batches, see ``swagbench.swag.batchnorm``; one synchronous request on all threads, so a batch is never split) and
the inference graph, each exported to ONNX once per trial (initializers named by state_dict key).
``binding`` says how a new sample reaches them: ``inputs`` (weights and BN statistics become graph
parameters fed from the model's own tensors, no copy: each graph is compiled once per trial) or
``constants`` (the sample's values replace the graph's constants and the graph is recompiled, which lets
the plugin fold BN and reorder weights ahead of time). ``shapes`` says whether a graph is compiled once
with its batch dimension dynamic or once per batch shape with it static; which is faster depends on the model
(see :class:`_Graph`), so by default each graph times both when it is built and keeps the faster.

The inference precision is always set explicitly (on AVX512_BF16 CPUs the plugin's default is bf16 even
for an "fp32" model) and read back with ``get_property``; a mismatch fails the trial. ``hint: throughput``
(default) runs a batch's sub-batches at once, one on each of ``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` requests;
``hint: latency`` uses one synchronous request.

int8: NNCF post-training quantization of the inference graph with BatchNorm folded into the convolutions
(``swagbench.backends.folding``), calibrated once per fold on the fold's training inputs; each further sample of the
fold re-quantizes only the weights (NNCF's symmetric per-channel int8, max|w| / 127) and keeps the fold's
activation ranges and bias correction, then recompiles (``swagbench.backends.openvino_int8``). Its BatchNorm
statistics come from the statistics graph in ``bn_precision``: by default (``auto``) each precision the target machine
runs natively and this CPU does too (int8 where both have VNNI or AMX, bf16 where both have AVX512_BF16 or AMX, f32)
is measured on the trial's first sample and the cheapest at the target kept (:meth:`OpenVinoBackend.variants`); a
float graph is bound as ``binding`` says, the int8 one (its convolutions quantized the same way) re-quantized per
sample.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from swagbench.backends.base import Backend, BackendError, BackendOptions, Runner, StatisticsRunner, option
from swagbench.backends.onnx_graph import (
    GraphOptions,
    binding_variants,
    bound_names,
    export_onnx,
    export_statistics,
    export_statistics_graph,
    float_state,
)
from swagbench.backends.openvino_int8 import QuantizedGraph, replace_constant
from swagbench.backends.precisions import NATIVE, host_isa
from swagbench.backends.torch_helpers import describe

HINTS = ("throughput", "latency")
STATIC = {"auto": None, "static": True, "dynamic": False}  # each ``shapes`` choice as _Graph's ``static``
SHAPES = tuple(STATIC)
OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
BN_PRECISIONS = ("auto", "int8", "bf16", "fp32")


@dataclass(frozen=True)
class OpenVinoOptions(GraphOptions):
    """Options of the ``openvino`` backend."""

    hint: str = option("throughput", "OpenVINO performance hint of the predict graph", HINTS)
    shapes: str = option(
        "auto",
        "static: each batch shape compiled with its batch dimension fixed (on first use); dynamic: one graph for "
        "every batch size; auto: both timed on the graph's first batch when it is built, the faster kept",
        SHAPES,
    )
    bn_precision: str = option(
        "auto",
        "precision of the BatchNorm pass's statistics graph: int8 (its convolutions quantized by NNCF, statistics "
        "and normalisation in float32), bf16, fp32; auto: the trial's own, and for an int8 trial each precision the "
        "target (target.isa, else this machine) and this CPU both run natively, measured on the first sample, the "
        "cheapest at the target kept (docs/backends.md: the int8 pass is gated like any)",
        BN_PRECISIONS,
    )


class OpenVinoBackend(Backend):
    name = "openvino"
    precisions = ("fp32", "bf16", "int8")
    Options = OpenVinoOptions

    def available(self) -> tuple[bool, str]:
        try:
            import openvino as ov
        except ImportError:
            return False, "openvino is not installed; pip install openvino"
        return True, f"openvino {ov.__version__}"

    def versions(self) -> dict[str, str]:
        import openvino as ov

        return {**super().versions(), "openvino": ov.__version__}

    def can_swap(self, options: BackendOptions) -> bool:
        return True  # exported once per trial; int8 re-calibrates once per fold

    def variants(self, options: BackendOptions):
        """``binding: auto``'s candidates, and for an int8 trial with ``bn_precision: auto`` one per precision its
        target runs natively (:meth:`bn_candidates`; each float one with each binding where that is ``auto`` too)."""
        precisions = self.bn_candidates(options)
        auto_binding = self.settings(options).binding == "auto"
        if len(precisions) < 2:  # int8 predicts through its own re-quantized graph, and an int8 pass binds nothing
            return binding_variants(options) if auto_binding and precisions[0] != "int8" else None
        candidates = {}
        for precision in precisions:
            extra = {**options.extra, "bn_precision": precision}
            if precision == "int8" or not auto_binding:
                candidates[precision] = dataclasses.replace(options, extra=extra)
                continue
            for name, bound in binding_variants(dataclasses.replace(options, extra=extra))[1].items():
                candidates[f"{precision}/{name}"] = bound
        return ("bn_precision/binding" if auto_binding else "bn_precision"), candidates

    def predict_options(self, options: BackendOptions) -> BackendOptions:
        if options.precision != "int8":
            return options
        # int8 predicts through its own re-quantized graph: neither option reaches it
        extra = {k: v for k, v in options.extra.items() if k not in ("bn_precision", "binding")}
        return dataclasses.replace(options, extra=extra)

    def prepare(self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None) -> Runner:
        self.check(options)
        model = model.eval()
        hint = self.settings(options).hint
        if options.precision == "int8":
            return _Int8Graph(self, model, example, options, calibration, hint)
        binding = self.settings(options).binding
        graph = _graph(
            self, export_onnx(model, example), model, options, OV_PRECISION[options.precision], hint, binding, example
        )
        return _PredictRunner(graph)

    def update(self, runner: Runner, model: nn.Module, options: BackendOptions, calibration=None) -> Runner:
        runner.bind(model, calibration)
        return runner

    def statistics(
        self, model: nn.Module, example: torch.Tensor, options: BackendOptions, calibration=None
    ) -> StatisticsRunner:
        self.check(options)
        precision = self.bn_precision(options)
        if precision == "int8":
            return self._int8_statistics(model, example, options, calibration)
        binding = self.settings(options).binding
        proto, stats_graph = export_statistics(model, example)
        graph = _graph(self, proto, stats_graph, options, OV_PRECISION[precision], "latency", binding, example)

        def run(batch: torch.Tensor):
            return stats_graph.batch_statistics(graph(batch), batch.shape[0])

        run.graph = graph
        run.info = {
            **describe(options, f"statistics graph (OpenVINO {OV_PRECISION[precision]})", precision=precision),
            "binding": binding,
            **{k: v for k, v in graph.info.items() if k.startswith("shapes")},
        }
        return run

    def _int8_statistics(self, model, example, options, calibration) -> StatisticsRunner:
        """The statistics graph with its convolutions in int8 (NNCF, calibrated per fold on its BN batches); its
        statistics summed by mean reductions in float32 (depthwise all-ones convolutions would be quantized)."""
        from swagbench.swag.batchnorm import StatisticsGraph

        stats_graph = StatisticsGraph(model, example, reduction="ops")
        # exported by each fold's calibration, with the weights the graph has then

        def export():
            return export_statistics_graph(stats_graph, example)

        build = _fixed(self, stats_graph, options, "latency", example)
        quantized = QuantizedGraph(self, options, stats_graph, export, build)
        quantized.bind(calibration)

        def run(batch: torch.Tensor):
            return stats_graph.batch_statistics(quantized.graph(batch), batch.shape[0])

        run.quantized = quantized
        run.info = {
            **describe(options, "statistics graph (OpenVINO int8, NNCF)", precision="int8"),
            "binding": "fixed",
            "quantization": "NNCF convolutions, statistics and normalisation in float32, calibrated per fold",
            **{k: v for k, v in quantized.graph.info.items() if k.startswith("shapes")},
        }
        return run

    def update_statistics(self, runner, model, example, options, calibration=None) -> StatisticsRunner:
        if hasattr(runner, "quantized"):
            runner.quantized.bind(calibration)  # re-quantized per sample, recalibrated per fold
        else:
            runner.graph.bind(runner.graph.module)  # the statistics graph shares the model's parameters
        return runner

    def bn_precision(self, options: BackendOptions) -> str:
        """The BatchNorm pass's precision: ``bn_precision``; with ``auto`` the first of :meth:`bn_candidates` (what
        :meth:`variants` measures where there are several)."""
        return self.bn_candidates(options)[0]

    def bn_candidates(self, options: BackendOptions) -> list[str]:
        """The precisions ``bn_precision`` may take: the one it names; with ``auto`` the trial's own, and for an int8
        trial each precision its target machine (``options.target_isa``, else this one) runs natively that this CPU
        runs natively too (so that a rate measured here stands for the target's), int8 first, then bf16, fp32."""
        chosen = self.settings(options).bn_precision
        if chosen != "auto":
            return [chosen]
        if options.precision != "int8":
            return [options.precision]
        here = host_isa()
        target = set(here if options.target_isa is None else options.target_isa)
        native = [p for p in ("int8", "bf16") if target & set(NATIVE[p]) and set(here) & set(NATIVE[p])]
        if "bf16" in native and not self.has_bf16():
            native.remove("bf16")
        return [*native, "fp32"]

    def has_bf16(self) -> bool:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")

    def compile(self, core, ov_model, options: BackendOptions, precision: str, hint: str):
        """Compile for the CPU at ``precision`` (f32 / bf16, verified) on the trial's threads."""
        if precision == "bf16" and not self.has_bf16():
            raise BackendError("this CPU has no bf16 support in OpenVINO (no AVX512_BF16/AMX); use fp32")
        compiled = core.compile_model(
            ov_model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": precision,
                "PERFORMANCE_HINT": hint.upper(),
                "INFERENCE_NUM_THREADS": options.threads,
            },
        )
        got = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if got != precision:
            raise BackendError(f"OpenVINO compiled with inference precision {got}, not the requested {precision}")
        return compiled


def _graph(backend, proto, module: nn.Module, options, precision: str, hint: str, binding: str, example) -> _Graph:
    """An exported graph read by OpenVINO, bound to ``module`` (``binding`` inputs: its weights become parameters)."""
    import openvino as ov

    names = bound_names(proto, module, binding)
    ov_model = ov.Core().read_model(proto.SerializeToString(), b"")
    static = STATIC[backend.settings(options).shapes]
    return _Graph(backend, ov_model, module, options, precision, hint, binding, names, example, static)


def _fixed(backend, module: nn.Module, options, hint: str, example):
    """build(ov_model, static) -> a :class:`_Graph` of an OpenVINO model its owner edits itself (``fixed``) in f32;
    ``static`` None: the ``shapes`` setting's (a further fold's graph keeps the first one's choice)."""

    def build(ov_model, static):
        static = STATIC[backend.settings(options).shapes] if static is None else static
        return _Graph(backend, ov_model, module, options, "f32", hint, "fixed", [], example, static)

    return build


class _Graph:
    """One graph compiled by OpenVINO and bound to ``module``'s float state ``names`` by ``binding``:
    ``inputs`` (parameters sharing the module's memory), ``constants`` (replaced, then recompiled) or
    ``fixed`` (the owner edits ``ov_model`` itself and calls :meth:`recompile`).

    Compiled either once with the batch dimension dynamic (as exported) or once per input shape with it static
    (a last, partial batch or a predict sub-batch compiled on first use; every shape seen recompiled on a rebind
    that changes constants). Neither is faster everywhere: on 2 AMX cores, bf16 statistics graphs, one request,
    ResNet-8 at batch 256 ran 16,200 img/s dynamic and 23,200 static, ResNet-50 at batch 32 103 dynamic and 86
    static. ``static`` None (``shapes: auto``) times both on the first request's share of ``example``
    (:func:`_rates`) and keeps the faster; ``info`` says which and the rates."""

    def __init__(
        self, backend, ov_model, module, options, precision, hint: str, binding: str, names, example, static=None
    ) -> None:
        import openvino as ov

        self.backend, self.options, self.module = backend, options, module
        self.precision, self.hint, self.binding, self.names = precision, hint, binding, list(names)
        self.core, self.ov_model = ov.Core(), ov_model
        self.constants = _constants(ov_model, self.names) if binding == "constants" else {}
        self.compiled: dict[tuple[int, ...] | None, _Compiled] = {}  # None: the dynamic graph
        self.state = self._state(module)
        dynamic = self._compile(None)  # its request count says how predict splits a batch
        self.nireq, self.rates = len(dynamic.requests), {}
        shape = self.request_shapes(tuple(example.shape))[0]
        if static is None:
            sample = example.numpy()[: shape[0]]
            self.rates = _rates({"dynamic": dynamic, "static": self._compile(shape)}, sample)
            static = self.rates["static"] > self.rates["dynamic"]
        self.static = static
        self.compiled = {key: c for key, c in self.compiled.items() if (key is not None) == static}
        if static and shape not in self.compiled:
            self._compile(shape)

    def _state(self, module: nn.Module) -> dict[str, np.ndarray]:
        full = float_state(module)
        return {name: full[name] for name in self.names}

    def _compile(self, shape: tuple[int, ...] | None) -> _Compiled:
        """Compile the graph (input ``x`` of static ``shape``; None: as exported) and bind it."""
        model = self.ov_model
        if shape is not None:
            model = model.clone()
            model.reshape({"x": list(shape)})
        compiled = self.backend.compile(self.core, model, self.options, self.precision, self.hint)
        self.compiled[shape] = _Compiled(compiled, self.hint)
        if self.binding == "inputs":
            self.compiled[shape].share(self.state)
        return self.compiled[shape]

    def bind(self, module: nn.Module, calibration=None) -> None:
        """Give the graph the weights (and BN statistics) now in ``module``."""
        self.state = self._state(module)
        if self.binding == "constants":
            for name, array in self.state.items():
                self.constants[name] = replace_constant(self.constants[name], array)
            self.recompile()
        elif self.binding == "inputs":
            for compiled in self.compiled.values():
                compiled.share(self.state)

    def recompile(self) -> None:
        """Compile again every shape compiled so far (the graph's constants changed)."""
        for shape in list(self.compiled):
            self._compile(shape)

    def request_shapes(self, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The input shapes ``logits`` gives its requests for a batch of ``shape`` (np.array_split's sizes)."""
        parts = min(self.nireq if self.hint == "throughput" else 1, shape[0])
        sizes = [len(a) for a in np.array_split(np.empty(shape[0]), parts)]
        return [(n, *shape[1:]) for n in sizes]

    def _for(self, shape: tuple[int, ...]) -> _Compiled:
        key = shape if self.static else None
        return self.compiled.get(key) or self._compile(key)

    @property
    def info(self) -> dict:
        first = next(iter(self.compiled.values()))
        return {  # the precision as OpenVINO reports it for the compiled graph, not as it was asked for
            "inference_precision": first.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
            "hint": self.hint,
            "infer_requests": len(first.requests),
            "streams": int(first.compiled.get_property("NUM_STREAMS")),
            "binding": self.binding,
            "shapes": "static" if self.static else "dynamic",
            **({"static_shapes": [list(s) for s in self.compiled]} if self.static else {}),
            **({"shapes_img_per_s": {k: round(v, 1) for k, v in self.rates.items()}} if self.rates else {}),
        }

    def __call__(self, batch: torch.Tensor) -> list[np.ndarray]:
        """All outputs for one batch on one request (the statistics graph: the batch is never split)."""
        compiled = self._for(tuple(batch.shape))
        request = compiled.requests[0]
        request.set_tensor("x", _tensor(batch.numpy()))
        request.infer()
        return [request.get_output_tensor(i).data.copy() for i in range(len(compiled.compiled.outputs))]

    def logits(self, batch: torch.Tensor) -> np.ndarray:
        """The first output, with the batch split into sub-batches over the request queue (throughput)."""
        shapes = self.request_shapes(tuple(batch.shape))
        if len(shapes) == 1:
            return self(batch)[0]
        chunks = np.array_split(batch.numpy(), len(shapes))  # at most one per request: each chunk its own request
        running, taken = [], {}
        for chunk in chunks:
            compiled = self._for(chunk.shape)  # dynamic: the one graph; static: the chunk's shape's
            taken[id(compiled)] = taken.get(id(compiled), -1) + 1
            request = compiled.requests[taken[id(compiled)]]
            request.start_async({"x": _tensor(chunk)})
            running.append(request)
        outputs = []
        for request in running:
            request.wait()
            outputs.append(request.get_output_tensor(0).data.copy())
        return np.concatenate(outputs)


def _rates(graphs: dict[str, _Compiled], sample: np.ndarray, rounds: int = 4) -> dict[str, float]:
    """Images per second of each compiled graph's first request on ``sample``: one untimed call each, then
    ``rounds`` calls of each in turn (a shared machine's slow moments hit both), the best of each."""
    import time

    best = dict.fromkeys(graphs, float("inf"))
    for compiled in graphs.values():
        compiled.requests[0].set_tensor("x", _tensor(sample))
        compiled.requests[0].infer()
    for _ in range(rounds):
        for name, compiled in graphs.items():
            t0 = time.perf_counter()
            compiled.requests[0].infer()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: len(sample) / seconds for name, seconds in best.items()}


class _Compiled:
    """One compiled shape: its infer requests (the plugin's optimal number under the throughput hint, else one).

    Plain requests run with ``start_async``/``wait``, never an ``AsyncInferQueue`` with a Python callback: OpenVINO
    2026.4 destroys a compiled model while holding the GIL and joins an executor thread that waits for the GIL to
    run or release that callback, a deadlock (a test hung there for good)."""

    def __init__(self, compiled, hint: str) -> None:
        self.compiled = compiled
        nireq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) if hint == "throughput" else 1
        self.requests = [compiled.create_infer_request() for _ in range(nireq)]

    def share(self, state: dict[str, np.ndarray]) -> None:
        """Bind every request's weight parameters to ``state``'s arrays (shared memory: read at every inference)."""
        import openvino as ov

        for request in self.requests:
            for name, array in state.items():
                request.set_tensor(name, ov.Tensor(array, shared_memory=True))


class _PredictRunner:
    """batch -> logits through a :class:`_Graph`."""

    def __init__(self, graph: _Graph) -> None:
        self.graph = graph

    def bind(self, model: nn.Module, calibration=None) -> None:
        self.graph.bind(model)

    @property
    def info(self) -> dict:
        return self.graph.info

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.graph.logits(batch)).float()


class _Int8Graph(_PredictRunner):
    """NNCF-quantized inference graph of the BN-folded model: calibrated per fold, weights re-quantized per sample."""

    def __init__(self, backend, model, example, options, calibration, hint: str) -> None:
        from swagbench.backends.folding import FoldedModel

        self.folded = FoldedModel(model)
        module = self.folded.graph_module

        def export():
            return export_onnx(module, example, optimize=True)

        self.quantized = QuantizedGraph(
            backend, options, module, export, _fixed(backend, module, options, hint, example)
        )
        self.bind(model, calibration)

    @property
    def graph(self) -> _Graph:
        return self.quantized.graph

    def bind(self, model: nn.Module, calibration=None) -> None:
        """Move to the weights and BN statistics now in ``model``; a ``calibration`` (the fold's training
        inputs) other than the last one means a new fold: recalibrate."""
        self.folded.refold()
        self.quantized.bind(calibration)

    @property
    def info(self) -> dict:
        return {**self.graph.info, "quantization": "NNCF, BN folded, activations calibrated per fold"}


def _constants(ov_model, names: list[str]) -> dict:
    found = {op.get_friendly_name(): op for op in ov_model.get_ops() if op.get_type_name() == "Constant"}
    missing = [n for n in names if n not in found]
    if missing:
        raise BackendError(f"OpenVINO's graph has no constant(s) {missing[:3]}; use binding: inputs")
    return {n: found[n] for n in names}


def _tensor(array: np.ndarray):
    import openvino as ov

    return ov.Tensor(np.ascontiguousarray(array), shared_memory=True)
