# Two entry points for a fresh machine: `make serve` (install + run the server) and `make test` (install + tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DATA   ?= ./data

PORT   ?= 50051

.PHONY: install serve demo test test-slow lint format bench-exact clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/vecstore serve --data $(DATA) --port $(PORT)

demo: $(STAMP)
	$(PY) -m bench.demo --data $(DATA)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench-exact: $(STAMP)
	$(PY) -m bench.exact_baseline

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
