# Odyssey — the user's front door. `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
comma  := ,
STAMP  := $(VENV)/.installed
# analyze: the sweep to analyse; the default is the one `make run-sweep` writes
# (experiment quick on TASK, named <experiment>-<task>). ANALYZE_ARGS: odyssey-analyze overrides.
SWEEP  ?= quick-$(or $(TASK),music)
ANALYZE_ARGS ?=
# notebooks: NOTEBOOK_ARGS passes odyssey-notebooks options, e.g. NOTEBOOK_ARGS="-p N_TREES=20"
NOTEBOOK_ARGS ?=
# lab: JupyterLab's port (it binds to 127.0.0.1 only)
LAB_PORT ?= 8888

.PHONY: help setup system-deps test test-slow test-slurm test-all lint bench clean run-sweep \
	analyze notebooks lab reproduce docs

# run-sweep: the quick sweep (configs/experiment/quick.yaml) on WORKERS local processes
# (hydra/launcher=processes: one killed worker leaves the others running);
# SWEEP_ARGS passes any odyssey-sweep overrides, e.g. SWEEP_ARGS="trials_per_variant=16"
WORKERS    ?= 2
TASK       ?= music
SWEEP_ARGS ?=
# EXTRAS: further pyproject extras to install besides dev, e.g. EXTRAS=cluster
EXTRAS     ?=

help:
	@echo "make setup      create $(VENV), install $(TORCH) then odyssey (TORCH=... to choose another build; EXTRAS=cluster for PostgreSQL/SLURM)"
	@echo "make system-deps  Debian packages the kernels, speech corpus and tests need (g++, flite, wamerican, postgresql, chromium, SLURM, MariaDB), as root"
	@echo "make test       run the default (fast) test suite, setting up first if needed"
	@echo "make test-slow  run the slow end-to-end tests"
	@echo "make test-slurm sweeps through real sbatch on a throwaway SLURM cluster (root)"
	@echo "make analyze    analyse results/$(SWEEP) into report.md, figures/, tables/ (SWEEP=name)"
	@echo "make notebooks  execute notebooks/ on results/$(SWEEP) into its notebooks/ (.ipynb + .html)"
	@echo "make lab        JupyterLab on notebooks/ at 127.0.0.1:$(LAB_PORT) (installs .[notebooks] once)"
	@echo "make lint       ruff, and lint-imports (the layers in pyproject.toml)"
	@echo "make docs       the documentation site into site/, strictly (installs .[docs] once)"
	@echo "make run-sweep  build the $(TASK) corpus if needed, run the quick sweep on WORKERS=$(WORKERS) processes"
	@echo "make reproduce  the quick study on music, speech and handwriting, then one cross-task report"
	@echo "make bench      speed benchmarks (results/bench/)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[dev$(if $(EXTRAS),$(comma)$(EXTRAS))]"
	touch $(STAMP)

setup: system-deps $(STAMP)

# g++ builds the fast kernels (odyssey/cells/csrc) on first use;
# flite synthesises the speech task's embedded corpus from words in wamerican's list;
# postgresql gives the tests a throwaway server (tests/search/pg.py; never the default cluster);
# chromium loads a rendered notebook page headless (tests/cli/test_notebooks.py);
# slurmctld, slurmd, slurm-client, slurmdbd and mariadb-server a throwaway SLURM cluster with
# accounting (tests/search/slurm.py; never /etc/slurm nor the machine's own MariaDB).
# The missing ones are installed when running as root with apt; otherwise a note says how,
# and in CI (CI=true) that is an error: CI must not run with parts of the suite unable to run.
# (Debian's packages start no service here: their daemons run only inside the tests.)
APT_DEPS := g++ flite wamerican postgresql chromium slurmctld slurmd slurm-client slurmdbd \
	mariadb-server
