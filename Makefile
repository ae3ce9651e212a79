# v0lite: the two commands.  `make demo` installs and runs the main job; `make test` installs and runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-slow bench clean

$(BIN)/v0lite: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned below 2.14 (the CPU wheel here), so no dependency pulls a newer CUDA build
	$(BIN)/python -m pip install -q "torch>=2.3,<2.14"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BIN)/v0lite

install: $(BIN)/v0lite

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
