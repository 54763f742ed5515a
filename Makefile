# Set-up, demo and tests. Each target creates or reuses .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test browser lint format bench bench-setup bench-peers bench-summary \
	bench-gpu bench-scale clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip -c constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/ptheta demo --out runs/demo

test: setup browser
	$(BIN)/python -m pytest

# The explorer's browser tests drive Debian's chromium through Playwright's Python package
# (installed by setup). Never `playwright install`: it downloads browsers from the internet.
# Without /usr/bin/chromium those tests skip and say why.
CHROMIUM := /usr/bin/chromium

browser:
	@if [ -x $(CHROMIUM) ]; then \
	  echo "browser: $(CHROMIUM) is installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "browser: installing Debian's chromium with apt-get"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq chromium \
	    || { apt-get update -qq && apt-get install -y -qq chromium; } \
	    || echo "browser: apt-get could not install chromium; the browser tests will be skipped"; \
	else \
	  echo "browser: $(CHROMIUM) is missing; run 'sudo apt-get install chromium' (Debian)" \
	    "or the browser tests will be skipped"; \
	fi

lint: setup
	$(BIN)/ruff check ptheta tests bench conftest.py
	$(BIN)/ruff format --check ptheta tests bench conftest.py

format: setup
	$(BIN)/ruff format ptheta tests bench conftest.py
	$(BIN)/ruff check --fix ptheta tests bench conftest.py

# Benchmarks run in their own environment, with the peers of bench/requirements.txt.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

bench-setup: $(BENCH_STAMP)

$(BENCH_STAMP): pyproject.toml constraints.txt bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -c constraints.txt -e . -r bench/requirements.txt
	touch $(BENCH_STAMP)

# Every peer comparison runs on bench/harness.py and appends its results to
# bench/results/<script>.jsonl (git-ignored); bench-summary tables the latest of each.
# `make bench-peers BENCH_ARGS=--full` for the big sizes.
BENCH_PEERS := gmm_vs_sklearn naive_bayes_vs_sklearn rbm_vs_sklearn hmm_vs_peers \
	chow_liu_vs_pgmpy bayes_net_vs_pgmpy bayes_net_inference_vs_pgmpy made_flops
BENCH_ARGS ?=

bench: bench-setup
	set -e; for script in bench/*.py; do \
	  case $$script in bench/harness.py|bench/summary.py) continue;; esac; \
	  $(BENCH_VENV)/bin/python $$script; \
	done
	$(MAKE) bench-summary

bench-peers: bench-setup
	set -e; for name in $(BENCH_PEERS); do \
	  $(BENCH_VENV)/bin/python bench/$$name.py $(BENCH_ARGS); \
	done
	$(BENCH_VENV)/bin/python bench/flows.py --only throughput $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python bench/continuous.py --only throughput $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python bench/vae_digits.py --skip-quality $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python bench/diffusion.py --only throughput $(BENCH_ARGS)
	$(MAKE) bench-summary

bench-summary:
	$(BENCH_VENV)/bin/python bench/summary.py

# Data at scale (issue 18): every neural family a few steps on the GPU against the CPU
# (prints "no CUDA device: skipped" without one), and fit time / peak memory against N,
# in memory and streamed (`make bench-scale BENCH_ARGS=--quick` for a two-minute run).
GPU_ARGS ?=
bench-gpu: setup
	$(BIN)/python bench/gpu_check.py $(GPU_ARGS)

bench-scale: bench-setup
	$(BENCH_VENV)/bin/python bench/scale.py $(BENCH_ARGS)

clean:
	rm -rf runs .pytest_cache
