# One entry point for people and CI. `make test` is what .ci/run calls.
SHELL := /bin/bash
# A CPython 3.13 (what the app runs on in Azure): scripts/find_python.sh finds one (PATH, pyenv) or says what
# to install. `make PYTHON=/path/to/python3.13 ...` picks another.
PYTHON ?= $(shell scripts/find_python.sh)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Most of the suite waits on sockets, lock expiry and sleeping samples, not on the CPU: four workers (one
# test file each at a time, so a file's session fixtures stay together) keep `make test` near 10 minutes on
# 2 vCPUs. `make test PYTEST_PARALLEL=` runs it serially.
PYTEST_PARALLEL ?= -n 4 --dist loadfile

.PHONY: install lock lint test test-engine test-fast demo emulator host schema workbook bench clean

install: $(STAMP)

# The venv gets exactly what Azure deploys (requirements.txt, locked), then the tools and dev extras, then
# the local host's FunctionRpc classes (generated from devstack/host/rpc/function_rpc.proto).
$(STAMP): pyproject.toml requirements.txt devstack/host/rpc/function_rpc.proto
	@test -n "$(PYTHON)" || { scripts/find_python.sh >/dev/null; exit 1; }
	@if ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then \
		rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q -e '.[tools,dev]'
	$(BIN)/python -m devstack.host.rpc
	touch $(STAMP)

# requirements.txt from pyproject's [project.dependencies], every transitive dependency pinned (pip-tools).
# `make lock` after changing the dependencies; `make lock UPGRADE=1` moves every pin to the newest release.
lock: install
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		$(if $(UPGRADE),--upgrade) --output-file=requirements.txt pyproject.toml

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy function_app.py shared orders_cli devstack scripts bench tests infra/checkov

# Every test: unit, functions, integration (Azurite), emulator conformance, end to end, infra checks.
test: lint
	bash scripts/ci/infra_checks.sh
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)
	$(MAKE) test-engine
	bash scripts/ci/emulator_compat.sh
	bash scripts/ci/secret_scan.sh

# The engine suite with the second workflow: swapping the workflow leaves it green (docs/adapting.md).
test-engine: install
	ORDERS_WORKFLOW=accounts $(BIN)/python -m pytest -q -m engine $(PYTEST_PARALLEL) tests/unit tests/integration

# Just the fast layers while you work.
test-fast: install
	$(BIN)/python -m pytest -q tests/unit tests/functions

demo: install
	$(BIN)/python scripts/demo.py

# The embedded stack by hand (README "Run it"): `make emulator` in one terminal, `make host` in another
# (needs local.settings.json: cp local.settings.json.example local.settings.json), then `orders publish`.
emulator: install
	$(BIN)/orders emulator

host: install
	$(BIN)/orders host

schema: install
	$(BIN)/python -m shared.contract

# Regenerate infra/workbook/orders-pipeline.workbook.json and stuck-orders.kql (tests/infra/test_workbook.py checks them).
workbook: install
	$(BIN)/python scripts/build_workbook.py

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
