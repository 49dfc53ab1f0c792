# swagbench: `make bench` runs the embedded default benchmark, `make test` the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

IPEX_VENV := .venv-ipex
IPEX_STAMP := $(IPEX_VENV)/.installed

.PHONY: install bench sweep bench-check bench-job bench-memory bench-decode test test-fast test-ipex ipex-env lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

bench: $(STAMP)  ## embedded default run (override: make bench ARGS="--backends eager ensemble.samples=4")
	$(VENV)/bin/swagbench run $(ARGS)

sweep: $(STAMP)  ## workers x threads / batch / layout grid of the profile (PROFILE=local by default)
	$(VENV)/bin/swagbench sweep --profile $(or $(PROFILE),local) $(ARGS)

# Memory against data size: N synthetic 224x224 RGB images x 1 and 2 workers, the process tree's peak anonymous
# memory and RSS (override: make bench-memory ARGS="--sizes 400,3200 --workers 2").
bench-memory: $(STAMP)
	$(PY) -m tests.benchmarks.memory_bench $(ARGS)

# Decode rate of the image cache: JPEGs of 500x375 to 224x224, 1 and 2 decode processes.
bench-decode: $(STAMP)
	$(PY) -m tests.benchmarks.decode_bench $(ARGS)

# The job's benchmarks (issue 32, docs/job.md): a 500-image proxy answers for 10,000; the job of its answer beside
# the projection and the trial's rates; killed at half and resumed; a Ray job on one vs two 1-CPU nodes (~30 min here).
bench-job: $(STAMP)
	$(PY) -m tests.benchmarks.job_bench $(ARGS)

# Speed regression checks (tests/benchmarks, pytest-benchmark) against this machine type's baseline
# (tests/benchmarks/check.py). The first run on a machine type records the baseline; later runs report, one line
# each, the benchmarks whose BENCH_STAT (min: robust to a busy neighbour) is more than BENCH_FAIL percent slower
# than the baseline's twice in a row (a benchmark over it is rerun once before it counts), and exit 1.
# 40% is twice the worst run-to-run slowdown of the min measured here (docs/testing.md).
BENCH_STAT ?= min
BENCH_FAIL ?= 40
BENCH_STORE = tests/benchmarks/baselines/$(shell $(PY) -m swagbench.bench.measure.hardware_profiles)
bench-check: $(STAMP)
	@$(PY) -m tests.benchmarks.check --store $(BENCH_STORE) --stat $(BENCH_STAT) --fail $(BENCH_FAIL)

test: $(STAMP)
	$(PY) -m pytest -q -m "not ipex" $(PYTEST_ARGS)

# The same without the tests that make full runs (marked e2e): for development, a few minutes.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not ipex and not e2e" $(PYTEST_ARGS)

# IPEX 2.8.0 needs torch 2.8.*, so its worker gets its own environment (~7 GB, a CUDA torch build).
ipex-env: $(IPEX_STAMP)

$(IPEX_STAMP): pyproject.toml
	$(PYTHON) -m venv $(IPEX_VENV)
	$(IPEX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(IPEX_VENV)/bin/python -m pip install --quiet torch==2.8.0 intel-extension-for-pytorch==2.8.0 torchvision==0.23.0
	$(IPEX_VENV)/bin/python -m pip install --quiet numpy psutil pyyaml safetensors cleanlab scikit-learn pandas tqdm
	$(IPEX_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(IPEX_STAMP)

test-ipex: $(STAMP) $(IPEX_STAMP)
	$(PY) -m pytest -q -m ipex $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check swagbench bench backends swag tests
	$(VENV)/bin/ruff format --check swagbench bench backends swag tests

clean:
	rm -rf $(VENV) $(IPEX_VENV) build *.egg-info .pytest_cache
