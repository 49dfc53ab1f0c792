"""``swagbench`` command line. User mistakes print one line and exit 2; no tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import sys

from swagbench.bench.config.settings import EXECUTOR_NAMES
from swagbench.bench.errors import USER_ERRORS, JobFailed

EPILOG = """examples:
  swagbench run                                  # embedded default: every built-in backend and precision
  swagbench config --show                        # every setting with its default and meaning
  swagbench run --config configs/quick.yaml      # a config file
  swagbench run --backends eager,eager:bf16 ensemble.samples=4 data.noise_rate=0.1
  swagbench run --resume results/<run-id>        # finish an interrupted run (its stored config)
  swagbench run --profile n2-highcpu-32          # thread plan + memory limit of the target VM
  swagbench sweep --backends eager,openvino      # the local profile's workers x threads / batch / layout grid
  swagbench sweep --grid workers_threads=1x2,2x1 --grid batch_size=64,256
  swagbench list-backends
  swagbench report results/<run-id>              # summary + charts + report.html
  swagbench compare results/<run-a> results/<run-b>
  swagbench estimate results/<run-id> --images 50000 --samples 16   # minutes and money for your data
  swagbench tune results/<run-id>                # cheapest VALID BatchNorm + predict engines, verified
  swagbench ceiling results/<run-id>             # each runtime's own throughput on the model: the yardstick
"""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as every other user mistake: one ``swagbench: error:`` line, exit code 2."""

    def error(self, message: str):
        command = self.prog.removeprefix("swagbench").strip()
        where = f"{command}: " if command else ""
        sys.stderr.write(f"swagbench: error: {where}{message}; see '{self.prog} --help'\n")
        sys.exit(2)


MAX_COUNT = 10**9  # images, folds or samples: far beyond any job, well inside what the arithmetic handles


def count(text: str) -> int:
    """A positive whole number as people type it: ``50000``, ``50,000``, ``5e4``; refused: 0, negatives, fractions,
    nan, inf and sizes beyond :data:`MAX_COUNT`."""
    try:
        value = float(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value != int(value) or not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number from 1 to {MAX_COUNT:,}")
    return int(value)


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite number of seconds")
    return value


def _common_run_args(cmd: argparse.ArgumentParser, target: bool = True) -> None:
    cmd.add_argument("--config", metavar="YAML", help="run config file (see configs/); default: embedded default")
    cmd.add_argument(
        "--backends",
        metavar="LIST",
        help="replace the config's trials: comma list of backend[:fp32|bf16|int8][:cl], "
        "cl = channels_last (e.g. eager,eager:bf16,eager:fp32:cl)",
    )
    cmd.add_argument(
        "--strategy",
        metavar="JSON",
        help="run the strategy a run recommended (its recommendation.json) as the trial (the eager fp32 reference "
        "is added to judge it); replaces the config's trials",
    )
    for key, what in (("images", "images in your data set"), ("folds", "its folds K"), ("samples", "SWAG samples S")):
        if not target:  # a job is its own target
            break
        cmd.add_argument(
            f"--target-{key}",
            type=count,
            metavar="N",
            help=f"the job the answer is for: {what} (default: target.{key} of the config, see config --show); "
            "tables project every trial to it and the recommendation ranks by the projection",
        )
    cmd.add_argument("--results-dir", metavar="DIR", help="where run folders are created (default: results)")
    cmd.add_argument("--name", help="run name, appended to the run folder's timestamp")
    cmd.add_argument(
        "--profile",
        metavar="NAME|YAML",
        help="hardware profile (local, n2-highcpu-32: bench/measure/profiles/*.yaml; or a YAML path): thread budget, "
        "workers, memory limit; recorded, and a host that does not match is reported",
    )
    cmd.add_argument(
        "--executor",
        choices=EXECUTOR_NAMES,
        help="where trial workers run: local processes (default) or Ray tasks (pip install -e '.[ray]')",
    )
    cmd.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --executor ray: auto (this machine's cluster) or ray://host:10001; default: a new local instance",
    )
    cmd.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted config overrides, value in YAML (e.g. ensemble.samples=4 train.epochs=10 "
        "data.source=my.npz threads=2 workers=2 timeout_s=600 memory_limit_gb=30)",
    )


def _parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    p = _Parser(
        prog="swagbench",
        description="Benchmark CPU inference strategies on a SWAG-ensemble + confident-learning pipeline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"swagbench {version('swagbench')}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="train SWAG posteriors per fold and run every backend trial",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a benchmark. Settings come from the embedded defaults, then --profile, then --config, "
        "then --backends, then key=value overrides.",
    )
    sweep = sub.add_parser(
        "sweep",
        help="run every trial over a grid of workers x threads, batch size, channels_last, members",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A run whose trials are the config's trials times a grid (default: the profile's sweep "
        "section, profile 'local' unless --profile). The report's scaling chart shows it.",
    )
    for cmd in (run, sweep):
        _common_run_args(cmd)
    job = sub.add_parser(
        "job",
        help="run your whole ensemble with one strategy (a run's recommendation.json or one --backends engine)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The job a benchmark answers for, on all of your data: the same data store, folds, posteriors "
        "and per-sample step as a run, ONE strategy and no reference trial (an audit of audit.members members "
        "against eager fp32 runs first). Every (fold, sample) member is committed as soon as it is computed: "
        "after a kill, a preemption or Ctrl-C, --resume JOB_DIR computes only the rest. Writes pred_probs.npy, "
        "label_issues.csv, job.json and job.md into the job folder.",
    )
    _common_run_args(job, target=False)
    job.add_argument("--resume", metavar="JOB_DIR", help="finish an interrupted job (from any directory)")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a sweep dimension and its values (repeatable): workers_threads=1x2,2x1 batch_size=32,128 "
        "channels_last=false,true members=stream,hold; replaces the profile's values for that key",
    )
    for cmd in (run, sweep):  # a sweep is a run: both resume the same way
        cmd.add_argument(
            "--resume",
            metavar="RUN_DIR",
            help="continue an interrupted run in RUN_DIR with its stored config (a sweep's trials included): "
            "trials with a recorded row are kept; only timeout_s=... and memory_limit_gb=... may be given with it",
        )
        cmd.add_argument(
            "--retry-failed", action="store_true", help="with --resume: also rerun failed, timed-out and skipped trials"
        )
    _reading_commands(sub)
    return p


