# One entry point for every developer task. The first target that needs it creates .venv
# (Python 3.11, pinned requirements); later runs reuse it until a requirements file changes.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
REQUIREMENTS := requirements.txt layers/shared/requirements.txt $(wildcard functions/*/requirements.txt)
# The product's import roots, as Lambda's sys.path has them: the layer (/opt/python) and each
# function's directory (/var/task), whose package (flex_search, flex_ingest, ...) sits beside app.py.
empty :=
PRODUCT_PATH := $(subst $(empty) $(empty),:,layers/shared $(wildcard functions/*))

.PHONY: install pgvector06-install test test-pg16 lint typecheck check clean sam-install sam-validate sam-build layer-size scan-install scan run demo invoke replay-failures api-examples openapi contract-install contract bench

$(VENV)/.installed: $(REQUIREMENTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

# A real pgvector 0.6.2 server (the unmaintained pgserver 0.1.4) in its own virtualenv, for the
# test that proves the migrations refuse it before changing anything; never in .venv.
PGVECTOR06_VENV := .venv-pgvector06
$(PGVECTOR06_VENV)/.installed: requirements-pgvector06.txt
	test -x $(PGVECTOR06_VENV)/bin/python || $(PYTHON) -m venv $(PGVECTOR06_VENV)
	$(PGVECTOR06_VENV)/bin/python -m pip install --quiet -r requirements-pgvector06.txt
	touch $@

## test: the whole suite on an embedded PostgreSQL 18 + pgvector 0.8 (or TEST_DATABASE_URL)
pgvector06-install: $(PGVECTOR06_VENV)/.installed

test: install $(PGVECTOR06_VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

## test-pg16: the database tests again on the embedded PostgreSQL 16 (RDS users run 15 to 17)
test-pg16: install $(PGVECTOR06_VENV)/.installed
	FLEX_EMBEDDED_POSTGRES=16 $(BIN)/pytest -m database $(PYTEST_ARGS)


## lint: ruff, the import contracts (pyproject.toml) and mypy
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=$(PRODUCT_PATH) $(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	# Each function's entry point is module `app` (template.yaml's app.lambda_handler): one short
	# run each, its package already checked (and cached) by the run above.
	for entry in functions/*/app.py; do $(BIN)/mypy "$$entry" || exit 1; done

check: lint test

## run: the whole system locally, no Docker (embedded PostgreSQL, moto S3, samples, API on :3000)
# RUN_ARGS=... passes options, e.g. RUN_ARGS="--port 0" or RUN_ARGS="--env-vars env.json"
run: install
	$(BIN)/python -m devtools.local run $(RUN_ARGS)

## demo: one-shot end-to-end demo on temporary directories and ports; exits 0 when it all works
demo: install
	$(BIN)/python -m devtools.local demo

## invoke: one function with an event, like `sam local invoke`
# make invoke FUNCTION=SearchFunction EVENT=events/search_post.json [ENV_VARS=env.json]
invoke: install
	$(BIN)/python -m devtools.local invoke $(FUNCTION) -e $(EVENT) $(if $(ENV_VARS),--env-vars $(ENV_VARS))

## replay-failures: replay the ingestion failure queue through the ingest function, in order,
## exactly once; prints what was replayed and what was skipped as already applied
# make replay-failures QUEUE_URL=<output IngestFailureQueueUrl> [FUNCTION=name] [REPLAY_ARGS=--dry-run]
replay-failures: install
	@test -n "$(QUEUE_URL)" || { echo "usage: make replay-failures QUEUE_URL=<IngestFailureQueueUrl>"; exit 2; }
	$(BIN)/python -m devtools.replay_failures "$(QUEUE_URL)" $(if $(FUNCTION),--function $(FUNCTION)) $(REPLAY_ARGS)

## api-examples: real answers of the local API for openapi.json's examples (docs/api-examples.json)
api-examples: install
	$(BIN)/python -m devtools.local api-examples

## openapi: regenerate openapi.json from the API functions (a test keeps it current)
openapi: install
	$(BIN)/python -m devtools.local openapi

# Schemathesis lives in its own virtualenv: its pytest plugin would load into every test run.
CONTRACT_VENV := .venv-contract
$(CONTRACT_VENV)/.installed: requirements-contract.txt
	test -x $(CONTRACT_VENV)/bin/python || $(PYTHON) -m venv $(CONTRACT_VENV)
	$(CONTRACT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CONTRACT_VENV)/bin/python -m pip install --quiet -r requirements-contract.txt
	touch $@

contract-install: $(CONTRACT_VENV)/.installed

## contract: schemathesis runs openapi.json against the local API; fails on any finding
# Every check but those about authentication. In AWS every route needs IAM (SigV4), which the
# local API does not check (no AWS here): `ignored_auth` (a request without credentials must
# be refused) and `object_level_authorization` are left out, and no Authorization header is
# generated (--generation-with-security-parameters false). `unsupported_method` is left out
# for the same reason: it wants 405 for a method a path lacks, and API Gateway answers it
# itself with its authentication response, 403 `Missing Authentication Token` (as for an
# unknown path; the local API does the same, and tests check it). All four phases; the
# stateful one follows the document's links (creates -> reads, updates, results). One worker
# (two share a Hypothesis cache and raised errors). A fixed seed: the same cases on every run;
# CONTRACT_ARGS adds or overrides options, e.g. CONTRACT_ARGS="--seed 7 --max-examples 200".
CONTRACT_CHECKS := --checks all \
	--exclude-checks ignored_auth,object_level_authorization,unsupported_method \
	--generation-with-security-parameters false
CONTRACT_RUN := $(CONTRACT_CHECKS) --phases examples,coverage,fuzzing,stateful \
	--max-examples 40 --workers 1 --seed 16 --generation-database none
contract: install contract-install
	$(BIN)/python -m devtools.local contract --schemathesis $(CONTRACT_VENV)/bin/schemathesis \
		-- $(CONTRACT_RUN) $(CONTRACT_ARGS)

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

# checkov lives in a third virtualenv: it pins its own boto3, unlike the SAM CLI and the project.
SCAN_VENV := .venv-scan

$(SCAN_VENV)/.installed: requirements-scan.txt
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/python -m pip install --quiet -r requirements-scan.txt
	touch $@

scan-install: $(SCAN_VENV)/.installed

## scan: checkov on template.yaml as written and as SAM translates it; fails on any finding
# that is neither fixed nor suppressed beside its resource with a one-line reason
# (devtools/template_scan.py; runs on the SAM CLI's interpreter for SAM's translator; offline).
scan: sam-install scan-install
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM_VENV)/bin/python -m devtools.template_scan \
		--template template.yaml --checkov $(SCAN_VENV)/bin/checkov --out-dir .aws-sam/scan

## layer-size: unzipped sizes of the built layer and functions; fails over budget or on drift
layer-size: install sam-build
	$(BIN)/python -m devtools.sam_build_report .aws-sam/build

## bench: every benchmark on the embedded database, one table + bench/results/latest.json
# BENCH_ARGS passes options through, e.g. BENCH_ARGS=--quick or BENCH_ARGS="--rows 1000000"
bench: install
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .aws-sam .local
