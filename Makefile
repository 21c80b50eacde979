# The two commands of the README: `make dev` (run the platform locally) and `make test` (all tests).
# Each does its own set-up on a fresh clone: venv + pip (pinned by constraints.txt) and npm ci.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8765
PYTEST_WORKERS ?= 2
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export AWS_EC2_METADATA_DISABLED := true

.PHONY: setup web tools browser dev test lint format typecheck pytest unit integration infra e2e synth bench layers lambda-python clean

# Fail early, with the fix, when a machine lacks what the README promises it needs.
tools:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (PYTHON=$(PYTHON))")'
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null \
		|| { echo "Node.js >= 20 is needed (CDK CLI, DynamoDB Local package)"; exit 1; }
	@java -version >/dev/null 2>&1 || { echo "Java 17+ is needed to run DynamoDB Local"; exit 1; }

$(BIN)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The portal's pages, console and widget, bundled by esbuild (pinned in package.json) into the portal
# function's folder; rebuilt when a source changes.
WEB_SOURCES := web/build.mjs $(wildcard web/src/*) $(wildcard web/pages/*)
functions/portal/static/.built: node_modules/.installed $(WEB_SOURCES)
	node web/build.mjs
	touch $@

web: functions/portal/static/.built

setup: tools $(BIN)/.installed node_modules/.installed web

# Debian's Chromium for the browser tests (Playwright drives it; Playwright's own download cannot work
# offline). Installed with apt where missing and root, as on CI's fresh machine; otherwise says how.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| { echo "Chromium is needed for the browser tests: sudo apt-get install chromium"; exit 1; }

# Runs until Ctrl-C, which stops every process it started. `make dev PORT=0` picks a free port.
# `make dev CONCURRENCY=n`: at most n containers (worker processes) per function (default: resources.py).
dev: setup
	$(BIN)/python -m local_stack --port $(PORT) $(if $(CONCURRENCY),--concurrency $(CONCURRENCY))

# setup, then ruff, mypy and every pytest suite (unit, integration, infra, e2e, lambda_python). The layers
# are built first: tests/lambda_python runs every handler from them on Lambda's Python (python3.13).
test: setup lint typecheck layers pytest

# Every handler imported from the built layers + its folder only and invoked once, on python3.13.
lambda-python: layers
	$(BIN)/pytest tests/lambda_python -p no:randomly

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(BIN)/.installed
	$(BIN)/mypy layers/core/python/billing_platform
	$(BIN)/mypy functions local_stack infra examples

# All marks (ddblocal, infra, e2e included). loadgroup keeps xdist_group-ed tests (the CDK app) together.
pytest: setup browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=10

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup tests/integration

# The local stack's own parts (gateway, runtime, pollers, provisioning, event shapes, billing hook).
local-stack: setup
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup tests/local_stack

infra: setup
	$(BIN)/pytest tests/infra

e2e: setup browser
	$(BIN)/pytest tests/e2e

# Offline: no credentials, no Docker. cdk-nag runs as a validation plugin; any finding fails the synth.
synth: setup
	CDK_DEFAULT_ACCOUNT=123456789012 CDK_DEFAULT_REGION=us-east-1 npx cdk synth --quiet

bench: setup
	$(BIN)/python -m tests.bench

layers: $(BIN)/.installed
	$(BIN)/python -m infra.dependency_layers

clean:
	rm -rf $(VENV) node_modules cdk.out build functions/portal/static .mypy_cache .ruff_cache .pytest_cache
