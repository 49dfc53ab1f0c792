"""``make bench-check``: the speed regression checks (``tests/benchmarks``) against this machine type's baseline.

The first run on a machine type records the baseline (commit it). Later runs compare each benchmark's ``--stat``
(min by default: robust to a busy neighbour) with the baseline's; a benchmark more than ``--fail`` percent slower is
run once more on its own before it is reported, because a shared machine's one slow moment is not a regression
(+54% then +12% on the 2-core development VM). The last lines say, one per benchmark still slower after its rerun,
the baseline, now and the threshold; the exit status is 1 when there is any, 0 otherwise.

Usage: ``python -m tests.benchmarks.check --store tests/benchmarks/baselines/<machine> [--stat min] [--fail 40]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BENCHMARKS = "tests/benchmarks"
PYTEST_OPTIONS = [
    "-q",
    "-o",
    "addopts=",
    "-p",
    "no:cacheprovider",
    "--benchmark-only",
    "--benchmark-columns=min,median,iqr,rounds",
    "--benchmark-warmup=on",
    "--benchmark-min-rounds=20",
    "--benchmark-max-time=2",
]


def _pytest(targets: list[str], *extra: str) -> dict[str, dict]:
    """Run the benchmarks ``targets`` (paths or node ids); {name: {fullname, stats}} of those that ran."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "now.json"
        cmd = [sys.executable, "-m", "pytest", *targets, *PYTEST_OPTIONS, f"--benchmark-json={out}", *extra]
        done = subprocess.run(cmd, check=False)
        if done.returncode not in (0, 5) or not out.is_file():
            sys.exit(f"bench-check: the benchmarks themselves failed (pytest exit {done.returncode}); see above")
        return _by_name(out)


def _by_name(path: Path) -> dict[str, dict]:
    return {b["name"]: b for b in json.loads(path.read_text())["benchmarks"]}


def _slower(now: dict, base: dict, stat: str) -> float:
    """How much slower ``now`` is than ``base`` by ``stat``, as a fraction (0.54: 54% slower)."""
    return now["stats"][stat] / base["stats"][stat] - 1


def _ms(bench: dict, stat: str) -> str:
    return f"{bench['stats'][stat] * 1e3:.3g} ms"


def regressions(baseline: dict[str, dict], now: dict[str, dict], stat: str, fail: float, rerun) -> list[str]:
    """One line per benchmark of ``now`` more than ``fail`` percent slower than ``baseline`` by ``stat`` both times:
    in ``now`` and in ``rerun(fullnames)`` (a second run of just those)."""
    suspects = [name for name in now if name in baseline and _slower(now[name], baseline[name], stat) > fail / 100]
    if not suspects:
        return []
    print(f"bench-check: {len(suspects)} benchmark(s) over +{fail:g}%; running them again to tell noise from change")
    again = rerun([now[name]["fullname"] for name in suspects])
    lines = []
    for name in suspects:
        first = _slower(now[name], baseline[name], stat)
        second = _slower(again[name], baseline[name], stat) if name in again else first
        if second > fail / 100:
            lines.append(
                f"bench-check: REGRESSION {name}: {stat} {_ms(baseline[name], stat)} in the baseline, now "
                f"{_ms(again.get(name, now[name]), stat)} ({second:+.0%}; first run {first:+.0%}) > +{fail:g}%"
            )
        else:
            print(f"bench-check: {name} was {first:+.0%}, then {second:+.0%} on its rerun: noise, not reported")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, type=Path, help="this machine type's baseline folder")
    parser.add_argument("--stat", default="min", choices=["min", "median", "mean"])
    parser.add_argument("--fail", default=40.0, type=float, help="percent slower than the baseline that fails")
    args = parser.parse_args(argv)
    found = sorted(args.store.glob("*/0001_baseline.json"))
    storage = f"--benchmark-storage=file://{args.store}"
    if not found:
        _pytest([BENCHMARKS], storage, "--benchmark-save=baseline")
        print(f"bench-check: recorded the first baseline for this machine type in {args.store}; commit it")
        return 0
    now = _pytest([BENCHMARKS], storage, "--benchmark-autosave", "--benchmark-compare=0001")
    lines = regressions(_by_name(found[0]), now, args.stat, args.fail, lambda ids: _pytest(ids))
    for line in lines:
        print(line)
    if not lines:
        print(f"bench-check: {len(now)} benchmark(s) within +{args.fail:g}% of the baseline by {args.stat}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
