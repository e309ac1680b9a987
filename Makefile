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
	$(MAKE) --no-print-directory template
	$(BIN)/pytest -q

.PHONY: bench
bench: $(STAMP) ## benchmarks, printed as ratios
	$(BIN)/python scripts/bench.py

# --- SAM / CloudFormation tools --------------------------------------------------------------------
# Each tool lives in a virtual environment of its own under .tools/ (git-ignored): aws-sam-cli and
# checkov each pin a boto3 of their own, and neither may drag the project's. Pinned versions; a
# stamp file per version makes a second run cost nothing (bump a version → that venv is rebuilt).
SAM_CLI_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
TOOLS := .tools
# sam build targets the python3.12 Lambda runtime, so it needs a real Python 3.12 on PATH.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
SAM := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
SAM_STAMP := $(TOOLS)/sam/.installed-$(SAM_CLI_VERSION)
CHECKOV_STAMP := $(TOOLS)/checkov/.installed-$(CHECKOV_VERSION)
# A stand-in for the boto3 the Lambda python3.12 runtime provides (the layer must not ship it):
# check_artifacts.py imports the built layer with only this beside it.
LAMBDA_RUNTIME_BOTO3 := 1.34.145
RUNTIME_STAMP := $(TOOLS)/lambda-runtime/.installed-boto3-$(LAMBDA_RUNTIME_BOTO3)
TEMPLATE := template.yaml
TRANSFORMED := .aws-sam/transformed-template.json
PIP_QUIET := --quiet --disable-pip-version-check --root-user-action=ignore

$(SAM_STAMP):
	@test -n "$(PYTHON312)" || { echo "make: Python 3.12 is required for aws-sam-cli and sam build" >&2; exit 2; }
	rm -rf $(TOOLS)/sam
	$(PYTHON312) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/python -m pip install $(PIP_QUIET) 'aws-sam-cli==$(SAM_CLI_VERSION)'
	@touch $@

$(CHECKOV_STAMP):
	@test -n "$(PYTHON312)" || { echo "make: Python 3.12 is required for checkov" >&2; exit 2; }
	rm -rf $(TOOLS)/checkov
	$(PYTHON312) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install $(PIP_QUIET) 'checkov==$(CHECKOV_VERSION)'
	@touch $@

$(RUNTIME_STAMP):
	@test -n "$(PYTHON312)" || { echo "make: Python 3.12 is required" >&2; exit 2; }
	rm -rf $(TOOLS)/lambda-runtime
	$(PYTHON312) -m pip install $(PIP_QUIET) --target $(TOOLS)/lambda-runtime \
		'boto3==$(LAMBDA_RUNTIME_BOTO3)' 'botocore==$(LAMBDA_RUNTIME_BOTO3)'
	@touch $@

.PHONY: tools
tools: $(SAM_STAMP) $(CHECKOV_STAMP) $(RUNTIME_STAMP) ## tool venvs under .tools/: aws-sam-cli, checkov, runtime boto3 (pinned)

.PHONY: validate
validate: $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) ## sam validate --lint, sam validate (translator), checkov
	$(BIN)/python scripts/render_template_parts.py --check
	$(SAM) validate --lint --template $(TEMPLATE) --region $(AWS_DEFAULT_REGION)
	$(SAM) validate --template $(TEMPLATE) --region $(AWS_DEFAULT_REGION)
	@mkdir -p $(dir $(TRANSFORMED))
	$(BIN)/python -m tests.tools.transform $(TEMPLATE) --output $(TRANSFORMED)
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation --file $(TEMPLATE)
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation --file $(TRANSFORMED)

# NOTE: bytecode for Lambda. `sam deploy` zips every file with the date 1980-01-01 and /opt is
# read-only, so the timestamp-checked .pyc files pip writes never match their sources there: every
# module of the layer would be compiled again at every cold start (≈ 60% more instructions for the
# pre-traffic hook's init, scripts/bench.py). Unchecked-hash .pyc files are used as they are.
.PHONY: build
build: $(SAM_STAMP) ## sam build with Python 3.12 into .aws-sam/build, plus bytecode Lambda uses
	PATH="$(dir $(PYTHON312)):$$PATH" $(SAM) build --template $(TEMPLATE) --cached --parallel $(BUILD_FLAGS)
	$(PYTHON312) -m compileall -q -f -j 0 --invalidation-mode unchecked-hash .aws-sam/build

.PHONY: artifacts
artifacts: build $(STAMP) $(RUNTIME_STAMP) ## check the built artifacts (layer imports alone under 3.12, no test libraries) and print sizes
	$(BIN)/python scripts/check_artifacts.py --python $(PYTHON312)

.PHONY: template
template: $(STAMP) ## everything about template.yaml: validation, checkov, build, artifact check
	@$(MAKE) --no-print-directory -j3 tools
	@$(MAKE) --no-print-directory validate artifacts

.PHONY: render
render: $(STAMP) ## regenerate the dashboard and saved queries embedded in template.yaml
	$(BIN)/python scripts/render_template_parts.py

.PHONY: clean
clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .aws-sam