def _on_a_run(sub, name: str, help: str, description: str | None = None):
    """A command that works on one run folder (its first argument)."""
    cmd = sub.add_parser(name, help=help, description=description)
    cmd.add_argument("run_dir", help="a results/<run-id> directory")
    return cmd


def _reading_commands(sub) -> None:
    """The commands that read runs or settings rather than make a run."""
    conf = sub.add_parser("config", help="show every setting (key, default, meaning) a run config or override takes")
    conf.add_argument("--show", action="store_true", help="print the settings (the default action)")
    sub.add_parser("list-backends", help="list registered backends with availability and the reason if not")
    _on_a_run(sub, "summary", "rebuild and print summary.csv/summary.md of a run directory")
    _on_a_run(sub, "report", "write summary tables, PNG charts and a self-contained report.html")
    est = _on_a_run(
        sub,
        "estimate",
        "project every trial's whole-ensemble minutes (and money) for your own data size from a run",
        "Project each trial's whole-ensemble minutes for N images from a run's measured per-image and "
        "per-sample costs, phase by phase; with the price per hour of the run's profile when the run was on that "
        "machine.",
    )
    est.add_argument("--images", type=count, required=True, metavar="N", help="images in your data set")
    est.add_argument("--folds", type=count, metavar="K", help="cross-validation folds (default: the run's)")
    est.add_argument("--samples", type=count, metavar="S", help="SWAG samples per fold (default: the run's)")
    est.add_argument(
        "--check",
        metavar="RUN_DIR",
        help="a real run of the projected size: show what it measured beside each projection, and the error",
    )
    tune = _on_a_run(
        sub,
        "tune",
        "compose the cheapest VALID BatchNorm engine and predict engine of a run for its target, and verify it",
        "From a run's measured per-phase costs projected to its target (config target:), take the "
        "cheapest VALID trial's BatchNorm pass and the cheapest VALID trial's predict side; where they differ, a "
        "hybrid trial (bn: beside backend:) combines them. It is then run beside the eager fp32 reference in a new "
        "run folder (the run's data, folds and posteriors) and gated; that run's recommendation.json is the answer.",
    )
    tune.add_argument("--dry-run", action="store_true", help="print the composed strategy without running it")
    ceil = _on_a_run(
        sub,
        "ceiling",
        "measure each runtime's own throughput on a run's model (the yardstick) and add it to the report",
        "For every backend, precision, layout and batch the run's trials used: OpenVINO's benchmark_app, "
        "an ONNX Runtime session loop and an eager loop on the plain eval model with weights as constants. Writes "
        "ceilings.json and rebuilds the report with each trial's share of its runtime's ceiling.",
    )
    ceil.add_argument("--seconds", type=seconds, default=5.0, help="timed seconds per measurement (default 5)")
    cmp_ = sub.add_parser("compare", help="two runs side by side with B/A ratios (before/after, machine vs machine)")
    cmp_.add_argument("run_a", help="baseline run directory (A)")
    cmp_.add_argument("run_b", help="run directory to compare with it (B)")


