# Entry points for a fresh clone: only Python 3.11+ and access to PyPI are needed.
PYTHON ?= python3
VENV := .venv
# Reinstall when pyproject.toml changes; the stamp records the last successful install.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help demo test bench clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) ## run the demo plant end to end (embedded PostgreSQL and broker)
	$(VENV)/bin/mes demo

# Test files run in parallel workers (pytest-xdist), each with its own embedded PostgreSQL and broker, so
# the whole-plant runs of two files never see each other's messages; PYTEST_ARGS="-n 0" runs them serially.
test: $(STAMP) ## run the tests; extra pytest arguments via PYTEST_ARGS="..."
	$(VENV)/bin/pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP) ## measure ingest vs raw COPY and end-to-end latency; results in docs/benchmarks.md
	$(VENV)/bin/python -m tests.bench

clean: ## remove runtime data, caches and build output (keeps .venv)
	rm -rf var build .pytest_cache .hypothesis tests/timescale/node_modules
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
