# Set-up, demo and tests. Each target creates or reuses .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip -c constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/ptheta demo --out runs/demo

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check ptheta tests bench
	$(BIN)/ruff format --check ptheta tests bench

format: setup
	$(BIN)/ruff format ptheta tests bench
	$(BIN)/ruff check --fix ptheta tests bench

bench: setup
	$(BIN)/python bench/gmm_vs_sklearn.py

clean:
	rm -rf runs .pytest_cache
