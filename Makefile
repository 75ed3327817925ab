# The README's two commands: `make run` and `make test`. Both build everything from scratch on a
# machine with only Python 3.11, Java 17, gcc and make.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
FLIGHTS := data/flights/_manifest.json
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache
export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(CURDIR)/$(PY)

.PHONY: run test lint bench setup data clean

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

data: $(FLIGHTS)

$(FLIGHTS): $(INSTALLED)
	$(BIN)/analytics data flights --out data

## Build everything, then profile the real flights data on the default engine.
run: $(FLIGHTS)
	$(BIN)/analytics profile data/flights --out reports/flights

## Build everything, then run the whole test suite (every engine, for real).
test: $(FLIGHTS)
	$(BIN)/ruff check analytics tests jobs benchmarks
	$(PY) -m pytest

lint: $(INSTALLED)
	$(BIN)/ruff check analytics tests jobs benchmarks

bench: $(INSTALLED)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) reports data/flights data/*.parquet .numba_cache .pytest_cache
