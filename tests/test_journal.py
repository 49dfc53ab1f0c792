"""A job's member journal: what counts as committed."""

import numpy as np
import pytest

from swagbench.bench.errors import ResultsError
from swagbench.bench.execute.members import audit_members, split, tasks_of
from swagbench.bench.record.journal import MemberJournal, commit, member_digest


def test_a_committed_member_is_in_the_maps_and_journaled_with_its_digest(tmp_path):
    members = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32, shape=(2, 6, 3))
    bn = np.lib.format.open_memmap(tmp_path / "b.npy", mode="w+", dtype=np.float32, shape=(2, 2, 2, 4))
    journal = MemberJournal(tmp_path / "journal.jsonl")
    rows, probs = np.array([1, 3, 5]), np.full((3, 3), 1 / 3, np.float32)
    commit(members, bn, journal, 1, 0, rows, probs, np.ones((2, 4), np.float32))
    assert np.array_equal(members[1, rows], probs) and (bn[1, 0] == 1).all()
    assert journal.committed() == {(0, 1): member_digest(members, bn, 1, 0, rows)}
    members[1, 3, 0] = 0.5  # rows changed since: the digest no longer matches
    assert journal.committed()[(0, 1)] != member_digest(members, bn, 1, 0, rows)


def test_a_torn_last_line_is_no_commit_and_a_damaged_earlier_line_is_refused(tmp_path):
    path = tmp_path / "journal.jsonl"
    path.write_text('{"fold": 0, "sample": 0, "sha256": "a"}\n{"fold": 0, "sam')
    assert MemberJournal(path).committed() == {(0, 0): "a"}
    path.write_text('{"fold": 0, "sam\n{"fold": 0, "sample": 1, "sha256": "b"}\n')
    with pytest.raises(ResultsError, match="line 1 is damaged"):
        MemberJournal(path).committed()


def test_members_split_into_contiguous_tasks_and_the_audit_spreads_over_folds():
    members = [(0, 0), (0, 1), (0, 3), (1, 0), (1, 1)]
    assert tasks_of(members) == [[0, 0, 2], [0, 3, 4], [1, 0, 2]]
    assert split(members, 2) == [members[:2], members[2:]] and split(members, 9) == [[m] for m in members]
    assert audit_members(5, 4, 3) == [(0, 0), (1, 0), (2, 0)] and audit_members(2, 1, 5) == [(0, 0), (1, 0)]