def _resume(args: argparse.Namespace) -> int:
    """``run --resume RUN_DIR``: the run's stored config again; any other setting given is refused."""
    from swagbench.bench.config import RESUME_FREE, load_config
    from swagbench.bench.errors import ConfigError
    from swagbench.bench.record.rundir import RunDir
    from swagbench.bench.run import execute

    free = [o for o in args.overrides if o.partition("=")[0] in RESUME_FREE[2:]]  # cannot change results
    args.overrides = [o for o in args.overrides if o not in free]
    given = [
        f
        for f, v in (
            ("--config", args.config),
            ("--backends", args.backends),
            ("--strategy", args.strategy),
            ("--name", args.name),
            ("--results-dir", args.results_dir),
            ("--profile", args.profile),
            ("--executor", args.executor),
            ("--ray-address", args.ray_address),
            (
                "--target-images/--target-folds/--target-samples",
                args.target_images or args.target_folds or args.target_samples,
            ),
            ("--grid", getattr(args, "grid", None)),
            ("KEY=VALUE", args.overrides),
        )
        if v
    ]
    if given:
        raise ConfigError(f"--resume reruns the run's stored config; drop {', '.join(given)} or start a new run")
    run = RunDir.existing(args.resume)
    # Everything the run stores resolves against its folder, wherever it is now and whatever the cwd:
    # its results_dir is the folder it lives in (so the default posterior cache is found beside it).
    stored = load_config(run.config_path, [f"results_dir={run.path.parent}", *free])
    return _outcome(execute(stored, resume=run.path, retry_failed=args.retry_failed))


