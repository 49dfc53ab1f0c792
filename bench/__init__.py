"""swagbench harness: config, dataset, pipeline, worker runner, metrics, results, CLI."""

__version__ = "0.1.0"
