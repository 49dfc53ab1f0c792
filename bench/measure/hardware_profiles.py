"""Hardware profiles: the machine a run is meant to represent (``bench/measure/profiles/*.yaml``).

A profile sets the run's thread budget, workers and memory limit, and the grid that
``swagbench sweep`` explores. ``local`` is detected from this host. Running a profile on a
host that does not match it is allowed (to rehearse on a laptop) but said in one line and
recorded in env.json: its memory limit applies, its timings do not represent it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swagbench import checked
from swagbench.bench.config import SWEEP_DIMENSIONS
from swagbench.bench.config.loading import read_yaml
from swagbench.bench.errors import ConfigError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"  # package data: installed with bench


@dataclass(frozen=True)
class RunSection:
    """What ``--profile`` sets in the run config (None: detected, or the config's default)."""

    threads: int | None = None
    workers: int | None = None
    memory_limit_gb: float | None = None
    repeats: int | None = None


# The grid ``swagbench sweep`` runs: a list of values per sweep dimension (None: derived from the machine).
SweepSection = dataclasses.make_dataclass(
    "SweepSection", [(d, "list | None", field(default=None)) for d in SWEEP_DIMENSIONS], frozen=True
)


@dataclass(frozen=True)
class PriceSection:
    """The machine's price per hour, with where it comes from."""

    on_demand: float | None = None
    spot: float | None = None
    currency: str | None = None
    region: str | None = None
    source: str | None = None
    date: Any = None  # YAML may read a bare date as a date


@dataclass(frozen=True)
class ProfileSpec:
    """A profile file's keys (``bench/measure/profiles/*.yaml``), checked with :func:`swagbench.checked.build`."""

    name: str
    gcp_machine_type: str | None = None
    vcpus: int | None = None
    physical_cores: int | None = None
    memory_gb: float | None = None
    isa: list[str] | None = None  # the machine's features (ISA_FEATURES); None: detected (local)
    run: RunSection | None = None
    sweep: SweepSection | None = None
    price: PriceSection | None = None


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> dict[str, Any]:
    """A profile by name (``bench/measure/profiles/<name>.yaml``) or path, with ``local``'s blanks detected."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown profile {name_or_path!r}; choose from {', '.join(profile_names())} or give a path")
    raw = read_yaml(path.read_text(), f"profile {path}")
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {path} must hold a mapping")
    checked.build(ProfileSpec, raw, "", ConfigError, root=f"profile {path}")
    return _detect_blanks(raw)


def _detect_blanks(raw: dict[str, Any]) -> dict[str, Any]:
    import psutil

    host = host_facts()
    prof = {**raw, "run": dict(raw.get("run") or {}), "sweep": dict(raw.get("sweep") or {})}
    prof["vcpus"] = prof.get("vcpus") or host["vcpus"]
    prof["physical_cores"] = prof.get("physical_cores") or psutil.cpu_count(logical=False) or prof["vcpus"]
    prof["memory_gb"] = prof.get("memory_gb") or round(host["memory_gb"], 1)
    run = prof["run"]
    run["threads"] = run.get("threads") or prof["vcpus"]
    run["workers"] = run.get("workers") or 1
    if "memory_limit_gb" in run and run["memory_limit_gb"] is None:
        run["memory_limit_gb"] = round(0.9 * prof["memory_gb"], 1)
    sweep = prof["sweep"]
    if not sweep.get("workers_threads"):
        n = prof["vcpus"]
        sweep["workers_threads"] = [f"{w}x{n // w}" for w in range(1, n + 1) if n % w == 0]
    return prof


def host_facts() -> dict[str, Any]:
    import psutil

    from swagbench.bench.measure.environment import gcp_metadata

    gcp = gcp_metadata()
    return {
        "vcpus": os.cpu_count() or 1,
        "memory_gb": psutil.virtual_memory().total / 1e9,
        "gcp_machine_type": (gcp or {}).get("machine_type"),
    }


def host_mismatch(profile: dict[str, Any]) -> str | None:
    """None if this host is the profiled machine, else one line saying how it differs."""
    host = host_facts()
    diffs = []
    if profile.get("gcp_machine_type") and host["gcp_machine_type"] != profile["gcp_machine_type"]:
        diffs.append(f"machine type {host['gcp_machine_type'] or 'unknown (not on GCP)'}")
    if host["vcpus"] != profile["vcpus"]:
        diffs.append(f"{host['vcpus']} vCPUs, not {profile['vcpus']}")
    if abs(host["memory_gb"] - profile["memory_gb"]) > 0.15 * profile["memory_gb"]:
        diffs.append(f"{host['memory_gb']:.0f} GB memory, not {profile['memory_gb']}")
    if not diffs:
        return None
    return (
        f"this host is not a {profile['name']} ({'; '.join(diffs)}): its thread plan and memory limit apply, "
        "but the timings do not represent that machine"
    )


def price(profile: dict[str, Any]) -> dict[str, Any] | None:
    """The profile's price per hour (``on_demand``, ``spot``) with where it comes from (``source``, ``date``,
    ``region``) and the machine it prices; None when the profile states none."""
    rate = profile.get("price")
    if not rate:
        return None
    missing = {"on_demand", "spot", "source", "date"} - set(rate)
    if missing:
        raise ConfigError(f"profile {profile['name']}: price lacks {sorted(missing)}; state each with its source")
    return {"machine": profile.get("gcp_machine_type") or profile["name"], **rate}


def profile_overrides(profile: dict[str, Any]) -> dict[str, Any]:
    """The run settings a profile implies, as a config mapping (layered under the config file): its ``run`` section,
    and the job machine's instruction set (``target.isa``) where the profile states one."""
    out = {k: v for k, v in profile["run"].items() if v is not None}
    if profile.get("isa"):
        out["target"] = {"isa": profile["name"]}
    return out


def target_isa(spec: list[str] | str | None, flags: dict[str, bool] | None) -> tuple[str, list[str]] | None:
    """(what to call it, its features) of the job machine ``spec`` (``target.isa``) names: features as given, a
    profile's stated ones, or (None) the run machine's, from ``flags`` (env.json's ``cpu.flags``); None where the
    run recorded no flags. An unknown profile, or one that states no isa, is a ConfigError."""
    from swagbench.backends.precisions import isa_of_flags

    if isinstance(spec, list):
        return "the target", list(spec)
    if isinstance(spec, str):
        profile = load_profile(spec)
        if not profile.get("isa"):
            raise ConfigError(f"profile {spec} states no isa; give target.isa as a list, e.g. [avx512, vnni]")
        return spec, list(profile["isa"])
    return ("this machine", isa_of_flags(flags)) if flags else None


def machine_key() -> str:
    """A folder name for per-machine-type baselines: the GCP machine type, else CPU model + vCPUs."""
    import re

    from swagbench.bench.measure.environment import cpu_info

    gcp = host_facts()["gcp_machine_type"]
    if gcp:
        return gcp
    model = re.sub(r"[^a-z0-9]+", "-", cpu_info()["model"].lower()).strip("-")
    return f"{model}-{os.cpu_count() or 1}cpu"


if (
    __name__ == "__main__"
):  # `python -m swagbench.bench.measure.hardware_profiles`: print this machine's key (used by make bench-check)
    print(machine_key())
