# DeployGuard developer commands. Every target sets up what it needs (venv, install) itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is Python 3.12; use it when it is there (pyenv), else any python3 >= 3.11.
PYTHON ?= $(shell for p in $(HOME)/.pyenv/versions/3.12.*/bin/python3.12 python3.12 python3; do \
            $$p -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.PHONY: dev
dev: $(STAMP) ## create .venv and install DeployGuard editable with the dev tools

.PHONY: rehearse
rehearse: $(STAMP) ## run guarded deployments of the example app on an embedded local AWS
	$(BIN)/deployguard rehearse

.PHONY: lint
lint: $(STAMP) ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/deployguard/deployguard cli/deployguard_cli functions tests scripts

.PHONY: unit
unit: $(STAMP) ## unit and integration tests (moto, no network)
	$(BIN)/pytest -q tests/unit tests/integration

.PHONY: test
test: $(STAMP) ## everything: lint, type check, template validation, all tests
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -q

.PHONY: bench
bench: $(STAMP) ## benchmarks, printed as ratios
	$(BIN)/python scripts/bench.py

.PHONY: clean
clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .aws-sam