def _job(args: argparse.Namespace) -> int:
    """``swagbench job``: a new job from the command line's settings, or ``--resume JOB_DIR`` with its stored ones."""
    from swagbench.bench.config import load_config
    from swagbench.bench.errors import ConfigError
    from swagbench.bench.job import job
    from swagbench.bench.measure.hardware_profiles import load_profile, profile_overrides
    from swagbench.bench.record.rundir import RunDir

    if args.resume:
        given = [o for o in ("config", "backends", "strategy", "name", "results_dir", "profile") if getattr(args, o)]
        if given or args.overrides:
            drop = ", ".join([f"--{g.replace('_', '-')}" for g in given] + list(args.overrides))
            raise ConfigError(f"--resume finishes the job with its stored settings; drop {drop} or start a new job")
        run = RunDir.existing(args.resume)
        stored = load_config(run.config_path, [f"results_dir={run.path.parent}"])
        job(stored, resume=run.path, strategy_file=(run.read_job() or {}).get("strategy_file"))
        return 0
    if bool(args.strategy) == bool(args.backends):
        raise ConfigError("a job runs one strategy: give --strategy RUN/recommendation.json or --backends ENGINE")
    profile = load_profile(args.profile) if args.profile else None
    overrides = _overrides(args)
    if not any(o.startswith("name=") for o in overrides):
        overrides.append("name=job")
    base = profile_overrides(profile) if profile else None
    config = load_config(args.config, overrides, args.backends, base=base, strategy=args.strategy)
    job(config, strategy_file=args.strategy, profile=profile)
    return 0


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from swagbench.bench.config import RunConfig, build, expand_sweep, load_config, parse_grid
    from swagbench.bench.errors import ConfigError
    from swagbench.bench.measure.hardware_profiles import host_mismatch, load_profile, profile_overrides
    from swagbench.bench.run import execute

    if getattr(args, "resume", None):
        return _resume(args)
    if getattr(args, "retry_failed", False):
        raise ConfigError("--retry-failed only applies with --resume RUN_DIR")
    overrides = _overrides(args)
    sweeping = args.command == "sweep"
    profile = load_profile(args.profile or "local") if args.profile or sweeping else None
    if args.strategy and args.backends:
        raise ConfigError("--strategy and --backends both choose the trials; give one")
    config = load_config(
        args.config,
        overrides,
        args.backends,
        base=profile_overrides(profile) if profile else None,
        strategy=args.strategy,
    )
    if profile:
        mismatch = host_mismatch(profile)
        print(f"swagbench: profile {profile['name']}" + (f": {mismatch}" if mismatch else " (this host matches it)"))
    if sweeping:
        grid = {**profile["sweep"], **parse_grid(args.grid)}
        trials = expand_sweep(config.trials, grid)
        print(f"swagbench: sweep of {len(trials)} trials over {', '.join(f'{k}={v}' for k, v in grid.items() if v)}")
        config = build(RunConfig, {**config.to_dict(), "trials": [dataclasses.asdict(t) for t in trials]})
    return _outcome(execute(config, profile=profile))


def _overrides(args: argparse.Namespace) -> list[str]:
    """The command line's settings of a new run as ``key=value`` overrides: the user's own, then the options'
    (``--name`` and the like), which come last and so win."""
    options = {
        "results_dir": args.results_dir,
        "name": args.name,
        "executor": args.executor,
        "ray_address": args.ray_address,
        **{f"target.{key}": getattr(args, f"target_{key}", None) for key in ("images", "folds", "samples")},
    }
    return list(args.overrides) + [f"{key}={value}" for key, value in options.items() if value not in (None, "")]


def _outcome(run_dir) -> int:
    """Exit code of a finished run: 1 (and one line saying so) when no trial succeeded, else 0."""
    from swagbench.bench.record.row_store import read_rows
    from swagbench.bench.record.rundir import RunDir

    if not any(r.status == "ok" for r in read_rows(run_dir)):
        print(f"swagbench: no trial succeeded (see {RunDir(run_dir).summary_md} for each one's error)", file=sys.stderr)
        return 1
    return 0


