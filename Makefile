# One entry point for every developer task. The first target that needs it creates .venv
# (Python 3.11, pinned requirements); later runs reuse it until a requirements file changes.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
REQUIREMENTS := requirements.txt layers/shared/requirements.txt $(wildcard functions/*/requirements.txt)

.PHONY: install test lint typecheck check clean

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
	$(BIN)/mypy layers/shared functions migrations tests

check: lint test

clean:
	rm -rf $(VENV) .aws-sam .local
