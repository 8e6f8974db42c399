# leadrelay: `make run` starts the whole stack, `make test` runs the tests.
# Both create .venv from pyproject.toml on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench drill dashboard worker api sandbox clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m cli.devstack

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Load benchmark and fault drill (see README, Benchmarks); extra flags via BENCH_ARGS / DRILL_ARGS.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run_bench $(BENCH_ARGS)

drill: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.drill $(DRILL_ARGS)

# A bench burst scraped and drawn as the Grafana dashboard into docs/dashboard.png (README, Dashboards).
dashboard: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.dashboard_burst $(DASHBOARD_ARGS)

worker: $(STAMP)
	$(BIN)/python worker.py

api: $(STAMP)
	$(BIN)/python -m api

sandbox: $(STAMP)
	$(BIN)/python -m sandbox

clean:
	rm -rf $(VENV) .data
