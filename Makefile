# Observability bundle: `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON := .venv/bin/python
# Extra values files, later ones win: make render VALUES="a.yaml b.yaml"
VALUES ?=
VALUES_ARGS := $(foreach f,$(VALUES),--values $(f))

.PHONY: help venv tools render check test test-unit test-config

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.venv/.installed: requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: .venv/.installed ## create .venv with the pinned Python packages

tools: ## fetch promtool and amtool (the versions the tests prove) into .tools/bin
	scripts/fetch-tools.sh

render: venv ## render values.yaml (+ VALUES overlays) into config/, validate, write secrets
	$(PYTHON) render.py $(VALUES_ARGS)

check: venv ## fail if config/ is stale, then validate it with promtool and amtool
	$(PYTHON) render.py --check --require-validators $(VALUES_ARGS)

test-unit: venv ## render unit tests (no external tools)
	$(PYTHON) -m pytest -m unit

test-config: venv tools ## the real validators on rendered configs
	$(PYTHON) -m pytest -m config

test: venv tools ## every test level that this machine can run
	$(PYTHON) -m pytest