# $(call probe,PACKAGE,COMMAND): PACKAGE when COMMAND (its check) fails
probe = $(shell $(2) >/dev/null 2>&1 || echo $(1))
SYSTEM_DEPS_MISSING := $(strip $(call probe,g++,command -v $${CXX:-c++}) \
	$(call probe,flite,command -v flite) $(call probe,wamerican,test -f /usr/share/dict/words) \
	$(call probe,postgresql,ls /usr/lib/postgresql/*/bin/initdb) \
	$(call probe,chromium,command -v chromium) \
	$(call probe,slurmctld,test -x /usr/sbin/slurmctld) \
	$(call probe,slurmd,test -x /usr/sbin/slurmd) \
	$(call probe,slurm-client,command -v sbatch) \
	$(call probe,slurmdbd,test -x /usr/sbin/slurmdbd) \
	$(call probe,mariadb-server,test -x /usr/sbin/mariadbd))
system-deps:
ifeq ($(SYSTEM_DEPS_MISSING),)
	@:
else
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_DEPS_MISSING); \
	else \
		echo "note: missing Debian packages $(SYSTEM_DEPS_MISSING) (g++ builds the fast" \
		     "kernels, flite and wamerican the speech corpus, postgresql the store tests," \
		     "chromium the notebook page test, the SLURM and MariaDB ones make test-slurm):" \
		     "sudo apt-get install $(SYSTEM_DEPS_MISSING)"; \
		case "$$(echo "$${CI:-}" | tr A-Z a-z)" in true|1|yes) \
			echo "error: CI=true and the packages above are missing (not root, or no" \
			     "apt-get): CI runs every test, so install them first" >&2; exit 1;; \
		esac; \
	fi
endif

test: system-deps $(STAMP)
	$(PY) -m pytest

test-slow: system-deps $(STAMP)
	$(PY) -m pytest -m slow

# the sweeps through real sbatch on a throwaway SLURM cluster (tests/search/test_slurm.py)
test-slurm: system-deps $(STAMP)
	$(PY) -m pytest -m slurm

test-all: system-deps $(STAMP)
	$(PY) -m pytest -m "slow or not slow or slurm"

analyze: $(STAMP)
	$(VENV)/bin/odyssey-analyze sweep_name=$(SWEEP) $(ANALYZE_ARGS)
	$(VENV)/bin/odyssey-notebooks $(SWEEP) $(NOTEBOOK_ARGS)

notebooks: $(STAMP)
	$(VENV)/bin/odyssey-notebooks $(SWEEP) $(NOTEBOOK_ARGS)

lab: $(STAMP)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install -e ".[notebooks]"
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks --ServerApp.ip=127.0.0.1 \
		--ServerApp.port=$(LAB_PORT) --no-browser $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# bench refuses (exit 3) to publish timings taken at load average >= 1.5; BENCH_ARGS=--force
# measures anyway and marks the results busy.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) benchmarks/bench_cells.py $(BENCH_ARGS)
	$(PY) benchmarks/fanova_speed.py $(BENCH_ARGS)
	$(PY) benchmarks/protocol_throughput.py $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# docs: the site from docs/ and mkdocs.yml, built offline; --strict fails on any warning (a
# broken link or anchor, a page missing from the nav, an API reference that does not resolve)
docs: $(STAMP)
	@$(PY) -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null || \
		$(PY) -m pip install -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# the workers build the corpus the sweep's config names (the quick study's own sizes) when it
# is missing: one builds under a lock while the other waits
run-sweep: system-deps $(STAMP)
	$(VENV)/bin/odyssey-sweep --multirun hydra/launcher=processes hydra.launcher.n_jobs=$(WORKERS) \
		'worker=range(0,$(WORKERS))' task=$(TASK) $(SWEEP_ARGS)

# reproduce: the quick study (experiment=quick) on each of REPRO_TASKS, each its own sweep
# quick-<task> (a finished one is not run again; an interrupted one resumes), then one report
# over all of them in results/quick-music+quick-speech+quick-handwriting/. SWEEP_ARGS
# reaches every sweep, SWEEP_ARGS_<task> one task's (e.g. SWEEP_ARGS_speech="task.source=timit
# task.path=/data/timit"); ANALYZE_ARGS the analysis.
REPRO_TASKS ?= music speech handwriting
empty :=
space := $(empty) $(empty)
REPRO_SWEEPS = [$(subst $(space),$(comma),$(strip $(foreach t,$(REPRO_TASKS),quick-$(t))))]
reproduce: system-deps $(STAMP)
	@$(foreach t,$(REPRO_TASKS),echo "== make reproduce: the quick study on $(t)" && \
		$(MAKE) --no-print-directory run-sweep TASK=$(t) \
		SWEEP_ARGS="$(SWEEP_ARGS) $(SWEEP_ARGS_$(t))" && ) true
	$(VENV)/bin/odyssey-analyze 'sweep_name=$(REPRO_SWEEPS)' $(ANALYZE_ARGS)

clean:
	rm -rf $(VENV) build site *.egg-info
