"""Run configuration: the settings (``settings``), how they are loaded (``loading``) and sweeps (``sweeps``)."""

from swagbench.bench.config.loading import apply_override, build, load_config, parse_backends
from swagbench.bench.config.settings import (
    EXECUTOR_NAMES,
    FILTER_BY,
    MEMBERS,
    QUALITY_METHODS,
    RESUME_FREE,
    AuditConfig,
    CleanlabConfig,
    DataConfig,
    EnsembleConfig,
    RunConfig,
    SteadyConfig,
    TargetConfig,
    TrialConfig,
    setting_digests,
)
from swagbench.bench.config.sweeps import SWEEP_DIMENSIONS, expand_sweep, parse_grid, parse_plan

__all__ = [
    "EXECUTOR_NAMES",
    "FILTER_BY",
    "MEMBERS",
    "QUALITY_METHODS",
    "SWEEP_DIMENSIONS",
    "AuditConfig",
    "CleanlabConfig",
    "DataConfig",
    "EnsembleConfig",
    "RunConfig",
    "SteadyConfig",
    "TargetConfig",
    "TrialConfig",
    "RESUME_FREE",
    "setting_digests",
    "apply_override",
    "build",
    "expand_sweep",
    "load_config",
    "parse_backends",
    "parse_grid",
    "parse_plan",
]
