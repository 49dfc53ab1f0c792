"""Worker process entry: ``python -m swagbench.bench.execute.worker SPEC.json RESULT.json``.

Progress goes to stdout as ``progress DONE TOTAL`` lines; the result (or the error) is
written to RESULT.json. Exit code 0 on success, 1 on a Python error; a crash leaves no
result and the parent records the signal.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from swagbench.children import die_with_parent


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    die_with_parent()
    from swagbench.bench.execute.worker_loop import TrialSpec, run_tasks

    def progress(done: int, total: int) -> None:
        print(f"progress {done} {total}", flush=True)

    try:
        payload = {"ok": True, **run_tasks(TrialSpec.load(spec_path), progress)}
    except Exception as exc:  # reported to the parent, which records a failed row
        traceback.print_exc()
        payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(result_path)
    return 0 if payload["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
