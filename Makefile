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
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

# --- locked dependencies ----------------------------------------------------------------------------
# Every install is from a hash-locked requirement file (`make lock` writes them with uv; see
# docs/deploying.md#locked-dependencies), one per audience: the layer (what sam build ships), the CLI,
# dev (.venv) and each tool. pip installs them with --require-hashes: a file whose sha256 is not in
# the lock is refused, and so is a line the lock does not pin.
LAYER_LOCK := layers/deployguard/requirements.txt
CLI_LOCK := requirements/cli.txt
DEV_LOCK := requirements/dev.txt
# The Python the project locks are resolved for, and every later one (--universal): pyproject.toml's
# requires-python. The tool locks are for the Python 3.12 the tools run on.
LOCK_PYTHON := 3.11
PIP_QUIET := --quiet --disable-pip-version-check --root-user-action=ignore
# --no-deps: the lock lists every package already (uv resolves the whole tree), so pip installs
# exactly its lines; `pip check` then proves nothing is missing. (It also spares pip < 23.3 its bug
# with hashes and a dependency's extras, e.g. aws-sam-cli's boto3-stubs[...].)
PIP_LOCKED := $(PIP_QUIET) --require-hashes --no-deps -r
# $(call pip-check,<python>): fail, listing them, if installed packages miss a dependency
pip-check = $(1) -m pip check >/dev/null || { $(1) -m pip check; exit 1; }

