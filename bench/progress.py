"""Progress that suits where it goes: a tqdm bar on a terminal, plain milestone lines in a log or CI.

A bar redraws itself with carriage returns, which a file or a CI log keeps as one unreadable line per
redraw. When the stream is not a terminal, a task prints one line when it starts, one at each quarter
of its total and one when it ends, each with the elapsed time.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

MILESTONES = (0.25, 0.5, 0.75)


class Progress:
    """Progress of one task of ``total`` ``unit``\\ s called ``desc``.

    Parameters
    ----------
    total : int
        Units of work in the task (epochs, samples).
    desc, unit : str
        What the task is and what it counts, as the bar or the lines name them.
    stream : TextIO, optional
        Where progress goes (default: stderr). A terminal gets a tqdm bar, anything else plain lines.
    quiet_until_update : bool
        Say nothing until the first unit is done (a task that may turn out to have nothing to do,
        such as training when every posterior comes from the cache).
    """

    def __init__(
        self, total: int, desc: str, unit: str, stream: TextIO | None = None, quiet_until_update: bool = False
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.n = 0
        self._start = time.perf_counter()
        self._said = -1.0  # the last milestone printed (fraction of total); -1: not even the start
        self._bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, delay=1 if quiet_until_update else 0)
        elif not quiet_until_update:
            self._line("started")

    def update(self, done: int = 1) -> None:
        """``done`` more units finished."""
        self.update_to(self.n + done)

    def update_to(self, n: int) -> None:
        """``n`` units finished in all (never goes back)."""
        if n <= self.n:
            return
        if self._bar is not None:
            self._bar.update(n - self.n)
        self.n = n
        if self._bar is None:
            if self._said < 0:
                self._line("started")
            fraction = n / self.total if self.total else 1.0
            passed = [m for m in MILESTONES if self._said < m <= fraction]
            if passed and fraction < 1.0:
                self._line(f"{n}/{self.total} {self.unit}s")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.n:
            self._line(f"{'done' if self.n >= self.total else 'stopped at'} {self.n}/{self.total} {self.unit}s")

    def _line(self, what: str) -> None:
        elapsed = time.perf_counter() - self._start
        print(f"swagbench: {self.desc}: {what} ({elapsed:.0f} s)", file=self.stream, flush=True)
        self._said = max(self._said, self.n / self.total if self.total else 1.0)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
