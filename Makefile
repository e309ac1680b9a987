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
# pytest-xdist workers for the integration tier: one per CPU; `make integration WORKERS=0` runs it in one process.
WORKERS ?= auto

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# NOTE: .venv is made in each clone (DeployGuard is installed editable, bound to the clone's path);
# pip's own cache (`pip cache dir`, outside the clone) keeps the wheels it downloads for the next one.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.PHONY: dev
dev: $(STAMP) ## create .venv and install DeployGuard editable with the dev tools
	@:

.PHONY: rehearse
rehearse: $(STAMP) ## run guarded deployments of the example app on an embedded local AWS
	$(BIN)/deployguard rehearse

.PHONY: lint
lint: $(STAMP) ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/deployguard/deployguard cli/deployguard_cli functions tests scripts

# --- tests: one target per tier; a tier is the folder that says what its tests need ----------------
.PHONY: unit
unit: $(STAMP) ## tests/unit: no moto, no network (tests/unit/conftest.py enforces both); seconds
	$(BIN)/pytest -q tests/unit

.PHONY: integration
integration: $(STAMP) ## tests/integration: handlers, adapters and the CLI on moto, in parallel (pytest-xdist)
	$(BIN)/pytest -q -n $(WORKERS) tests/integration

.PHONY: e2e
e2e: $(STAMP) ## tests/e2e: the whole rehearsal of the example app, every scenario
	$(BIN)/pytest -q tests/e2e

# `make test` runs its stages as parallel jobs of one make: the template tool chain and lint overlap
# the test tiers. Each stage prints its output as one block when it ends (--output-sync), then
# `stage NAME: N s`; a table of every stage's time closes the run. Any failing stage fails `make test`
# (make lets the stages already running finish, then exits non-zero).
# NOTE: each tier runs in its own pytest process: the unit tier's no-moto guard holds only in a
# process where no other tier has imported moto, and the integration tier alone gets the workers.
STAGES := lint template unit integration e2e
# (GNU make 3.81, as macOS ships it, cannot group output: the stages' lines then interleave.)
OUTPUT_SYNC := $(if $(filter output-sync,$(.FEATURES)),--output-sync=recurse)
STAGE_TARGETS := $(addprefix stage-,dev tools $(STAGES))

.PHONY: test
test: ## everything: lint, type check, the template tool chain, every test tier (stages in parallel)
	@times=$$(mktemp); \
	$(MAKE) --no-print-directory -j $(OUTPUT_SYNC) STAGE_TIMES=$$times $(addprefix stage-,$(STAGES)); \
	status=$$?; \
	echo "--- make test: time of each stage (dev and tools run first, the rest in parallel) ---"; \
	cat $$times; rm -f $$times; \
	echo "make test: $$( ((status)) && echo FAILED || echo passed) in $$SECONDS s"; \
	exit $$status

.PHONY: $(STAGE_TARGETS)
$(STAGE_TARGETS): stage-%:
	@$(MAKE) --no-print-directory $*; status=$$?; \
	line=$$(printf 'stage %-13s %4d s%s' "$*:" $$SECONDS "$$( ((status)) && echo '  FAILED')"); \
	echo "$$line"; if [ -n "$(STAGE_TIMES)" ]; then echo "$$line" >> "$(STAGE_TIMES)"; fi; \
	exit $$status
$(addprefix stage-,$(STAGES)): stage-dev
stage-template: stage-tools

.PHONY: bench
bench: $(STAMP) ## benchmarks, printed as ratios
	$(BIN)/python -m scripts.bench

