# The two commands of the README: `make demo` and `make test`. Each sets up .venv on first use
# (and again whenever pyproject.toml changes), so a fresh clone needs only python3 >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COVERAGE_FLOOR := 85

.PHONY: demo test lint setup

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/bulkdelete demo

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

test: lint
	$(BIN)/pytest --cov=bulkdelete --cov-branch --cov-report=term-missing:skip-covered \
		--cov-fail-under=$(COVERAGE_FLOOR)
