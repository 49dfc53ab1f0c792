"""The row store: ``results/<run-id>/results.jsonl``, one checksummed row per trial. It only stores and loads;
what shows rows (tables, charts, the page) is ``swagbench.bench.report``.

Rows are appended with a single ``write`` on an O_APPEND descriptor followed by fsync, so a
row is either wholly on disk or absent. Each row carries ``row_sha256``, the SHA-256 of its own
canonical JSON without that key: a torn last line (killed mid-write) or a damaged line is detected
on read, reported, and skipped; every other row is kept. A resumed run appends a newer row for a
trial; readers take the last one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from swagbench.bench.errors import ResultsError
from swagbench.bench.record.row import TrialRow, as_row
from swagbench.bench.record.rundir import RunDir

CHECKSUM = "row_sha256"


def _digest(row: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in row.items() if k != CHECKSUM}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def append_row(run_dir: str | Path | RunDir, row: TrialRow | dict[str, Any]) -> None:
    """Append one checksummed JSON row (checked against :class:`swagbench.bench.record.row.TrialRow`) to the run's
    results.jsonl atomically and durably."""
    row = as_row(row).to_dict()
    line = json.dumps({**row, CHECKSUM: _digest(row)}, sort_keys=True) + "\n"
    path = RunDir(run_dir).rows_path
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ResultsError(f"cannot open {path} for writing ({exc.strerror}); pass a writable run directory") from exc
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line  # after a torn line: start a fresh one, leave the fragment to be skipped
        os.write(fd, line.encode())
        os.fsync(fd)
    except OSError as exc:
        raise ResultsError(
            f"cannot write results to {path} ({exc.strerror}); free disk space and resume the run"
        ) from exc
    finally:
        os.close(fd)


def read_rows(run_dir: str | Path | RunDir, warn=None, strict: bool = False) -> list[TrialRow]:
    """The latest complete row of every trial, in first-seen order.

    A line that does not parse or fails its checksum (torn by a kill, damaged on disk) is
    skipped and reported through ``warn`` (default: stderr); with ``strict`` (commands that rewrite a finished
    run's outputs from its rows) it raises ResultsError naming the line instead. An intact row that is not of this
    swagbench's schema (a newer version, an unknown field, a non-finite time) raises ResultsError: never misread.
    """
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    path = RunDir(run_dir).rows_path
    if not path.is_file():
        raise ResultsError(f"{path} does not exist; pass a run directory made by 'swagbench run'")
    try:
        lines = path.read_bytes().decode(errors="replace").splitlines()
    except OSError as exc:
        raise ResultsError(f"cannot read {path} ({exc.strerror}); check the permissions of the run directory") from exc
    rows: dict[str, dict[str, Any]] = {}
    last_line: dict[str, int] = {}  # trial id -> line of its latest intact row
    damaged: list[tuple[int, str | None]] = []  # (line, trial id if it can still be read)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            intact = isinstance(row, dict) and row.get(CHECKSUM) == _digest(row)
        except json.JSONDecodeError:
            row, intact = None, False
        if not intact:
            trial = row.get("trial_id") if isinstance(row, dict) else re.search(r'"trial_id": "([^"]+)"', line)
            damaged.append((number, trial if isinstance(trial, str) or trial is None else trial.group(1)))
            continue
        row.pop(CHECKSUM)
        row = TrialRow.from_dict(row, where=f"{path} line {number}")
        rows[row.trial_id] = row  # a rerun's row replaces the earlier one, in its place
        last_line[row.trial_id] = number
    for number, trial in damaged:
        # Damage matters until its trial has a newer intact row. A torn fragment too short to name its trial
        # was the last row being written; a resume reruns that trial first, so any later intact row means so.
        if trial is not None:
            superseded = last_line.get(trial, 0) > number
        else:
            superseded = any(line > number for line in last_line.values())
        if not superseded and strict:
            raise ResultsError(
                f"{path} line {number}{f' (trial {trial})' if trial else ''} is torn or damaged (its checksum does "
                "not match); resume the run to rerun that trial (swagbench run --resume <run folder>), or restore "
                "the file; nothing was rewritten"
            )
        if not superseded:
            warn(f"swagbench: {path} line {number} is torn or damaged; skipped (its trial reruns on --resume)")
    if strict and not rows:
        raise ResultsError(
            f"{path} holds no trial row: the run recorded nothing yet; resume it (swagbench run --resume <run folder>)"
        )
    return list(rows.values())


def has_rows(run_dir: str | Path | RunDir) -> bool:
    """Whether the run has recorded any row yet (a run killed while training has none)."""
    return RunDir(run_dir).rows_path.is_file()
