# Two commands set everything up: `make demo` and `make test`.
# Both install the exact versions pinned in constraints.txt (the lock); a changed lock reinstalls.
# `make lock` recompiles the lock from pyproject.toml (`make lock UPGRADE=1` also moves every pin to the newest
# release allowed); `make lock-check` checks, offline, that the lock still agrees with pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
LOCK   := constraints.txt

# The installer and the lock compiler, pinned by hand (bump them here). pip-tools is not a dependency of Keel:
# it lives in a venv of its own, only for `make lock`.
PIP       := pip==26.3
PIP_TOOLS := pip-tools==7.6.2
LOCKVENV  := $(VENV)/lock-tools

# Installs honour the lock; --build-constraint pins the editable build's setuptools and wheel as well.
INSTALL := $(BIN)/python -m pip install --quiet -c $(LOCK) --build-constraint $(LOCK)

# What the lock covers: the dependencies, every extra, the build requirements; pins only (no index options, no
# hashes), extras stripped so that it works as a constraints file. UPGRADE=1 re-resolves every pin.
COMPILE := --quiet --all-extras --all-build-deps --strip-extras --allow-unsafe --no-emit-options --no-config \
           $(if $(filter 1,$(UPGRADE)),--upgrade)

.PHONY: demo test crash lint format bench clean lock lock-check mutants

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(PIP)

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(INSTALL) -e .
	touch $@

$(DEVSTAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(INSTALL) -e ".[dev]"
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/keel demo --fresh

test: $(DEVSTAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The SIGKILL crash tests at four times the kill points `make test` uses (24 a run, not 6): about 10 minutes.
crash: $(DEVSTAMP)
	KEEL_TEST_CRASH_KILLS=24 $(BIN)/python -m pytest -n 2 --dist loadfile -m slow tests/integration

# Refresh the lock: pip-compile keeps the existing pins unless UPGRADE=1, then the digest header is written.
$(LOCKVENV)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCKVENV)
	$(LOCKVENV)/bin/python -m pip install --quiet $(PIP) $(PIP_TOOLS)

lock: | $(LOCKVENV)/bin/pip-compile
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCKVENV)/bin/pip-compile $(COMPILE) -o $(LOCK) pyproject.toml
	$(LOCKVENV)/bin/python scripts/check_lock.py --write-digest

# Offline: needs only the venv's interpreter and pip (CI runs it before installing anything).
lock-check: | $(BIN)/python
	$(BIN)/python scripts/check_lock.py

lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: $(DEVSTAMP)
	$(BIN)/ruff format src tests benchmarks scripts
	$(BIN)/ruff check --fix src tests benchmarks scripts

# The issue-13 targets, side by side with backtesting.py (its own venv, created on first use): about 10 minutes.
bench: $(STAMP)
	$(BIN)/python benchmarks/replay_throughput.py
	$(BIN)/python benchmarks/process_throughput.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/session_latency.py

# Mutation run over the guards (docs/mutation.md): each mutant in a temporary copy of src/, never in the work tree.
mutants: $(DEVSTAMP)
	$(BIN)/python scripts/mutants.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
