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


class MemberProgress:
    """A job's progress: a plain line each time another tenth of the ensemble's members is committed (each member
    when there are 20 or fewer), with members done of total, images per second, the time left at the rate measured
    so far, and the money spent so far where the machine's price per hour is known."""

    def __init__(
        self,
        total: int,
        done: int,
        images_per_member: float,
        price_per_hour: float | None = None,
        log=None,
    ) -> None:
        self.total, self.start_done, self.done = total, done, done
        self.images, self.price = images_per_member, price_per_hour
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.step = 1 if total <= 20 else total / 10
        self.next = done + self.step
        self._start = time.perf_counter()
        self._first: tuple[float, int] | None = None  # when the first member of this session was committed

    def update(self, done: int) -> None:
        """``done`` members committed in all (never goes back)."""
        if done <= self.done:
            return
        if self._first is None:  # rates from here on: worker start-up is not a member's cost
            self._first = (time.perf_counter(), done)
        self.done = done
        if done >= self.next or done == self.total:
            while self.next <= done:
                self.next += self.step
            self.log(self.line())

    def line(self) -> str:
        now = time.perf_counter()
        elapsed = now - self._start
        since, first = self._first or (self._start, self.start_done)
        rate = (self.done - first) / (now - since) if self.done > first and now > since else 0.0
        left = (self.total - self.done) / rate if rate else float("inf")
        parts = [f"{self.done}/{self.total} members", f"{rate * self.images:,.0f} img/s" if rate else ""]
        parts.append(f"ETA {duration(left)}" if self.done < self.total else f"took {duration(elapsed)}")
        if self.price is not None:
            parts.append(f"${self.price * elapsed / 3600:,.2f} so far")
        return "swagbench: job: " + ", ".join(p for p in parts if p)

    def __enter__(self) -> MemberProgress:
        return self

    def __exit__(self, *exc) -> None:
        pass


def duration(seconds: float) -> str:
    """Seconds as people read them: ``4.2 s``, ``42 s``, ``7.5 min``, ``32.1 h``."""
    if seconds != seconds or seconds == float("inf"):
        return "unknown"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
