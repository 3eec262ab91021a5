# The two commands of the README: `make run` and `make test`. Each sets up .venv/ by itself.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The venv's bin goes first on PATH so torch's cpp_extension finds ninja.
export PATH := $(abspath $(BIN)):$(PATH)
# `make run` starts the product (`tryon up`: the API with the shipped models and SQLite under ./data, and the
# storefront UI); `make run ARGS="generate ..."` runs any verb.
ARGS ?= up

.PHONY: run test setup lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/tryon $(ARGS)

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
