"""Child processes that never outlive the process that started them."""

from __future__ import annotations


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (even by kill -9), so an orphan never keeps computing
    or writing into files that a resumed run is redoing."""
    import ctypes
    import os
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the parent's timeout and Ctrl-C handling still apply
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)
