"""swagbench: benchmark CPU inference strategies on a SWAG-ensemble + confident-learning pipeline, answer for the
user's job size, then run that job.

The repository's top-level folders are this package's parts (``pyproject.toml`` maps them), each importing only
the parts below it:

- ``swagbench`` (this folder): what every part uses: the root error type (``errors``), the one dict-to-dataclass
  checker (``checked``) and ``module:attribute`` loading (``imports``). Imports nothing heavy.
- ``swagbench.swag`` (``swag/``): the method: posteriors, sampling, BatchNorm statistics, training, I/O, models.
- ``swagbench.backends`` (``backends/``): one module per inference runtime behind one interface.
- ``swagbench.bench`` (``bench/``): the harness: a benchmark run, its answer, its report, and the job.
"""
