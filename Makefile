# Two commands on a fresh machine: `make run` and `make test`. Each creates .venv and installs what it needs.
# TORCH_SPEC picks the torch build: with no torch installed pip takes the platform default (on Linux a
# CUDA build of several GB); e.g. `make test TORCH_SPEC=torch==2.13.0` for a CPU build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
BIN := $(VENV)/bin
STAMP := $(VENV)/.disent-bench-installed
GRID ?= benchmarks.toml

.PHONY: install run test clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

run: install
	$(BIN)/disent-bench run --grid $(GRID)
	$(BIN)/disent-bench report --grid $(GRID)

test: install
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
