"""swagbench harness: config, dataset, pipeline, worker runner, metrics, results, CLI."""
