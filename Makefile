# One set of commands, locally and in CI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench eval clean

$(STAMP): pyproject.toml firmware-sim/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,demo]' -e ./firmware-sim
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/citysense demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	cd firmware-sim && ../$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q tests firmware-sim/tests

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

bench: $(STAMP)
	$(BIN)/python -m tests.transit.bench_transit

eval: $(STAMP)
	$(BIN)/python -m tests.transit.eval_transit