# --- SAM / CloudFormation tools --------------------------------------------------------------------
# Each tool lives in a virtual environment of its own: aws-sam-cli and checkov each pin a boto3 of
# their own, and neither may drag the project's. Pinned versions; .tools/<tool> (git-ignored) links
# to where it is installed, and a stamp file per version and Python makes a second run cost nothing
# (bump a version → that tool is installed again).
# NOTE: the tools are installed once per machine, outside the clone, in
# $(TOOLS_CACHE)/<tool>-<version>-py<python> (XDG_CACHE_HOME or ~/.cache), where every clone finds
# them: a fresh clone (CI) links them instead of installing ~300 packages again (about 90 s of CPU).
# A new machine, a bumped version or another Python builds them anew; a stamp file inside marks a
# complete install (an interrupted one is removed and redone), and flock keeps two makes from
# building the same one at once. `make clean-tools` drops them.
SAM_CLI_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
TOOLS := .tools
TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/deployguard/tools
# sam build targets the python3.12 Lambda runtime, so it needs a real Python 3.12 on PATH.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
PYTHON312_VERSION := $(if $(PYTHON312),$(shell $(PYTHON312) -c 'import platform; print(platform.python_version())' 2>/dev/null))
SAM := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
SAM_STAMP := $(TOOLS)/sam/.installed-$(SAM_CLI_VERSION)-py$(PYTHON312_VERSION)
CHECKOV_STAMP := $(TOOLS)/checkov/.installed-$(CHECKOV_VERSION)-py$(PYTHON312_VERSION)
# A stand-in for the boto3 the Lambda python3.12 runtime provides (the layer must not ship it):
# check_artifacts.py imports the built layer with only this beside it.
LAMBDA_RUNTIME_BOTO3 := 1.34.145
RUNTIME_STAMP := $(TOOLS)/lambda-runtime/.installed-boto3-$(LAMBDA_RUNTIME_BOTO3)-py$(PYTHON312_VERSION)
TEMPLATE := template.yaml
TRANSFORMED := .aws-sam/transformed-template.json
PIP_QUIET := --quiet --disable-pip-version-check --root-user-action=ignore

# $(call cached-tool,<name under .tools>,<stamp file name>,<install commands; $$dir is the folder>)
define cached-tool
	@test -n "$(PYTHON312)" || { echo "make: Python 3.12 is required for $(1)" >&2; exit 2; }
	@mkdir -p $(TOOLS_CACHE) $(TOOLS)
	@set -e; dir=$(TOOLS_CACHE)/$(1)-$(patsubst .installed-%,%,$(2)); \
	exec 9>"$$dir.lock"; if command -v flock >/dev/null; then flock 9; fi; \
	if [ ! -e "$$dir/$(2)" ]; then \
		echo "make: installing $(1) into $$dir (once per machine)"; \
		rm -rf "$$dir"; $(3); touch "$$dir/$(2)"; \
	fi; \
	if [ ! -L $(TOOLS)/$(1) ]; then rm -rf $(TOOLS)/$(1); fi; \
	ln -sfn "$$dir" $(TOOLS)/$(1)
endef

$(SAM_STAMP):
	$(call cached-tool,sam,$(notdir $@),$(PYTHON312) -m venv "$$dir"; \
		"$$dir/bin/python" -m pip install $(PIP_QUIET) 'aws-sam-cli==$(SAM_CLI_VERSION)')

$(CHECKOV_STAMP):
	$(call cached-tool,checkov,$(notdir $@),$(PYTHON312) -m venv "$$dir"; \
		"$$dir/bin/python" -m pip install $(PIP_QUIET) 'checkov==$(CHECKOV_VERSION)')

$(RUNTIME_STAMP):
	$(call cached-tool,lambda-runtime,$(notdir $@),$(PYTHON312) -m pip install $(PIP_QUIET) --target "$$dir" \
		'boto3==$(LAMBDA_RUNTIME_BOTO3)' 'botocore==$(LAMBDA_RUNTIME_BOTO3)')

.PHONY: tools
tools: $(SAM_STAMP) $(CHECKOV_STAMP) $(RUNTIME_STAMP) ## the pinned tools: aws-sam-cli, checkov, runtime boto3 (cached per machine)
	@:

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
clean: ## remove what make made in this clone (the cached tools stay: make clean-tools)
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .aws-sam

.PHONY: clean-tools
clean-tools: ## remove the pinned tools cached for every clone on this machine
	rm -rf $(TOOLS) $(TOOLS_CACHE)
