"""Memory of processes: peak resident memory measured so that nothing is inherited from a parent, and anonymous
memory (what would run out), current and peak.

``getrusage``'s ``ru_maxrss`` is unusable for a spawned worker on Linux: at ``exec`` the kernel
folds the pre-exec (forked parent's) high-water mark into the child's, so every worker would
report at least the parent's peak. ``VmHWM`` in ``/proc/<pid>/status`` belongs to the address
space created by ``exec`` and is exact.
"""

from __future__ import annotations


def status_bytes(pid: int | str, *keys: str) -> dict[str, int]:
    """The ``/proc/<pid>/status`` fields ``keys`` (e.g. ``VmHWM``, ``VmRSS``, ``RssAnon``) in bytes; those that
    cannot be read (process gone, not Linux) are left out."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in keys:
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def peak_rss_bytes(pid: int | str = "self") -> int | None:
    """High-water RSS of process ``pid`` since its exec, in bytes; None if it cannot be read
    (process gone, or not Linux)."""
    return status_bytes(pid, "VmHWM").get("VmHWM")


def tree_rss_bytes(pid: int) -> int:
    """Current RSS of process ``pid`` and all its descendants, in bytes (0 once it is gone)."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def anon_bytes(pid: int | str = "self") -> int | None:
    """Current anonymous resident memory (``RssAnon``: heap, stacks, private maps; what would run out and be
    OOM-killed) of process ``pid``, in bytes; None if it cannot be read. Unlike RSS it leaves out the page cache
    of memory-mapped files (the data set, the member map), which the kernel can drop and processes share."""
    return status_bytes(pid, "RssAnon").get("RssAnon")


class AnonPeak:
    """Peak anonymous memory of this process, sampled every ``interval`` seconds by a daemon thread while the
    ``with`` block runs (``peak`` in bytes, also readable while it runs)."""

    def __init__(self, interval: float = 0.05) -> None:
        import threading

        self.interval, self.peak = interval, anon_bytes() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, anon_bytes() or 0)

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anon_bytes() or 0)


MMAP_THRESHOLD = 64 << 20  # bytes: larger allocations get their own mapping, returned to the kernel when freed


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc malloc's mmap threshold (``mallopt(M_MMAP_THRESHOLD)``) and its trim threshold at twice that
    (``M_TRIM_THRESHOLD``) for this process; True where both were set.

    By default glibc raises the threshold after a large block is freed (up to 32 MB), so the next batches and
    activations of that size come from its heap, which fragments and keeps growing: measured here, a worker's
    anonymous memory climbed from 0.6 to 1.0 GB over 20,000 images. A fixed threshold keeps it flat. Not a low
    one: at 4 MB every activation of a batch (ResNet-8 at 128 images: 6 MB) was a fresh mapping, zero-filled on
    first touch and unmapped when freed, and eager PyTorch ran 1.6x slower (4,911 vs 2,999 img/s here); at 64 MB
    they are reused from the heap and memory stays as flat (docs/measurements.md, ``make bench-memory``).

    Fixing one threshold also stops glibc moving the other: the trim threshold stayed at its 128 kB default, so the
    heap's free top was handed back to the kernel after nearly every batch and faulted in again, zero-filled, by the
    next: eager ResNet-8 predicted at 4,269-6,999 img/s and ran its BatchNorm pass at 3,142-3,702 instead of
    12,522-12,933 and 6,801-7,633 with the trim threshold at 128 MB (what glibc's own adjustment sets beside a 64 MB
    mmap threshold), for ~70 MB more resident memory (``python -m tests.benchmarks.malloc_bench``;
    docs/measurements.md: the harness share)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mmap = libc.mallopt(-3, int(nbytes))  # M_MMAP_THRESHOLD
        trim = libc.mallopt(-1, int(2 * nbytes))  # M_TRIM_THRESHOLD
        return bool(mmap and trim)
    except (OSError, AttributeError):
        return False  # not glibc
