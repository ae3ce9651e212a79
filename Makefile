# v0lite: the two commands.  `make demo` installs and runs the main job; `make test` installs and runs the tests.
# `make install` installs the exact versions of requirements/lock.txt; `make lock` refreshes that file.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
# the CPU build of torch that `make lock` starts from (pip takes the local +cpu wheel for ==2.13.0)
TORCH_VERSION ?= 2.13.0
LOCK_VENV ?= /tmp/v0lite-lock-venv
LINT_PATHS := v0lite tests benchmarks examples

.PHONY: install lock lint demo test test-slow bench clean

$(BIN)/v0lite: pyproject.toml $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c $(LOCK) pip
	# torch first, pinned by the lock (the CPU wheel), so no dependency pulls a CUDA build
	$(BIN)/python -m pip install -q -c $(LOCK) torch
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[dev]"
	requirements/check_no_cuda.sh $(BIN)/python
	touch $(BIN)/v0lite

install: $(BIN)/v0lite

# a clean venv in $(LOCK_VENV): torch first, then v0lite with every extra; writes $(LOCK) (a few minutes)
lock:
	requirements/lock.sh "$(PY)" "$(LOCK_VENV)" "$(TORCH_VERSION)" "$(LOCK)"

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

demo: install
	$(BIN)/v0lite demo

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/routing.py
	$(BIN)/python benchmarks/allocation.py
	$(BIN)/python benchmarks/speed.py --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
