# One entry point for every developer task. The first target that needs it creates .venv
# (Python 3.11, pinned requirements); later runs reuse it until a requirements file changes.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
REQUIREMENTS := requirements.txt layers/shared/requirements.txt $(wildcard functions/*/requirements.txt)

.PHONY: install test lint typecheck check clean sam-install sam-validate sam-build layer-size

$(VENV)/.installed: $(REQUIREMENTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

## test: the whole suite on an embedded PostgreSQL + pgvector (or TEST_DATABASE_URL)
test: install
	$(BIN)/pytest $(PYTEST_ARGS)

## lint: ruff and mypy
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/shared migrations tests
	# One run per function: each app.py imports its siblings by bare name (as Lambda does), and
	# every function has an app.py, so they cannot share one module namespace.
	for dir in functions/*/; do MYPYPATH=$$dir $(BIN)/mypy $$dir || exit 1; done

check: lint test

# SAM CLI lives in its own virtualenv: it pins its own boto3/pydantic. No AWS call is made here:
# a fixed region and no telemetry; `sam build` runs without Docker and fetches arm64 wheels from PyPI.
SAM_VENV := .venv-sam
SAM := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM_VENV)/bin/sam

$(SAM_VENV)/.installed: requirements-sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt
	touch $@

sam-install: $(SAM_VENV)/.installed

## sam-validate: SAM translation and cfn-lint of template.yaml; any finding fails
# (`sam validate --lint` reports errors only; cfn-lint itself adds warnings and informational checks)
sam-validate: sam-install
	$(SAM) validate --template-file template.yaml
	$(SAM) validate --lint --template-file template.yaml
	$(SAM_VENV)/bin/cfn-lint --include-checks I -- template.yaml

## sam-build: build the layer and every function for arm64 into .aws-sam/build (no container)
sam-build: sam-install
	$(SAM) build --template-file template.yaml

## layer-size: unzipped sizes of the built layer and functions; fails over budget or on drift
layer-size: install sam-build
	$(BIN)/python -m devtools.sam_build_report .aws-sam/build

clean:
	rm -rf $(VENV) .aws-sam .local
