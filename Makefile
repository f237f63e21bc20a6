# Front door: `make demo` and `make test` work on a fresh clone with python3.11 + make.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= --disable-pip-version-check --quiet
STAMP := $(VENV)/.installed
# TEST_WORKERS=N runs test files in N processes at once (pytest-xdist): for machines with
# more cores; on 2 cores it was slower (32 min against 18: the suite is CPU-bound)
TEST_WORKERS ?= 0

.PHONY: help install chromium demo demo-data test test-fast lint format lab bench bench-accuracy lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else "Python 3.11 is required, found %d.%d (set PYTHON=/path/to/python3.11)" % v)'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade "pip>=24"
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP)  ## create .venv and install the project with its dev extras

chromium:  ## install Debian's Chromium if missing (PDF reports, browser tests), or say how
	@bash .ci/ensure-chromium

demo: install chromium  ## build the demo warehouse, run every report, then serve the dashboards with live traffic
	$(BIN)/auterity demo-data
	$(BIN)/auterity run --all
	@echo "Reports: file://$(CURDIR)/reports/index.html"
	@echo "Serving the dashboards with live demo traffic (Ctrl-C stops all three):"
	@$(BIN)/auterity collect & collect=$$!; \
	$(BIN)/auterity demo-traffic --rate 20 & traffic=$$!; \
	trap 'kill $$traffic $$collect 2>/dev/null; wait $$traffic $$collect 2>/dev/null' EXIT INT TERM; \
	$(BIN)/auterity serve

test: install chromium  ## run the whole test suite with coverage of lib/auterity
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=30 $(PYTEST_ARGS)

lint: install  ## ruff, mypy and the import-linter layers contract
	$(BIN)/ruff check lib tests benchmarks
	$(BIN)/ruff format --check lib tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: install  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix lib tests benchmarks
	$(BIN)/ruff format lib tests benchmarks

lab: install  ## open the notebooks in JupyterLab (sign-in with the warehouse's users, see README)
	$(BIN)/auterity lab

BENCH_DATA ?= ../shared/benchmarks

bench: install  ## run the speed benchmarks (writes benchmarks/results/*.json; builds a 10M-event warehouse)
	$(BIN)/python benchmarks/bench_demo_data.py
	$(BIN)/python benchmarks/bench_queries.py
	$(BIN)/python benchmarks/bench_reports.py
	$(BIN)/python benchmarks/bench_dashboards.py
	$(BIN)/python benchmarks/bench_receiver.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_sync.py --rows 1000000
	$(BIN)/python benchmarks/bench_api.py  # needs wrk (apt-get install wrk)

bench-accuracy: install  ## forecast/anomaly/insight accuracy on public data (BENCH_DATA=dir with prophet/ and nab/)
	@test -d "$(BENCH_DATA)/prophet" -a -d "$(BENCH_DATA)/nab" || { echo "BENCH_DATA=$(BENCH_DATA) needs prophet/ and nab/ (see README.md, Benchmarks)"; exit 2; }
	$(BIN)/python benchmarks/bench_forecast.py $(BENCH_DATA)/prophet
	$(BIN)/python benchmarks/bench_anomaly.py $(BENCH_DATA)/nab
	$(BIN)/python benchmarks/bench_insights.py $$(mktemp -d)

lock: install  ## rewrite constraints.txt from the current .venv (after changing pyproject)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:  ## remove the venv and generated data (keeps reports)
	rm -rf $(VENV) data/*.duckdb data/*.wal data/*.json test-output
