# One entry point for people and CI. `make test` is what .ci/run calls.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Most of the suite waits on sockets, lock expiry and sleeping samples, not on the CPU: four workers (one
# test file each at a time, so a file's session fixtures stay together) keep `make test` near 10 minutes on
# 2 vCPUs. `make test PYTEST_PARALLEL=` runs it serially.
PYTEST_PARALLEL ?= -n 4 --dist loadfile

.PHONY: install lint test test-engine test-fast demo emulator host schema workbook bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[tools,dev]'
	touch $(STAMP)

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

# Regenerate infra/workbook/orders-pipeline.workbook.json (tests/infra/test_workbook.py checks it).
workbook: install
	$(BIN)/python scripts/build_workbook.py

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
