# Every target that needs Python depends on .venv/.installed, which is rebuilt from the
# lock file whenever the lock (or pyproject) changes: no resolver runs on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
FIND_LINKS := /opt/wheels

.PHONY: setup lock test lint format demo bench clean-stack

$(BIN)/uv:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled at install time: shells here set PYTHONDONTWRITEBYTECODE, and without
# .pyc files every dvc/gglops/pytest start recompiles its imports (dvc repro no-op: 6 s → 1.7 s).
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip sync --python $(BIN)/python --find-links $(FIND_LINKS) --compile-bytecode \
		requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# Re-pin after editing requirements.in (the only place versions are chosen).
lock: | $(BIN)/uv
	$(BIN)/uv pip compile requirements.in --find-links $(FIND_LINKS) --python-version 3.11 -o requirements.lock

test: setup
	$(BIN)/python -m pytest tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The whole pipeline on the embedded defaults: local stack, then `dvc repro`, then a summary.
# DEMO_FORCE=1 re-runs every stage even when nothing changed.
demo: setup
	$(BIN)/gglops stack up
	eval "$$($(BIN)/gglops stack env)" && PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(BIN)/dvc repro $(if $(DEMO_FORCE),--force,)
	eval "$$($(BIN)/gglops stack env)" && $(BIN)/gglops summary

bench: setup
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean-stack: setup
	$(BIN)/gglops stack down
