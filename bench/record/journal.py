"""A job's durable progress, member by member: its journal of committed (fold, sample) members.

A member is committed in this order: its probabilities (the held-out rows of its fold) and its BatchNorm statistics
are written into the job's maps, the maps are flushed to disk, then one line is appended to the journal and the
journal is fsynced. A member without its line is recomputed by a resume, whatever state its rows were left in (a
process killed while writing them, say); a line names the SHA-256 of what it committed, so a resume also recomputes
a member whose rows no longer match it. Lines are appended with ``O_APPEND`` and are short, so workers committing
side by side never interleave within one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from swagbench.bench.errors import ResultsError


def member_digest(members: np.ndarray, bn_stats: np.ndarray, sample: int, fold: int, rows: np.ndarray) -> str:
    """SHA-256 of member (``fold``, ``sample``) as the maps hold it: its probabilities at ``rows`` (the fold's held-out
    examples) and its BatchNorm statistics."""
    digest = hashlib.sha256(np.ascontiguousarray(members[sample, rows]).tobytes())
    digest.update(np.ascontiguousarray(bn_stats[sample, fold]).tobytes())
    return digest.hexdigest()


class MemberJournal:
    """``journal.jsonl``: one line ``{"fold", "sample", "sha256"}`` per committed member."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, fold: int, sample: int, sha256: str) -> None:
        line = json.dumps({"fold": int(fold), "sample": int(sample), "sha256": sha256}) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def committed(self) -> dict[tuple[int, int], str]:
        """(fold, sample) -> SHA-256 of every committed member. A torn last line (a process killed while appending)
        is not a commit; a damaged line anywhere else means the journal was edited, which is refused."""
        if not self.path.is_file():
            return {}
        lines = self.path.read_text().split("\n")
        out = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                out[(int(entry["fold"]), int(entry["sample"]))] = str(entry["sha256"])
            except (ValueError, KeyError, TypeError) as exc:
                if number == len(lines):  # the unfinished last line of an append that was cut short
                    break
                raise ResultsError(
                    f"{self.path} line {number} is damaged ({exc}); delete that line to recompute its member"
                ) from None
        return out


def commit(
    members: np.ndarray,
    bn_stats: np.ndarray,
    journal: MemberJournal,
    sample: int,
    fold: int,
    rows: np.ndarray,
    probs: np.ndarray,
    vector: np.ndarray,
) -> None:
    """Write member (``fold``, ``sample``) into the maps (``rows``: the fold's held-out examples), flush them, then
    journal it: once this returns, a kill of any process loses nothing of it."""
    members[sample, rows] = probs
    bn_stats[sample, fold] = vector
    members.flush()
    bn_stats.flush()
    journal.append(fold, sample, member_digest(members, bn_stats, sample, fold, rows))
