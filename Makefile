# Every target that needs Python depends on .venv/.installed, which is rebuilt from the
# lock file whenever the lock (or pyproject) changes: no resolver runs on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
FIND_LINKS := /opt/wheels

.PHONY: setup lock test test-fast browser docs lint format demo demo-real bench image clean-stack

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

# Headless Chromium (Debian's package) for the tests that screenshot the MLflow UI, DVC plots
# and the HTML report; installed once, only where it is missing.
browser:
	@command -v chromium-headless-shell >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium-headless-shell fonts-dejavu-core >/dev/null; }

# The full suite, services included: what CI runs.
test: setup browser
	$(BIN)/python -m pytest tests

# No services (no Ray, MLflow, S3, subprocess pipelines): the loop to run after each edit.
test-fast: setup
	$(BIN)/python -m pytest tests -m "not integration" -q

# docs/reliability.md from the last full `make test` (rows in build/reliability.json).
docs: setup
	$(BIN)/python tools/tables.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

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

# `make image`: the cluster images from infra/docker/Dockerfile, tagged by the commit they hold:
# $(IMAGE_REPO):<12-char sha>[-dirty] (CPU) and the same tag + `-cuda`. It also renders
# $(RENDER_DIR)/kuberay/*.yaml (the manifests' placeholder `gglops:GIT_SHA` → these tags) and
# $(RENDER_DIR)/image.env (GGLOPS_IMAGE, GGLOPS_IMAGE_CUDA for docker compose --env-file).
# IMAGE_REPO=ghcr.io/<org>/gglops IMAGE_PUSH=1 pushes; DOCKER=echo prints the builds only.
DOCKER ?= docker
IMAGE_REPO ?= gglops
GIT_SHA = $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
GIT_DIRTY = $(if $(shell git status --porcelain --untracked-files=no 2>/dev/null),-dirty,)
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(GIT_DIRTY)
IMAGE_FLAVORS ?= cpu cuda
CUDA_TAG ?= cu128
RENDER_DIR ?= build/infra
IMAGE_SUFFIX_cpu :=
IMAGE_SUFFIX_cuda := -cuda
IMAGE_BASE_cpu :=
IMAGE_BASE_cuda := -gpu

image:
	@set -e; for flavor in $(IMAGE_FLAVORS); do \
		case $$flavor in cpu) suffix="$(IMAGE_SUFFIX_cpu)"; base="$(IMAGE_BASE_cpu)";; \
			cuda) suffix="$(IMAGE_SUFFIX_cuda)"; base="$(IMAGE_BASE_cuda)";; \
			*) echo "IMAGE_FLAVORS: unknown flavor $$flavor (cpu, cuda)" >&2; exit 2;; esac; \
		$(DOCKER) build -f infra/docker/Dockerfile --build-arg FLAVOR=$$flavor \
			--build-arg BASE_SUFFIX=$$base --build-arg CUDA_TAG=$(CUDA_TAG) \
			--build-arg GIT_COMMIT=$(GIT_SHA)$(GIT_DIRTY) -t $(IMAGE_REPO):$(IMAGE_TAG)$$suffix . ; \
		$(if $(IMAGE_PUSH),$(DOCKER) push $(IMAGE_REPO):$(IMAGE_TAG)$$suffix;,) \
	done
	@mkdir -p $(RENDER_DIR)/kuberay
	@for f in infra/kuberay/*.yaml; do \
		sed 's|gglops:GIT_SHA|$(IMAGE_REPO):$(IMAGE_TAG)|g' $$f > $(RENDER_DIR)/kuberay/$$(basename $$f); done
	@printf 'GGLOPS_IMAGE=%s\nGGLOPS_IMAGE_CUDA=%s\n' $(IMAGE_REPO):$(IMAGE_TAG) \
		$(IMAGE_REPO):$(IMAGE_TAG)-cuda > $(RENDER_DIR)/image.env
	@echo "images $(IMAGE_REPO):$(IMAGE_TAG)[-cuda]; manifests in $(RENDER_DIR)/kuberay, compose env in $(RENDER_DIR)/image.env"

bench: setup
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean-stack: setup
	$(BIN)/gglops stack down

# NUAA-SIRST end to end on 2 CPU cores (pipelines/nuaa-sirst, laptop recipe): fetch → validate
# → tune → train → evaluate → register → promote → report, then the champion's summary.
# NUAA_SOURCE=PATH_OR_URL fetches from a local copy or mirror instead of the public repository.
# The model registers as gglnet-nuaa-sirst, apart from the synthetic demo's gglnet.
NUAA_MODEL ?= gglnet-nuaa-sirst
demo-real: setup
	$(BIN)/gglops stack up
	eval "$$($(BIN)/gglops stack env)" && export GGLOPS_REGISTERED_MODEL=$(NUAA_MODEL) \
		NUAA_SOURCE="$(NUAA_SOURCE)" PATH="$(CURDIR)/$(BIN):$$PATH" && \
		cd pipelines/nuaa-sirst && $(CURDIR)/$(BIN)/dvc repro $(if $(DEMO_FORCE),--force,)
	eval "$$($(BIN)/gglops stack env)" && GGLOPS_REGISTERED_MODEL=$(NUAA_MODEL) \
		$(BIN)/gglops summary
