"""Run-to-run noise of the speed checks: each saved check's median / the baseline's, per benchmark.

Usage (after a few ``make bench-check`` runs on one machine): ``python tests/benchmarks/noise.py STORE [min|median]``
where STORE is ``tests/benchmarks/baselines/<machine key>``. The largest slowdown printed for the
statistic ``BENCH_STAT`` compares is what ``BENCH_FAIL`` must exceed there to avoid false alarms.
"""

import json
import sys
from pathlib import Path


def main(store: str, stat: str = "min") -> None:
    files = sorted(Path(store).glob("*/*.json"))
    if len(files) < 2:
        sys.exit(f"{store} holds {len(files)} saved run(s); run 'make bench-check' a few more times first")
    runs = [{b["name"]: b["stats"][stat] for b in json.loads(f.read_text())["benchmarks"]} for f in files]
    base, worst = runs[0], {}
    print(f"{stat} of each later run / {files[0].name}:")
    for name in base:
        ratios = [r[name] / base[name] for r in runs[1:] if name in r]
        worst[name] = max(ratios)
        print(f"  {name:45s} " + " ".join(f"{x:.2f}" for x in ratios))
    name, ratio = max(worst.items(), key=lambda kv: kv[1])
    print(f"{len(runs)} runs; largest slowdown {100 * (ratio - 1):.0f}% ({name})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
