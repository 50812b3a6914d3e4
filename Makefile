# Two entry points do all set-up: `make demo` and `make test`.
# TORCH is installed first so pip never resolves a plain `torch` to a multi-GB CUDA build on a
# CPU-only machine; override it elsewhere, e.g. `make demo TORCH="torch==2.13.0 --index-url ..."`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/gsmt demo --out demo_out --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo_out .pytest_cache
