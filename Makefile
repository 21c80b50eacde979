# The two commands of the README: `make dev` (run the platform locally) and `make test` (all tests).
# Each does its own set-up on a fresh clone: venv + pip (pinned by constraints.txt) and npm ci.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export AWS_EC2_METADATA_DISABLED := true

.PHONY: setup dev test lint format typecheck pytest unit integration infra e2e synth bench layers clean

$(BIN)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(BIN)/.installed node_modules/.installed

dev: setup
	$(BIN)/python -m local_stack

test: setup lint typecheck pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(BIN)/.installed
	$(BIN)/mypy layers/core/python/billing_platform
	$(BIN)/mypy functions local_stack infra

pytest: setup
	$(BIN)/pytest -n 2 --dist loadgroup

unit: setup
	$(BIN)/pytest tests/unit

synth: setup
	CDK_DEFAULT_ACCOUNT=123456789012 CDK_DEFAULT_REGION=us-east-1 npx cdk synth --quiet

bench: setup
	$(BIN)/python -m tests.bench

layers: $(BIN)/.installed
	$(BIN)/python -m infra.dependency_layers

clean:
	rm -rf $(VENV) node_modules cdk.out build .mypy_cache .ruff_cache .pytest_cache
