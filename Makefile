# Two entry points for a fresh machine: `make serve` (install + run the server) and `make test` (install + tests).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DATA   ?= ./data

PORT   ?= 50051

.PHONY: install serve demo test test-slow lint format bench bench-windows bench-windows-labels bench-attributes bench-full bench-install bench-publish bench-exact clean

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

# the peers (pip extra "bench") and fashion-mnist (Debian package dataset-fashion-mnist)
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,bench]'
	[ -f $(FASHION_MNIST) ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; } \
		|| { echo "could not install dataset-fashion-mnist; install it, or run: $(PY) -m bench run --dataset git-commits"; exit 1; }
	touch $(BENCH_STAMP)

bench-install: $(BENCH_STAMP)

# quick preset (about 52 minutes on 2 cores): bench/results/quick/report.md and PNGs
bench: $(BENCH_STAMP)
	$(PY) -m bench run --preset quick

# movies at full size (58,688 rows), unfiltered and every window fraction 2^-16 .. 2^0 (about 20 minutes)
bench-windows: $(BENCH_STAMP)
	$(PY) -m bench run --preset windows

# fashion-mnist whole (seeded random label) and the adversarial set at 100,000 rows, every window
# fraction 2^-16 .. 2^0 (2^-5 on the adversarial set)
bench-windows-labels: $(BENCH_STAMP)
	$(PY) -m bench run --preset windows-labels

# ranges on movie rating and votes (full size) and jeopardy's windows and categories (22-28 minutes)
bench-attributes: $(BENCH_STAMP)
	$(PY) -m bench run --preset attributes

bench-full: $(BENCH_STAMP)
	$(PY) -m bench run --preset full

# copy the latest quick report and its window plots to bench/report/, and each other preset's to
# bench/report/<preset>/ (tracked; the README shows them)
bench-publish:
	mkdir -p bench/report
	cp bench/results/quick/report.md bench/results/quick/window-*.png bench/report/
	for preset in windows windows-labels attributes; do \
		if [ -d bench/results/$$preset ]; then mkdir -p bench/report/$$preset && \
			cp bench/results/$$preset/report.md bench/results/$$preset/window-*.png bench/report/$$preset/; fi; \
	done

bench-exact: $(STAMP)
	$(PY) -m bench.exact_baseline

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