# NOTE: .venv is made in each clone (DeployGuard is installed editable, bound to the clone's path);
# pip's own cache (`pip cache dir`, outside the clone) keeps the wheels it downloads for the next one.
# The dev lock pins pip, setuptools and wheel too: the editable install builds without isolation,
# so nothing unpinned is fetched. --no-compile: byte-compiling every module of ~100 packages costs
# ~25 s of CPU at each fresh clone (54 s → 30 s here); Python compiles what the tests import.
$(STAMP): pyproject.toml $(DEV_LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile $(PIP_LOCKED) $(DEV_LOCK)
	$(BIN)/python -m pip install $(PIP_QUIET) --no-deps --no-build-isolation -e .
	@$(call pip-check,$(BIN)/python)
	@touch $(STAMP)

.PHONY: dev
dev: $(STAMP) ## create .venv from the dev lock and install DeployGuard editable
	@:

# What a deploy job runs to publish a policy: the CLI alone, from its lock, in a venv of its own
# (not editable: as a user installs it). The release workflow's deploy jobs install
# nothing else but aws-sam-cli (`make release-tools`).
CLI_VENV := .tools/cli
.PHONY: cli
cli: ## the DeployGuard CLI alone, from its lock, in .tools/cli
	@test -x $(CLI_VENV)/bin/python || $(PYTHON) -m venv $(CLI_VENV)
	$(CLI_VENV)/bin/python -m pip install $(PIP_LOCKED) $(CLI_LOCK)
	$(CLI_VENV)/bin/python -m pip install $(PIP_QUIET) --no-deps --no-build-isolation --force-reinstall .
	@$(call pip-check,$(CLI_VENV)/bin/python)

.PHONY: rehearse
rehearse: $(STAMP) ## run guarded deployments of the example app on an embedded local AWS
	$(BIN)/deployguard rehearse

.PHONY: lint
lint: $(STAMP) ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/deployguard/deployguard cli/deployguard_cli functions tests scripts examples

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
	$(BIN)/python -m scripts.bench_policy --store
	$(BIN)/python -m scripts.bench_rollback
	$(BIN)/python -m scripts.bench_rehearsal
	$(BIN)/python -m scripts.bench_node
	$(BIN)/python -m scripts.bench_rehearse_app

# A reduced fleet (10 deployments, 20 alarm events) runs in the integration tier: tests/integration/test_load.py.
.PHONY: load
load: $(STAMP) ## load test: 100 deployments at once and a 1,000-event alarm storm through AWS's API quotas
	$(BIN)/python -m scripts.load $(LOAD_FLAGS)

# --- SAM / CloudFormation tools --------------------------------------------------------------------
# Each tool lives in a virtual environment of its own, installed from its own lock
# (requirements/tools/<tool>.txt; its version is pinned in <tool>.in): aws-sam-cli and checkov
# each pin a boto3 of their own, parliament another, and none may drag the project's. .tools/<tool>
# (git-ignored) links to where it is installed, and a stamp file per version, Python and lock makes
# a second run cost nothing (bump a version or re-lock → that tool is installed again).
# NOTE: the tools are installed once per machine, outside the clone, in
# $(TOOLS_CACHE)/<tool>-<version>-py<python>-<lock checksum> (XDG_CACHE_HOME or ~/.cache), where
# every clone finds them: a fresh clone (CI) links them instead of installing ~300 packages again
# (about 90 s of CPU). A new machine, a bumped version, a new lock or another Python builds them
# anew; a stamp file inside marks a complete install (an interrupted one is removed and redone),
# and flock keeps two makes from building the same one at once. `make clean-tools` drops them.
TOOL_LOCKS := requirements/tools
tool-pin = $(shell sed -n 's/^$(1)==//p' $(TOOL_LOCKS)/$(2).in)
lock-sum = $(firstword $(shell cksum < $(TOOL_LOCKS)/$(1).txt))
SAM_CLI_VERSION := $(call tool-pin,aws-sam-cli,sam)
CHECKOV_VERSION := $(call tool-pin,checkov,checkov)
PARLIAMENT_VERSION := $(call tool-pin,parliament,parliament)
UV_VERSION := $(call tool-pin,uv,uv)
# A stand-in for the boto3 the Lambda python3.12 runtime provides (the layer must not ship it):
# check_artifacts.py imports the built layer with only this beside it.
LAMBDA_RUNTIME_BOTO3 := $(call tool-pin,boto3,lambda-runtime)
TOOLS := .tools
TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/deployguard/tools
# sam build targets the python3.12 Lambda runtime, so it needs a real Python 3.12 on PATH.
PYTHON312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
PYTHON312_VERSION := $(if $(PYTHON312),$(shell $(PYTHON312) -c 'import platform; print(platform.python_version())' 2>/dev/null))
SAM := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
PARLIAMENT := $(TOOLS)/parliament/bin/python
UV := $(TOOLS)/uv/bin/uv
SAM_STAMP := $(TOOLS)/sam/.installed-$(SAM_CLI_VERSION)-py$(PYTHON312_VERSION)-$(call lock-sum,sam)
CHECKOV_STAMP := $(TOOLS)/checkov/.installed-$(CHECKOV_VERSION)-py$(PYTHON312_VERSION)-$(call lock-sum,checkov)
PARLIAMENT_STAMP := $(TOOLS)/parliament/.installed-$(PARLIAMENT_VERSION)-py$(PYTHON312_VERSION)-$(call lock-sum,parliament)
UV_STAMP := $(TOOLS)/uv/.installed-$(UV_VERSION)-py$(PYTHON312_VERSION)-$(call lock-sum,uv)
RUNTIME_STAMP := $(TOOLS)/lambda-runtime/.installed-boto3-$(LAMBDA_RUNTIME_BOTO3)-py$(PYTHON312_VERSION)-$(call lock-sum,lambda-runtime)
TEMPLATE := template.yaml
TRANSFORMED := .aws-sam/transformed-template.json

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

# $(call tool-venv,<name under .tools>,<stamp file name>): a venv holding exactly requirements/tools/<name>.txt
tool-venv = $(call cached-tool,$(1),$(2),$(PYTHON312) -m venv "$$dir"; \
	"$$dir/bin/python" -m pip install $(PIP_LOCKED) $(TOOL_LOCKS)/$(1).txt; \
	$(call pip-check,"$$dir/bin/python"))

$(SAM_STAMP):
	$(call tool-venv,sam,$(notdir $@))

$(CHECKOV_STAMP):
	$(call tool-venv,checkov,$(notdir $@))

$(PARLIAMENT_STAMP):
	$(call tool-venv,parliament,$(notdir $@))

$(UV_STAMP):
	$(call tool-venv,uv,$(notdir $@))

$(RUNTIME_STAMP):
	$(call cached-tool,lambda-runtime,$(notdir $@),$(PYTHON312) -m pip install $(PIP_QUIET) --target "$$dir" \
		--require-hashes -r $(TOOL_LOCKS)/lambda-runtime.txt)

.PHONY: tools
tools: $(SAM_STAMP) $(CHECKOV_STAMP) $(PARLIAMENT_STAMP) $(RUNTIME_STAMP) ## the pinned tools: aws-sam-cli, checkov, parliament, runtime boto3 (cached per machine)
	@:

# What the release workflow's deploy jobs install, and nothing else: aws-sam-cli and the CLI (to
# publish the stage's policy), each from its lock.
.PHONY: release-tools
release-tools: $(SAM_STAMP) cli ## what a deploy job runs: aws-sam-cli and the DeployGuard CLI, each from its lock
	@:

# --- locks -------------------------------------------------------------------------------------------
# `make lock` resolves every *.in (and pyproject.toml's extras) with uv into a hash-locked file. It
# keeps the pins already in a lock unless told otherwise: `make lock LOCK_FLAGS=--upgrade` moves every
# pin, `LOCK_FLAGS='--upgrade-package moto'` one. The CLI lock is constrained to the layer's and the
# dev lock to the CLI's, so .venv runs exactly the versions the layer ships.
LOCK := $(UV) pip compile --quiet --universal --generate-hashes --custom-compile-command 'make lock' $(LOCK_FLAGS)
LOCKED_TOOLS := $(basename $(notdir $(wildcard $(TOOL_LOCKS)/*.in)))

.PHONY: lock
lock: $(UV_STAMP) ## regenerate every hash-locked requirement file with uv (LOCK_FLAGS=--upgrade moves the pins)
	$(LOCK) --python-version $(LOCK_PYTHON) requirements/layer.in -o $(LAYER_LOCK)
	$(LOCK) --python-version $(LOCK_PYTHON) pyproject.toml requirements/build.in --extra cli \
		-c $(LAYER_LOCK) -o $(CLI_LOCK)
	$(LOCK) --python-version $(LOCK_PYTHON) pyproject.toml requirements/build.in requirements/dev.in --extra dev \
		-c $(CLI_LOCK) -o $(DEV_LOCK)
	@set -e; for tool in $(LOCKED_TOOLS); do \
		echo "$(LOCK) --python-version 3.12 $(TOOL_LOCKS)/$$tool.in -o $(TOOL_LOCKS)/$$tool.txt"; \
		$(LOCK) --python-version 3.12 $(TOOL_LOCKS)/$$tool.in -o $(TOOL_LOCKS)/$$tool.txt; \
	done

# --- template ----------------------------------------------------------------------------------------
.PHONY: transform
transform: $(STAMP) ## write the transformed template (SAM's CloudFormation) that checkov and the IAM lint read
	@mkdir -p $(dir $(TRANSFORMED))
	$(BIN)/python -m tests.tools.transform $(TEMPLATE) --output $(TRANSFORMED)

.PHONY: validate
validate: $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) transform ## sam validate --lint, sam validate (translator), checkov
	$(BIN)/python scripts/render_template_parts.py --check
	$(SAM) validate --lint --template $(TEMPLATE) --region $(AWS_DEFAULT_REGION)
	$(SAM) validate --template $(TEMPLATE) --region $(AWS_DEFAULT_REGION)
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation --file $(TEMPLATE)
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation --file $(TRANSFORMED)

# NOTE: parliament runs in its own venv but imports tests.tools (standard library only) from this
# clone, to resolve the template's intrinsics to the ARNs an account would see. Offline: its IAM
# data ships in the package. Suppressed findings and why: tests/tools/iam_lint.py, docs/deploying.md.
.PHONY: iam-lint
iam-lint: $(PARLIAMENT_STAMP) transform ## parliament (offline) over every IAM statement of the transformed template
	$(PARLIAMENT) -W ignore::UserWarning -m tests.tools.iam_lint $(TRANSFORMED)

# NOTE: bytecode for Lambda. `sam deploy` zips every file with the date 1980-01-01 and /opt is
# read-only, so the timestamp-checked .pyc files pip writes never match their sources there: every
# module of the layer would be compiled again at every cold start (≈ 60% more instructions for the
# pre-traffic hook's init, scripts/bench.py). Unchecked-hash .pyc files are used as they are.
# The layer builds from its lock: layers/deployguard/requirements.txt is the hash-locked file, so
# the pip that sam build runs checks every file it downloads against the lock.
.PHONY: build
build: $(SAM_STAMP) ## sam build with Python 3.12 into .aws-sam/build, plus bytecode Lambda uses
	PATH="$(dir $(PYTHON312)):$$PATH" $(SAM) build --template $(TEMPLATE) --cached --parallel $(BUILD_FLAGS)
	$(PYTHON312) -m compileall -q -f -j 0 --invalidation-mode unchecked-hash .aws-sam/build

.PHONY: artifacts
artifacts: build $(STAMP) $(RUNTIME_STAMP) ## check the built artifacts (layer = its lock, imports alone under 3.12, no test libraries) and print sizes
	$(BIN)/python -m scripts.check_artifacts --python $(PYTHON312)

.PHONY: template
template: $(STAMP) ## everything about template.yaml: validation, checkov, IAM lint, build, artifact check
	@$(MAKE) --no-print-directory -j4 tools
	@$(MAKE) --no-print-directory validate iam-lint artifacts

.PHONY: render
render: $(STAMP) ## regenerate the dashboard and saved queries embedded in template.yaml
	$(BIN)/python scripts/render_template_parts.py

.PHONY: runtimes
runtimes: $(STAMP) ## regenerate the layer's runtime deprecation table from the pinned cfn-lint's data
	$(BIN)/python scripts/generate_runtimes.py

.PHONY: clean
clean: ## remove what make made in this clone (the cached tools stay: make clean-tools)
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .aws-sam build

.PHONY: clean-tools
clean-tools: ## remove the pinned tools cached for every clone on this machine
	rm -rf $(TOOLS) $(TOOLS_CACHE)
