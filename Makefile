# The two commands of the README: `make demo` and `make test`. Each sets up .venv on first use
# (and again whenever pyproject.toml changes), so a fresh clone needs only python3 >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COVERAGE_FLOOR := 95

.PHONY: demo test lint setup browser bench evidence

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

# The HTML report is tested in a real headless browser (Debian's chromium package), and its
# print-out read back with poppler-utils' pdftotext and pdfinfo.
browser:
	@{ command -v chromium && command -v pdftotext && command -v pdfinfo; } >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			chromium poppler-utils >/dev/null; }

# The screenshot and the PDF of a reviewer's report under docs/evidence/, from real runs.
evidence: $(STAMP) browser
	BULKDELETE_EVIDENCE_DIR=docs/evidence $(BIN)/pytest tests/test_reviewer_report.py -q

test: lint browser
	$(BIN)/pytest -n 2 --dist loadgroup --cov --cov-report=term \
		--cov-fail-under=$(COVERAGE_FLOOR)

# Long benchmarks, outside `make test`: figures, not pass/fail timings. BENCHMARKS.md is written.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python bench/nothing_lost.py
	$(BIN)/python bench/pacing.py
	$(BIN)/python bench/bulk_permanent.py
