# swagbench: `make bench` runs the embedded default benchmark, `make test` the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install bench test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

bench: $(STAMP)  ## embedded default run (override: make bench ARGS="--backends eager ensemble.samples=4")
	$(VENV)/bin/swagbench run $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check bench backends swag tests
	$(VENV)/bin/ruff format --check bench backends swag tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
