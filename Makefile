# Everyday tasks. Each target is one command a newcomer could also type by hand.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test test-sqlite lint format typecheck policy bench ci

$(PY):
	python3 -m venv $(VENV)

install: $(PY)  ## install the service with the test tools
	$(VENV)/bin/pip install -q -e '.[test]'

run: install  ## start the service on http://127.0.0.1:8000 (SQLite, migrated on first start)
	$(VENV)/bin/tokengate run

test: install  ## the whole suite (SQLite and, when it answers, PostgreSQL), a test process per CPU
	$(PY) -m pytest -n auto

test-sqlite: install  ## the suite without the PostgreSQL half
	$(PY) -m pytest -n auto -m "not postgres"

lint:  ## ruff lint and format check (what pre-commit runs)
	$(VENV)/bin/ruff check service tests bench
	$(VENV)/bin/ruff format --check service tests bench

format:  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix service tests bench
	$(VENV)/bin/ruff format service tests bench

typecheck:  ## mypy, strict
	$(VENV)/bin/mypy service

policy:  ## lint and test the policy in policies/
	$(VENV)/bin/tokengate policy check
	$(VENV)/bin/tokengate policy test

bench:  ## the benchmarks (not run in CI); figures go to bench/RESULTS.md
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m bench

ci:  ## exactly what CI runs
	bash .ci/run
