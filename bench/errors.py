"""Exception types for user mistakes; the CLI prints them as one line and exits with code 2.

Every one derives from :class:`swagbench.errors.SwagbenchError` (the one root), and this module imports no torch.
"""

from swagbench.backends.errors import BackendError, UnknownBackendError
from swagbench.errors import SwagbenchError
from swagbench.swag.errors import ModelSpecError, PosteriorError


class ConfigError(SwagbenchError, ValueError):
    """The configuration (YAML file, overrides or CLI flags) is invalid or impossible."""


class DataError(SwagbenchError, ValueError):
    """The dataset is missing, has the wrong shape/dtype, or cannot support the run."""


class ResultsError(SwagbenchError, OSError):
    """The results directory cannot be written or read."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a VM's shutdown, a batch scheduler's stop): handled like Ctrl-C, so the workers are stopped
    and the resume hint is printed."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM: ``terminated``) during a run (or a job: ``command``) that has a folder: ``run_dir`` is
    where it can be resumed, with ``swagbench <command> --resume run_dir``."""

    def __init__(self, run_dir, terminated: bool = False, command: str = "run") -> None:
        super().__init__(str(run_dir))
        self.run_dir, self.terminated, self.command = run_dir, terminated, command


class JobFailed(Exception):
    """A job that cannot go on for a reason of its own (not a user's mistake): an INVALID audit, a failed worker.
    The CLI prints its one line and exits with code 1; what was committed is kept."""


USER_ERRORS = (SwagbenchError,)
__all__ = [
    "USER_ERRORS",
    "BackendError",
    "ConfigError",
    "DataError",
    "ModelSpecError",
    "PosteriorError",
    "ResultsError",
    "JobFailed",
    "RunInterrupted",
    "Terminated",
    "SwagbenchError",
    "UnknownBackendError",
]
