"""Loading a run config: defaults <- a profile's run settings <- YAML file <- ``--backends`` <- ``key=value``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from backends.precisions import PRECISIONS
from bench.config.settings import RunConfig
from bench.errors import ConfigError
from swag import checked


def build(cls, raw: Any, where: str = ""):
    """Construct settings dataclass ``cls`` from nested dicts (:func:`swag.checked.build`: unknown keys and wrong
    types are a :class:`ConfigError`)."""
    return checked.build(cls, raw, where, ConfigError, root="config")


def parse_backends(spec: str) -> list[dict[str, Any]]:
    """``eager,eager:bf16,eager:fp32:cl`` -> trial dicts (backend[:precision][:cl])."""
    trials = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        trial: dict[str, Any] = {"backend": parts[0]}
        for part in parts[1:]:
            if part == "cl":
                trial["channels_last"] = True
            elif part in PRECISIONS:
                trial["precision"] = part
            else:
                raise ConfigError(
                    f"cannot read {part!r} in --backends item {item!r}; use backend[:{'|'.join(PRECISIONS)}][:cl]"
                )
        trials.append(trial)
    if not trials:
        raise ConfigError("--backends is empty; e.g. --backends eager,eager:bf16")
    return trials


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to nested dict ``raw`` in place."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {assignment!r} is not key=value (e.g. ensemble.samples=4)")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {assignment!r} has an unreadable value: {exc}") from exc
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
) -> RunConfig:
    """Load a run config: defaults <- ``base`` (a profile's run settings) <- YAML file <- ``--backends``
    <- ``key=value`` overrides."""
    raw: dict[str, Any] = dict(base or {})
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; see configs/ for examples")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at top level")
        raw.update(loaded)
    if backends is not None:  # --backends "" (an unset shell variable) is an error, not "all trials"
        raw["trials"] = parse_backends(backends)
    for item in overrides or []:
        apply_override(raw, item)
    return build(RunConfig, raw)
