"""Decode worker processes: ``python -m swagbench.bench.dataset.decoder X.npy SIZE CHANNELS``.

Each worker is a fresh interpreter that decodes the images it is sent (one JSON line ``[index, path]`` each on
its stdin) straight into row ``index`` of the store's memory-mapped ``x.npy`` and answers one JSON line
``[index, error or null]``. Fresh interpreters, not multiprocessing: a fork would copy a parent that may hold
torch's threads, and multiprocessing's spawn re-imports the caller's ``__main__``, so a user's script without an
``if __name__ == "__main__":`` guard would run again in every worker. A worker dies with its parent.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from swagbench.bench.errors import DataError

IN_FLIGHT = 8  # images sent ahead to each worker, so none waits for the parent


def decode_into(x_path: Path, paths: list[Path], size: int, channels: int, workers: int, on_image) -> None:
    """Decode ``paths[i]`` into row i of the (N, channels, size, size) uint8 ``.npy`` at ``x_path`` with
    ``workers`` processes; a file that cannot be decoded stops them all and raises DataError naming it."""
    todo = iter(enumerate(paths))
    answers: queue.Queue = queue.Queue()
    procs = []
    try:
        for _ in range(max(1, min(workers, len(paths)))):
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(x_path), str(size), str(channels)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            )
            procs.append(proc)
            threading.Thread(target=_read_answers, args=(proc, answers), daemon=True).start()
            for _ in range(IN_FLIGHT):
                _send(proc, todo)
        for _ in paths:
            proc, line = answers.get()
            if line is None:
                raise DataError(
                    f"an image decoding process died (exit {proc.wait()}); run again, or set data.decode_workers=1"
                )
            index, error = json.loads(line)
            if error is not None:
                raise DataError(f"cannot decode image {paths[index]} ({error}); fix or remove the file")
            on_image()
            _send(proc, todo)
        for proc in procs:  # all answered: let each flush its writes and exit
            proc.stdin.close()
            proc.wait(timeout=60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _read_answers(proc: subprocess.Popen, answers: queue.Queue) -> None:
    for line in proc.stdout:
        answers.put((proc, line))
    answers.put((proc, None))


def _send(proc: subprocess.Popen, todo) -> None:
    job = next(todo, None)
    if job is not None:
        proc.stdin.write(json.dumps([job[0], str(job[1])]) + "\n")
        proc.stdin.flush()


def main(argv: list[str]) -> int:
    from swagbench.bench.dataset.images import decode
    from swagbench.children import die_with_parent

    die_with_parent()
    x_path, size, channels = Path(argv[0]), int(argv[1]), int(argv[2])
    x = np.load(x_path, mmap_mode="r+")
    for line in sys.stdin:
        index, path = json.loads(line)
        try:
            x[index] = decode(Path(path), size, channels)
            error = None
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which names the file
            error = f"{type(exc).__name__}: {exc}"
        print(json.dumps([index, error]), flush=True)
    x.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
