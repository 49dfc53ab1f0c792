"""Exception types for user mistakes; the CLI prints them as one line and exits with code 2."""

from backends.base import BackendError
from backends.registry import UnknownBackendError
from swag.errors import PosteriorError
from swag.models.registry import ModelSpecError


class ConfigError(ValueError):
    """The configuration (YAML file, overrides or CLI flags) is invalid or impossible."""


class DataError(ValueError):
    """The dataset is missing, has the wrong shape/dtype, or cannot support the run."""


class ResultsError(OSError):
    """The results directory cannot be written or read."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run that has a folder: ``run_dir`` is where it can be resumed."""

    def __init__(self, run_dir) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir


USER_ERRORS = (ConfigError, DataError, ResultsError, PosteriorError, ModelSpecError, UnknownBackendError, BackendError)
