# kvlock — `make help` lists the targets. `make demo` and `make test` bootstrap .venv themselves.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pip prints one warning per package for the machine's local index folders; hide only those.
QUIET_PIP := grep -v "is ignored: it is neither a file nor a directory" || true

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv with the pinned stack (idempotent; fast when up to date)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]' 2>&1 | $(QUIET_PIP)
	$(MAKE) --no-print-directory metric-deps
	$(PY) -c "import kvlock, torch, diffusers, hydra"
	touch $(STAMP)

demo: $(STAMP) ## Run the main job: a small multirun of the main methods on the embedded default, then the report
	$(PY) -m benchmarks.run -m experiment=demo

test: $(STAMP) ## Run the whole test suite
	$(PY) -m pytest -q

lint: $(STAMP) ## ruff check
	$(PY) -m ruff check .

metric-deps: ## pyiqa for VBench IQ (MUSIQ), without its dependency tree (it adds opencv-python beside opencv-python-headless)
	$(PY) -m pip install -q --no-deps -c constraints.txt pyiqa 2>&1 | $(QUIET_PIP)

rewards: $(STAMP) ## Optional ImageReward column: pip install -e '.[rewards]' (downgrades timm to 0.6.13 in this venv)
	$(PY) -m pip install -q -e '.[rewards]' 2>&1 | $(QUIET_PIP)

perf: $(STAMP) ## Performance benchmarks (writes benchmarks/RESULTS.md)
	$(PY) -m benchmarks.perf

clean: ## Remove run outputs (keeps .venv)
	rm -rf outputs multirun .pytest_cache

.PHONY: help venv demo test lint metric-deps rewards perf clean
