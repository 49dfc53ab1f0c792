"""Peak resident memory of a process, measured so that nothing is inherited from its parent.

``getrusage``'s ``ru_maxrss`` is unusable for a spawned worker on Linux: at ``exec`` the kernel
folds the pre-exec (forked parent's) high-water mark into the child's, so every worker would
report at least the parent's peak. ``VmHWM`` in ``/proc/<pid>/status`` belongs to the address
space created by ``exec`` and is exact.
"""

from __future__ import annotations


def peak_rss_bytes(pid: int | str = "self") -> int | None:
    """High-water RSS of process ``pid`` since its exec, in bytes; None if it cannot be read
    (process gone, or not Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


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
