# The two commands: `make run` (set-up + default study) and `make test` (set-up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

.PHONY: run test test-fast lint acceptance benchmark clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: this release installs from local disk; anything else downloads GBs
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html

# one pytest worker per core (pytest-xdist); a test file stays on one worker, so its module fixtures run once
test: $(STAMP)
	$(BIN)/python -m pytest tests -q -n auto --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -q -n auto --dist loadfile -m "not slow and not slurm"

# ruff (settings in pyproject.toml), snakefmt on the Snakefile and rules, and Snakemake's own linter
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

acceptance: $(STAMP)
	$(BIN)/python -m pytest ../shared/acceptance -q

benchmark: $(STAMP)
	$(BIN)/python benchmarks/simulate.py

clean:
	rm -rf results .snakemake
