# swagbench: `make bench` runs the embedded default benchmark, `make test` the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

IPEX_VENV := .venv-ipex
IPEX_STAMP := $(IPEX_VENV)/.installed

.PHONY: install bench test test-ipex ipex-env lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

bench: $(STAMP)  ## embedded default run (override: make bench ARGS="--backends eager ensemble.samples=4")
	$(VENV)/bin/swagbench run $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -m "not ipex" $(PYTEST_ARGS)

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
	$(VENV)/bin/ruff check bench backends swag tests
	$(VENV)/bin/ruff format --check bench backends swag tests

clean:
	rm -rf $(VENV) $(IPEX_VENV) build *.egg-info .pytest_cache