def show_config() -> str:
    """Every config key with its default, section by section, under the section's documentation."""
    import dataclasses
    import inspect

    import yaml

    from swagbench.bench.config import RunConfig, TrialConfig

    lines = []

    def section(cls, prefix: str, instance) -> None:
        lines.extend(["", f"# {prefix or 'top level'} ({cls.__name__})"])
        lines.extend(f"#   {line}" if line else "#" for line in inspect.cleandoc(cls.__doc__ or "").splitlines())
        nested = []
        for f in dataclasses.fields(cls):
            value = getattr(instance, f.name)
            if dataclasses.is_dataclass(value):
                nested.append((type(value), f"{prefix}{f.name}.", value))
            elif f.name == "trials":
                lines.append(f"{prefix}trials: [list of trials, see below; default: {len(value)} trials]")
            else:  # as YAML, the way a config file or key=value override writes it
                text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
                lines.append(f"{prefix}{f.name}: {text}")
        for args in nested:
            section(*args)

    section(RunConfig, "", RunConfig())
    section(TrialConfig, "trials[].", TrialConfig())
    return "\n".join(lines).lstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    import os

    # module:factory models and module:Class backends from the user's own directory, as a script would find them
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may stand anywhere on the line, also after an option (argparse stops collecting
    # a positional list at the first option).
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        with _terminate_like_ctrl_c():
            return _command(args)
    except USER_ERRORS as exc:
        print(f"swagbench: error: {exc}", file=sys.stderr)
        return 2
    except JobFailed as exc:
        print(f"swagbench: job stopped: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a full or read-only disk, a vanished folder: the environment, not a bug
        where = f" ({exc.filename})" if exc.filename else ""
        fix = "free disk space, then resume" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check the path"
        print(f"swagbench: error: {exc.strerror or exc}{where}; {fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from swagbench.bench.errors import RunInterrupted, Terminated

        job = isinstance(exc, RunInterrupted) and exc.command == "job"
        hint = (
            f"; finish it with: swagbench {exc.command} --resume {exc.run_dir}"
            if isinstance(exc, RunInterrupted)
            else ""
        )
        # the signal itself, not only the exception's type: a library's code (Ray's wait) may catch the Terminated our
        # handler raised inside it and raise a plain KeyboardInterrupt instead (exit 130 under Ray, now and then)
        terminated = isinstance(exc, Terminated) or getattr(exc, "terminated", False) or _SIGTERM_SEEN

        how = "terminated (SIGTERM)" if terminated else "interrupted"
        kept = "committed members are kept" if job else "rows already written are kept"
        print(f"swagbench: {how}; {kept}{hint}", file=sys.stderr)
        return 143 if terminated else 130


_SIGTERM_SEEN = False  # set by the SIGTERM handler below: how the command's interruption is reported


@contextlib.contextmanager
def _terminate_like_ctrl_c():
    """While the command runs, SIGTERM raises :class:`swagbench.bench.errors.Terminated` (a KeyboardInterrupt): workers
    are
    stopped, rows kept and the resume hint printed, as for Ctrl-C (main thread only; the old handler comes back)."""
    import signal
    import threading

    from swagbench.bench.errors import Terminated

    def terminated(_signum, _frame):
        global _SIGTERM_SEEN
        _SIGTERM_SEEN = True
        raise Terminated()

    global _SIGTERM_SEEN
    _SIGTERM_SEEN = False  # this command's own signal only (tests call main() many times in one process)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _command(args: argparse.Namespace) -> int:
    """Run the parsed command; its exit code."""
    if args.command in ("run", "sweep"):
        return _run(args)
    if args.command == "job":
        return _job(args)
    if args.command == "config":
        print(show_config(), end="")
    elif args.command == "list-backends":
        list_backends()
    elif args.command == "summary":
        from swagbench.bench.report import write_summary

        print(write_summary(args.run_dir))
    elif args.command == "report":
        from swagbench.bench.report import build_report

        print(f"swagbench: report written to {build_report(args.run_dir)}")
    elif args.command == "estimate":
        from swagbench.bench.estimate import estimate, render

        print(render(*estimate(args.run_dir, args.images, args.folds, args.samples, args.check)), end="")
    elif args.command == "ceiling":
        from swagbench.bench.measure.ceiling import measure
        from swagbench.bench.report import build_report

        measure(args.run_dir, seconds=args.seconds)
        print(f"swagbench: report written to {build_report(args.run_dir)}")
    elif args.command == "tune":
        from swagbench.bench.tune import tune

        run_dir = tune(args.run_dir, verify=not args.dry_run)
        return _outcome(run_dir) if run_dir is not None else 0
    elif args.command == "compare":
        from swagbench.bench.report import compare

        print(compare(args.run_a, args.run_b))
    return 0


def list_backends() -> None:
    """Each registered backend: available or why not, its precisions and its options."""
    from swagbench.backends import backend_names, get_backend
    from swagbench.backends.base import describe_options

    for name in backend_names():
        try:
            backend = get_backend(name)
            ok, reason = backend.available()
            precisions = ",".join(backend.precisions)
            options = describe_options(backend.Options)
        except Exception as exc:  # a broken third-party backend must not hide the others
            ok, reason, precisions, options = False, f"{type(exc).__name__}: {exc}", "-", []
        print(f"{name:14s} {'available' if ok else 'unavailable':12s} [{precisions}] {reason}")
        for line in options:  # a trial's options: mapping, e.g. options: {binding: constants}
            print(f"{'':16s}option {line}")


if __name__ == "__main__":
    sys.exit(main())
