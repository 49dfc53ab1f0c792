"""A strategy file, ``recommendation.json``: its format tag, and reading the trial settings it recommends (the
answer writes it: ``swagbench.bench.answer.recommend``; ``run --strategy``, ``job`` and the predictor read it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from swagbench.bench.errors import ConfigError

FORMAT = "swagbench-recommendation-v1"


def read_strategy(path: str | Path) -> dict[str, Any]:
    """The trial settings in a recommendation.json (ConfigError naming the file when it is not one, or recommends
    nothing)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"strategy file {path} cannot be read as JSON ({exc}); give a run's recommendation.json"
        ) from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ConfigError(f"strategy file {path} is not a swagbench recommendation.json (format {FORMAT})")
    if not isinstance(record.get("strategy"), dict):
        raise ConfigError(f"strategy file {path} recommends no strategy (its run had no VALID trial)")
    return record["strategy"]
