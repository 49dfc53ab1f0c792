"""Loading a run config: defaults <- a profile's run settings <- YAML file <- ``--backends`` <- ``key=value``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from swagbench import checked
from swagbench.bench.config.settings import RunConfig, parse_engine
from swagbench.bench.errors import ConfigError
from swagbench.checked import quoted

MAX_YAML_VALUES = 100_000  # values a config may expand to; aliases (&a / *a) that multiply past it are refused
# Numbers as people type them: YAML 1.1 (PyYAML) reads 1e-12, 5e4 and 1.5e3 as strings (its floats need a dot and a
# signed exponent). These read as numbers here: an int where there is no dot and the value is whole (5e4 -> 50000).
EXPONENT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only) that reads :data:`EXPONENT` scalars as numbers."""


def _exponent_number(loader: _Loader, node) -> int | float:
    text = loader.construct_scalar(node)
    value = float(text)
    return int(value) if "." not in text and value.is_integer() else value


_Loader.add_implicit_resolver("tag:swagbench,2026:exponent", EXPONENT, list("-+0123456789."))
_Loader.add_constructor("tag:swagbench,2026:exponent", _exponent_number)


def read_yaml(text: str, where: str) -> Any:
    """``text`` parsed as YAML (safe: plain data only), refused with a ConfigError when it is not valid YAML or its
    aliases expand to more than :data:`MAX_YAML_VALUES` values (a "billion laughs" document would otherwise hang
    whatever walks it), before anything is built from it."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        if root is not None and _expanded_size(root, {}) > MAX_YAML_VALUES:
            raise ConfigError(
                f"{where} expands to more than {MAX_YAML_VALUES:,} values through YAML aliases; write the values out"
            )
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader: plain data only)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())  # PyYAML's messages span lines (a mark with a caret); one line here
        raise ConfigError(f"{where} is not valid YAML: {detail[:300]}") from exc


def _expanded_size(node, seen: dict) -> int:
    """How many values ``node`` stands for with every alias expanded (counted without expanding them)."""
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = 1  # a node that refers to itself (a recursive alias) counts once
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, seen) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
    else:
        size = 1
    seen[id(node)] = min(size, MAX_YAML_VALUES + 1)
    return seen[id(node)]


def build(cls, raw: Any, where: str = ""):
    """Construct settings dataclass ``cls`` from nested dicts (:func:`swagbench.checked.build`: unknown keys and wrong
    types are a :class:`ConfigError`)."""
    return checked.build(cls, raw, where, ConfigError, root="config")


def parse_backends(spec: str) -> list[dict[str, Any]]:
    """``eager,eager:bf16,eager:fp32:cl,my_pkg.mod:MyBackend:bf16`` -> trial dicts (see
    :func:`swagbench.bench.config.settings.parse_engine`)."""
    trials = [parse_engine(item) for item in filter(None, (s.strip() for s in spec.split(",")))]
    if not trials:
        raise ConfigError("--backends is empty; e.g. --backends eager,eager:bf16")
    return trials


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to nested dict ``raw`` in place."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {assignment!r} is not key=value (e.g. ensemble.samples=4)")
    value = read_yaml(text, f"override {quoted(assignment)}")
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, dict) else None
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    backends: str | None = None,
    base: dict[str, Any] | None = None,
    strategy: str | Path | None = None,
) -> RunConfig:
    """Load a run config: defaults <- ``base`` (a profile's run settings) <- YAML file <- ``--backends`` or
    ``strategy`` (a recommendation.json: its trial) <- ``key=value`` overrides."""
    raw: dict[str, Any] = dict(base or {})
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; see configs/ for examples")
        loaded = read_yaml(path.read_text(), f"config file {path}") or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at top level")
        raw.update(
            {
                k: {**raw[k], **v} if isinstance(raw.get(k), dict) and isinstance(v, dict) else v
                for k, v in loaded.items()
            }
        )
    if backends is not None:  # --backends "" (an unset shell variable) is an error, not "all trials"
        raw["trials"] = parse_backends(backends)
    if strategy is not None:
        from swagbench.bench.config.strategy import read_strategy

        raw["trials"] = [read_strategy(strategy)]
    for item in overrides or []:
        apply_override(raw, item)
    if raw.get("model_checkpoint") and isinstance(raw.get("train", {}), dict):
        # from a trained checkpoint every epoch collects SWAG moments: train.epochs are SWAG epochs
        raw["train"] = {"swa_start": 0, **raw.get("train", {})}
    return build(RunConfig, raw)
