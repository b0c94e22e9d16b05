# Odyssey — the user's front door. `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help setup system-deps test test-slow test-all lint bench clean

help:
	@echo "make setup      create $(VENV), install $(TORCH) then odyssey (TORCH=... to choose another build)"
	@echo "make system-deps  Debian packages the speech corpus needs (flite, wamerican), as root"
	@echo "make test       run the default (fast) test suite, setting up first if needed"
	@echo "make test-slow  run the slow end-to-end tests"
	@echo "make lint       ruff"
	@echo "make bench      speed benchmarks (results/bench/)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

setup: system-deps $(STAMP)

# flite synthesises the speech task's embedded corpus from words in wamerican's list.
# Installed when missing and running as root with apt; otherwise a note says how.
SYSTEM_DEPS_OK := $(shell command -v flite >/dev/null 2>&1 && test -f /usr/share/dict/words && echo yes)
system-deps:
ifeq ($(SYSTEM_DEPS_OK),yes)
	@:
else
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite wamerican; \
	else \
		echo "note: the speech task's embedded corpus needs flite and wamerican:" \
		     "sudo apt-get install flite wamerican"; \
	fi
endif

test: system-deps $(STAMP)
	$(PY) -m pytest

test-slow: system-deps $(STAMP)
	$(PY) -m pytest -m slow

test-all: system-deps $(STAMP)
	$(PY) -m pytest -m "slow or not slow"

bench: $(STAMP)
	$(PY) benchmarks/bench_cells.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
